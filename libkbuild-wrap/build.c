/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Run one kbuild build of an external module: the sources copied into a private tmpfs,
 * make run in the sandbox of sandbox.c as the build uid with a clean environment, rlimits
 * and a timeout, and afterwards, when no process of the build is left, its outputs
 * checked and copied into the root-owned work dir (staging) before anything reads them.
 * The processes themselves (guardian, process group, cancellation) are in
 * build-process.c.
 */
#include <fcntl.h>
#include <fts.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>

#include "kbw-internal.h"

#define REASON_MAX 400

#define LOG_SCAN_MAX (16u << 20)
#define MODULE_MAX (1ULL << 30)
#define SYMVERS_MAX (64ULL << 20)

/* What one build holds while it runs. */
struct build {
	const struct kbw_kernel *k;
	const struct kbw_build_params *p;
	struct kbw_limits limits;
	struct kbw_build_result *res;
	struct kbw_workspace ws;
	uid_t uid;
	gid_t gid;
	int log_fd;
	int staging_fd; /* p->work_dir */
	const char *exec_path;
};

KBW_EXPORT struct kbw_build_result *kbw_build_result_free(struct kbw_build_result *r)
{
	if (!r)
		return NULL;
	free(r->reason);
	strv_free(r->modules);
	free(r->symvers);
	free(r);
	return NULL;
}

KBW_EXPORT bool kbw_build_succeeded(const struct kbw_build_result *r)
{
	return r && r->exit_status == 0 && !r->timed_out && !r->reason;
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
 * sandbox are shown as the real work dir. */
static char *first_error_line(char *text, const char *work_dir)
{
	static const char *const patterns[] = {
		": error:", "fatal error",	   "undefined!", "ERROR: ",
		": Error:", "undefined reference", "Error ",
	};

	/* Earliest line matching any pattern: compiler errors come before make's "Error
	 * 1". */
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
			if (strstr(line, patterns[i])) {
				_cleanup_free_ char *l =
					replace_all(line, KBW_SANDBOX_WORK_DIR, work_dir);

				return strndup(l ?: line, REASON_MAX);
			}
	}
	return NULL;
}

static int build_argv(const struct kbw_kernel *k, const struct kbw_build_params *p,
		      const char *m_path, char **symvers, char ***ret)
{
	_cleanup_strv_free_ char **argv = NULL;
	int r;

	if (p->command) {
		if ((r = strv_consume(&argv, strdup("bash"))) < 0 ||
		    (r = strv_consume(&argv, strdup("-c"))) < 0 ||
		    (r = strv_consume(&argv, strdup(p->command))) < 0)
			return r;
		*ret = TAKE_PTR(argv);
		return 0;
	}
	if ((r = strv_consume(&argv, strdup("make"))) < 0 ||
	    (r = strv_consume(&argv, strdup_printf("-C%s", k->build_dir))) < 0 ||
	    (r = strv_consume(&argv, strdup_printf("M=%s", m_path))) < 0 ||
	    (r = strv_consume(&argv, strdup_printf("CC=%s", k->cc))) < 0 ||
	    (r = strv_consume(&argv, strdup_printf("KERNELRELEASE=%s", k->release))) <
		    0 ||
	    (!p->jobserver &&
	     (r = strv_consume(&argv, strdup_printf("-j%u", p->jobs ?: 1))) < 0))
		return r;
	if (k->llvm && (r = strv_consume(&argv, strdup("LLVM=1"))) < 0)
		return r;
	for (char **v = p->make_vars; v && *v; v++)
		if ((r = strv_consume(&argv, strdup(*v))) < 0)
			return r;
	if (symvers) {
		_cleanup_free_ char *s = strdup("KBUILD_EXTRA_SYMBOLS=");

		for (char **v = symvers; s && *v; v++) {
			char *t = strdup_printf("%s%s%s", s, v == symvers ? "" : " ", *v);

			free(s);
			s = t;
		}
		if ((r = strv_consume(&argv, TAKE_PTR(s))) < 0)
			return r;
	}
	if ((r = strv_consume(&argv, strdup("modules"))) < 0)
		return r;
	*ret = TAKE_PTR(argv);
	return 0;
}

