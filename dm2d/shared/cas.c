/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "shared/cas.h"
#include "shared/fs-util.h"
#include "shared/util.h"

int cas_open_at(struct cas *s, int dir_fd, const char *path, bool fanout)
{
	int r, fd;

	r = mkdir_p_at(dir_fd, path, 0755);
	if (r < 0)
		return r;
	fd = openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*s = (struct cas){.dir_fd = fd, .fanout = fanout};
	return 0;
}

void cas_close(struct cas *s)
{
	s->dir_fd = safe_close(s->dir_fd);
}

int cas_object_path(const struct cas *s, const char *sha256, char **ret)
{
	char *p;

	if (!sha256_hex_canonical(sha256))
		return -EINVAL;
	p = s->fanout ? strdup_printf("%.2s/%s", sha256, sha256) : strdup(sha256);
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int cas_verify(const struct cas *s, const char *sha256, uint64_t size)
{
	_cleanup_free_ char *rel = NULL;
	_cleanup_close_ int fd = -EBADF;
	char hex[SHA256_HEX_SIZE];
	uint64_t got;
	int r;

	r = cas_object_path(s, sha256, &rel);
	if (r < 0)
		return r;
	fd = openat(s->dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	r = sha256_fd_hex_full(fd, hex, &got);
	if (r < 0)
		return r;
	if ((size != CAS_SIZE_ANY && got != size) || !streq(hex, sha256))
		return -EBADMSG;
	return 0;
}

int cas_tmp_new(int tmp_dir_fd, int *ret_fd, char **ret_name)
{
	for (unsigned attempt = 0; attempt < 100; attempt++) {
		uint64_t rnd;
		char *name;
		int fd;

		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
			rnd = now_mono_usec() ^ ((uint64_t) getpid() << 32) ^ attempt;
		name = strdup_printf(CAS_TMP_PREFIX "%016llx", (unsigned long long) rnd);
		if (!name)
			return -ENOMEM;
		fd = openat(tmp_dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    0644);
		if (fd >= 0) {
			*ret_fd = fd;
			*ret_name = name;
			return 0;
		}
		free(name);
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int cas_seal(int fd, char ret_sha256[SHA256_HEX_SIZE], uint64_t *ret_size)
{
	/* Hash what is on disk, not what went by: a resumed download was written by several
	 * processes, and a server may have made us start over half-way. */
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	int r = sha256_fd_hex_full(fd, ret_sha256, ret_size);
	if (r < 0)
		return r;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

int cas_tmp_copy(int tmp_dir_fd, int src_fd, char **ret_name, char ret_sha256[SHA256_HEX_SIZE],
		 uint64_t *ret_size)
{
	_cleanup_free_ char *name = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = cas_tmp_new(tmp_dir_fd, &fd, &name);
	if (r < 0)
		return r;
	r = copy_bytes(src_fd, fd);
	if (r >= 0)
		r = cas_seal(fd, ret_sha256, ret_size);
	if (r < 0) {
		(void) unlinkat(tmp_dir_fd, name, 0);
		return r;
	}
	*ret_name = TAKE_PTR(name);
	return 0;
}

/* The directory an object goes to: the store, or its fan-out subdirectory (created). */
static int object_dir(const struct cas *s, const char *sha256, int *ret_fd)
{
	char sub[3];
	int fd;

	if (!s->fanout) {
		fd = fcntl(s->dir_fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return -errno;
		*ret_fd = fd;
		return 0;
	}
	memcpy(sub, sha256, 2);
	sub[2] = '\0';
	if (mkdirat(s->dir_fd, sub, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(s->dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

int cas_commit(const struct cas *s, int tmp_dir_fd, const char *tmp, const char *sha256,
	       uint64_t size)
{
	_cleanup_close_ int dfd = -EBADF;
	int r;

	if (!sha256_hex_canonical(sha256))
		return -EINVAL;
	r = cas_verify(s, sha256, size);
	if (r == 0) {
		/* Already there and intact: keep the one copy. */
		(void) unlinkat(tmp_dir_fd, tmp, 0);
		return 0;
	}
	if (r != -ENOENT && r != -EBADMSG)
		return r;
	r = object_dir(s, sha256, &dfd);
	if (r < 0)
		return r;
	if (renameat(tmp_dir_fd, tmp, dfd, sha256) < 0)
		return -errno;
	/* The new name must survive a crash as surely as the content does. */
	if (fsync(dfd) < 0)
		return -errno;
	return 0;
}
