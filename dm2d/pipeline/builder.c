/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>

#include "core/build-user.h"
#include "pipeline/builder.h"
#include "core/kernels.h"
#include "recipe/dkms-run.h"
#include "shared/fs-util.h"
#include "shared/jobserver.h"
#include "shared/log.h"
#include "shared/util.h"

unsigned builder_make_jobs(struct dm2_context *ctx)
{
	long n;

	if (ctx->config && ctx->config->make_jobs > 0)
		return ctx->config->make_jobs;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned) n : 1;
}

/* The make jobserver pool this process's builds share: dm2d's ($DM2_JOBSERVER), else one
 * of our own with a token per CPU, so that one build alone uses every core and several
 * in one process never run more jobs than CPUs. None when MakeJobs= asks for a fixed -j
 * per build. */
static const struct jobserver *builder_jobserver(struct dm2_context *ctx)
{
	static struct jobserver js = JOBSERVER_NULL;
	static bool tried;
	int r;

	if (ctx->config && ctx->config->make_jobs > 0)
		return NULL;
	if (!tried) {
		tried = true;
		r = jobserver_from_env(&js);
		if (r < 0)
			log_warning_errno(r, "Ignoring $" JOBSERVER_ENV "='%s': no jobserver pipe",
					  getenv(JOBSERVER_ENV));
		if (!jobserver_valid(&js)) {
			r = jobserver_new(builder_make_jobs(ctx), &js);
			if (r < 0)
				log_warning_errno(r, "Cannot create a make jobserver, "
						     "builds use -j instead: %m");
		}
	}
	return jobserver_valid(&js) ? &js : NULL;
}

static int mkdir_parent(const char *path)
{
	_cleanup_free_ char *d = NULL;
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path)
		return 0;
	d = strndup(path, (size_t) (slash - path));
	if (!d)
		return -ENOMEM;
	return mkdir_p_at(AT_FDCWD, d, 0755);
}

/* Where each module appears after the build, relative to the work dir:
 * [Directory=/]BUILT_LOCATION/NAME.ko. */
