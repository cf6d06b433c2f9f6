/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kbw_run_on_file(): a tool that parses untrusted input (strip on a module the build
 * made) runs unprivileged in the sandbox of a build, on a copy of the file, and what it
 * leaves is read back through the workspace fd like any build output.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kbw-internal.h"

#define DEFAULT_MAX_SIZE (1ULL << 30)

/* argv[0] as an absolute path: as given, or the first match in KBW_DEFAULT_PATH. */
static char *find_in_path(const char *prog)
{
	char *path = NULL;

	return find_program(KBW_DEFAULT_PATH, prog, &path) >= 0 ? path : NULL;
}

static int write_input(const struct kbw_workspace *w, const struct kbw_file_command *c,
		       const void *data, size_t size)
{
	_cleanup_close_ int dir = -EBADF, fd = -EBADF;

	/* The work dir and the file are the build user's: created as that user, no chown. */
	dir = mkdirat_open_as(w->fd, KBW_WORKSPACE_WORK, 0700, c->uid, c->gid);
	if (dir < 0)
		return dir;
	fd = openat_as(dir, c->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644,
		       c->uid, c->gid);
	if (fd < 0)
		return fd;
	for (size_t off = 0; off < size;) {
		ssize_t k = write(fd, (const char *) data + off, size - off);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t) k;
	}
	return 0;
}

/* argv with every "{}" replaced by the sandbox path of the file. */
static int expand_argv(const struct kbw_file_command *c, char ***ret)
{
	_cleanup_strv_free_ char **argv = NULL;
	int r;

	for (char **a = c->argv; *a; a++) {
		r = strv_consume(&argv, streq(*a, "{}")
						    ? strdup_printf(KBW_SANDBOX_WORK_DIR "/%s",
								   c->name)
						    : strdup(*a));
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(argv);
	return 0;
}

static int read_output(const struct kbw_workspace *w, const struct kbw_file_command *c,
		       void **ret, size_t *ret_size, char **ret_reason)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	uint64_t max = c->max_size ?: DEFAULT_MAX_SIZE;
	struct stat st;
	size_t n = 0;
	int r;

	r = kbw_workspace_open_output(w, c->name, max, c->uid, c->gid, &fd);
	if (r < 0) {
		if (ret_reason)
			*ret_reason = strdup_printf("'%s' left '%s' %s", c->argv[0], c->name,
						   r == -ENOENT	  ? "missing"
						   : r == -EFBIG  ? "too large"
						   : r == -EACCES ? "unreadable"
								 : "not a plain file");
		return r == -ENOMEM ? r : -EPROTO;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	buf = malloc((size_t) st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (n < (size_t) st.st_size) {
		ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += (size_t) k;
	}
	*ret = TAKE_PTR(buf);
	*ret_size = n;
	return 0;
}

static char *failure_reason(const struct kbw_file_command *c, const struct kbw_sandbox *s,
			    const struct kbw_workspace *w, const struct kbw_sandbox_outcome *o)
{
	_cleanup_free_ char *text = NULL, *limit = NULL;

	if (o->setup_error)
		return strdup_printf("sandbox setup failed: %s", o->setup_error);
	if (o->timed_out)
		return strdup_printf("'%s' timed out", c->argv[0]);
	if (o->cancelled)
		return strdup("cancelled");
	if (c->log_fd >= 0)
		text = kbw_read_log(c->log_fd, 1u << 20);
	limit = kbw_limit_reason(s, w, o->status, text);
	if (limit)
		return TAKE_PTR(limit);
	return strdup_printf("'%s %s' failed (%s %d)", c->argv[0], c->name,
			    WIFEXITED(o->status) ? "exit status" : "signal",
			    WIFEXITED(o->status) ? WEXITSTATUS(o->status)
						 : WTERMSIG(o->status));
}

static int run_in_sandbox(const struct kbw_file_command *c, const struct kbw_workspace *w,
			  const char *exec_path, char **ret_reason)
{
	static char *envp[] = {(char *) "PATH=" KBW_DEFAULT_PATH, (char *) "LC_ALL=C",
			       (char *) "HOME=" KBW_SANDBOX_WORK_DIR, NULL};
	const struct kbw_limits *l = c->limits;
	_cleanup_strv_free_ char **argv = NULL;
	_cleanup_close_ int null_fd = -EBADF;
	struct kbw_sandbox_outcome o = {};
	struct kbw_sandbox s;
	int r;

	r = expand_argv(c, &argv);
	if (r < 0)
		return r;
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0)
		return -errno;
	s = (struct kbw_sandbox){
		.workspace_fd = w->fd,
		.exec_path = exec_path,
		.argv = argv,
		.envp = envp,
		.chdir_path = KBW_SANDBOX_WORK_DIR,
		.log_fd = c->log_fd >= 0 ? c->log_fd : null_fd,
		.uid = c->uid,
		.gid = c->gid,
		.memory_max = c->memory_max,
		.processes = l && l->processes ? l->processes : KBW_DEFAULT_PROCESSES,
		.cpu_sec = ((l && l->cpu_usec ? l->cpu_usec : KBW_DEFAULT_CPU_USEC) + 999999) /
			   1000000,
		.file_max = w->size,
	};
	r = kbw_sandbox_exec(&s, c->timeout_usec, &o);
	if (r < 0)
		return r;
	if (!o.setup_error && !o.timed_out && !o.cancelled && WIFEXITED(o.status) &&
	    WEXITSTATUS(o.status) == 0)
		return 0;
	if (ret_reason)
		*ret_reason = failure_reason(c, &s, w, &o);
	free(o.setup_error);
	return -EPROTO;
}

KBW_EXPORT int kbw_run_on_file(const struct kbw_file_command *c, const void *data,
			       size_t size, void **ret, size_t *ret_size, char **ret_reason)
{
	_cleanup_free_ char *exec_path = NULL;
	struct kbw_workspace w = {.fd = -EBADF};
	uint64_t budget;
	int r;

	if (!c || !c->argv || !c->argv[0] || !c->name || !c->name[0] ||
	    strchr(c->name, '/') || streq(c->name, ".") || streq(c->name, ".."))
		return -EINVAL;
	exec_path = find_in_path(c->argv[0]);
	if (!exec_path) {
		if (ret_reason)
			*ret_reason = strdup_printf("'%s' not found", c->argv[0]);
		return -EPROTO;
	}
	budget = c->limits && c->limits->disk_max ? c->limits->disk_max
						   : KBW_DEFAULT_DISK_MAX;
	r = kbw_workspace_new(budget, &w);
	if (r >= 0)
		r = write_input(&w, c, data, size);
	if (r >= 0)
		r = run_in_sandbox(c, &w, exec_path, ret_reason);
	if (r >= 0)
		r = read_output(&w, c, ret, ret_size, ret_reason);
	kbw_workspace_done(&w);
	return r;
}
