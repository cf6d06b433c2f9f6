/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libkbuild-wrap: probe a kernel build tree and run a kbuild build of an external module in a
 * sandbox. The library never prints: diagnostics go to the callback set with kbw_set_log_fn().
 * All functions return 0 or a negative errno; output parameters are written only on success.
 * It knows nothing about dm2's recipes, state or paths.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*kbw_log_fn)(int priority, const char *message, void *userdata);
void kbw_set_log_fn(kbw_log_fn fn, void *userdata);

enum kbw_compression {
	KBW_COMPRESSION_NONE,
	KBW_COMPRESSION_GZIP,
	KBW_COMPRESSION_XZ,
	KBW_COMPRESSION_ZSTD,
	_KBW_COMPRESSION_MAX,
	_KBW_COMPRESSION_INVALID = -22,
};
const char *kbw_compression_to_string(enum kbw_compression c);    /* "none", "gzip", ... */
const char *kbw_compression_suffix(enum kbw_compression c);       /* "", ".gz", ".xz", ".zst" */

/* ---- Kernel probe ---- */

struct kbw_kernel;

/*
 * Probe the build tree of kernel 'release' whose modules directory is 'modules_dir' (for
 * example "/lib/modules/6.1.0-56-amd64"; the build tree is modules_dir/build, resolved). Never
 * looks at the running kernel. Succeeds for incomplete trees too: check kbw_kernel_complete().
 * Fails with -ENOENT only when modules_dir itself does not exist.
 */
int kbw_kernel_probe(const char *modules_dir, const char *release, struct kbw_kernel **ret);
struct kbw_kernel *kbw_kernel_ref(struct kbw_kernel *k);
struct kbw_kernel *kbw_kernel_unref(struct kbw_kernel *k);

const char *kbw_kernel_release(const struct kbw_kernel *k);    /* directory name */
const char *kbw_kernel_build_dir(const struct kbw_kernel *k);  /* realpath of build/, or NULL */
/* Complete: every file the build needs exists and UTS_RELEASE equals the release. When not,
 * 'reason' says which file is missing and which package usually provides it. */
bool kbw_kernel_complete(const struct kbw_kernel *k, const char **reason);
const char *kbw_kernel_arch(const struct kbw_kernel *k);       /* uname -m style: x86_64, aarch64 */
const char *kbw_kernel_srcarch(const struct kbw_kernel *k);    /* kbuild ARCH: x86, arm64 */
/* Value of a CONFIG_ option as written in .config without quotes ("y", "m", "sha256"), or NULL
 * when unset. Accepts the name with or without the CONFIG_ prefix. */
const char *kbw_kernel_config(const struct kbw_kernel *k, const char *option);
const char *kbw_kernel_sig_hash(const struct kbw_kernel *k);   /* CONFIG_MODULE_SIG_HASH or NULL */
enum kbw_compression kbw_kernel_compression(const struct kbw_kernel *k);
/* Compiler as kbuild expects it: CC from .kernelvariables, else first word of
 * CONFIG_CC_VERSION_TEXT; and whether the kernel was built with clang (LLVM=1). */
const char *kbw_kernel_cc(const struct kbw_kernel *k);
bool kbw_kernel_llvm(const struct kbw_kernel *k);
/* True when the compiler above can be found in PATH. */
bool kbw_kernel_cc_available(const struct kbw_kernel *k);
const char *kbw_kernel_cc_version_text(const struct kbw_kernel *k);
/* The vermagic string modules built for this kernel must carry, e.g.
 * "6.1.0-56-amd64 SMP preempt mod_unload modversions ". */
const char *kbw_kernel_vermagic(const struct kbw_kernel *k);
/* sha256 (hex) over .config, Module.symvers, the release and the compiler version text.
 * Computed on the first call and cached in k (probing never reads Module.symvers nor loads
 * OpenSSL); NULL when the kernel is incomplete or the files cannot be read. */
const char *kbw_kernel_identity(const struct kbw_kernel *k);
/* Major.minor.patch of the kernel, parsed from the release or the Makefile (for ranges). */
const char *kbw_kernel_version(const struct kbw_kernel *k);

/* ---- Build ---- */

struct kbw_build_params {
	const char *source_dir;   /* tree to copy (read-only, never written) */
	const char *work_dir;     /* must not exist; created, the source is copied into it */
	const char *subdir;       /* directory under work_dir holding the Kbuild file, or NULL */
	const char *log_path;     /* build output (stdout+stderr) is written here */
	char **make_vars;         /* extra "KEY=VALUE" arguments to make, NULL-terminated */
	char **extra_symbols;     /* Module.symvers files of modules this one needs */
	const char *command;      /* if set: run this via /bin/sh -c in work_dir instead of make
				   * (DKMS' MAKE[]), with KERNELRELEASE, kernelver, kernel_source_dir
				   * in the environment */
	char **modules;           /* expected outputs, paths relative to work_dir ("foo.ko") */
	unsigned jobs;            /* make -j; 0 = 1 */
	uid_t uid;                /* run the build as this user and group */
	gid_t gid;
	uint64_t timeout_usec;    /* 0 = none */
	uint64_t memory_max;      /* RLIMIT_AS in bytes; 0 = unlimited */
	bool isolate;             /* new user/mount/network namespaces (where the kernel allows) */
};

struct kbw_build_result {
	int exit_status;          /* of make (or the command); -1 when killed */
	bool timed_out;
	char *reason;             /* one line: first compiler error, missing module, ... or NULL */
	char **modules;           /* absolute paths of the produced .ko files (on success) */
	char *symvers;            /* work_dir/Module.symvers if produced, else NULL */
	uid_t build_uid;          /* uid the build process saw (getuid() in the child) */
	bool network_isolated;    /* a new network namespace was in force */
};

/* Run the build synchronously. Returns 0 when the build ran (even if it failed: see
 * result->exit_status and result->reason), < 0 when it could not be run at all. */
int kbw_build(const struct kbw_kernel *k, const struct kbw_build_params *p,
	      struct kbw_build_result **ret);
/* Every build runs in its own process group under a small guardian process: when the caller
 * dies (even by SIGKILL) or the build times out or is cancelled, the whole group is killed,
 * compilers and $(shell ...) children included. */

/* Kill every build of this process that is in progress: kbw_build() then returns 0 with
 * result->reason "build cancelled". Async-signal-safe: meant for a SIGTERM/SIGINT handler. */
void kbw_build_cancel_all(void);

/* Success means: exit status 0, every expected module produced, vermagic matched. */
bool kbw_build_succeeded(const struct kbw_build_result *r);
struct kbw_build_result *kbw_build_result_free(struct kbw_build_result *r);

/* ---- Module info ---- */

/* The vermagic of a .ko (uncompressed or compressed), read with libkmod. */
int kbw_module_vermagic(const char *path, char **ret);
/* Any modinfo key ("license", "signer", ...), read with libkmod; -ENODATA if absent. */
int kbw_module_info(const char *path, const char *key, char **ret);

#ifdef __cplusplus
}
#endif
