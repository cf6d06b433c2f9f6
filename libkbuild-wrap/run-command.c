/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kbw_run_capture(): a program that reads untrusted input and answers with data (bash
 * sourcing a dkms.conf) runs in the sandbox of a build, and its stdout comes back as
 * bytes. stdout and stderr are memfds: nothing the program leaves running can hold a
 * pipe open and make the caller wait (it dies with the PID namespace anyway), and their
 * size is bounded by RLIMIT_FSIZE like any file the program writes.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kbw-internal.h"

#define DEFAULT_STDOUT_MAX (1u << 20)
#define STDERR_MAX (64u << 10)
#define DEFAULT_DISK (64ULL << 20)

/* The first line of text, at most 300 bytes, or NULL when there is none. */
static char *first_line(const char *text)
{
	size_t n;

	if (!text)
		return NULL;
	text += strspn(text, "\n");
	n = strcspn(text, "\n");
	return n > 0 ? strndup(text, MIN(n, (size_t) 300)) : NULL;
}

static char *failure_reason(const struct kbw_command *c, const struct kbw_sandbox *s,
			    const struct kbw_workspace *w, const struct kbw_sandbox_outcome *o,
			    const char *err)
{
	_cleanup_free_ char *limit = NULL, *line = NULL;
	const char *prog = strrchr(c->argv[0], '/') ? strrchr(c->argv[0], '/') + 1
						     : c->argv[0];

	if (o->setup_error)
		return strdup_printf("sandbox setup failed: %s", o->setup_error);
	if (o->timed_out)
		return strdup_printf("'%s' timed out after %llu s", prog,
				     (unsigned long long) (c->timeout_usec / 1000000u));
	if (o->cancelled)
		return strdup("cancelled");
	limit = kbw_limit_reason(s, w, o->status, err);
	if (limit)
		return TAKE_PTR(limit);
	if (WIFSIGNALED(o->status))
		return strdup_printf("'%s' was killed by signal %s", prog,
				     sigabbrev_np(WTERMSIG(o->status)) ?: "?");
	line = first_line(err);
	return strdup_printf("'%s' exited with status %d%s%s", prog, WEXITSTATUS(o->status),
			     line ? ": " : "", strempty(line));
}

