/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>

#include "core/lock.h"
#include "shared/fs-util.h"
#include "shared/util.h"

uint64_t lock_timeout_usec(uint64_t def)
{
	const char *e = getenv("DM2_LOCK_TIMEOUT_SEC");
	uint64_t v;

	if (e && safe_atou64(e, &v) >= 0 && v < UINT64_MAX / 1000000ULL)
		return v * 1000000ULL;
	return def;
}

int lock_acquire(struct dm2_context *ctx, const char *name, uint64_t timeout_usec,
		 int *ret_fd)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint64_t deadline;
	int r;

	if (!path_is_safe_relative(name) || strchr(name, '/'))
		return -EINVAL;
	r = mkdir_p_at(ctx->root_fd, DM2_LOCK_DIR, 0755);
	if (r < 0)
		return r;
	path = strjoin(DM2_LOCK_DIR "/", name);
	if (!path)
		return -ENOMEM;
	fd = openat(ctx->root_fd, path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;

	/* Poll rather than block in flock(): a bounded wait without signals or threads.
	 */
	deadline = now_mono_usec() + timeout_usec;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return -errno;
		if (now_mono_usec() >= deadline)
			return -EBUSY;
		(void) nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int lock_kernel(struct dm2_context *ctx, const char *kver, uint64_t timeout_usec,
		int *ret_fd)
{
	_cleanup_free_ char *name = strjoin(kver, ".lock");

	if (!name)
		return -ENOMEM;
	return lock_acquire(ctx, name, timeout_usec, ret_fd);
}

int lock_job(struct dm2_context *ctx, const char *recipe, const char *kver,
	     uint64_t timeout_usec, int *ret_fd)
{
	_cleanup_free_ char *name = strjoin(kver, "@", recipe, ".lock");

	if (!name)
		return -ENOMEM;
	return lock_acquire(ctx, name, timeout_usec, ret_fd);
}
