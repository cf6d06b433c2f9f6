/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sandbox every build (and every tool run on its outputs) runs in.
 *
 * The work dir is a tmpfs created with fsopen()/fsmount() and attached nowhere: the caller
 * holds its only fd, so no other process on the host, no other build, and nothing left
 * over from an earlier one can reach it, its size is the disk budget, and it is freed
 * when the fd is closed. The worker process (see build-process.c) unshares mount,
 * network, PID and IPC namespaces, makes the whole file system read-only and nosuid,
 * mounts a clone of that tmpfs on /tmp (the work dir is /tmp/dm2-build in there) and an
 * empty read-only tmpfs on /run, then forks PID 1 of the new PID namespace. PID 1 mounts
 * a /proc of its own, forks the command as the build uid with its rlimits, reaps whatever
 * is reparented to it and exits when the command does: the kernel then kills every other
 * process of the namespace ($(shell setsid ... &), daemons, double forks) before the
 * worker's waitpid() returns. So when the caller reads the outputs, nothing of the build
 * runs any more, and it reads them through the tmpfs fd without following symlinks.
 */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>

#include "kbw-internal.h"

#define MAX_KEPT_TREES 16
#define MAX_BINDS 16

int kbw_workspace_new(uint64_t size, struct kbw_workspace *ret)
{
	_cleanup_close_ int fs = -EBADF, mnt = -EBADF;
	char opt[32];

	fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		return -errno;
	snprintf(opt, sizeof(opt), "%llu", (unsigned long long) size);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "size", opt, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "mode", "1777", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return -errno;
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (mnt < 0)
		return -errno;
	*ret = (struct kbw_workspace){.fd = TAKE_FD(mnt), .size = size};
	return 0;
}

void kbw_workspace_done(struct kbw_workspace *w)
{
	w->fd = safe_close(w->fd);
}

bool kbw_workspace_full(const struct kbw_workspace *w)
{
	struct statvfs sv;

	if (w->fd < 0 || fstatvfs(w->fd, &sv) < 0)
		return false;
	return sv.f_bavail == 0 || sv.f_favail == 0;
}

int kbw_workspace_open_output(const struct kbw_workspace *w, const char *rel, uint64_t max,
			      uid_t uid, gid_t gid, int *ret_fd)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	_cleanup_free_ char *path = strdup_printf(KBW_WORKSPACE_WORK "/%s", rel);
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	int r;

	if (!path)
		return -ENOMEM;
	/* As the build user, the owner of the work dir: root without CAP_DAC_* cannot enter
	 * it, and what that user made unreadable stays unread. */
	r = fs_ids_set(uid, gid);
	if (r < 0)
		return r;
	fd = (int) syscall(SYS_openat2, w->fd, path, &how, sizeof(how));
	r = fd < 0 ? -errno : 0;
	fs_ids_restore();
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
		return -EBADMSG;
	if ((uint64_t) st.st_size > max)
		return -EFBIG;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* dir_fd/rel's parent directories, created as needed; never through a symlink. */
static int open_parents(int dir_fd, const char *rel, const char **ret_base)
{
	_cleanup_close_ int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
	const char *p = rel;

	if (fd < 0)
		return -errno;
	for (const char *slash; (slash = strchr(p, '/')); p = slash + 1) {
		char comp[256];
		size_t n = (size_t) (slash - p);
		int sub;

		if (n == 0 || n >= sizeof(comp))
			return -EINVAL;
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (streq(comp, ".") || streq(comp, ".."))
			return -EINVAL;
		if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST)
			return -errno;
		sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (sub < 0)
			return -errno;
		(void) close(fd);
		fd = sub;
	}
	if (!*p || streq(p, ".") || streq(p, ".."))
		return -EINVAL;
	*ret_base = p;
	return TAKE_FD(fd);
}

