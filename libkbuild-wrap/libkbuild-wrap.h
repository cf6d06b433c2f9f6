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
	const char *work_dir;     /* must not exist; created root-owned: the staging directory
				   * that receives the checked copies of the outputs */
	const char *subdir;       /* directory under the work dir holding the Kbuild file, or NULL */
	const char *log_path;     /* build output (stdout+stderr) is written here */
	char **make_vars;         /* extra "KEY=VALUE" arguments to make, NULL-terminated */
	char **extra_symbols;     /* Module.symvers files of modules this one needs */
	const char *command;      /* if set: run this via bash -c in the work dir instead of make
				   * (DKMS' MAKE[]), with KERNELRELEASE, kernelver, kernel_source_dir,
				   * PWD (and KBUILD_EXTRA_SYMBOLS) in the environment; make runs
				   * with PWD set to its directory too */
	char **modules;           /* expected outputs, paths relative to the work dir ("foo.ko") */
	unsigned jobs;            /* make -j; 0 = 1 */
	uid_t uid;                /* run the build as this user and group (an ephemeral uid of
				   * its own: see dm2d.conf(5) UidRange=) */
	gid_t gid;
	uint64_t timeout_usec;    /* 0 = none */
	uint64_t memory_max;      /* RLIMIT_AS in bytes; 0 = unlimited */
	bool isolate;             /* run in the sandbox (below); false only for tests of the
				   * plain build, never for untrusted sources */
	/* A GNU make jobserver pool shared by several builds: a pipe holding one byte per
	 * token. When set (isolate only), the build waits for a token to run on (make's
	 * implicit one), make gets no -j of its own but MAKEFLAGS="-jJOBS
	 * --jobserver-auth=3,4" on a pipe of the build's own, which is lent tokens from the
	 * pool while it runs; whatever it kept is back in the pool when kbw_build returns. */
	bool jobserver;
	int jobserver_fds[2];     /* read and write end of the pool */
	/* Read-only views of host directories (isolate only), as kbw_run_capture() mounts
	 * them (see struct kbw_bind below): a fake root's usr/src, lib/modules, ... seen at
	 * the machine's paths, as its dkms.conf was evaluated with them. At most 16. */
	const struct kbw_bind *binds;
	size_t n_binds;
};

/*
 * The sandbox (isolate = true; needs root): new mount, network, PID and IPC namespaces; the
 * whole file system read-only and nosuid; a private /tmp and an empty /run; the sources
 * copied into a size-limited tmpfs that no other process can reach (it is attached nowhere
 * on the host) and that is freed when the build ends. The build sees its work dir as
 * KBW_SANDBOX_WORK_DIR. When make (or the command) exits, the PID namespace dies and every
 * process of the build with it. Only then are the expected outputs opened beneath the
 * work dir (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), checked (regular file, one link,
 * bounded size) and copied into the root-owned work_dir: the paths in kbw_build_result
 * name those copies, never a file the build could change.
 */
#define KBW_SANDBOX_WORK_DIR "/tmp/dm2-build"

/* Limits of one sandboxed run; 0 in a field means its default. */
struct kbw_limits {
	uint64_t processes;       /* RLIMIT_NPROC of the build's uid; default 512 */
	uint64_t cpu_usec;        /* RLIMIT_CPU of each process; default 600 s */
	uint64_t disk_max;        /* bytes for the work dir and /tmp together; default 2 GiB */
};
#define KBW_DEFAULT_PROCESSES 512u
#define KBW_DEFAULT_CPU_USEC (600ULL * 1000000ULL)
#define KBW_DEFAULT_DISK_MAX (2ULL << 30)

struct kbw_build_result {
	int exit_status;          /* of make (or the command); -1 when killed */
	bool timed_out;
	char *reason;             /* one line: first compiler error, missing module, a limit
				   * ("build exceeded its disk budget of 2 GiB"), ... or NULL */
	char **modules;           /* absolute paths of the staged copies of the .ko files, in
				   * work_dir at their relative paths (on success) */
	char *symvers;            /* staged copy of Module.symvers if produced, else NULL */
	uid_t build_uid;          /* uid the build process saw (getuid() in the child) */
	bool network_isolated;    /* a new network namespace was in force */
};

/* Run the build synchronously. Returns 0 when the build ran (even if it failed: see
 * result->exit_status and result->reason), < 0 when it could not be run at all.
 * kbw_build() uses the default limits. */
int kbw_build(const struct kbw_kernel *k, const struct kbw_build_params *p,
	      struct kbw_build_result **ret);
int kbw_build_limited(const struct kbw_kernel *k, const struct kbw_build_params *p,
		      const struct kbw_limits *limits, struct kbw_build_result **ret);
