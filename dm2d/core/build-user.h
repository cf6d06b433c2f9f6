/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "core/context.h"

/*
 * Each build runs as a uid of its own, like systemd's DynamicUser=: one taken from
 * dm2d.conf [Build] UidRange= (default 60928-61183, in the range systemd documents as
 * unused), with the gid of the same number. A uid is held through an exclusive flock()
 * on ROOT/var/lib/dm2/locks/build-uid/UID, so concurrent builds (threads, dm2d's children,
 * a dm2 CLI next to the daemon) never share one, and a crashed holder frees its uid with
 * its lock. Uids and gids that name a user or group of this machine (NSS) are skipped.
 * Nothing owned by a build uid outlives the build (its work dir is a private tmpfs), so a
 * uid is free again as soon as its lock is released.
 */
struct build_uid {
	uid_t uid;
	gid_t gid;
	int lock_fd;
};
#define BUILD_UID_NULL ((struct build_uid){.uid = (uid_t) -1, .gid = (gid_t) -1, .lock_fd = -EBADF})

/* -EBUSY when every uid of the range is held. */
int build_uid_acquire(struct dm2_context *ctx, struct build_uid *ret);
void build_uid_release(struct build_uid *u);
