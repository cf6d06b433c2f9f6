/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The depmod stage: `depmod -a` for the kernel once its modules are in place (install.c),
 * still under the kernel lock. The jobs of a batch share one, job_batch_finish(). */
#include <inttypes.h>

#include "core/lock.h"
#include "pipeline/install.h"
#include "pipeline/job-internal.h"
#include "shared/log.h"
#include "shared/util.h"

void job_batch_done(struct job_batch *b)
{
	free(b->ids);
	*b = (struct job_batch){};
}

int stage_depmod(struct job *j)
{
	_cleanup_free_ char *reason = NULL;
	struct job_batch *b = j->o->batch;
	int r;

	if (b) {
		int64_t *ids = realloc(b->ids, (b->n + 1) * sizeof(*ids));

		if (!ids)
			return log_oom();
		b->ids = ids;
		b->ids[b->n++] = j->id;
		return 0;
	}
	r = install_depmod(j->ctx, j->kver, &reason);
	j->kernel_lock_fd = safe_close(j->kernel_lock_fd);
	if (r < 0)
		return job_failf(j, r, "depmod failed: %s", strna(reason));
	return 0;
}

/* depmod for the batch: the reason when it failed. */
static int batch_depmod(struct dm2_context *ctx, const char *kver, char **ret_why)
{
	_cleanup_free_ char *reason = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = lock_kernel(ctx, kver, lock_timeout_usec(LOCK_KERNEL_TIMEOUT_USEC), &fd);
	if (r >= 0)
		r = install_depmod(ctx, kver, &reason);
	if (r == -EBUSY)
		*ret_why = strdup("depmod: timed out waiting for the kernel lock");
	else if (r < 0)
		*ret_why = strjoin("depmod failed: ", reason ?: "cannot run depmod");
	return r;
}

int job_batch_finish(struct dm2_context *ctx, struct db *d, const char *kver,
		     struct job_batch *b, bool run_depmod)
{
	static const struct job_options none = {};
	_cleanup_free_ char *why = NULL;
	int r = 0;

	if (b->n == 0)
		return 0;
	if (run_depmod)
		r = batch_depmod(ctx, kver, &why);
	if (r < 0)
		log_error("%s: %s", kver, strna(why));
	for (size_t i = 0; i < b->n; i++) {
		struct db_job row = {};
		struct job t = {.ctx = ctx, .db = d, .o = &none, .kver = kver};

		/* Listed twice (a Needs= recipe named again), or run again since. */
		if (db_job_get(d, b->ids[i], &row) < 0 ||
		    row.state != JOB_STATE_INSTALLING) {
			db_job_done(&row);
			continue;
		}
		t.id = row.id;
		t.name = row.recipe;
		t.state = row.state;
		snprintf(t.id_text, sizeof(t.id_text), "%" PRIi64, row.id);
		(void) job_set_state(&t, r < 0 ? JOB_STATE_FAILED : JOB_STATE_INSTALLED,
				     JOB_STATE_INSTALLING, r < 0 ? strna(why) : NULL,
				     NULL);
		db_job_done(&row);
	}
	job_batch_done(b);
	return r;
}
