/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pipeline: the stages of a job, in order. */
#include "pipeline/job-internal.h"
#include "shared/log.h"

/*
 * state: the job's state while the stage runs, and so where a failure in it is recorded
 * (a failure to strip is a failure of the build; reading a built module is the first
 * step of signing; a module that cannot be compressed cannot be installed). enter: the
 * stage starts a new state. build: `dm2 build` runs it too; it compiles, and nothing else
 * (no cache, no Needs= installs, no signing), then ends in built. wanted: the stage is
 * left out unless it says yes (a cache hit needs no build; Sign=no).
 */
/* clang-format off */
static const struct job_stage stages[] = {
	/* name      state                 enter  build  wanted      run */
	{"kernel",   JOB_STATE_QUEUED,     false, true,  NULL,       stage_kernel},
	{"plan",     JOB_STATE_QUEUED,     false, true,  NULL,       stage_plan},
	{"source",   JOB_STATE_FETCHING,   true,  true,  NULL,       stage_source},
	{"cache",    JOB_STATE_FETCHING,   false, false, NULL,       stage_cache_lookup},
	{"needs",    JOB_STATE_BUILDING,   false, false, job_builds, stage_needs},
	{"build",    JOB_STATE_BUILDING,   true,  true,  job_builds, stage_build},
	{"store",    JOB_STATE_BUILDING,   false, false, job_builds, stage_cache_store},
	{"read",     JOB_STATE_SIGNING,    false, false, NULL,       stage_read},
	{"strip",    JOB_STATE_BUILDING,   false, false, job_strips, stage_strip},
	{"sign",     JOB_STATE_SIGNING,    true,  false, job_signs,  stage_sign},
	{"publish",  JOB_STATE_SIGNING,    false, false, job_builds, stage_cache_publish},
	{"compress", JOB_STATE_INSTALLING, false, false, NULL,       stage_compress},
	{"install",  JOB_STATE_INSTALLING, true,  false, NULL,       stage_install},
	{"depmod",   JOB_STATE_INSTALLING, false, false, NULL,       stage_depmod},
};
/* clang-format on */

int job_run_stages(struct job *j)
{
	for (size_t i = 0; i < ELEMENTSOF(stages); i++) {
		const struct job_stage *s = &stages[i];
		int r;

		if ((j->o->build_only && !s->build_only) || (s->wanted && !s->wanted(j)))
			continue;
		j->stage = s->state;
		if (s->enter) {
			r = job_enter(j, s->state);
			if (r < 0)
				return r;
		}
		log_debug("Job %s: stage %s", j->id_text, s->name);
		r = s->run(j);
		if (r != 0)
			return r; /* < 0: logged, the caller records the job failed */
	}
	return job_complete(j);
}
