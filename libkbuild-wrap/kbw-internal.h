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

/* Symbols of the public API; everything else stays hidden (-fvisibility=hidden). */
#define KBW_EXPORT __attribute__((__visibility__("default")))

/* Report through the callback set with kbw_set_log_fn(); never prints by itself. */
void kbw_log(int priority, const char *format, ...)
	__attribute__((__format__(printf, 2, 3)));

/* The library cannot use dm2d/shared: its own small helpers. */
#define _kbw_cleanup_(f) __attribute__((__cleanup__(f)))
static inline void kbw_freep(void *p)
{
	free(*(void **) p);
}
#define _kbw_cleanup_free_ _kbw_cleanup_(kbw_freep)
static inline void kbw_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		(void) close(*fd);
		errno = saved;
	}
}
#define _kbw_cleanup_close_ _kbw_cleanup_(kbw_closep)
#define KBW_TAKE_PTR(p)                                                                  \
	({                                                                               \
		__typeof__(p) _ptr_ = (p);                                               \
		(p) = NULL;                                                              \
		_ptr_;                                                                   \
	})
#define kbw_streq(a, b) (strcmp((a), (b)) == 0)

/* PATH of every build (and where the kernel's compiler is looked for). */
#define KBW_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Whole file, NUL-terminated; -EFBIG above max (0: 64 MiB). */
int kbw_read_file(const char *path, size_t max, char **ret, size_t *ret_size);
char **kbw_strv_free(char **l);
static inline void kbw_strv_freep(char ***l)
{
	kbw_strv_free(*l);
}
#define _kbw_cleanup_strv_ _kbw_cleanup_(kbw_strv_freep)
size_t kbw_strv_length(char *const *l);
/* Append v, taking ownership (also on failure). */
int kbw_strv_consume(char ***l, char *v);
char *kbw_asprintf(const char *format, ...) __attribute__((__format__(printf, 1, 2)));
/* Copy a tree (regular files, directories, symlinks; setuid/setgid bits dropped) to dst,
 * which must not exist; every created entry is owned by uid:gid. Other types: -EBADMSG.
 */
int kbw_copy_tree(const char *src, const char *dst, uid_t uid, gid_t gid);
/* Find an executable in KBW_DEFAULT_PATH (or check an absolute/relative path). */
bool kbw_find_program(const char *prog);

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
		     bool *ret_timed_out);
/* prctl(PR_SET_PDEATHSIG, sig), then -ESRCH if getppid() is no longer parent. */
int kbw_process_die_with_parent(pid_t parent, int sig);

static inline int kbw_close(int fd)
{
	if (fd >= 0)
		(void) close(fd);
	return -EBADF;
}
static inline void *_kbw_mfree(void *p)
{
	free(p);
	return NULL;
}
#define MIN_U64(a, b) ((uint64_t) (a) < (uint64_t) (b) ? (uint64_t) (a) : (uint64_t) (b))