/* PWD is the directory make starts in, as a shell would export it: Makefiles use
 * $(PWD) as "my directory" (ccflags-y := -I$(PWD)). */
static int build_envp(const struct kbw_kernel *k, const struct kbw_build_params *p,
		      const char *home, const char *cwd, char **symvers, char ***ret)
{
	_cleanup_strv_free_ char **envp = NULL;
	int r;

	if ((r = strv_consume(&envp, strdup("PATH=" KBW_DEFAULT_PATH))) < 0 ||
	    (r = strv_consume(&envp, strdup_printf("HOME=%s", home))) < 0 ||
	    (r = strv_consume(&envp, strdup_printf("PWD=%s", cwd))) < 0 ||
	    (r = strv_consume(&envp, strdup("LC_ALL=C"))) < 0)
		return r;
	/* What make 4.3 passes to its submakes; DKMS' MAKE[] lines and PRE_BUILD scripts
	 * reach the same pool through it. */
	if (p->jobserver &&
	    (r = strv_consume(&envp, strdup_printf("MAKEFLAGS= -j%u --jobserver-auth=%d,%d",
						   p->jobs ?: 1, KBW_JOBS_FD_R,
						   KBW_JOBS_FD_W))) < 0)
		return r;
	if (p->command && symvers) {
		/* The default build passes them on make's command line; a command gets
		 * them where make reads them too. */
		_cleanup_free_ char *joined = strv_join(symvers, " ");

		if (!joined)
			return -ENOMEM;
		r = strv_consume(&envp, strjoin("KBUILD_EXTRA_SYMBOLS=", joined));
		if (r < 0)
			return r;
	}
	if (p->command) {
		/* What DKMS' MAKE[] lines expect. */
		if ((r = strv_consume(
			     &envp, strdup_printf("KERNELRELEASE=%s", k->release))) < 0 ||
		    (r = strv_consume(
			     &envp, strdup_printf("kernelver=%s", k->release))) < 0 ||
		    (r = strv_consume(&envp, strdup_printf("kernel_source_dir=%s",
							      k->build_dir))) < 0 ||
		    (r = strv_consume(&envp, strdup_printf("CC=%s", k->cc))) < 0)
			return r;
	}
	*ret = TAKE_PTR(envp);
	return 0;
}

/* Copy the Module.symvers files of other builds into the work dir, where the build user
 * can read them whatever the permissions on the way to the originals. */
