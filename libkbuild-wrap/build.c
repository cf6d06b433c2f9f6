/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Run one kbuild build of an external module: a private copy of the sources owned by the
 * build user, a child in new mount + network namespaces with the kernel tree bind-mounted
 * read-only, privileges dropped, rlimits, a clean environment and a timeout enforced by
 * the parent. The processes themselves (guardian, process group, cancellation) are in
 * build-process.c.
 */
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>

#include "kbw-internal.h"

#define REASON_MAX 400

struct child_args {
	const struct kbw_kernel *k;
	char **argv;
	char **envp;
	const char *exec_path;
	const char *work_dir;	/* host path of the copy */
	const char *mountpoint; /* where the copy appears in the sandbox, or NULL */
	const char *chdir_path;
	int log_fd;
	int report_fd;
	uid_t uid;
	gid_t gid;
	uint64_t memory_max;
	bool isolate;
};

KBW_EXPORT struct kbw_build_result *kbw_build_result_free(struct kbw_build_result *r)
{
	if (!r)
		return NULL;
	free(r->reason);
	kbw_strv_free(r->modules);
	free(r->symvers);
	free(r);
	return NULL;
}

static void build_result_freep(struct kbw_build_result **r)
{
	kbw_build_result_free(*r);
}

KBW_EXPORT bool kbw_build_succeeded(const struct kbw_build_result *r)
{
	return r && r->exit_status == 0 && !r->timed_out && !r->reason;
}

/* Can uid:gid reach path (search permission on every directory on the way)? */
static bool path_searchable_by(const char *path, uid_t uid, gid_t gid)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (uid == 0)
		return true;
	if (n >= sizeof(buf) || path[0] != '/')
		return false;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			struct stat st;
			mode_t bit;

			*p = '\0';
			if (stat(buf, &st) < 0)
				return false;
			bit = st.st_uid == uid	 ? S_IXUSR
			      : st.st_gid == gid ? S_IXGRP
						 : S_IXOTH;
			if (!(st.st_mode & bit))
				return false;
			*p = saved;
			if (!saved)
				return true;
		}
	}
}

static void report(int fd, const char *what, const char *msg, int err)
{
	dprintf(fd, "%s %s%s%s\n", what, msg, err ? ": " : "", err ? strerror(err) : "");
}

static _Noreturn void child_fail(const struct child_args *a, const char *msg)
{
	report(a->report_fd, "error", msg, errno);
	_exit(127);
}

static int bind_read_only(const char *path)
{
	struct statvfs sv;
	unsigned long extra = 0;

	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -errno;
	/* Keep the flags the mount already has; in a user namespace they are locked. */
	if (statvfs(path, &sv) >= 0) {
		if (sv.f_flag & ST_NOSUID)
			extra |= MS_NOSUID;
		if (sv.f_flag & ST_NODEV)
			extra |= MS_NODEV;
		if (sv.f_flag & ST_NOEXEC)
			extra |= MS_NOEXEC;
	}
	if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | extra, NULL) < 0)
		return -errno;
	return 0;
}

static void write_proc(const char *file, const char *text)
{
	int fd = open(file, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		(void) !write(fd, text, strlen(text));
		close(fd);
	}
}

