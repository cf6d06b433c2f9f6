/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Needs= stage: each needed recipe is installed for the kernel first (by a job of its
 * own, when it is not yet), and its Module.symvers, from the build cache entry of the
 * installed build, is passed to the build. */
#include "pipeline/job-internal.h"
#include "shared/log.h"
#include "shared/util.h"

#define JOB_MAX_NEEDS_DEPTH 8

static void cache_entry_freep(struct cache_entry **e)
{
	cache_entry_free(*e);
}

static bool batch_has(const struct job_batch *b, int64_t id)
{
	for (size_t i = 0; b && i < b->n; i++)
		if (b->ids[i] == id)
			return true;
	return false;
}

/* The job that installed need: the newest installed one, or one of this batch that
 * waits for the batch's depmod. -ENOENT: none. */
static int need_installed(struct job *j, const char *need, struct db_job *ret)
{
	struct db_job cur = {};

	if (j->o->batch && db_job_current(j->db, need, j->kver, &cur) >= 0) {
		if (cur.state == JOB_STATE_INSTALLING && batch_has(j->o->batch, cur.id)) {
			*ret = cur;
			return 0;
		}
		db_job_done(&cur);
	}
	return db_job_last_installed(j->db, need, j->kver, ret);
}

/* Install need by a job of its own. 0: installed, JOB_STOP: j failed. */
static int need_install(struct job *j, const char *need)
{
	struct job_result sub = {};
	bool ok;
	int r;

	if (j->depth >= JOB_MAX_NEEDS_DEPTH) {
		_cleanup_free_ char *m = strjoin("Needs= chain too deep at '", need, "'");

		/* A loop of Needs= is bad input, found before anything is built. */
		return job_fail_at(j, JOB_STATE_FETCHING, -EINVAL, strna(m));
	}
	r = job_run_nested(j->ctx, j->db, j->set, need, j->kver, j->o, j->depth + 1,
			   &sub);
	log_set_context(j->name, j->kver, j->id_text);
	ok = r >= 0 && (sub.state == JOB_STATE_INSTALLED ||
			(j->o->batch && sub.state == JOB_STATE_INSTALLING));
	job_result_done(&sub);
	if (!ok)
		return job_failf(j, r < 0 ? r : -ENOPKG,
				 "needed recipe '%s' could not be installed", need);
	return 0;
}

static int need_symvers(struct job *j, const char *need)
{
	_cleanup_(cache_entry_freep) struct cache_entry *e = NULL;
	struct db_job cur = {};
	int r;

	r = need_installed(j, need, &cur);
	if (r == -ENOENT || (r >= 0 && (!cur.build_key ||
					cache_lookup(j->cache, cur.build_key, &e) < 0))) {
		db_job_done(&cur);
		r = need_install(j, need);
		if (r != 0)
			return r;
		r = need_installed(j, need, &cur);
	}
	if (r < 0)
		return log_error_errno(r, "Failed to read state of '%s': %m", need);
	if (!e && cur.build_key)
		(void) cache_lookup(j->cache, cur.build_key, &e);
	db_job_done(&cur);
	if (e && e->symvers && strv_extend(&j->needs_symvers, e->symvers) < 0)
		return log_oom();
	return 0;
}

int stage_needs(struct job *j)
{
	STRV_FOREACH(n, j->recipe->needs)
	{
		int r = need_symvers(j, *n);

		if (r != 0)
			return r;
	}
	return 0;
}
