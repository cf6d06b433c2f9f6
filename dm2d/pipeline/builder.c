/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>

#include "pipeline/build-user.h"
#include "pipeline/builder.h"
#include "core/kernels.h"
#include "shared/fs-util.h"
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

int builder_build(struct dm2_context *ctx, const struct recipe *r,
		  const struct kbw_kernel *k, const char *source_dir,
		  const char *work_dir, const char *log_path, char **extra_symbols,
		  struct kbw_build_result **ret)
{
	_cleanup_strv_free_ char **modules = NULL;
	struct kbw_build_params p = {};
	struct kbw_build_result *res = NULL;
	uid_t uid;
	gid_t gid;
	int q;

	kernels_setup_log();

	q = build_user_resolve(ctx, &uid, &gid);
	if (q < 0)
		return log_debug_errno(q, "Cannot resolve the build user: %m");
	q = expected_modules(r, &modules);
	if (q < 0)
		return q;

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
		.command = isempty(r->make_command) ? NULL : r->make_command,
		.modules = modules,
		.jobs = builder_make_jobs(ctx),
		.uid = uid,
		.gid = gid,
		.timeout_usec = ctx->config ? ctx->config->build_timeout_usec : 0,
		.memory_max = ctx->config ? ctx->config->build_memory_max : 0,
		.isolate = true,
	};

	log_debug("Building '%s' for %s in '%s' as uid %u, log '%s'", r->name,
		  kbw_kernel_release(k), work_dir, (unsigned) uid, log_path);
	q = kbw_build(k, &p, &res);
	if (q < 0)
		return q;
	*ret = res;
	return 0;
}
