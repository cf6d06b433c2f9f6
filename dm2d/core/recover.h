/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "core/context.h"
#include "core/db.h"

/*
 * After kill -9 or a crash: job rows left in a running state by a process that is gone, and
 * its work directory under ROOT/var/lib/dm2/work. A job's process holds its job lock
 * (lock_job()) for the whole job, so a row whose lock is free has no process.
 */

/* Every unfinished job row whose job lock is free is put back to queued (it was
 * interrupted, it did not fail); those rows, now queued, go to *ret (oldest first). Rows
 * whose lock is held belong to a running dm2 and are left alone. */
int recover_stale_jobs(struct dm2_context *ctx, struct db *d, struct db_job **ret,
		       size_t *ret_n);

/* Remove the work directories no job can own: only when no dm2 holds any lock under
 * ROOT/var/lib/dm2/locks (so no job runs), and only directories last changed before that
 * check began. Not with $DM2_KEEP_WORK set (kept for debugging). *ret_n: how many. */
int recover_work_dirs(struct dm2_context *ctx, unsigned *ret_n);