int kbw_stage_copy(int in_fd, int dir_fd, const char *rel)
{
	_cleanup_close_ int parent = -EBADF, out = -EBADF;
	const char *base = NULL;

	if (rel[0] == '/')
		return -EINVAL;
	parent = open_parents(dir_fd, rel, &base);
	if (parent < 0)
		return parent;
	out = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		     0644);
	if (out < 0)
		return -errno;
	if (lseek(in_fd, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t n = sendfile(out, in_fd, NULL, 1u << 30);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
	}
}

static _Noreturn void fail(const struct kbw_sandbox *s, const char *msg)
{
	int e = errno;

	dprintf(s->report_fd, "error %s%s%s\n", msg, e ? ": " : "", e ? strerror(e) : "");
	_exit(127);
}

static int mkdir_parents_and_self(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = saved;
			if (!saved)
				return 0;
		}
	}
}

/* The kernel's trees that live below /tmp (fake roots of tests and image builds) would
 * vanish under the private /tmp: clone them (read-only by now) to put them back. */
static size_t clone_trees_below_tmp(const struct kbw_sandbox *s, int *fds,
				    const char **paths)
{
	size_t n = 0;

	for (char **p = s->k ? s->k->ro_paths : NULL; p && *p && n < MAX_KEPT_TREES; p++) {
		if (strncmp(*p, "/tmp/", 5) != 0)
			continue;
		fds[n] = open_tree(AT_FDCWD, *p,
				   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (fds[n] < 0)
			fail(s, *p);
		paths[n++] = *p;
	}
	return n;
}

/* Does a tree of the kernel lie at or below target? */
static bool kernel_tree_below(const struct kbw_sandbox *s, const char *target)
{
	size_t n = strlen(target);

	for (char **p = s->k ? s->k->ro_paths : NULL; p && *p; p++)
		if (strncmp(*p, target, n) == 0 && ((*p)[n] == '/' || (*p)[n] == '\0'))
			return true;
	return false;
}

/*
 * A bind whose target holds one of the kernel's trees (a fake root's usr/src over /usr/src,
 * while its lib/modules/KVER/build links to the host's /usr/src/linux-headers-KVER) becomes
 * a read-only overlay: the bind's source first, the host's directory below it, so both the
 * fake root's packages and the kernel tree resolve. Mounted before /tmp is replaced: the
 * overlay holds its layers, wherever they are.
 */
static void mount_overlay(const struct kbw_sandbox *s, const struct kbw_bind *b)
{
	_cleanup_free_ char *opts = NULL;

	opts = strdup_printf("lowerdir=%s:%s", b->source, b->target);
	if (!opts)
		fail(s, "Out of memory");
	if (mount("overlay", b->target, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts) < 0)
		fail(s, b->target);
}

static bool bind_is_overlay(const struct kbw_sandbox *s, const struct kbw_bind *b)
{
	return strncmp(b->target, "/tmp/", 5) != 0 &&
	       (b->over_host || kernel_tree_below(s, b->target));
}

/* Detached read-only clones of the bind sources, taken while they are all reachable (a
 * source below /tmp is hidden once the private /tmp is mounted, one below an overlay's
 * target once the overlay is), then the overlays. */
static void open_binds(const struct kbw_sandbox *s, int *fds)
{
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					    MOUNT_ATTR_NODEV};

	if (s->n_binds > MAX_BINDS) {
		errno = E2BIG;
		fail(s, "Too many binds");
	}
	for (size_t i = 0; i < s->n_binds; i++) {
		const struct kbw_bind *b = &s->binds[i];

		fds[i] = -EBADF;
		if (!b->source || !b->target || b->target[0] != '/') {
			errno = EINVAL;
			fail(s, "Invalid bind");
		}
		if (bind_is_overlay(s, b))
			continue;
		fds[i] = open_tree(AT_FDCWD, b->source,
				   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (fds[i] < 0 || mount_setattr(fds[i], "", AT_EMPTY_PATH | AT_RECURSIVE, &ro,
						sizeof(ro)) < 0)
			fail(s, b->source);
	}
	for (size_t i = 0; i < s->n_binds; i++)
		if (bind_is_overlay(s, &s->binds[i]))
			mount_overlay(s, &s->binds[i]);
}

static void attach_binds(const struct kbw_sandbox *s, const int *fds)
{
	for (size_t i = 0; i < s->n_binds; i++) {
		const char *target = s->binds[i].target;
		int r = 0;

		if (fds[i] < 0)
			continue; /* an overlay, mounted already */
		/* Below /tmp (the private tmpfs) a mount point can be made. */
		if (strncmp(target, "/tmp/", 5) == 0)
			r = mkdir_parents_and_self(target);
		if (r < 0)
			errno = -r;
		if (r < 0 || move_mount(fds[i], "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			fail(s, target);
		(void) close(fds[i]);
	}
}

static void setup_mounts(const struct kbw_sandbox *s)
{
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
	const char *kept_paths[MAX_KEPT_TREES];
	int kept[MAX_KEPT_TREES], binds[MAX_BINDS], tmp;
	size_t n_kept;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail(s, "Cannot make the mounts private");
	if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof(ro)) < 0)
		fail(s, "Cannot make the file system read-only");
	n_kept = clone_trees_below_tmp(s, kept, kept_paths);
	open_binds(s, binds);

	tmp = open_tree(s->workspace_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tmp < 0 || move_mount(tmp, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		fail(s, "Cannot mount the private /tmp");
	if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
		  "size=4k,mode=0755") < 0)
		fail(s, "Cannot hide /run");
	for (size_t i = 0; i < n_kept; i++) {
		int r = mkdir_parents_and_self(kept_paths[i]);

		if (r < 0)
			errno = -r;
		if (r < 0 || move_mount(kept[i], "", AT_FDCWD, kept_paths[i],
					MOVE_MOUNT_F_EMPTY_PATH) < 0)
			fail(s, kept_paths[i]);
	}
	attach_binds(s, binds);
}

static void set_limit(const struct kbw_sandbox *s, int resource, uint64_t soft,
		      uint64_t hard, const char *what)
{
	struct rlimit rl = {soft, hard};

	if (setrlimit(resource, &rl) < 0)
		fail(s, what);
}

/* The build's jobserver pipe onto fds 3 and 4 (what MAKEFLAGS names), out of the way of
 * the report pipe, which may hold one of those numbers. */
static void pass_jobs(struct kbw_sandbox *s)
{
	int r, w;

	if (!s->jobs)
		return;
	s->report_fd = fcntl(s->report_fd, F_DUPFD_CLOEXEC, KBW_JOBS_FD_W + 1);
	r = fcntl(s->jobs->fds[0], F_DUPFD, KBW_JOBS_FD_W + 1);
	w = fcntl(s->jobs->fds[1], F_DUPFD, KBW_JOBS_FD_W + 1);
	if (s->report_fd < 0 || r < 0 || w < 0 || dup2(r, KBW_JOBS_FD_R) < 0 ||
	    dup2(w, KBW_JOBS_FD_W) < 0)
		_exit(127);
	(void) close(r);
	(void) close(w);
}

/* PID 2: the command, as the build uid. */
static _Noreturn void run_command(const struct kbw_sandbox *s_in)
{
	struct kbw_sandbox own = *s_in, *s = &own;

	if (setgroups(1, &s->gid) < 0 || setresgid(s->gid, s->gid, s->gid) < 0 ||
	    setresuid(s->uid, s->uid, s->uid) < 0)
		fail(s, "Cannot switch to the build user");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(s, "prctl(PR_SET_NO_NEW_PRIVS) failed");
	set_limit(s, RLIMIT_CORE, 0, 0, "setrlimit(RLIMIT_CORE) failed");
	set_limit(s, RLIMIT_NPROC, s->processes, s->processes,
		  "setrlimit(RLIMIT_NPROC) failed");
	/* SIGXCPU at the limit, SIGKILL a little later for a process that ignores it. */
	set_limit(s, RLIMIT_CPU, s->cpu_sec, s->cpu_sec + 5, "setrlimit(RLIMIT_CPU) failed");
	set_limit(s, RLIMIT_FSIZE, s->file_max, s->file_max,
		  "setrlimit(RLIMIT_FSIZE) failed");
	if (chdir(s->chdir_path) < 0)
		fail(s, s->chdir_path);
	/* Nothing of ours leaks into the build, but its jobserver pipe on 3 and 4. */
	pass_jobs(s);
	(void) close_range(s->jobs ? KBW_JOBS_FD_W + 1 : 3, ~0U, CLOSE_RANGE_CLOEXEC);
	/* Tell the caller who we are now; the pipe closes on exec. */
	dprintf(s->report_fd, "uid %u\nnet 1\n", (unsigned) getuid());
	/* Last: this process may already map more than the limit (sanitizer shadow
	 * memory), so nothing may allocate between here and execve(). */
	if (s->memory_max > 0)
		set_limit(s, RLIMIT_AS, s->memory_max, s->memory_max,
			  "setrlimit(RLIMIT_AS) failed");
	execve(s->exec_path, s->argv, s->envp);
	fail(s, s->exec_path);
}

/* PID 1 of the build's namespace: its exit takes every process of the build with it. */
static _Noreturn void run_init(const struct kbw_sandbox *s, int status_fd)
{
	pid_t child;
	int status = 0;

	/* The worker outside is our only link to the guardian: die with it. */
	(void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fail(s, "Cannot mount /proc");
	child = fork();
	if (child < 0)
		fail(s, "fork() failed");
	if (child == 0)
		run_command(s);
	(void) close(s->report_fd);
	for (;;) {
		pid_t w = waitpid(-1, &status, 0);

		if (w == child)
			break;
		if (w < 0 && errno != EINTR)
			_exit(127);
	}
	(void) !write(status_fd, &status, sizeof(status));
	_exit(0);
}

/* End the way the command ended, so the guardian and the caller see it. */
static _Noreturn void exit_like(int status)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	struct rlimit no_core = {0, 0};
	sigset_t set;

	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	(void) setrlimit(RLIMIT_CORE, &no_core);
	(void) sigaction(WTERMSIG(status), &dfl, NULL);
	sigemptyset(&set);
	sigaddset(&set, WTERMSIG(status));
	(void) sigprocmask(SIG_UNBLOCK, &set, NULL);
	(void) raise(WTERMSIG(status));
	_exit(128 + WTERMSIG(status));
}

_Noreturn void kbw_sandbox_run(const void *arg)
{
	const struct kbw_sandbox *s = arg;
	int null_fd, status_pipe[2], status = 0;
	pid_t init;

	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
	    dup2(s->stdout_fd > 0 ? s->stdout_fd : s->log_fd, STDOUT_FILENO) < 0 ||
	    dup2(s->log_fd, STDERR_FILENO) < 0)
		fail(s, "Cannot set up standard input and output");
	if (geteuid() != 0) {
		errno = EPERM;
		fail(s, "The build sandbox needs root");
	}
	if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC) < 0)
		fail(s, "Cannot create the build's namespaces");
	setup_mounts(s);
	if (pipe2(status_pipe, O_CLOEXEC) < 0)
		fail(s, "pipe2() failed");
	init = fork();
	if (init < 0)
		fail(s, "fork() failed");
	if (init == 0) {
		(void) close(status_pipe[0]);
		run_init(s, status_pipe[1]);
	}
	(void) close(s->report_fd);
	(void) close(status_pipe[1]);
	while (waitpid(init, &status, 0) < 0)
		if (errno != EINTR)
			_exit(127);
	/* No word from PID 1: it was killed, and the command with it. */
	if (read(status_pipe[0], &status, sizeof(status)) != (ssize_t) sizeof(status))
		status = W_EXITCODE(0, SIGKILL);
	exit_like(status);
}

