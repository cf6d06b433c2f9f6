/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "shared/macro.h"

/* dm2d.conf(5): the administrator's settings, read by dm2d and by the dm2 CLI alike. */

struct mirror {
	char *prefix;  /* URL prefix as written in recipes */
	char *replace; /* prefix to use instead */
};

struct dm2_config {
	/* [Daemon] */
	unsigned jobs;           /* Jobs=, concurrent builds; 0 = number of CPUs */
	uint64_t settle_usec;    /* SettleSec=, quiet time before a changed kernel tree is probed */
	uint64_t hook_timeout_usec; /* HookTimeoutSec=, how long kernel hooks wait */

	/* [Build] */
	char *build_user;        /* User=, unprivileged build user (default "dm2-build") */
	uint64_t build_timeout_usec; /* TimeoutSec= */
	uint64_t build_memory_max; /* MemoryMax= (RLIMIT_AS), bytes */
	bool allow_non_gpl;      /* AllowNonGPL= */
	unsigned make_jobs;      /* MakeJobs=, -j per build; 0 = CPUs / Jobs, at least 1 */
	uint32_t build_uid_min;  /* UidRange=MIN-MAX: each build's own ephemeral uid */
	uint32_t build_uid_max;
	uint64_t build_processes_max; /* ProcessMax= (RLIMIT_NPROC of the build's uid) */
	uint64_t build_cpu_usec; /* CPUTimeMaxSec= (RLIMIT_CPU of each build process) */
	uint64_t build_disk_max; /* DiskMax=, bytes for the work dir and /tmp of a build */

	/* [Signing] */
	bool sign;               /* Sign=, default yes */
	char *sign_key;          /* Key=, file path (under root) or a provider URI (pkcs11:...) */
	char *sign_cert;         /* Certificate= */
	char *sign_hash;         /* Hash=, override of the kernel's CONFIG_MODULE_SIG_HASH */

	/* [Fetch] */
	struct mirror *mirrors;  /* Mirror=PREFIX MIRROR (repeatable) */
	size_t n_mirrors;
	char *ca_file;           /* CAFile=, extra CA bundle for https (tests, private forges) */
	uint64_t max_download_size; /* MaxDownloadSize= */
	uint64_t connect_timeout_usec; /* ConnectTimeoutSec= */
	uint64_t stall_timeout_usec;   /* StallTimeoutSec= */
	unsigned retries;        /* Retries= */

	/* [Unpack] */
	uint64_t max_unpacked_size; /* MaxUnpackedSize= */
	uint64_t max_entries;    /* MaxEntries= */

	/* [Cache] */
	uint64_t cache_max_size; /* MaxSize= */
	char *remote_cache;      /* Remote=URL: http(s)://, oci://, oci+http:// */
	bool remote_push;        /* Push= */
	/* How dm2 authenticates to Remote= (paths under the root; never printed): */
	char *remote_netrc_file;  /* NetrcFile= */
	char *remote_token_file;  /* BearerTokenFile= */
	char *remote_header_file; /* HeaderFile= */
	char *remote_client_cert; /* ClientCertificate= */
	char *remote_client_key;  /* ClientKey= */
	char *remote_ca_file;     /* CAFile= in [Cache]; default: CAFile= of [Fetch] */
	char *trusted_keys;      /* TrustedKeys=, PEM files under root, space-separated */
	bool remote_signing_builder; /* RemoteSigning=builder (default resign) */
};

/* Defaults, then path (default etc/dm2/dm2d.conf) under root_fd if it exists, then the
 * drop-ins path.d/ *.conf in name order, a later assignment winning. An unknown key is a
 * warning and ignored; a bad value fails the load. Errors name file:line, the file as
 * root/path (the real path on the machine) when root is given, as path when it is NULL. */
int config_load_root(int root_fd, const char *root, const char *path, struct dm2_config **ret);
int config_load(int root_fd, const char *path, struct dm2_config **ret);
struct dm2_config *config_free(struct dm2_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dm2_config *, config_free);
