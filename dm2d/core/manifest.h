/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/db.h"
#include "shared/macro.h"

/*
 * Install manifests: ROOT/lib/modules/KVER/.dm2/RECIPE.manifest, one per recipe x kernel,
 * written (write_file_atomic_at()) before the state db records an install and removed
 * after an uninstall. They say what the db says about an install (version, build key,
 * signer, every file with its sha256), so a state db that is lost or damaged is rebuilt
 * from them: they live beside the modules rather than in var/lib/dm2, so they survive
 * whatever happens to the state directory and leave with the kernel's own directory.
 *
 * The format is line based ("Key=Value", '#' comments), documented in dm2d(8):
 *   Manifest=1  Recipe=  Kernel=  Version=  BuildKey=  Signer=  FromCache=yes|no
 *   Installed=<usec>  File=<sha256> <in-tree module it shadows, or -> <path below root>
 *
 * While an install replaces an earlier one, the manifest lists the files of both (the
 * same path may appear twice with different hashes), so a crash in between never leaves
 * a file of dm2's that no manifest claims.
 */

#define MANIFEST_DIR ".dm2"
#define MANIFEST_SUFFIX ".manifest"
#define MANIFEST_MAX_SIZE (1024 * 1024)

struct manifest_file {
	char *path;   /* relative to root: "lib/modules/KVER/updates/dm2/foo.ko" */
	char *sha256; /* 64 hex */
	char *overrides_intree; /* or NULL */
};

struct manifest {
	char *recipe;
	char *kernel;
	char *version;
	char *build_key;
	char *signer;
	bool from_cache;
	uint64_t installed; /* usec since the epoch */
	struct manifest_file *files;
	size_t n_files;
};

struct manifest *manifest_free(struct manifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct manifest *, manifest_free);

/* Append a file (copies the strings). */
int manifest_add_file(struct manifest *m, const char *path, const char *sha256,
		      const char *overrides_intree);
/* Drop every file after the first n. */
void manifest_truncate(struct manifest *m, size_t n);

/* The text of m; -EINVAL when a value holds a newline or a path is not below
 * lib/modules/KVER. */
int manifest_format(const struct manifest *m, char **ret);
/* Parse text; on a syntax error -EBADMSG with the 1-based line in *ret_line and what is
 * wrong in *ret_why (static text); -EPROTO for a newer format. */
int manifest_parse(const char *text, struct manifest **ret, unsigned *ret_line,
		   const char **ret_why);

/* "lib/modules/KVER/.dm2/RECIPE.manifest" */
char *manifest_path(const char *kver, const char *recipe);
/* Write m atomically to its path below root_fd (creating the directory). */
int manifest_write(int root_fd, const struct manifest *m);
/* Remove the manifest of recipe x kver (missing is fine), and its directory if empty. */
int manifest_remove(int root_fd, const char *kver, const char *recipe);

/* How many manifests exist below root_fd (for a reader that finds no state db). */
int manifest_count(int root_fd, unsigned *ret);

struct manifest_import_stats {
	unsigned manifests; /* manifests found */
	unsigned imported;  /* recipe x kernel pairs recorded as installed */
	unsigned files;	    /* files recorded */
	unsigned skipped;   /* manifests unreadable or with no file still matching */
};

/*
 * Record every manifest below root_fd whose files still match their hashes in d (the
 * caller holds a transaction on a freshly created db): one installed job per recipe x
 * kernel with its version, build key, signer, and one installed-file record per file
 * whose content still matches. A manifest that cannot be parsed is skipped with a warning
 * naming its file and line.
 */
int manifest_import_all(struct db *d, int root_fd, struct manifest_import_stats *ret);