static int copy_extra_symbols(struct build *b, char ***ret)
{
	const struct kbw_build_params *p = b->p;
	_cleanup_strv_free_ char **list = NULL;
	_cleanup_close_ int dir = -EBADF;
	unsigned i = 0;
	int r;

	if (!p->extra_symbols || !p->extra_symbols[0]) {
		*ret = NULL;
		return 0;
	}
	/* Created as the build user, who owns the work dir (no chown, no CAP_DAC_*); the
	 * originals are read as ourselves. */
	dir = mkdirat_open_as(b->ws.fd, KBW_WORKSPACE_WORK "/.dm2-symvers", 0755, b->uid,
			      b->gid);
	if (dir < 0)
		return dir;
	for (char **s = p->extra_symbols; *s; s++, i++) {
		_cleanup_free_ char *text = NULL;
		_cleanup_close_ int fd = -EBADF;
		char name[32];
		size_t n;

		r = read_full_file_at(AT_FDCWD, *s, 0, &text, &n);
		if (r < 0) {
			kbw_log(LOG_ERR, "Cannot read symbol file '%s': %s", *s,
				strerror(-r));
			return r;
		}
		snprintf(name, sizeof(name), "%u.symvers", i);
		fd = openat_as(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			       0644, b->uid, b->gid);
		if (fd < 0)
			return fd;
		if (write(fd, text, n) != (ssize_t) n)
			return errno ? -errno : -EIO;
		r = strv_consume(&list, strdup_printf(KBW_SANDBOX_WORK_DIR
							 "/.dm2-symvers/%u.symvers",
							 i));
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(list);
	return 0;
}

static int set_reason(struct build *b, char *reason)
{
	if (!reason)
		return -ENOMEM;
	free(b->res->reason);
	b->res->reason = reason;
	return 0;
}

/* An output that must not be used: "'NAME' WHY; refusing it". */
static int refuse(struct build *b, const char *name, const char *why)
{
	return set_reason(b, strdup_printf("'%s' %s; refusing it", name, why));
}

/* Copy one output out of the workspace into the staging dir, refusing anything but a
 * plain file. 0 with no reason set: staged; -ENOENT: absent (no reason set). */
static int stage_output(struct build *b, const char *rel, uint64_t max)
{
	_cleanup_close_ int fd = -EBADF;
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	int r;

	r = kbw_workspace_open_output(&b->ws, rel, max, b->uid, b->gid, &fd);
	if (r == -ENOENT)
		return r;
	if (r == -EACCES)
		return refuse(b, base, "is not readable by the build user");
	if (r == -ELOOP)
		return refuse(b, base, "is a symbolic link or below one");
	if (r == -EBADMSG)
		return refuse(b, base, "is not a regular file with a single link");
	if (r == -EFBIG) {
		_cleanup_free_ char *size = kbw_format_bytes(max);

		return set_reason(b, strdup_printf("'%s' is larger than %s; refusing it",
						  base, size ?: "?"));
	}
	if (r < 0)
		return set_reason(b, strdup_printf("Cannot open '%s': %s", base,
						  strerror(-r)));
	r = kbw_stage_copy(fd, b->staging_fd, rel);
	if (r == -EINVAL)
		return set_reason(b, strdup_printf("invalid output path '%s'", rel));
	return r;
}

/* The directory of an fts entry's file, relative to the walk's top. */
static char *entry_dir(const FTSENT *e, size_t top_len)
{
	return strndup(e->fts_path + top_len + 1,
		       (size_t) e->fts_pathlen - top_len - 1 - e->fts_namelen - 1);
}

/*
 * Where below the source (two levels down at most, symbolic links not followed) NAME.c,
 * else a Kbuild file, is: for a source whose modules live in a subdirectory with no
 * Kbuild at the top, make builds nothing, and "not produced" alone does not say why. NULL
 * if neither is found.
 */
static char *find_subdir_hint(const struct kbw_build_params *p, const char *module)
{
	_cleanup_free_ char *top =
		p->subdir ? strdup_printf("%s/%s", p->source_dir, p->subdir)
			  : strdup(p->source_dir);
	_cleanup_free_ char *c_file = NULL, *dir = NULL;
	char *argv[] = {top, NULL};
	const char *what = NULL;
	FTS *fts;

	if (!top || !endswith(module, ".ko"))
		return NULL;
	c_file = strdup_printf("%.*s.c", (int) (strlen(module) - 3), module);
	fts = c_file ? fts_open(argv, FTS_PHYSICAL | FTS_NOCHDIR, NULL) : NULL;
	if (!fts)
		return NULL;
	for (FTSENT *e; (e = fts_read(fts));) {
		if (e->fts_info == FTS_D && e->fts_level >= 2)
			(void) fts_set(fts, e, FTS_SKIP);
		if (e->fts_info != FTS_F || e->fts_level < 2)
			continue;
		if (streq(e->fts_name, c_file) ||
		    (!what && streq(e->fts_name, "Kbuild"))) {
			free(dir);
			dir = entry_dir(e, strlen(top));
			what = streq(e->fts_name, c_file) ? c_file : "Kbuild";
			if (what == c_file)
				break;
		}
	}
	fts_close(fts);
	if (!dir)
		return NULL;
	return strdup_printf("; '%s' is in the subdirectory '%s': does [Build] need "
			     "Directory=%s%s%s?",
			     what, dir, p->subdir ?: "", p->subdir ? "/" : "", dir);
}

static int stage_module(struct build *b, const char *rel, char ***produced)
{
	_cleanup_free_ char *path = NULL, *vermagic = NULL;
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	int r;

	r = stage_output(b, rel, MODULE_MAX);
	if (r == -ENOENT) {
		_cleanup_free_ char *hint = find_subdir_hint(b->p, base);

		return set_reason(b, strdup_printf("module '%s' was not produced%s", base,
						   strempty(hint)));
	}
	if (r < 0 || b->res->reason)
		return r;
	path = strdup_printf("%s/%s", b->p->work_dir, rel);
	if (!path)
		return -ENOMEM;
	r = kbw_module_vermagic(path, &vermagic);
	if (r >= 0 && streq(vermagic, b->k->vermagic))
		return strv_consume(produced, TAKE_PTR(path));
	(void) unlinkat(b->staging_fd, rel, 0); /* refused: not left staged */
	if (r == -ENOEXEC)
		return refuse(b, base, "is not an ELF object whose headers fit in it");
	if (r == -ENODATA)
		return refuse(b, base, "has no vermagic in its .modinfo");
	if (r < 0)
		return set_reason(b, strdup_printf("Cannot read the vermagic of '%s': %s",
						  base, strerror(-r)));
	return set_reason(b, strdup_printf("'%s' has vermagic '%s', expected '%s'", base,
					  vermagic, b->k->vermagic));
}

/* Every build process is gone: stage the modules and Module.symvers, check vermagic. */
static int stage_outputs(struct build *b)
{
	const struct kbw_build_params *p = b->p;
	_cleanup_strv_free_ char **produced = NULL;
	_cleanup_free_ char *rel = NULL;
	int r;

	for (char **m = p->modules; m && *m; m++) {
		r = stage_module(b, *m, &produced);
		if (r < 0 || b->res->reason)
			return r;
	}
	rel = strdup_printf("%s%sModule.symvers", p->subdir ?: "", p->subdir ? "/" : "");
	if (!rel)
		return -ENOMEM;
	r = stage_output(b, rel, SYMVERS_MAX);
	if (r == -ENOENT && p->subdir) {
		free(rel);
		rel = strdup("Module.symvers");
		if (!rel)
			return -ENOMEM;
		r = stage_output(b, rel, SYMVERS_MAX);
	}
	if (r < 0 && r != -ENOENT)
		return r;
	if (b->res->reason)
		return 0;
	if (r == 0) {
		b->res->symvers = strdup_printf("%s/%s", p->work_dir, rel);
		if (!b->res->symvers)
			return -ENOMEM;
	}
	b->res->modules = TAKE_PTR(produced);
	return 0;
}

static int check_params(const struct kbw_kernel *k, const struct kbw_build_params *p)
{
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
	if (p->n_binds > 16 || (p->n_binds > 0 && !p->binds))
		return -EINVAL;
	if (!p->isolate) {
		kbw_log(LOG_ERR, "Builds always run in the sandbox; isolate=false is refused");
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The staging dir, the log, the workspace with the sources in it. */
static int prepare(struct build *b)
{
	const struct kbw_build_params *p = b->p;
	int r;

	if (mkdir(p->work_dir, 0755) < 0) {
		r = -errno;
		kbw_log(LOG_ERR, "Cannot create the work dir '%s': %s", p->work_dir,
			strerror(-r));
		return r;
	}
	b->staging_fd = open(p->work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (b->staging_fd < 0)
		return -errno;
	b->log_fd = open(p->log_path,
			 O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0644);
	if (b->log_fd < 0) {
		r = -errno;
		kbw_log(LOG_ERR, "Cannot open build log '%s': %s", p->log_path,
			strerror(-r));
		return r;
	}
	r = kbw_workspace_new(b->limits.disk_max, &b->ws);
	if (r < 0) {
		kbw_log(LOG_ERR, "Cannot create the build's tmpfs: %s", strerror(-r));
		return r;
	}
	r = copy_tree_owned_at(AT_FDCWD, p->source_dir, b->ws.fd, KBW_WORKSPACE_WORK, b->uid,
			       b->gid);
	if (r >= 0)
		r = fs_ids_set(b->uid, b->gid);
	if (r >= 0) {
		if (fchmodat(b->ws.fd, KBW_WORKSPACE_WORK, 0700, 0) < 0)
			r = -errno;
		fs_ids_restore();
	}
	if (r < 0) {
		kbw_log(LOG_ERR, "Cannot copy '%s' into the build's tmpfs: %s", p->source_dir,
			r == -ENOSPC ? "larger than the disk budget" : strerror(-r));
		return r;
	}
	return 0;
}

/* make and the kernel's compiler exist; else a reason. */
static int check_tools(struct build *b)
{
	const struct kbw_kernel *k = b->k;

	if (b->p->command) {
		/* DKMS runs MAKE[] with bash's eval. */
		b->exec_path = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/usr/bin/bash";
		return 0;
	}
	b->exec_path = access("/usr/bin/make", X_OK) == 0 ? "/usr/bin/make" : "/bin/make";
	if (find_program(KBW_DEFAULT_PATH, "make", NULL) < 0)
		return set_reason(b, strdup("'make' is not installed"));
	if (!kbw_kernel_cc_available(k)) {
		int r = set_reason(b, strdup_printf("compiler '%s' the kernel was built with "
						   "is not installed (kernel compiler: %s)",
						   k->cc ?: "?",
						   k->cc_version_text ?: "unknown"));
		if (r >= 0)
			dprintf(b->log_fd, "dm2: %s\n", b->res->reason);
		return r;
	}
	return 0;
}

/* The one-line reason of a run that ended, from most to least specific. */
static int judge(struct build *b, const struct kbw_sandbox *s,
		 const struct kbw_sandbox_outcome *o)
{
	struct kbw_build_result *res = b->res;
	const char *what = b->p->command ?: "make";
	_cleanup_free_ char *text = NULL;
	char *limit;

	res->timed_out = o->timed_out;
	res->exit_status = WIFEXITED(o->status) ? WEXITSTATUS(o->status) : -1;
	res->build_uid = o->uid;
	res->network_isolated = o->net;
	if (o->cancelled) {
		res->exit_status = -1;
		dprintf(b->log_fd, "dm2: build cancelled\n");
		return set_reason(b, strdup("build cancelled"));
	}
	if (o->setup_error) {
		res->exit_status = -1;
		return set_reason(b, strdup_printf("sandbox setup failed: %s", o->setup_error));
	}
	if (o->timed_out) {
		(void) set_reason(b, strdup_printf("build timed out after %llu s",
						  (unsigned long long) (b->p->timeout_usec /
									1000000u)));
		dprintf(b->log_fd, "dm2: %s\n", res->reason ?: "build timed out");
		return res->reason ? 0 : -ENOMEM;
	}
	if (WIFEXITED(o->status) && res->exit_status == 0)
		return 0;
	text = kbw_read_log(b->log_fd, LOG_SCAN_MAX);
	limit = kbw_limit_reason(s, &b->ws, o->status, text);
	if (limit) {
		dprintf(b->log_fd, "dm2: %s\n", limit);
		return set_reason(b, limit);
	}
	if (WIFSIGNALED(o->status))
		return set_reason(b, strdup_printf("build killed by signal %s",
						  sigabbrev_np(WTERMSIG(o->status)) ?: "?"));
	if (text && (res->reason = first_error_line(text, b->p->work_dir)))
		return 0;
	return set_reason(b, strdup_printf("'%s' failed with exit status %d", what,
					  res->exit_status));
}

/* The sandboxed run, on tokens of the pool when there is one. */
static int run_with_jobs(struct build *b, struct kbw_sandbox *s,
			 struct kbw_sandbox_outcome *o)
{
	const struct kbw_build_params *p = b->p;
	struct kbw_jobs jobs;
	unsigned kept = 0;
	int r;

	if (!p->jobserver)
		return kbw_sandbox_exec(s, p->timeout_usec, o);
	r = kbw_jobs_begin(&jobs, p->jobserver_fds[0], p->jobserver_fds[1]);
	if (r < 0) {
		kbw_log(LOG_ERR, "Cannot join the jobserver on fds %d,%d: %s",
			p->jobserver_fds[0], p->jobserver_fds[1], strerror(-r));
		return r;
	}
	s->jobs = &jobs;
	r = kbw_sandbox_exec(s, p->timeout_usec, o);
	s->jobs = NULL;
	kbw_jobs_end(&jobs, &kept);
	if (kept > 0)
		dprintf(b->log_fd, "dm2: the build kept %u jobserver token(s); returned to the pool\n",
			kept);
	return r;
}

static int run(struct build *b)
{
	const struct kbw_build_params *p = b->p;
	_cleanup_strv_free_ char **argv = NULL, **envp = NULL, **symvers = NULL;
	_cleanup_free_ char *m_path = NULL;
	struct kbw_sandbox_outcome o = {};
	struct kbw_sandbox s;
	int r;

	m_path = strdup_printf(KBW_SANDBOX_WORK_DIR "%s%s", p->subdir ? "/" : "",
			      p->subdir ?: "");
	if (!m_path)
		return -ENOMEM;
	r = copy_extra_symbols(b, &symvers);
	if (r < 0)
		return r;
	r = build_argv(b->k, p, m_path, symvers, &argv);
	if (r < 0)
		return r;
	r = build_envp(b->k, p, KBW_SANDBOX_WORK_DIR,
		       p->command ? KBW_SANDBOX_WORK_DIR : m_path, symvers, &envp);
	if (r < 0)
		return r;
	s = (struct kbw_sandbox){
		.k = b->k,
		.workspace_fd = b->ws.fd,
		.exec_path = b->exec_path,
		.argv = argv,
		.envp = envp,
		.chdir_path = p->command ? KBW_SANDBOX_WORK_DIR : m_path,
		.log_fd = b->log_fd,
		.uid = b->uid,
		.gid = b->gid,
		.memory_max = p->memory_max,
		.processes = b->limits.processes,
		.cpu_sec = (b->limits.cpu_usec + 999999) / 1000000,
		.file_max = b->limits.disk_max,
		.binds = p->binds,
		.n_binds = p->n_binds,
	};
	r = run_with_jobs(b, &s, &o);
	if (r < 0)
		return r;
	r = judge(b, &s, &o);
	free(o.setup_error);
	if (r < 0 || b->res->reason)
		return r;
	return stage_outputs(b);
}

static void build_done(struct build *b)
{
	kbw_workspace_done(&b->ws);
	b->log_fd = safe_close(b->log_fd);
	b->staging_fd = safe_close(b->staging_fd);
	b->res = kbw_build_result_free(b->res);
}

KBW_EXPORT int kbw_build_limited(const struct kbw_kernel *k, const struct kbw_build_params *p,
				 const struct kbw_limits *limits,
				 struct kbw_build_result **ret)
{
	struct build b = {.k = k, .p = p, .ws.fd = -EBADF, .log_fd = -EBADF,
			  .staging_fd = -EBADF};
	int r;

	r = check_params(k, p);
	if (r < 0)
		return r;
	b.limits = limits ? *limits : (struct kbw_limits){};
	b.limits.processes = b.limits.processes ?: KBW_DEFAULT_PROCESSES;
	b.limits.cpu_usec = b.limits.cpu_usec ?: KBW_DEFAULT_CPU_USEC;
	b.limits.disk_max = b.limits.disk_max ?: KBW_DEFAULT_DISK_MAX;
	b.uid = geteuid() == 0 ? p->uid : geteuid();
	b.gid = geteuid() == 0 ? p->gid : getegid();
	b.res = calloc(1, sizeof(*b.res));
	if (!b.res)
		return -ENOMEM;
	b.res->exit_status = -1;

	r = prepare(&b);
	if (r >= 0)
		r = check_tools(&b);
	if (r >= 0 && !b.res->reason)
		r = run(&b);
	if (r < 0) {
		kbw_log(LOG_ERR, "Cannot run the build in '%s': %s", p->work_dir,
			strerror(-r));
		build_done(&b);
		return r;
	}
	if (b.res->reason)
		kbw_log(LOG_DEBUG, "Build in '%s' failed: %s", p->work_dir, b.res->reason);
	*ret = TAKE_PTR(b.res);
	build_done(&b);
	return 0;
}

KBW_EXPORT int kbw_build(const struct kbw_kernel *k, const struct kbw_build_params *p,
			 struct kbw_build_result **ret)
{
	return kbw_build_limited(k, p, NULL, ret);
}