static int expected_modules(const struct recipe *r, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;

	for (size_t i = 0; i < r->n_modules; i++) {
		const struct recipe_module *m = &r->modules[i];
		char *p;
		int q;

		p = strjoin(strempty(r->subdir), isempty(r->subdir) ? "" : "/",
			    strempty(m->built_location),
			    isempty(m->built_location) ? "" : "/", m->name, ".ko");
		if (!p)
			return -ENOMEM;
		q = strv_consume(&l, p);
		if (q < 0)
			return q;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

/* s in single quotes for bash. */
static char *shell_quote(const char *s)
{
	size_t n = 2;
	char *out, *w;

	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	w = out;
	*w++ = '\'';
	for (const char *p = s; *p; p++)
		if (*p == '\'') {
			memcpy(w, "'\\''", 4);
			w += 4;
		} else
			*w++ = *p;
	*w++ = '\'';
	*w = '\0';
	return out;
}

/* dm2's own kbuild call, as a command line (for a build with PRE_BUILD/POST_BUILD around
 * it); Needs= symbols come in KBUILD_EXTRA_SYMBOLS from the environment. */
static char *default_make(struct dm2_context *ctx, const struct recipe *r,
			  const struct kbw_kernel *k)
{
	_cleanup_free_ char *kdir = shell_quote(kbw_kernel_build_dir(k) ?: ""),
			    *cc = shell_quote(kbw_kernel_cc(k) ?: "gcc"),
			    *rel = shell_quote(kbw_kernel_release(k)), *vars = NULL,
			    *jobs = NULL;
	_cleanup_strv_free_ char **q = NULL;

	if (!kdir || !cc || !rel)
		return NULL;
	STRV_FOREACH(v, r->make_vars)
		if (strv_consume(&q, shell_quote(*v)) < 0)
			return NULL;
	vars = q ? strv_join(q, " ") : strdup("");
	if (!vars)
		return NULL;
	/* -jN only without a jobserver: with one, MAKEFLAGS carries it and a -jN would
	 * make this make leave the pool. */
	jobs = builder_jobserver(ctx) ? strdup("") : strdup_printf(" -j%u", builder_make_jobs(ctx));
	if (!jobs)
		return NULL;
	return strdup_printf("make -C %s M=\"$PWD\" CC=%s KERNELRELEASE=%s%s%s %s modules",
			     kdir, cc, rel, jobs, kbw_kernel_llvm(k) ? " LLVM=1" : "", vars);
}

/*
 * A DKMS package's build as DKMS' do_build runs it, in the build dir: PRE_BUILD, MAKE,
 * POST_BUILD. A script is "SCRIPT ARGS" relative to the build dir, run only when SCRIPT is
 * executable (else a warning, as DKMS' run_build_script), word-split and exec'd in a
 * subshell; a failure fails the build. NULL in *ret when the package has neither script.
 */
static int dkms_command(struct dm2_context *ctx, const struct recipe *r,
			const struct kbw_kernel *k, char **ret)
{
	static const char run_fn[] =
		"__dm2_run() {\n"
		"  local run=\"$PWD/$2\"\n"
		"  if [[ ! -x ${run%% *} ]]; then\n"
		"    echo \"dm2: warning: the $1 script '${run%% *}' is not executable, not run\"\n"
		"    return 0\n"
		"  fi\n"
		"  echo \"Running the $1 script: $2\"\n"
		"  (exec $run) && return 0\n"
		"  local s=$?\n"
		"  echo \"ERROR: $1 '$2' failed with exit status $s\"\n"
		"  exit $s\n"
		"}\n";
	_cleanup_free_ char *make = NULL, *pre = NULL, *post = NULL;

	*ret = NULL;
	if (r->origin != RECIPE_ORIGIN_DKMS || (!r->dkms_pre_build && !r->dkms_post_build))
		return 0;
	make = r->make_command ? strdup(r->make_command) : default_make(ctx, r, k);
	pre = r->dkms_pre_build ? shell_quote(r->dkms_pre_build) : strdup("");
	post = r->dkms_post_build ? shell_quote(r->dkms_post_build) : strdup("");
	if (!make || !pre || !post)
		return -ENOMEM;
	*ret = strdup_printf("%s%s%s%s\n"
			     "( %s\n) || { s=$?; echo \"ERROR: make failed with exit status $s\"; "
			     "exit $s; }\n"
			     "%s%s%s\n",
			     run_fn, r->dkms_pre_build ? "__dm2_run PRE_BUILD " : "", pre,
			     "", make, r->dkms_post_build ? "__dm2_run POST_BUILD " : "", post,
			     "");
	return *ret ? 0 : -ENOMEM;
}

static struct kbw_limits builder_limits(struct dm2_context *ctx)
{
	const struct dm2_config *c = ctx->config;

	if (!c)
		return (struct kbw_limits){};
	return (struct kbw_limits){
		.processes = c->build_processes_max,
		.cpu_usec = c->build_cpu_usec,
		.disk_max = c->build_disk_max,
	};
}

int builder_build(struct dm2_context *ctx, const struct recipe *r,
		  const struct kbw_kernel *k, const char *source_dir,
		  const char *work_dir, const char *log_path, char **extra_symbols,
		  struct kbw_build_result **ret)
{
	_cleanup_(build_uid_release) struct build_uid u = BUILD_UID_NULL;
	_cleanup_strv_free_ char **modules = NULL;
	_cleanup_free_ char *dkms = NULL;
	_cleanup_(dkms_root_view_done) struct dkms_root_view view = {};
	struct kbw_limits limits = builder_limits(ctx);
	const struct jobserver *js = builder_jobserver(ctx);
	struct kbw_build_params p = {};
	struct kbw_build_result *res = NULL;
	int q;

	q = build_uid_acquire(ctx, &u);
	if (q < 0)
		return log_debug_errno(q, "Cannot allocate a build uid: %m");
	q = expected_modules(r, &modules);
	if (q < 0)
		return q;
	q = dkms_command(ctx, r, k, &dkms);
	if (q < 0)
		return q;
	/* The fake root its dkms.conf was evaluated in, at the same paths. */
	if (r->origin == RECIPE_ORIGIN_DKMS) {
		q = dkms_root_view_init(ctx, &view);
		if (q < 0)
			return q;
	}

	q = mkdir_parent(work_dir);
	if (q < 0)
		return q;
	q = rm_rf_at(AT_FDCWD, work_dir);
	if (q < 0)
		return q;
	q = mkdir_parent(log_path);
	if (q < 0)
		return q;

	p = (struct kbw_build_params){
		.source_dir = source_dir,
		.work_dir = work_dir,
		.subdir = isempty(r->subdir) ? NULL : r->subdir,
		.log_path = log_path,
		.make_vars = r->make_vars,
		.extra_symbols = extra_symbols,
		.command = dkms ?: isempty(r->make_command) ? NULL : r->make_command,
		.modules = modules,
		.jobs = builder_make_jobs(ctx),
		.uid = u.uid,
		.gid = u.gid,
		.timeout_usec = ctx->config ? ctx->config->build_timeout_usec : 0,
		.memory_max = ctx->config ? ctx->config->build_memory_max : 0,
		.isolate = true,
		.jobserver = js != NULL,
		.jobserver_fds = {js ? js->fds[0] : -1, js ? js->fds[1] : -1},
		.binds = view.binds,
		.n_binds = view.n_binds,
	};

	log_debug("Building '%s' for %s in '%s' as uid %u, log '%s'", r->name,
		  kbw_kernel_release(k), work_dir, (unsigned) u.uid, log_path);
	q = kbw_build_limited(k, &p, &limits, &res);
	if (q < 0)
		return q;
	*ret = res;
	return 0;
}

int builder_strip(struct dm2_context *ctx, const struct kbw_kernel *k, const char *name,
		  const char *log_path, char **buf, size_t *size, char **ret_reason)
{
	_cleanup_(build_uid_release) struct build_uid u = BUILD_UID_NULL;
	_cleanup_close_ int log_fd = -EBADF;
	const char *tool = kbw_kernel_llvm(k) ? "llvm-strip" : "strip";
	struct kbw_limits limits = builder_limits(ctx);
	void *out = NULL;
	size_t out_size = 0;
	int q;

	q = build_uid_acquire(ctx, &u);
	if (q < 0)
		return log_debug_errno(q, "Cannot allocate a build uid: %m");
	if (log_path) {
		log_fd = open(log_path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
		if (log_fd < 0)
			log_debug_errno(errno, "Cannot open '%s', ignoring: %m", log_path);
	}
	q = kbw_run_on_file(
		&(struct kbw_file_command){
			.argv = (char *[]){(char *) tool, (char *) "-g", (char *) "{}", NULL},
			.name = name,
			.log_fd = log_fd,
			.uid = u.uid,
			.gid = u.gid,
			.timeout_usec = ctx->config ? ctx->config->build_timeout_usec : 0,
			.memory_max = ctx->config ? ctx->config->build_memory_max : 0,
			.limits = &limits,
		},
		*buf, *size, &out, &out_size, ret_reason);
	if (q == -EPROTO && ret_reason && *ret_reason &&
	    endswith(*ret_reason, "' not found")) {
		free(*ret_reason);
		*ret_reason = strjoin("'", tool, "' not found (install ",
				      streq(tool, "strip") ? "binutils" : "llvm",
				      ") or set Strip=no");
	}
	if (q < 0)
		return q;
	free(*buf);
	*buf = out;
	*size = out_size;
	return 0;
}