static int parse_report(int fd, struct kbw_sandbox_outcome *o)
{
	char buf[4096];
	size_t n = 0;

	for (;;) {
		ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		n += (size_t) k;
		if (n >= sizeof(buf) - 1)
			break;
	}
	buf[n] = '\0';
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strncmp(line, "uid ", 4) == 0)
			o->uid = (uid_t) strtoul(line + 4, NULL, 10);
		else if (strncmp(line, "net ", 4) == 0)
			o->net = line[4] == '1';
		else if (strncmp(line, "error ", 6) == 0 && !o->setup_error) {
			o->setup_error = strdup(line + 6);
			if (!o->setup_error)
				return -ENOMEM;
		}
	}
	return 0;
}

int kbw_sandbox_exec(const struct kbw_sandbox *s_in, uint64_t timeout_usec,
		     struct kbw_sandbox_outcome *ret)
{
	struct kbw_sandbox s = *s_in;
	struct kbw_sandbox_outcome o = {.uid = (uid_t) -1};
	struct kbw_process proc;
	int pipe_fds[2], r, w;

	if (pipe2(pipe_fds, O_CLOEXEC) < 0)
		return -errno;
	s.report_fd = pipe_fds[1];
	r = kbw_process_start(kbw_sandbox_run, &s, pipe_fds[1], &proc);
	(void) close(pipe_fds[1]);
	if (r < 0) {
		(void) close(pipe_fds[0]);
		return r;
	}
	r = proc.pid > 0 ? parse_report(pipe_fds[0], &o) : 0;
	(void) close(pipe_fds[0]);
	if (r < 0)
		kbw_process_kill(&proc);
	w = kbw_process_wait(&proc, timeout_usec, &o.status, &o.timed_out, s.jobs);
	if (r >= 0)
		r = w;
	if (r < 0) {
		free(o.setup_error);
		return r;
	}
	o.cancelled = proc.cancelled;
	*ret = o;
	return 0;
}

