/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>

#include "core/build-user.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

#define UID_LOCK_DIR DM2_LOCK_DIR "/build-uid"

/* Does NSS know this uid or gid? Then it belongs to someone: not ours to hand out. */
static bool id_in_use(uint32_t id)
{
	struct passwd pw, *pw_res = NULL;
	struct group gr, *gr_res = NULL;
	char buf[4096];

	if (getpwuid_r((uid_t) id, &pw, buf, sizeof(buf), &pw_res) == 0 && pw_res)
		return true;
	if (getgrgid_r((gid_t) id, &gr, buf, sizeof(buf), &gr_res) == 0 && gr_res)
		return true;
	return false;
}

static int try_lock(int dir_fd, uint32_t id, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	char name[16];

	snprintf(name, sizeof(name), "%" PRIu32, id);
	fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int build_uid_acquire(struct dm2_context *ctx, struct build_uid *ret)
{
	const struct dm2_config *c = ctx->config;
	uint32_t lo = c && c->build_uid_min ? c->build_uid_min : 60928;
	uint32_t hi = c && c->build_uid_min ? c->build_uid_max : 61183;
	_cleanup_close_ int dir_fd = -EBADF;
	int r;

	r = mkdir_p_at(ctx->root_fd, UID_LOCK_DIR, 0700);
	if (r < 0)
		return log_debug_errno(r, "Cannot create '%s': %m", UID_LOCK_DIR);
	dir_fd = openat(ctx->root_fd, UID_LOCK_DIR,
			O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dir_fd < 0)
		return log_debug_errno(errno, "Cannot open '%s': %m", UID_LOCK_DIR);
	for (uint64_t id = lo; id <= hi; id++) {
		int fd = -EBADF;

		if (id_in_use((uint32_t) id))
			continue;
		r = try_lock(dir_fd, (uint32_t) id, &fd);
		if (r == -EBUSY)
			continue;
		if (r < 0)
			return log_debug_errno(r, "Cannot lock build uid %" PRIu64 ": %m", id);
		log_debug("Build uid %" PRIu64 " acquired.", id);
		*ret = (struct build_uid){.uid = (uid_t) id, .gid = (gid_t) id, .lock_fd = fd};
		return 0;
	}
	log_debug("Every build uid of %" PRIu32 "-%" PRIu32 " is in use.", lo, hi);
	return -EBUSY;
}

void build_uid_release(struct build_uid *u)
{
	u->lock_fd = safe_close(u->lock_fd);
	u->uid = (uid_t) -1;
	u->gid = (gid_t) -1;
}
