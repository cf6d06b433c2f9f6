/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stale job rows and leaked work directories; see recover.h. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "core/lock.h"
#include "core/recover.h"
#include "shared/fs-util.h"
#include "shared/util.h"

/* 1 when recipe x kver's job lock is free (nobody runs it), 0 when held. */
static int job_lock_free(struct dm2_context *ctx, const char *recipe, const char *kver)
{
	_cleanup_close_ int fd = -EBADF;
	int r = lock_job(ctx, recipe, kver, 0, &fd);

	if (r == -EBUSY)
		return 0;
	return r < 0 ? r : 1;
}

int recover_stale_jobs(struct dm2_context *ctx, struct db *d, struct db_job **ret,
		       size_t *ret_n)
{
	struct db_job *jobs = NULL;
	size_t n = 0, k = 0;
	int r;

	r = db_jobs_unfinished(d, &jobs, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		r = job_lock_free(ctx, jobs[i].recipe, jobs[i].kernel);
		if (r == 0) { /* held: it runs */
			db_job_done(&jobs[i]);
			continue;
		}
		if (r > 0 && jobs[i].state != JOB_STATE_QUEUED)
			r = db_job_set_state(d, jobs[i].id, JOB_STATE_QUEUED, NULL, NULL, NULL);
		if (r < 0) {
			for (size_t x = i; x < n; x++)
				db_job_done(&jobs[x]);
			db_jobs_free(jobs, k);
			return r;
		}
		jobs[k++] = jobs[i];
	}
	*ret = jobs;
	*ret_n = k;
	return 0;
}

/* Whether any lock under the lock directory is held (1), none (0). */
static int any_lock_held(struct dm2_context *ctx)
{
	_cleanup_close_ int fd = -EBADF;
	struct dirent *de;
	DIR *dir;
	int r = 0;

	fd = openat(ctx->root_fd, DM2_LOCK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	dir = fdopendir(fd);
	if (!dir)
		return -errno;
	TAKE_FD(fd);
	while (r == 0 && (de = readdir(dir))) {
		_cleanup_close_ int lock = -EBADF;

		if (!endswith(de->d_name, ".lock"))
			continue;
		r = lock_acquire(ctx, de->d_name, 0, &lock);
		r = r == -EBUSY ? 1 : r == -EINVAL ? 0 : MIN(r, 0);
	}
	closedir(dir);
	return r;
}

static uint64_t mtime_usec(const struct stat *st)
{
	return (uint64_t) st->st_mtim.tv_sec * 1000000ULL + st->st_mtim.tv_nsec / 1000;
}

int recover_work_dirs(struct dm2_context *ctx, unsigned *ret_n)
{
	/* Filesystem timestamps are coarser than the clock: keep anything of the last second. */
	uint64_t before = now_usec() - 1000000ULL;
	_cleanup_close_ int fd = -EBADF;
	struct dirent *de;
	unsigned n = 0;
	DIR *dir;
	int r;

	*ret_n = 0;
	if (getenv("DM2_KEEP_WORK"))
		return 0;
	r = any_lock_held(ctx);
	if (r != 0)
		return MIN(r, 0);
	fd = openat(ctx->root_fd, DM2_WORK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	dir = fdopendir(fd);
	if (!dir)
		return -errno;
	TAKE_FD(fd);
	while ((de = readdir(dir))) {
		_cleanup_free_ char *rel = NULL;
		struct stat st;

		if (!startswith(de->d_name, "job-"))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) || mtime_usec(&st) >= before)
			continue;
		rel = strjoin(DM2_WORK_DIR "/", de->d_name);
		if (!rel) {
			closedir(dir);
			return -ENOMEM;
		}
		if (rm_rf_at(ctx->root_fd, rel) >= 0)
			n++;
	}
	closedir(dir);
	*ret_n = n;
	return 0;
}