/* Read all of a memfd (at most max bytes; -EFBIG beyond). */
static int read_memfd(int fd, size_t max, char **ret, size_t *ret_size)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t n = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t) st.st_size > max)
		return -EFBIG;
	buf = malloc((size_t) st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (n < (size_t) st.st_size) {
		ssize_t k = pread(fd, buf + n, (size_t) st.st_size - n, (off_t) n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += (size_t) k;
	}
	buf[n] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_size = n;
	return 0;
}

struct capture {
	const struct kbw_command *c;
	struct kbw_workspace ws;
	int out_fd, err_fd;
	const char *exec_path;
};

static int run(struct capture *cap, struct kbw_sandbox_outcome *o, struct kbw_sandbox *s)
{
	static char *default_envp[] = {(char *) "PATH=" KBW_DEFAULT_PATH,
				       (char *) "LC_ALL=C",
				       (char *) "HOME=" KBW_SANDBOX_WORK_DIR, NULL};
	const struct kbw_command *c = cap->c;
	const struct kbw_limits *l = c->limits;
	/* The build user's own work dir: created as that user, so no chown. */
	int work = mkdirat_open_as(cap->ws.fd, KBW_WORKSPACE_WORK, 0700, c->uid, c->gid);

	if (work < 0)
		return work;
	safe_close(work);
	*s = (struct kbw_sandbox){
		.k = c->kernel,
		.workspace_fd = cap->ws.fd,
		.exec_path = cap->exec_path,
		.argv = c->argv,
		.envp = c->envp ?: default_envp,
		.chdir_path = c->cwd ?: KBW_SANDBOX_WORK_DIR,
		.log_fd = cap->err_fd,
		.stdout_fd = cap->out_fd,
		.uid = c->uid,
		.gid = c->gid,
		.memory_max = c->memory_max,
		.processes = l && l->processes ? l->processes : KBW_DEFAULT_PROCESSES,
		.cpu_sec = ((l && l->cpu_usec ? l->cpu_usec : KBW_DEFAULT_CPU_USEC) + 999999) /
			   1000000,
		.file_max = cap->ws.size,
		.binds = c->binds,
		.n_binds = c->n_binds,
	};
	return kbw_sandbox_exec(s, c->timeout_usec, o);
}

static int prepare(struct capture *cap)
{
	const struct kbw_command *c = cap->c;
	uint64_t disk = c->limits && c->limits->disk_max ? c->limits->disk_max : DEFAULT_DISK;
	int r;

	/* Above fd 2: 0 in kbw_sandbox.stdout_fd means "the log". */
	cap->out_fd = memfd_create("kbw-stdout", MFD_CLOEXEC);
	cap->err_fd = memfd_create("kbw-stderr", MFD_CLOEXEC);
	if (cap->out_fd < 0 || cap->err_fd < 0)
		return -errno;
	r = kbw_workspace_new(disk, &cap->ws);
	if (r < 0)
		return r;
	return 0;
}

static void capture_done(struct capture *cap)
{
	kbw_workspace_done(&cap->ws);
	cap->out_fd = safe_close(cap->out_fd);
	cap->err_fd = safe_close(cap->err_fd);
}

KBW_EXPORT int kbw_run_capture(const struct kbw_command *c, char **ret_stdout,
			       size_t *ret_size, char **ret_stderr, char **ret_reason)
{
	_cleanup_free_ char *exec_path = NULL, *out = NULL, *err = NULL;
	struct capture cap = {.c = c, .ws.fd = -EBADF, .out_fd = -EBADF, .err_fd = -EBADF};
	struct kbw_sandbox_outcome o = {};
	struct kbw_sandbox s;
	size_t out_size = 0, err_size = 0;
	int r;

	if (!c || !c->argv || !c->argv[0] || !ret_stdout || !ret_size || c->n_binds > 16)
		return -EINVAL;
	if (find_program(KBW_DEFAULT_PATH, c->argv[0], &exec_path) < 0) {
		if (ret_reason)
			*ret_reason = strdup_printf("'%s' not found", c->argv[0]);
		return -EPROTO;
	}
	cap.exec_path = exec_path;
	r = prepare(&cap);
	if (r >= 0)
		r = run(&cap, &o, &s);
	if (r < 0) {
		capture_done(&cap);
		return r;
	}
	r = read_memfd(cap.err_fd, STDERR_MAX, &err, &err_size);
	if (r == -EFBIG)
		err = kbw_read_log(cap.err_fd, STDERR_MAX);
	r = read_memfd(cap.out_fd, c->stdout_max ?: DEFAULT_STDOUT_MAX, &out, &out_size);
	if (r == -EFBIG) {
		_cleanup_free_ char *max = kbw_format_bytes(c->stdout_max ?: DEFAULT_STDOUT_MAX);

		if (ret_reason)
			*ret_reason = strdup_printf("output exceeds %s", max ?: "the limit");
		r = -EPROTO;
	} else if (r >= 0 && (o.setup_error || o.timed_out || o.cancelled ||
			      !WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0)) {
		if (ret_reason)
			*ret_reason = failure_reason(c, &s, &cap.ws, &o, err);
		r = -EPROTO;
	}
	free(o.setup_error);
	capture_done(&cap);
	if (r < 0 && r != -EPROTO)
		return r;
	if (ret_stderr)
		*ret_stderr = TAKE_PTR(err);
	if (out) {
		*ret_stdout = TAKE_PTR(out);
		*ret_size = out_size;
	} else {
		*ret_stdout = strdup("");
		*ret_size = 0;
		if (!*ret_stdout)
			return -ENOMEM;
	}
	return r;
}
