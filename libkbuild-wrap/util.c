/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "kbw-internal.h"

int kbw_read_file(const char *path, size_t max, char **ret, size_t *ret_size)
{
	_kbw_cleanup_close_ int fd = -EBADF;
	_kbw_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 0;
	struct stat st;

	if (max == 0)
		max = 64u << 20;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EBADF;
	if ((uint64_t) st.st_size > max)
		return -EFBIG;
	for (;;) {
		ssize_t k;

		if (cap - n < 4096) {
			char *p;

			cap = cap ? cap * 2 : (size_t) st.st_size + 4097;
			p = realloc(buf, cap);
			if (!p)
				return -ENOMEM;
			buf = p;
		}
		k = read(fd, buf + n, cap - n - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		n += (size_t) k;
		if (n > max)
			return -EFBIG;
	}
	buf[n] = '\0';
	if (ret_size)
		*ret_size = n;
	*ret = KBW_TAKE_PTR(buf);
	return 0;
}

char **kbw_strv_free(char **l)
{
	for (char **p = l; p && *p; p++)
		free(*p);
	free(l);
	return NULL;
}

size_t kbw_strv_length(char *const *l)
{
	size_t n = 0;

	while (l && l[n])
		n++;
	return n;
}

int kbw_strv_consume(char ***l, char *v)
{
	size_t n = kbw_strv_length(*l);
	char **p;

	if (!v)
		return -ENOMEM;
	p = realloc(*l, (n + 2) * sizeof(char *));
	if (!p) {
		free(v);
		return -ENOMEM;
	}
	p[n] = v;
	p[n + 1] = NULL;
	*l = p;
	return 0;
}

char *kbw_asprintf(const char *format, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, format);
	r = vasprintf(&s, format, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

static int copy_file_contents(int in, int out)
{
	char buf[65536];

	for (;;) {
		ssize_t k = read(in, buf, sizeof(buf));

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return 0;
		for (ssize_t off = 0; off < k;) {
			ssize_t w = write(out, buf + off, (size_t) (k - off));

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			off += w;
		}
	}
}

static int copy_at(int sfd, const char *name, int dfd, uid_t uid, gid_t gid,
		   unsigned depth)
{
	struct stat st;

	if (depth > 64)
		return -ELOOP;
	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;

	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(sfd, name, target, sizeof(target) - 1);

		if (n < 0)
			return -errno;
		target[n] = '\0';
		if (symlinkat(target, dfd, name) < 0)
			return -errno;
		if (fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		_kbw_cleanup_close_ int in = -EBADF, out = -EBADF;
		int r;

		in = openat(sfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (in < 0)
			return -errno;
		out = openat(dfd, name,
			     O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			     st.st_mode & 0777);
		if (out < 0)
			return -errno;
		r = copy_file_contents(in, out);
		if (r < 0)
			return r;
		if (fchown(out, uid, gid) < 0 || fchmod(out, st.st_mode & 0777) < 0)
			return -errno;
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		_kbw_cleanup_close_ int sub_s = -EBADF, sub_d = -EBADF;
		DIR *d;
		struct dirent *de;
		int r = 0;

		if (mkdirat(dfd, name, 0700) < 0)
			return -errno;
		sub_d = openat(dfd, name,
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (sub_d < 0)
			return -errno;
		sub_s = openat(sfd, name,
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (sub_s < 0)
			return -errno;
		d = fdopendir(sub_s);
		if (!d)
			return -errno;
		sub_s = -EBADF; /* owned by d now */
		while ((de = readdir(d))) {
			if (kbw_streq(de->d_name, ".") || kbw_streq(de->d_name, ".."))
				continue;
			r = copy_at(dirfd(d), de->d_name, sub_d, uid, gid, depth + 1);
			if (r < 0)
				break;
		}
		closedir(d);
		if (r < 0)
			return r;
		if (fchown(sub_d, uid, gid) < 0 || fchmod(sub_d, st.st_mode & 0777) < 0)
			return -errno;
		return 0;
	}
	return -EBADMSG;
}

int kbw_copy_tree(const char *src, const char *dst, uid_t uid, gid_t gid)
{
	_kbw_cleanup_free_ char *s = strdup(src), *d = strdup(dst);
	_kbw_cleanup_close_ int sfd = -EBADF, dfd = -EBADF;
	struct stat st;
	char *sl, *dl;

	if (!s || !d)
		return -ENOMEM;
	/* The top directory may be a symlink (a /usr/src/NAME-VER link); follow that one.
	 */
	if (stat(src, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	dl = strrchr(d, '/');
	if (!dl || !dl[1])
		return -EINVAL;
	*dl = '\0';
	dfd = open(d[0] ? d : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	sfd = open(s, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	sl = dl + 1;
	/* Copy the contents of src into a new directory named like dst. */
	if (mkdirat(dfd, sl, 0700) < 0)
		return -errno;
	{
		_kbw_cleanup_close_ int out =
			openat(dfd, sl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *dir;
		struct dirent *de;
		int r = 0;

		if (out < 0)
			return -errno;
		dir = fdopendir(sfd);
		if (!dir)
			return -errno;
		sfd = -EBADF;
		while ((de = readdir(dir))) {
			if (kbw_streq(de->d_name, ".") || kbw_streq(de->d_name, ".."))
				continue;
			r = copy_at(dirfd(dir), de->d_name, out, uid, gid, 1);
			if (r < 0)
				break;
		}
		closedir(dir);
		if (r < 0)
			return r;
		if (fchown(out, uid, gid) < 0 || fchmod(out, 0755) < 0)
			return -errno;
	}
	return 0;
}

bool kbw_find_program(const char *prog)
{
	const char *p = KBW_DEFAULT_PATH;

	if (!prog || !prog[0])
		return false;
	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0;
	while (*p) {
		size_t n = strcspn(p, ":");
		_kbw_cleanup_free_ char *f = kbw_asprintf("%.*s/%s", (int) n, p, prog);

		if (f && access(f, X_OK) == 0)
			return true;
		p += n;
		if (*p == ':')
			p++;
	}
	return false;
}
