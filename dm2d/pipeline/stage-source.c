/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The source stage: the chosen source fetched, verified, unpacked and patched into the
 * job's work directory (source.c). */
#include <sys/stat.h>

#include "pipeline/build-log.h"
#include "pipeline/job-internal.h"
#include "pipeline/source.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/* A private directory per job; `dm2 build` uses one per recipe x kernel and keeps it, as
 * its modules are read from there. */
static int job_work_dir(struct job *j)
{
	_cleanup_free_ char *abs = NULL;
	int r;

	r = mkdir_p_at(j->ctx->root_fd, DM2_WORK_DIR, 0755);
	if (r >= 0 && j->o->build_only) {
		j->work = strjoin(DM2_WORK_DIR "/build-", j->name, "-", j->kver);
		if (!j->work)
			return log_oom();
		r = rm_rf_at(j->ctx->root_fd, j->work);
		if (r >= 0)
			r = mkdir_p_at(j->ctx->root_fd, j->work, 0755);
	} else if (r >= 0) {
		r = mkdtemp_at(j->ctx->root_fd, DM2_WORK_DIR "/job-", &j->work);
		/* The build user copies the sources from here. */
		if (r >= 0)
			(void) fchmodat(j->ctx->root_fd, j->work, 0755, 0);
	}
	if (r < 0)
		return log_error_errno(r, "Failed to create a work directory in '%s': %m",
				       DM2_WORK_DIR);
	abs = context_path(j->ctx, j->work);
	if (!abs)
		return log_oom();
	j->src_dir = path_join(abs, "src");
	j->build_dir = path_join(abs, "build");
	if (!j->src_dir || !j->build_dir)
		return log_oom();
	return 0;
}

int stage_source(struct job *j)
{
	_cleanup_free_ char *reason = NULL;
	int r;

	r = job_work_dir(j);
	if (r < 0)
		return r;
	r = source_prepare_for(j->ctx, j->recipe, j->source, j->kver,
			       kbw_kernel_version(j->kernel), j->src_dir, &j->content_id,
			       &reason);
	if (r < 0) {
		const char *why = reason ?: "preparing the sources failed";
		/* `dm2 log` shows this failure, not the log of an older build. */
		int k = build_log_failure(j, why);

		if (k < 0)
			log_warning_errno(
				k, "Failed to write the build log '%s', ignoring: %m",
				j->log_path);
		return job_fail(j, r, why);
	}
	return 0;
}