char *kbw_format_bytes(uint64_t n)
{
	static const char *const units[] = {"GiB", "MiB", "KiB"};

	for (unsigned i = 0; i < 3; i++) {
		uint64_t u = 1ULL << (30 - 10 * i);

		if (n >= u && n % u == 0)
			return strdup_printf("%llu %s", (unsigned long long) (n / u), units[i]);
	}
	return strdup_printf("%llu bytes", (unsigned long long) n);
}

char *kbw_read_log(int fd, size_t max)
{
	char *buf = malloc(max + 1);
	size_t n = 0;

	if (!buf)
		return NULL;
	while (n < max) {
		ssize_t k = pread(fd, buf + n, max - n, (off_t) n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t) k;
	}
	buf[n] = '\0';
	return buf;
}

static bool has_any(const char *text, const char *const *needles)
{
	for (; text && *needles; needles++)
		if (strstr(text, *needles))
			return true;
	return false;
}

char *kbw_limit_reason(const struct kbw_sandbox *s, const struct kbw_workspace *w,
		       int status, const char *log_text)
{
	static const char *const disk[] = {"No space left on device",
					   "File size limit exceeded", NULL};
	static const char *const cpu[] = {"CPU time limit exceeded", NULL};
	static const char *const procs[] = {"Resource temporarily unavailable",
					    "Cannot fork", "fork: retry", NULL};
	static const char *const mem[] = {"Cannot allocate memory", "out of memory",
					  "virtual memory exhausted", NULL};
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	_cleanup_free_ char *size = NULL;

	if (sig == SIGXFSZ || (w && kbw_workspace_full(w)) || has_any(log_text, disk)) {
		size = kbw_format_bytes(w ? w->size : s->file_max);
		return strdup_printf("build exceeded its disk budget of %s", size ?: "?");
	}
	if (sig == SIGXCPU || has_any(log_text, cpu))
		return strdup_printf("a build process exceeded its CPU time limit of %llu s",
				    (unsigned long long) s->cpu_sec);
	if (has_any(log_text, procs))
		return strdup_printf("build exceeded its process limit of %llu",
				    (unsigned long long) s->processes);
	if (s->memory_max > 0 && has_any(log_text, mem)) {
		size = kbw_format_bytes(s->memory_max);
		return strdup_printf("a build process exceeded its memory limit of %s",
				    size ?: "?");
	}
	return NULL;
}
