/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "shared/fs-util.h"
#include "shared/spawn.h"
#include "shared/util.h"

#define SPAWN_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Where the child would look for a program without a slash: its own PATH. */
static const char *search_path(char *const *envp)
{
	if (!envp)
		return getenv("PATH") ?: SPAWN_DEFAULT_PATH;
	for (char *const *e = envp; *e; e++) {
		const char *v = startswith(*e, "PATH=");
		if (v)
			return v;
	}
	return SPAWN_DEFAULT_PATH;
}

static void close_from(int first, int last)
{
	long max = sysconf(_SC_OPEN_MAX);

	/* close_range() is Linux 5.9; before, one close() per possible fd. */
	if (syscall(SYS_close_range, (unsigned) first, (unsigned) last, 0U) >= 0)
		return;
	for (long fd = first; fd <= last && fd < (max > 0 ? max : 65536); fd++)
		(void) close((int) fd);
}

/* Everything but stdio, keep (> 2) and o->keep_fds, which lose O_CLOEXEC. */
static int close_all_but(const struct spawn_options *o, int keep)
{
	int next = 3;

	for (;;) {
		int low = keep >= next ? keep : INT_MAX;

		for (size_t i = 0; i < o->n_keep_fds; i++)
			if (o->keep_fds[i] >= next && o->keep_fds[i] < low)
				low = o->keep_fds[i];
		if (low == INT_MAX)
			break;
		if (low > next)
			close_from(next, low - 1);
		next = low + 1;
	}
	close_from(next, INT_MAX);
	for (size_t i = 0; i < o->n_keep_fds; i++)
		if (fcntl(o->keep_fds[i], F_SETFD, 0) < 0)
			return -errno;
	return 0;
}

static int reset_signals(void)
{
	sigset_t ss;

	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void) signal(sig, SIG_DFL); /* fails harmlessly for the RT ones glibc keeps */
	sigemptyset(&ss);
	return sigprocmask(SIG_SETMASK, &ss, NULL) < 0 ? -errno : 0;
}

/* What becomes one of the child's stdio fds, as a copy above 2: so that a source that
 * happens to be 0, 1 or 2 is not overwritten by another's dup2(). */
static int stdio_source(int fd)
{
	if (fd == SPAWN_NULL) {
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		return fd;
	} else if (fd < 0)
		return -EBADF;
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

static int setup_stdio(const struct spawn_options *o)
{
	const int want[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
	int src[3] = {-EBADF, -EBADF, -EBADF};

	for (int i = 0; i < 3; i++) {
		if (want[i] == SPAWN_INHERIT)
			continue;
		src[i] = stdio_source(want[i]);
		if (src[i] < 0)
			return src[i];
	}
	/* dup2() clears O_CLOEXEC on the copy; the sources go with close_all_but(). */
	for (int i = 0; i < 3; i++)
		if (want[i] != SPAWN_INHERIT && dup2(src[i], i) < 0)
			return -errno;
	return 0;
}

static int child_setup(const struct spawn_options *o, pid_t parent, int *errfd)
{
	int r;

	r = reset_signals();
	if (r < 0)
		return r;
	if (o->death_signal > 0) {
		if (prctl(PR_SET_PDEATHSIG, o->death_signal) < 0)
			return -errno;
		/* The parent may have died before the prctl(): then nobody is left to wait. */
		if (getppid() != parent)
			return -ESRCH;
	}
	if (o->new_process_group && setpgid(0, 0) < 0)
		return -errno;
	/* Our report channel must not be one of the numbers stdio is about to take. */
	*errfd = fcntl(*errfd, F_DUPFD_CLOEXEC, 3);
	if (*errfd < 0)
		return -errno;
	r = setup_stdio(o);
	if (r < 0)
		return r;
	r = close_all_but(o, *errfd);
	if (r < 0)
		return r;
	if (o->cwd && chdir(o->cwd) < 0)
		return -errno;
	return 0;
}

static _noreturn_ void child(const struct spawn_options *o, const char *path, pid_t parent,
			     int errfd)
{
	int r, e;

	r = child_setup(o, parent, &errfd);
	if (r >= 0) {
		execve(path, o->argv, o->envp ?: environ);
		r = -errno;
	}
	/* The exec failed: tell the parent why; it reads EOF when the exec succeeds. */
	e = -r;
	(void) loop_write(errfd, &e, sizeof(e));
	_exit(127);
}

/* After fork: the errno the child reported before exec, or 0 once it exec'd. */
static int read_child_error(int fd)
{
	int e = 0;
	ssize_t k;

	do
		k = read(fd, &e, sizeof(e));
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	return k == sizeof(e) && e > 0 ? -e : 0;
}

int spawn(const struct spawn_options *o, pid_t *ret_pid)
{
	const char *name = o->program ?: (o->argv ? o->argv[0] : NULL);
	_cleanup_free_ char *path = NULL;
	int p[2], r;
	pid_t parent = getpid(), pid;

	if (!o->argv || !o->argv[0] || isempty(name))
		return -EINVAL;
	if (o->stdin_fd == SPAWN_CAPTURE || o->stdout_fd == SPAWN_CAPTURE ||
	    o->stderr_fd == SPAWN_CAPTURE)
		return -EINVAL;
	r = find_program(search_path(o->envp), name, &path);
	if (r < 0)
		return r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		safe_close(p[0]);
		safe_close(p[1]);
		return r;
	}
	if (pid == 0)
		child(o, path, parent, p[1]);

	safe_close(p[1]);
	r = read_child_error(p[0]);
	safe_close(p[0]);
	if (r < 0) {
		(void) spawn_wait(pid, NULL);
		return r;
	}
	*ret_pid = pid;
	return 0;
}

int spawn_wait(pid_t pid, int *ret_status)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (ret_status)
		*ret_status = status;
	return 0;
}

/* Read fd to EOF, keeping the first max bytes; the rest is drained so the child never
 * blocks on a full pipe. */
static int read_capped(int fd, size_t max, char **ret)
{
	_cleanup_free_ char *buf = malloc(max + 1);
	size_t len = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		char chunk[4096];
		ssize_t k = read(fd, chunk, sizeof(chunk));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		if (len < max) {
			size_t c = MIN((size_t) k, max - len);
			memcpy(buf + len, chunk, c);
			len += c;
		}
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

int spawn_run(const struct spawn_options *o, size_t max_output, char **ret_output,
	      int *ret_status)
{
	struct spawn_options c = *o;
	_cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
	_cleanup_free_ char *out = NULL;
	int p[2], r, q, status;
	pid_t pid = 0; /* set when spawn() succeeds; gcc -O2 cannot tell */

	if (o->stdin_fd == SPAWN_CAPTURE)
		return -EINVAL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	rfd = p[0];
	wfd = p[1];
	if (c.stdout_fd == SPAWN_CAPTURE)
		c.stdout_fd = wfd;
	if (c.stderr_fd == SPAWN_CAPTURE)
		c.stderr_fd = wfd;
	r = spawn(&c, &pid);
	if (r < 0)
		return r;
	wfd = safe_close(wfd); /* EOF once the child and its children are done writing */
	r = read_capped(rfd, max_output, &out);
	rfd = safe_close(rfd); /* after a read error, a writing child gets EPIPE, not stuck */
	q = spawn_wait(pid, &status);
	if (r < 0)
		return r;
	if (q < 0)
		return q;
	if (ret_output)
		*ret_output = TAKE_PTR(out);
	if (ret_status)
		*ret_status = status;
	return 0;
}
