/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A job's life around its stages: find what it is about, take its lock and its row in the
 * state db, run the stages of job.c, hand back the result. */
#include <assert.h>
#include <inttypes.h>

#include "core/kernels.h"
#include "core/lock.h"
#include "pipeline/build-log.h"
#include "pipeline/job-internal.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

void job_result_done(struct job_result *r)
{
	if (!r)
		return;
	free(r->version);
	free(r->reason);
	free(r->log_path);
	free(r->signer);
	kbw_build_result_free(r->build);
	*r = (struct job_result){};
}

static struct job *job_free(struct job *j)
{
	if (!j)
		return NULL;
	/* dm2 build keeps its work directory: it prints where the modules are. */
	if (j->work && !j->o->build_only && !getenv("DM2_KEEP_WORK"))
		(void) rm_rf_at(j->ctx->root_fd, j->work);
	for (size_t i = 0; i < j->n_modules; i++) {
		free(j->modules[i].path);
		free(j->modules[i].name);
		free(j->modules[i].data);
	}
	free(j->modules);
	free(j->work);
	free(j->src_dir);
	free(j->build_dir);
	free(j->log_path);
	free(j->content_id);
	free(j->signer);
	strv_free(j->needs_symvers);
	kbw_build_result_free(j->build);
	cache_close(j->cache);
	plan_done(&j->plan);
	safe_close(j->kernel_lock_fd);
	recipe_unref(j->recipe);
	kbw_kernel_unref(j->kernel);
	job_result_done(&j->res);
	free(j);
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct job *, job_free);

static void job_set_id(struct job *j, int64_t id)
{
	j->id = id;
	snprintf(j->id_text, sizeof(j->id_text), "%" PRIi64, id);
}

/* A job somebody queued (the daemon) for a recipe or kernel that no longer exists must
 * not stay queued forever: it would be resumed again after every restart. */
static void abandon_queued(struct job *j, const char *reason)
{
	struct db_job cur = {};

	if (!j->db || db_job_current(j->db, j->name, j->kver, &cur) < 0)
		return;
	job_set_id(j, cur.id);
	j->state = cur.state;
	if (!job_state_is_final(cur.state))
		(void) job_set_state(j, JOB_STATE_FAILED, cur.state, reason, NULL);
	db_job_done(&cur);
}

/* The recipe, evaluated for the kernel (a dkms.conf: $kernelver, MAKE_MATCH,
 * PATCH_MATCH), and the kernel; both recorded in the state db. */
static int job_find(struct job *j)
{
	const struct recipe *rcp = recipe_set_find(j->set, j->name);
	const char *content_hash, *why = NULL;
	_cleanup_free_ char *stamp = NULL;
	bool complete;
	int r;

	if (!rcp) {
		abandon_queued(j, "no such recipe");
		return log_error_errno(ENOENT, "No recipe '%s'; see 'dm2 recipe list'.",
				       j->name);
	}
	r = kernel_find(j->ctx, j->kver, &j->kernel);
	if (r == -ENOENT || r == -EINVAL) {
		abandon_queued(j, "no such kernel");
		return log_error_errno(ENOENT, "No kernel '%s' in '%s/lib/modules'.",
				       j->kver,
				       strcmp(j->ctx->root, "/") ? j->ctx->root : "");
	}
	if (r < 0)
		return log_error_errno(r, "Failed to probe kernel '%s': %m", j->kver);

	r = recipe_for_kernel(j->ctx, rcp, j->kernel, NULL, NULL, &j->recipe);
	if (r < 0)
		return log_error_errno(r, "Failed to evaluate '%s' for kernel '%s': %m",
				       rcp->path, j->kver);
	r = recipe_content_hash(j->recipe, &content_hash);
	if (r == -ESTALE)
		return log_error_errno(
			r, "Recipe '%s' changed while it was read; run again.",
			j->recipe->path);
	if (r < 0)
		return log_error_errno(r, "Failed to read recipe '%s': %m",
				       j->recipe->path);
	if (!j->db)
		return 0;

	complete = kbw_kernel_complete(j->kernel, &why);
	/* The stamp dm2d compares, not the sha256 identity (see kernel_tree_stamp()). */
	if (complete && kernel_tree_stamp(j->kernel, &stamp) < 0)
		stamp = mfree(stamp);
	r = db_kernel_upsert(j->db, j->kver, stamp, kbw_kernel_arch(j->kernel),
			     complete ? "complete" : "incomplete", complete ? NULL : why);
	if (r >= 0)
		r = db_recipe_upsert(j->db, j->recipe->name,
				     recipe_origin_to_string(j->recipe->origin),
				     j->recipe->path, content_hash);
	if (r < 0)
		return log_error_errno(r, "Failed to write the state db '%s': %m",
				       db_filename(j->db));
	return 0;
}

/* One job per recipe x kernel at a time (other recipes go on in parallel), and one
 * `dm2 build` of it: they share a work directory. */
