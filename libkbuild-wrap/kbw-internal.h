/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libkbuild-wrap.h"
/* dm2's one helper library; libkbuild-wrap.sym keeps it out of the shared library's ABI. */
#include "shared/fs-util.h"
#include "shared/macro.h"
#include "shared/util.h"

/* Symbols of the public API; everything else stays hidden (-fvisibility=hidden). */
#define KBW_EXPORT __attribute__((__visibility__("default")))

/* Report through the callback set with kbw_set_log_fn(); never prints by itself. */
void kbw_log(int priority, const char *format, ...)
	__attribute__((__format__(printf, 2, 3)));

/* PATH of every build (and where the kernel's compiler is looked for). */
#define KBW_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct kbw_config_entry {
	char *name;  /* "CONFIG_FOO", points into kbw_kernel.config_text */
	char *value; /* without quotes, ditto */
};

struct kbw_kernel {
	unsigned n_ref;
	char *release;
	char *modules_dir;
	char *build_dir; /* realpath, or NULL */
	bool complete;
	char *reason;
	char *config_text; /* .config, parsed in place */
	struct kbw_config_entry *config;
	size_t n_config;
	char *arch, *srcarch;
	char *cc, *cc_version_text;
	bool llvm;
	enum kbw_compression compression;
	char *vermagic;
	char *identity; /* computed on first use by kbw_kernel_identity() */
	char *version;
	char **ro_paths; /* trees the build reads: bind-mounted read-only in the sandbox
			  */
};

/* jobs.c: one build's share of a make jobserver pool. */
struct kbw_jobs {
	int pool_w;	 /* the pool's write end (the caller's) */
	int pool_nb;	 /* our non-blocking read end of the pool */
	int fds[2];	 /* the build's own pipe: it sees these as fds 3 and 4 */
	int own_nb;	 /* our non-blocking read end of the build's pipe */
	unsigned lent;	 /* tokens put into the build's pipe */
	unsigned drained; /* tokens taken back out of it */
	bool implicit;	 /* we hold the token the build's make runs on */
	uint64_t lent_at;
};
#define KBW_JOBS_FD_R 3
#define KBW_JOBS_FD_W 4
/* Take the implicit token (blocking until the pool has one), create the build's pipe. */
int kbw_jobs_begin(struct kbw_jobs *j, int pool_r, int pool_w);
/* Lend and pass back tokens; call every few ms while the build runs. */
void kbw_jobs_tick(struct kbw_jobs *j);
/* After the build's namespace died: all its tokens back to the pool; how many it had
 * kept in *ret_kept (may be NULL). */
void kbw_jobs_end(struct kbw_jobs *j, unsigned *ret_kept);

/* build-process.c: one build's guardian process and its process group. */
struct kbw_process {
	pid_t pid; /* the guardian: also the process group of the build; 0 when gone */
	int slot;  /* in the table kbw_build_cancel_all() reads, or -1 */
	bool cancelled; /* kbw_build_cancel_all() was called for it */
};
/* Fork the guardian, which forks the worker that calls run(arg) (which must exec or
 * _exit). report_fd is only for the guardian's own setup errors ("error ...\n"). */
int kbw_process_start(void (*run)(const void *arg), const void *arg, int report_fd,
		      struct kbw_process *ret);
/* SIGKILL to the whole group of the build. */
void kbw_process_kill(const struct kbw_process *p);
/* Wait until the guardian exits, killing the group when timeout_usec (0: none) passes;
 * then kill whatever is left in the group and reap. Status as from waitpid(). */
int kbw_process_wait(struct kbw_process *p, uint64_t timeout_usec, int *ret_status,
		     bool *ret_timed_out, struct kbw_jobs *jobs);
/* prctl(PR_SET_PDEATHSIG, sig), then -ESRCH if getppid() is no longer parent. */
int kbw_process_die_with_parent(pid_t parent, int sig);


/* sandbox.c: the tmpfs a sandboxed run works in, the run itself, its outputs. */
#define KBW_WORKSPACE_WORK "dm2-build" /* the work dir, relative to the workspace root */

/* A tmpfs that is mounted nowhere: only its fd reaches it, so nothing outside the caller
 * and the sandbox (which mounts a clone on /tmp) can see it, and closing the fd frees it.
 * It holds KBW_WORKSPACE_WORK, owned by the build uid, mode 0700; the root is the build's
 * /tmp (mode 1777). */
struct kbw_workspace {
	int fd;
	uint64_t size;
};
int kbw_workspace_new(uint64_t size, struct kbw_workspace *ret);
void kbw_workspace_done(struct kbw_workspace *w);
/* No block or no inode left. */
bool kbw_workspace_full(const struct kbw_workspace *w);
/* Open the output 'rel' (relative to the work dir) as the build user uid:gid, without
 * following any symlink or leaving the workspace; -EBADMSG unless a regular file with one
 * link, -EFBIG above max, -EACCES if that user cannot read it. */
int kbw_workspace_open_output(const struct kbw_workspace *w, const char *rel, uint64_t max,
			      uid_t uid, gid_t gid, int *ret_fd);
/* Copy in_fd to dir_fd/rel (mode 0644, owned by the caller, parents created 0755). */
int kbw_stage_copy(int in_fd, int dir_fd, const char *rel);

struct kbw_sandbox {
	const struct kbw_kernel *k; /* its trees under /tmp stay visible; may be NULL */
	int workspace_fd;
	const char *exec_path;
	char **argv;
	char **envp;
	const char *chdir_path; /* inside the sandbox */
	int log_fd;		/* stdout and stderr */
	int report_fd;		/* "uid N", "net 1", "error ..." lines for the caller */
	uid_t uid;
	gid_t gid;
	uint64_t memory_max; /* RLIMIT_AS, 0: none */
	uint64_t processes;  /* RLIMIT_NPROC */
	uint64_t cpu_sec;    /* RLIMIT_CPU */
	uint64_t file_max;   /* RLIMIT_FSIZE: no file (the log included) beyond the budget */
	struct kbw_jobs *jobs; /* its fds become 3 and 4 of the command; NULL: none */
	int stdout_fd;	     /* stdout when > 0; 0: log_fd */
	const struct kbw_bind *binds; /* read-only views of host trees, mounted in order */
	size_t n_binds;
};
/* The worker of build-process.c: namespaces, mounts, a PID 1 that runs the command as
 * uid:gid and reaps, and the command's wait status passed on as the worker's own. */
_Noreturn void kbw_sandbox_run(const void *arg);

struct kbw_sandbox_outcome {
	int status;	   /* as from waitpid() */
	bool timed_out;
	bool cancelled;
	char *setup_error; /* the sandbox could not be set up */
	uid_t uid;	   /* as the command saw it */
	bool net;	   /* a network namespace was in force */
};
/* Start s under a guardian, wait (killing it after timeout_usec), collect the outcome. */
int kbw_sandbox_exec(const struct kbw_sandbox *s, uint64_t timeout_usec,
		     struct kbw_sandbox_outcome *ret);
/* The limit a failed run hit, from the workspace and the log ("build exceeded its disk
 * budget of 2 GiB"), or NULL when none is recognised. */
char *kbw_limit_reason(const struct kbw_sandbox *s, const struct kbw_workspace *w,
		       int status, const char *log_text);
/* "2 GiB", "512 MiB", "1234 bytes" */
char *kbw_format_bytes(uint64_t n);
/* Up to max bytes of the log from its start, read through fd (never by path). */
char *kbw_read_log(int fd, size_t max);
