/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "core/context.h"

/*
 * Advisory locks under ROOT/var/lib/dm2/locks/, held with flock() for as long as the
 * returned fd stays open, and released by the kernel when the process dies (no stale
 * locks).
 *
 *   lock_kernel():  "KVER.lock" - held while files are installed into lib/modules/KVER
 * and while depmod runs for it, so two dm2 processes (the CLI, the daemon's children)
 * never write one kernel's module directory at once and depmod never runs twice
 * concurrently for a kernel (depmod takes no lock itself). lock_job(): "KVER@NAME.lock" -
 * held for a whole recipe x kernel job, so two `dm2 install NAME -k KVER` run one after
 * the other rather than both building into the same job; different recipes still build in
 * parallel.
 *
 * Both wait up to timeout_usec (0: do not wait) and fail with -EBUSY after it.
 */
#define LOCK_KERNEL_TIMEOUT_USEC (300ULL * 1000000ULL)

int lock_kernel(struct dm2_context *ctx, const char *kver, uint64_t timeout_usec,
		int *ret_fd);
int lock_job(struct dm2_context *ctx, const char *recipe, const char *kver,
	     uint64_t timeout_usec, int *ret_fd);
/* Lock file name (relative to the lock directory) for an arbitrary key, for tools/tests.
 */
int lock_acquire(struct dm2_context *ctx, const char *name, uint64_t timeout_usec,
		 int *ret_fd);
/* The timeout to use: $DM2_LOCK_TIMEOUT_SEC when set (tests), else def. */
uint64_t lock_timeout_usec(uint64_t def);