static int job_lock(struct job *j, int *ret_fd)
{
	_cleanup_free_ char *name = NULL;
	int r;

	if (!j->o->build_only) {
		r = lock_job(j->ctx, j->name, j->kver,
			     lock_timeout_usec(j->ctx->config->build_timeout_usec +
					       LOCK_KERNEL_TIMEOUT_USEC),
			     ret_fd);
		if (r < 0)
			return log_error_errno(
				r, "Another dm2 is working on '%s' for '%s': %m", j->name,
				j->kver);
		return 0;
	}
	name = strjoin("build-", j->kver, "@", j->name);
	if (!name)
		return log_oom();
	r = lock_acquire(j->ctx, name, lock_timeout_usec(LOCK_KERNEL_TIMEOUT_USEC),
			 ret_fd);
	if (r < 0)
		return log_error_errno(r, "Another build of '%s' for %s is running: %m",
				       j->name, j->kver);
	return 0;
}

/* The job's row: a new one, or the unfinished one somebody queued or left behind (a
 * crash, a kill -9), which starts over from queued. */
static int job_open(struct job *j)
{
	_cleanup_free_ char *log_rel = NULL;
	struct db_job cur = {};
	int r;

	log_rel = strjoin(DM2_LOG_DIR "/", j->name, "/", j->kver, "/", build_log_name(j));
	if (!log_rel)
		return log_oom();
	j->log_path = context_path(j->ctx, log_rel);
	if (!j->log_path)
		return log_oom();
	if (!j->db)
		return 0;

	r = db_job_enqueue(j->db, j->name, j->kver, &j->id);
	if (r < 0)
		return log_error_errno(r, "Failed to queue '%s' for '%s': %m", j->name,
				       j->kver);
	job_set_id(j, j->id);
	r = db_job_get(j->db, j->id, &cur);
	if (r < 0)
		return log_error_errno(r, "Failed to read job %s: %m", j->id_text);
	j->state = cur.state;
	db_job_done(&cur);
	log_set_context(j->name, j->kver, j->id_text);
	if (j->state != JOB_STATE_QUEUED)
		return job_set_state(j, JOB_STATE_QUEUED, JOB_STATE_QUEUED, NULL, NULL);
	return 0;
}

static int job_result_take(struct job *j, struct job_result *ret)
{
	struct job_result *res = &j->res;
	/* A job that compiled and got through names the log of its build. */
	bool built =
		j->log_written &&
		(res->state == JOB_STATE_INSTALLED || res->state == JOB_STATE_BUILT ||
		 (j->o->batch && res->state == JOB_STATE_INSTALLING));

	res->id = j->id;
	res->from_cache = j->from_cache;
	if (free_and_strdup(&res->version, j->source ? j->source->version : NULL) < 0 ||
	    free_and_strdup(&res->signer, j->signer) < 0)
		return log_oom();
	if (!res->log_path && built && free_and_strdup(&res->log_path, j->log_path) < 0)
		return log_oom();
	if (j->o->build_only)
		res->build = TAKE_PTR(j->build);
	*ret = *res;
	*res = (struct job_result){};
	return 0;
}

int job_run_nested(struct dm2_context *ctx, struct db *d, const struct recipe_set *set,
		   const char *name, const char *kver, const struct job_options *o,
		   unsigned depth, struct job_result *ret)
{
	/* Released after the job is freed, work directory and all. */
	_cleanup_close_ int lock_fd = -EBADF;
	_cleanup_(job_freep) struct job *j = NULL;
	int r;

	j = calloc(1, sizeof(*j));
	if (!j)
		return log_oom();
	*j = (struct job){
		.ctx = ctx,
		.db = d,
		.o = o,
		.set = set,
		.name = name,
		.kver = kver,
		.depth = depth,
		.state = JOB_STATE_QUEUED,
		.kernel_lock_fd = -EBADF,
	};
	job_set_id(j, 0);

	r = job_find(j);
	if (r >= 0)
		r = job_lock(j, &lock_fd);
	if (r >= 0)
		r = job_open(j);
	if (r >= 0)
		r = job_run_stages(j);
	log_set_context(NULL, NULL, NULL);
	if (r < 0 && j->id > 0 && !job_state_is_final(j->state))
		/* Leave no job in a running state behind. */
		(void) job_set_state(j, JOB_STATE_FAILED, j->stage,
				     "internal error, see the log", NULL);
	if (r < 0)
		return r;
	return job_result_take(j, ret);
}

int job_run(struct dm2_context *ctx, struct db *d, const char *recipe, const char *kver,
	    const struct job_options *o, struct job_result *ret)
{
	_cleanup_(recipe_set_freep) struct recipe_set *owned = NULL;
	const struct recipe_set *set = o->recipes;
	int r;

	assert(!!d != o->build_only);
	if (!set) {
		r = recipe_set_load(ctx, NULL, NULL, &owned);
		if (r < 0)
			return log_error_errno(r, "Failed to load recipes: %m");
		set = owned;
	}
	job_stop_handlers_install();
	return job_run_nested(ctx, d, set, recipe, kver, o, 0, ret);
}
