/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kernel and plan stages: is there anything to do for this kernel, and with which
 * source (plan.c decides). */
#include "pipeline/job-internal.h"
#include "shared/log.h"

int stage_kernel(struct job *j)
{
	const char *why = NULL;

	if (kbw_kernel_complete(j->kernel, &why))
		return 0;
	return job_finish(j, JOB_STATE_WAITING, why ?: "incomplete build tree");
}

int stage_plan(struct job *j)
{
	int r;

	r = plan_recipe(j->recipe, j->kernel, j->ctx->config->allow_non_gpl, &j->plan);
	if (r < 0)
		return log_error_errno(r, "Failed to plan '%s' for '%s': %m", j->name,
				       j->kver);
	if (!j->plan.applicable)
		return job_finish(j, JOB_STATE_SKIPPED,
				  j->plan.skip_reason ?: "not applicable");
	j->source = j->plan.source;
	if (j->o->version) {
		j->source = recipe_find_source(j->recipe, j->o->version);
		if (!j->source)
			return log_error_errno(ENOENT,
					       "Recipe '%s' has no source version '%s'.",
					       j->name, j->o->version);
		/* Asked for by name, so built; but a packager testing a range should know
		 * that automatic builds would not pick it for this kernel. */
		if (!kernel_range_match(&j->source->kernel,
					kbw_kernel_version(j->kernel)))
			log_warning(
				"Version '%s' of '%s' is for kernels '%s', which '%s' is "
				"not; building it anyway, as --version asks.",
				j->o->version, j->name, j->source->kernel.text, j->kver);
	}
	return job_record_build(j, NULL, NULL);
}