static _Noreturn void run_child(const void *arg)
{
	const struct child_args *a = arg;
	pid_t guardian = getppid();
	bool root = geteuid() == 0;
	uid_t outer_uid = getuid();
	gid_t outer_gid = getgid();
	bool net = false;
	struct rlimit rl;
	int null_fd;

	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
	    dup2(a->log_fd, STDOUT_FILENO) < 0 || dup2(a->log_fd, STDERR_FILENO) < 0)
		child_fail(a, "Cannot set up standard input and output");

	if (a->isolate) {
		int flags = CLONE_NEWNS | CLONE_NEWNET | (root ? 0 : CLONE_NEWUSER);

		if (unshare(flags) < 0) {
			report(a->report_fd, "warn",
			       "Cannot create mount and network namespaces; building "
			       "without "
			       "isolation",
			       errno);
		} else {
			char map[64];

			if (!root) {
				write_proc("/proc/self/setgroups", "deny");
				snprintf(map, sizeof(map), "%u %u 1\n", outer_uid,
					 outer_uid);
				write_proc("/proc/self/uid_map", map);
				snprintf(map, sizeof(map), "%u %u 1\n", outer_gid,
					 outer_gid);
				write_proc("/proc/self/gid_map", map);
			}
			net = true;
			if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
				child_fail(a, "Cannot make mounts private");
			for (char **p = a->k->ro_paths; p && *p; p++) {
				int r = bind_read_only(*p);

				if (r < 0) {
					errno = -r;
					child_fail(a, *p);
				}
			}
			if (a->mountpoint &&
			    mount(a->work_dir, a->mountpoint, NULL, MS_BIND, NULL) < 0)
				child_fail(a, "Cannot bind-mount the work directory");
		}
	}

	if (root) {
		if (setgroups(1, &a->gid) < 0 || setresgid(a->gid, a->gid, a->gid) < 0 ||
		    setresuid(a->uid, a->uid, a->uid) < 0)
			child_fail(a, "Cannot switch to the build user");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(a, "prctl(PR_SET_NO_NEW_PRIVS) failed");
	rl = (struct rlimit){0, 0};
	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		child_fail(a, "setrlimit(RLIMIT_CORE) failed");
	if (chdir(a->chdir_path) < 0)
		child_fail(a, a->chdir_path);

	/* Nothing of ours leaks into the build. */
	(void) close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	/* Tell the parent who we are now; the pipe closes on exec. */
	dprintf(a->report_fd, "uid %u\nnet %d\n", (unsigned) getuid(), net ? 1 : 0);
	/* Changing credentials (the build user, a user namespace) cleared the
	 * parent-death signal set right after fork(). */
	if (kbw_process_die_with_parent(guardian, SIGKILL) < 0)
		child_fail(a, "The build was stopped while starting");
	/* Last: this process may already map more than the limit (sanitizer shadow
	 * memory), so nothing may allocate between here and execve(), which starts a
	 * fresh image. */
	if (a->memory_max > 0) {
		rl = (struct rlimit){a->memory_max, a->memory_max};
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			child_fail(a, "setrlimit(RLIMIT_AS) failed");
	}
	execve(a->exec_path, a->argv, a->envp);
	child_fail(a, a->exec_path);
}

/* s with every 'from' replaced by 'to'. */
static char *replace_all(const char *s, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to), n = 0;
	const char *p;
	char *out, *w;

	for (p = s; (p = strstr(p, from)); p += nf)
		n++;
	out = malloc(strlen(s) + n * nt + 1);
	if (!out)
		return NULL;
	for (w = out; (p = strstr(s, from)); s = p + nf) {
		memcpy(w, s, (size_t) (p - s));
		w += p - s;
		memcpy(w, to, nt);
		w += nt;
	}
	memcpy(w, s, strlen(s) + 1);
	return out;
}

/* First line of the log that looks like the reason of a failure. Paths inside the
 * sandbox's mount point are shown as the real work dir. */
static char *first_error_line(const char *log_path, const char *mountpoint,
			      const char *work_dir)
{
	static const char *const patterns[] = {
		": error:", "fatal error",	   "undefined!", "ERROR: ",
		": Error:", "undefined reference", "Error ",
	};
	_kbw_cleanup_free_ char *text = NULL;
	int r;

	r = kbw_read_file(log_path, 256u << 20, &text, NULL);
	if (r < 0)
		return NULL;
	/* Earliest line matching any pattern: compiler errors come before make's "Error
	 * 1". */
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
			if (strstr(line, patterns[i])) {
				_kbw_cleanup_free_ char *l =
					mountpoint
						? replace_all(line, mountpoint, work_dir)
						: NULL;

				return strndup(l ?: line, REASON_MAX);
			}
	}
	return NULL;
}