/* Every build runs in its own process group under a small guardian process: when the caller
 * dies (even by SIGKILL) or the build times out or is cancelled, the whole group is killed,
 * and with it the build's PID namespace. */

/*
 * Run a command on a copy of one file in the same sandbox as a build (as uid:gid, with
 * the limits), for tools that parse untrusted input, such as `strip -g` on a built module.
 * The file is copied to KBW_SANDBOX_WORK_DIR/NAME; "{}" in argv stands for that path;
 * argv[0] is looked up in PATH. stdout and stderr go to log_fd (-1: /dev/null). On success
 * *ret and *ret_size hold the file as the command left it (checked like build outputs, at
 * most max_size bytes; 0: 1 GiB). When the command fails: -EPROTO, and *ret_reason
 * (when not NULL) says why in one line ("'strip' not found", "'strip -g foo.ko' failed
 * with exit status 1").
 */
struct kbw_file_command {
	char **argv;
	const char *name;         /* "foo.ko": one path component */
	int log_fd;
	uid_t uid;
	gid_t gid;
	uint64_t timeout_usec;
	uint64_t memory_max;
	uint64_t max_size;
	const struct kbw_limits *limits; /* NULL: defaults */
};
int kbw_run_on_file(const struct kbw_file_command *c, const void *data, size_t size,
		    void **ret, size_t *ret_size, char **ret_reason);

/*
 * Run a program in the sandbox of a build and capture what it prints (LIBKBUILD_WRAP_4):
 * for programs that read untrusted input and answer with data, such as bash sourcing a
 * DKMS dkms.conf. Besides what a build sees (the kernel's trees, the host read-only), the
 * program sees each bind: the host directory 'source' read-only at 'target'. When one of
 * the kernel's trees lies below a target (a fake root's usr/src bound over /usr/src while
 * its lib/modules/KVER/build links to the host's /usr/src/linux-headers-KVER), the target
 * shows the source over the host's directory (a read-only overlay), so both resolve.
 * Targets below /tmp are created in the private /tmp. The work dir
 * (KBW_SANDBOX_WORK_DIR) is empty and writable.
 *
 * Returns 0 when the program ran and exited with status 0; -EPROTO when it failed, with
 * *ret_reason (if not NULL) one line: "'bash' timed out after 30 s", "'bash' exited with
 * status 2: <first line of stderr>", a limit, "output exceeds 1 MiB". stdout is returned
 * in *ret_stdout (NUL-terminated, size in *ret_size) in both cases, stderr (at most
 * 64 KiB) in *ret_stderr when not NULL.
 */
struct kbw_bind {
	const char *source;	  /* host directory */
	const char *target;	  /* absolute path inside the sandbox */
	bool over_host;		  /* show source over the host's target (an overlay), as
				   * when a kernel tree lies below target */
};
struct kbw_command {
	char **argv;		  /* argv[0] is looked up in PATH unless absolute */
	char **envp;		  /* the whole environment; NULL: PATH, HOME, LC_ALL=C */
	const char *cwd;	  /* inside the sandbox; NULL: KBW_SANDBOX_WORK_DIR */
	const struct kbw_bind *binds;
	size_t n_binds;		  /* at most 16 */
	const struct kbw_kernel *kernel; /* its trees stay visible; may be NULL */
	uid_t uid;
	gid_t gid;
	uint64_t timeout_usec;	  /* 0: none */
	uint64_t memory_max;	  /* RLIMIT_AS; 0: unlimited */
	size_t stdout_max;	  /* 0: 1 MiB */
	const struct kbw_limits *limits; /* NULL: defaults (disk: 64 MiB here) */
};
int kbw_run_capture(const struct kbw_command *c, char **ret_stdout, size_t *ret_size,
		    char **ret_stderr, char **ret_reason);

/* Kill every build of this process that is in progress: kbw_build() then returns 0 with
 * result->reason "build cancelled". Async-signal-safe: meant for a SIGTERM/SIGINT handler. */
void kbw_build_cancel_all(void);

/* Success means: exit status 0, every expected module produced, vermagic matched. */
bool kbw_build_succeeded(const struct kbw_build_result *r);
struct kbw_build_result *kbw_build_result_free(struct kbw_build_result *r);

/* ---- Module info ---- */

/* The vermagic of an uncompressed .ko (what kbuild builds), read with libelf. */
int kbw_module_vermagic(const char *path, char **ret);
/* Any modinfo key ("license", "author", ...) of an uncompressed .ko: the first
 * "KEY=value" in its .modinfo section. -ENODATA if the key or the section is absent,
 * -ENOEXEC if the file is not an ELF object whose headers fit in it (a compressed module
 * is not one). Any bytes may be passed: nothing aborts. */
int kbw_module_info(const char *path, const char *key, char **ret);

#ifdef __cplusplus
}
#endif