static int parse_report(int fd, struct kbw_build_result *res, char **ret_error)
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
			res->build_uid = (uid_t) strtoul(line + 4, NULL, 10);
		else if (strncmp(line, "net ", 4) == 0)
			res->network_isolated = line[4] == '1';
		else if (strncmp(line, "warn ", 5) == 0)
			kbw_log(LOG_WARNING, "%s", line + 5);
		else if (strncmp(line, "error ", 6) == 0 && !*ret_error) {
			*ret_error = strdup(line + 6);
			if (!*ret_error)
				return -ENOMEM;
		}
	}
	return 0;
}

static int build_argv(const struct kbw_kernel *k, const struct kbw_build_params *p,
		      const char *m_path, char **symvers, char ***ret)
{
	_kbw_cleanup_strv_ char **argv = NULL;
	int r;

	if (p->command) {
		if ((r = kbw_strv_consume(&argv, strdup("sh"))) < 0 ||
		    (r = kbw_strv_consume(&argv, strdup("-c"))) < 0 ||
		    (r = kbw_strv_consume(&argv, strdup(p->command))) < 0)
			return r;
		*ret = KBW_TAKE_PTR(argv);
		return 0;
	}
	if ((r = kbw_strv_consume(&argv, strdup("make"))) < 0 ||
	    (r = kbw_strv_consume(&argv, kbw_asprintf("-C%s", k->build_dir))) < 0 ||
	    (r = kbw_strv_consume(&argv, kbw_asprintf("M=%s", m_path))) < 0 ||
	    (r = kbw_strv_consume(&argv, kbw_asprintf("CC=%s", k->cc))) < 0 ||
	    (r = kbw_strv_consume(&argv, kbw_asprintf("KERNELRELEASE=%s", k->release))) <
		    0 ||
	    (r = kbw_strv_consume(&argv, kbw_asprintf("-j%u", p->jobs ?: 1))) < 0)
		return r;
	if (k->llvm && (r = kbw_strv_consume(&argv, strdup("LLVM=1"))) < 0)
		return r;
	for (char **v = p->make_vars; v && *v; v++)
		if ((r = kbw_strv_consume(&argv, strdup(*v))) < 0)
			return r;
	if (symvers) {
		_kbw_cleanup_free_ char *s = strdup("KBUILD_EXTRA_SYMBOLS=");

		for (char **v = symvers; s && *v; v++) {
			char *t = kbw_asprintf("%s%s%s", s, v == symvers ? "" : " ", *v);

			free(s);
			s = t;
		}
		if ((r = kbw_strv_consume(&argv, KBW_TAKE_PTR(s))) < 0)
			return r;
	}
	if ((r = kbw_strv_consume(&argv, strdup("modules"))) < 0)
		return r;
	*ret = KBW_TAKE_PTR(argv);
	return 0;
}

static int build_envp(const struct kbw_kernel *k, const struct kbw_build_params *p,
		      const char *home, char ***ret)
{
	_kbw_cleanup_strv_ char **envp = NULL;
	int r;

	if ((r = kbw_strv_consume(&envp, strdup("PATH=" KBW_DEFAULT_PATH))) < 0 ||
	    (r = kbw_strv_consume(&envp, kbw_asprintf("HOME=%s", home))) < 0 ||
	    (r = kbw_strv_consume(&envp, strdup("LC_ALL=C"))) < 0)
		return r;
	if (p->command) {
		/* What DKMS' MAKE[] lines expect. */
		if ((r = kbw_strv_consume(
			     &envp, kbw_asprintf("KERNELRELEASE=%s", k->release))) < 0 ||
		    (r = kbw_strv_consume(
			     &envp, kbw_asprintf("kernelver=%s", k->release))) < 0 ||
		    (r = kbw_strv_consume(&envp, kbw_asprintf("kernel_source_dir=%s",
							      k->build_dir))) < 0 ||
		    (r = kbw_strv_consume(&envp, kbw_asprintf("CC=%s", k->cc))) < 0)
			return r;
	}
	*ret = KBW_TAKE_PTR(envp);
	return 0;
}

/* Copy the Module.symvers files of other builds into the work dir, where the build user
 * can read them whatever the permissions on the way to the originals. */
static int copy_extra_symbols(const struct kbw_build_params *p, const char *build_path,
			      uid_t uid, gid_t gid, char ***ret)
{
	_kbw_cleanup_strv_ char **list = NULL;
	_kbw_cleanup_free_ char *dir = NULL;
	unsigned i = 0;
	int r;

	if (!p->extra_symbols || !p->extra_symbols[0]) {
		*ret = NULL;
		return 0;
	}
	dir = kbw_asprintf("%s/.dm2-symvers", p->work_dir);
	if (!dir)
		return -ENOMEM;
	if (mkdir(dir, 0755) < 0 || chown(dir, uid, gid) < 0)
		return -errno;
	for (char **s = p->extra_symbols; *s; s++, i++) {
		_kbw_cleanup_free_ char *text = NULL, *dst = NULL;
		_kbw_cleanup_close_ int fd = -EBADF;
		size_t n;

		r = kbw_read_file(*s, 0, &text, &n);
		if (r < 0) {
			kbw_log(LOG_ERR, "Cannot read symbol file '%s': %s", *s,
				strerror(-r));
			return r;
		}
		dst = kbw_asprintf("%s/%u.symvers", dir, i);
		if (!dst)
			return -ENOMEM;
		fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		if (write(fd, text, n) != (ssize_t) n)
			return errno ? -errno : -EIO;
		if (fchown(fd, uid, gid) < 0)
			return -errno;
		r = kbw_strv_consume(
			&list, kbw_asprintf("%s/.dm2-symvers/%u.symvers", build_path, i));
		if (r < 0)
			return r;
	}
	*ret = KBW_TAKE_PTR(list);
	return 0;
}

static int check_outputs(const struct kbw_kernel *k, const struct kbw_build_params *p,
			 struct kbw_build_result *res)
{
	_kbw_cleanup_strv_ char **produced = NULL;
	_kbw_cleanup_free_ char *symvers = NULL;
	int r;

	for (char **m = p->modules; m && *m; m++) {
		_kbw_cleanup_free_ char *path = kbw_asprintf("%s/%s", p->work_dir, *m);
		_kbw_cleanup_free_ char *vermagic = NULL;
		const char *base;

		if (!path)
			return -ENOMEM;
		base = strrchr(*m, '/') ? strrchr(*m, '/') + 1 : *m;
		if (access(path, F_OK) < 0) {
			res->reason = kbw_asprintf("module '%s' was not produced", base);
			return res->reason ? 0 : -ENOMEM;
		}
		r = kbw_module_vermagic(path, &vermagic);
		if (r < 0) {
			res->reason = kbw_asprintf("Cannot read the vermagic of '%s': %s",
						   base, strerror(-r));
			return res->reason ? 0 : -ENOMEM;
		}
		if (!kbw_streq(vermagic, k->vermagic)) {
			res->reason =
				kbw_asprintf("'%s' has vermagic '%s', expected '%s'",
					     base, vermagic, k->vermagic);
			return res->reason ? 0 : -ENOMEM;
		}
		r = kbw_strv_consume(&produced, KBW_TAKE_PTR(path));
		if (r < 0)
			return r;
	}

	symvers = kbw_asprintf("%s%s%s/Module.symvers", p->work_dir, p->subdir ? "/" : "",
			       p->subdir ?: "");
	if (!symvers)
		return -ENOMEM;
	if (access(symvers, F_OK) < 0) {
		free(symvers);
		symvers = kbw_asprintf("%s/Module.symvers", p->work_dir);
		if (!symvers)
			return -ENOMEM;
		if (access(symvers, F_OK) < 0)
			symvers = _kbw_mfree(symvers);
	}
	res->modules = KBW_TAKE_PTR(produced);
	res->symvers = KBW_TAKE_PTR(symvers);
	return 0;
}

KBW_EXPORT int kbw_build(const struct kbw_kernel *k, const struct kbw_build_params *p,
			 struct kbw_build_result **ret)
{
	_kbw_cleanup_(build_result_freep) struct kbw_build_result *res = NULL;
	_kbw_cleanup_strv_ char **argv = NULL, **envp = NULL, **symvers = NULL;
	_kbw_cleanup_free_ char *mountpoint = NULL, *m_path = NULL, *exec_path = NULL,
				*setup_error = NULL;
	_kbw_cleanup_close_ int log_fd = -EBADF;
	int pipe_fds[2] = {-EBADF, -EBADF};
	bool root = geteuid() == 0;
	const char *build_path;
	uid_t uid;
	gid_t gid;
	int r, status = 0;
	bool timed_out = false;
	struct kbw_process proc;

	if (!k || !p || !p->source_dir || !p->work_dir || !p->log_path ||
	    p->work_dir[0] != '/')
		return -EINVAL;
	if (!k->complete || !k->build_dir) {
		kbw_log(LOG_ERR, "Kernel %s has no complete build tree: %s", k->release,
			k->reason ?: "unknown");
		return -ENXIO;
	}
	if (p->subdir && (p->subdir[0] == '/' || strstr(p->subdir, "..")))
		return -EINVAL;

	res = calloc(1, sizeof(*res));
	if (!res)
		return -ENOMEM;
	res->exit_status = -1;

	uid = root ? p->uid : geteuid();
	gid = root ? p->gid : getegid();
	if (!root && (p->uid != uid || p->gid != gid))
		kbw_log(LOG_DEBUG, "Not root: building as uid %u instead of %u",
			(unsigned) uid, (unsigned) p->uid);

	r = kbw_copy_tree(p->source_dir, p->work_dir, uid, gid);
	if (r < 0) {
		kbw_log(LOG_ERR, "Cannot copy '%s' to '%s': %s", p->source_dir,
			p->work_dir, strerror(-r));
		return r;
	}

	log_fd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY,
		      0644);
	if (log_fd < 0) {
		r = -errno;
		kbw_log(LOG_ERR, "Cannot open build log '%s': %s", p->log_path,
			strerror(-r));
		return r;
	}

	exec_path = strdup(p->command ? "/bin/sh" : "/usr/bin/make");
	if (!exec_path)
		return -ENOMEM;
	if (!p->command && !kbw_find_program("make")) {
		res->reason = strdup("'make' is not installed");
		goto finish;
	}
	if (!p->command && !kbw_kernel_cc_available(k)) {
		res->reason =
			kbw_asprintf("compiler '%s' the kernel was built with is not "
				     "installed (kernel compiler: %s)",
				     k->cc ?: "?", k->cc_version_text ?: "unknown");
		if (res->reason)
			dprintf(log_fd, "dm2: %s\n", res->reason);
		goto finish;
	}
	if (!p->command && access(exec_path, X_OK) < 0) {
		free(exec_path);
		exec_path = strdup("/bin/make");
		if (!exec_path)
			return -ENOMEM;
	}

	/* The build user may not be able to reach work_dir (a root-only parent such as a
	 * test root or /var/lib/dm2): in the sandbox the copy then appears under a fresh
	 * directory in /tmp instead. */
	if (p->isolate && !path_searchable_by(p->work_dir, uid, gid)) {
		char tmpl[] = "/tmp/dm2-build-XXXXXX";

		if (!mkdtemp(tmpl) || chmod(tmpl, 0755) < 0) {
			r = -errno;
			kbw_log(LOG_ERR, "Cannot create a mount point in /tmp: %s",
				strerror(-r));
			return r;
		}
		mountpoint = strdup(tmpl);
		if (!mountpoint) {
			(void) rmdir(tmpl);
			return -ENOMEM;
		}
	}
	build_path = mountpoint ?: p->work_dir;
	m_path =
		kbw_asprintf("%s%s%s", build_path, p->subdir ? "/" : "", p->subdir ?: "");
	if (!m_path) {
		r = -ENOMEM;
		goto fail;
	}
	r = copy_extra_symbols(p, build_path, uid, gid, &symvers);
	if (r < 0)
		goto fail;
	r = build_argv(k, p, m_path, symvers, &argv);
	if (r < 0)
		goto fail;
	r = build_envp(k, p, build_path, &envp);
	if (r < 0)
		goto fail;

	if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	{
		struct child_args a = {
			.k = k,
			.argv = argv,
			.envp = envp,
			.exec_path = exec_path,
			.work_dir = p->work_dir,
			.mountpoint = mountpoint,
			.chdir_path = p->command ? build_path : m_path,
			.log_fd = log_fd,
			.report_fd = pipe_fds[1],
			.uid = uid,
			.gid = gid,
			.memory_max = p->memory_max,
			.isolate = p->isolate,
		};

		r = kbw_process_start(run_child, &a, pipe_fds[1], &proc);
		if (r < 0)
			goto fail;
	}
	pipe_fds[1] = kbw_close(pipe_fds[1]);
	r = proc.pid > 0 ? parse_report(pipe_fds[0], res, &setup_error) : 0;
	pipe_fds[0] = kbw_close(pipe_fds[0]);
	if (r < 0)
		kbw_process_kill(&proc);
	{
		int w = kbw_process_wait(&proc, p->timeout_usec, &status, &timed_out);

		if (r >= 0)
			r = w;
	}
	if (r < 0)
		goto fail;

	res->timed_out = timed_out;
	if (WIFEXITED(status))
		res->exit_status = WEXITSTATUS(status);
	else
		res->exit_status = -1;

	if (proc.cancelled) {
		res->reason = strdup("build cancelled");
		res->exit_status = -1;
		dprintf(log_fd, "dm2: build cancelled\n");
	} else if (setup_error) {
		res->reason = kbw_asprintf("sandbox setup failed: %s", setup_error);
		res->exit_status = -1;
	} else if (timed_out) {
		res->reason =
			kbw_asprintf("build timed out after %llu s",
				     (unsigned long long) (p->timeout_usec / 1000000u));
		dprintf(log_fd, "dm2: %s\n", res->reason ?: "build timed out");
	} else if (WIFSIGNALED(status)) {
		res->reason = kbw_asprintf("build killed by signal %s",
					   sigabbrev_np(WTERMSIG(status)) ?: "?");
	} else if (res->exit_status != 0) {
		res->reason = first_error_line(p->log_path, mountpoint, p->work_dir);
		if (!res->reason)
			res->reason = kbw_asprintf("'%s' failed with exit status %d",
						   p->command ? p->command : "make",
						   res->exit_status);
	} else {
		r = check_outputs(k, p, res);
		if (r < 0)
			goto fail;
	}
	if (mountpoint)
		(void) rmdir(mountpoint);
finish:
	if (res->reason)
		kbw_log(LOG_DEBUG, "Build in '%s' failed: %s", p->work_dir, res->reason);
	*ret = KBW_TAKE_PTR(res);
	return 0;

fail:
	if (pipe_fds[0] >= 0)
		kbw_close(pipe_fds[0]);
	if (pipe_fds[1] >= 0)
		kbw_close(pipe_fds[1]);
	if (mountpoint)
		(void) rmdir(mountpoint);
	kbw_log(LOG_ERR, "Cannot run the build in '%s': %s", p->work_dir, strerror(-r));
	return r;
}
