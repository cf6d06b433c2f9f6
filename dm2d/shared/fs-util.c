/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/fsuid.h>
#include <sys/random.h>

#include "shared/fs-util.h"
#include "shared/util.h"

int read_full_file_at(int dir_fd, const char *path, size_t max_size, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, alloc = 0;
	struct stat st;

	if (max_size == 0)
		max_size = 64 * 1024 * 1024;

	fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > max_size)
		return -EFBIG;

	for (;;) {
		ssize_t k;

		if (n + 1 >= alloc) {
			size_t na = alloc ? alloc * 2 : (S_ISREG(st.st_mode) ? (size_t) st.st_size + 2 : 4096);
			char *b;

			if (na < n + 4096)
				na = n + 4096;
			b = realloc(buf, na);
			if (!b)
				return -ENOMEM;
			buf = b;
			alloc = na;
		}
		k = read(fd, buf + n, alloc - n - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		n += (size_t) k;
		if (n > max_size)
			return -EFBIG;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return -ENOMEM;
	}
	buf[n] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_size)
		*ret_size = n;
	return 0;
}

static int split_dir(int dir_fd, const char *path, int *ret_dir_fd, const char **ret_base)
{
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *d = NULL;
	int fd;

	if (!slash) {
		*ret_dir_fd = -EBADF;
		*ret_base = path;
		return 0;
	}
	d = strndup(path, slash == path ? 1 : (size_t) (slash - path));
	if (!d)
		return -ENOMEM;
	fd = openat(dir_fd, d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_dir_fd = fd;
	*ret_base = slash + 1;
	return 0;
}

static int tmpfile_for(int dir_fd, const char *base, mode_t mode, char **ret_name, int *ret_fd)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		uint64_t rnd;
		char *name;
		int fd;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = now_mono_usec() ^ (uint64_t) getpid();
		if (asprintf(&name, ".#%s.%016llx.dm2-tmp", base, (unsigned long long) rnd) < 0)
			return -ENOMEM;
		fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd >= 0) {
			if (fchmod(fd, mode) < 0) {
				int r = -errno;
				(void) unlinkat(dir_fd, name, 0);
				free(name);
				close(fd);
				return r;
			}
			*ret_name = name;
			*ret_fd = fd;
			return 0;
		}
		free(name);
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int loop_write(int fd, const void *data, size_t size)
{
	const uint8_t *p = data;

	while (size > 0) {
		ssize_t k = write(fd, p, size);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		size -= (size_t) k;
	}
	return 0;
}

static int finish_atomic(int fd, int dfd, const char *tmp, const char *base)
{
	if (fsync(fd) < 0)
		return -errno;
	if (renameat(dfd, tmp, dfd, base) < 0)
		return -errno;
	(void) fsync(dfd);
	return 0;
}

int write_file_atomic_at(int dir_fd, const char *path, const void *data, size_t size, mode_t mode)
{
	_cleanup_free_ char *tmp = NULL;
	int r;

	r = stage_file_at(dir_fd, path, data, size, mode, &tmp);
	if (r < 0)
		return r;
	r = commit_staged_at(dir_fd, tmp, path);
	if (r < 0)
		(void) unlinkat(dir_fd, tmp, 0);
	return r;
}

int stage_file_at(int dir_fd, const char *path, const void *data, size_t size, mode_t mode,
		  char **ret_tmp)
{
	_cleanup_close_ int sub_fd = -EBADF, fd = -EBADF;
	_cleanup_free_ char *tmp = NULL;
	const char *base = NULL; /* set by split_dir() on success; gcc -O3 cannot tell */
	char *rel;
	int dfd, r;

	r = split_dir(dir_fd, path, &sub_fd, &base);
	if (r < 0)
		return r;
	dfd = sub_fd >= 0 ? sub_fd : dir_fd;

	r = tmpfile_for(dfd, base, mode, &tmp, &fd);
	if (r < 0)
		return r;
	r = loop_write(fd, data, size);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r >= 0) {
		/* The temporary's path relative to dir_fd: path's directory and its name. */
		if (asprintf(&rel, "%.*s%s", (int) (base - path), path, tmp) < 0)
			r = -ENOMEM;
	}
	if (r < 0) {
		(void) unlinkat(dfd, tmp, 0);
		return r;
	}
	*ret_tmp = rel;
	return 0;
}

int commit_staged_at(int dir_fd, const char *tmp, const char *path)
{
	_cleanup_close_ int sub_fd = -EBADF;
	const char *base = NULL;
	int r;

	if (renameat(dir_fd, tmp, dir_fd, path) < 0)
		return -errno;
	r = split_dir(dir_fd, path, &sub_fd, &base);
	if (r >= 0)
		(void) fsync(sub_fd >= 0 ? sub_fd : dir_fd);
	return 0;
}

int copy_file_atomic_at(int src_fd, int dir_fd, const char *path, mode_t mode)
{
	_cleanup_close_ int sub_fd = -EBADF, fd = -EBADF;
	_cleanup_free_ char *tmp = NULL;
	const char *base = NULL; /* set by split_dir() on success; gcc -O3 cannot tell */
	int dfd, r;

	r = split_dir(dir_fd, path, &sub_fd, &base);
	if (r < 0)
		return r;
	dfd = sub_fd >= 0 ? sub_fd : dir_fd;

	r = tmpfile_for(dfd, base, mode, &tmp, &fd);
	if (r < 0)
		return r;
	if (lseek(src_fd, 0, SEEK_SET) < 0)
		r = -errno;
	if (r >= 0)
		r = copy_bytes(src_fd, fd);
	if (r >= 0)
		r = finish_atomic(fd, dfd, tmp, base);
	if (r < 0)
		(void) unlinkat(dfd, tmp, 0);
	return r;
}

int mkdir_p_at(int dir_fd, const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);
	char *s;

	if (!p)
		return -ENOMEM;
	for (s = p + (p[0] == '/'); ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (p[0] && mkdirat(dir_fd, p, mode) < 0 && errno != EEXIST)
				return -errno;
			*s = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

static int rm_rf_children(int fd)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) >= 0)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			r = -errno;
			continue;
		}
		int cfd = openat(dirfd(d), de->d_name,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			r = -errno;
			continue;
		}
		int k = rm_rf_children(cfd);
		if (k < 0)
			r = k;
		if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0)
			r = -errno;
	}
	closedir(d);
	return r;
}

int rm_rf_at(int dir_fd, const char *path)
{
	int fd, r;

	if (unlinkat(dir_fd, path, 0) >= 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	fd = openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = rm_rf_children(fd);
	if (unlinkat(dir_fd, path, AT_REMOVEDIR) < 0 && errno != ENOENT && r >= 0)
		r = -errno;
	return r;
}

/* Deeper than this is a loop or an attack, not a source tree. */
#define COPY_TREE_MAX_DEPTH 64

struct copy_owner {
	uid_t uid; /* (uid_t) -1: keep ours */
	gid_t gid;
};

int fs_ids_set(uid_t uid, gid_t gid)
{
	if (gid != (gid_t) -1) {
		(void) setfsgid(gid);
		/* An invalid id changes nothing and returns the current one. */
		if ((gid_t) setfsgid((gid_t) -1) != gid)
			goto refused;
	}
	if (uid != (uid_t) -1) {
		(void) setfsuid(uid);
		if ((uid_t) setfsuid((uid_t) -1) != uid)
			goto refused;
	}
	return 0;
refused:
	fs_ids_restore();
	return -EPERM;
}

void fs_ids_restore(void)
{
	(void) setfsuid(geteuid());
	(void) setfsgid(getegid());
}

int openat_as(int dir_fd, const char *name, int flags, mode_t mode, uid_t uid, gid_t gid)
{
	int fd, r = fs_ids_set(uid, gid);

	if (r < 0)
		return r;
	fd = openat(dir_fd, name, flags, mode);
	r = fd < 0 ? -errno : fd;
	fs_ids_restore();
	return r;
}

int mkdirat_open_as(int dir_fd, const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	int fd, r = fs_ids_set(uid, gid);

	if (r < 0)
		return r;
	if (mkdirat(dir_fd, name, mode) < 0)
		r = -errno;
	else if ((fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = -errno;
	else
		r = fd;
	fs_ids_restore();
	return r;
}

/* What a copy creates, it creates as the owner (see fs_ids_set()); it reads as itself. */
static int as_owner(const struct copy_owner *o)
{
	if (o->uid == (uid_t) -1 && o->gid == (gid_t) -1)
		return 0;
	return fs_ids_set(o->uid, o->gid);
}

static void as_self(const struct copy_owner *o)
{
	if (o->uid != (uid_t) -1 || o->gid != (gid_t) -1)
		fs_ids_restore();
}

int copy_bytes(int in, int out)
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
		int r = loop_write(out, buf, (size_t) k);
		if (r < 0)
			return r;
	}
}

static int copy_regular(int sfd, const char *name, int dfd, const struct stat *st,
			const struct copy_owner *o)
{
	_cleanup_close_ int in = -EBADF, out = -EBADF;
	int r;

	in = openat(sfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return -errno;
	r = as_owner(o);
	if (r < 0)
		return r;
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	r = out < 0 ? -errno : copy_bytes(in, out);
	/* The mode last, not subject to the umask; created by the owner, so fchmod() needs
	 * no CAP_FOWNER. */
	if (r >= 0 && fchmod(out, st->st_mode & 0777) < 0)
		r = -errno;
	as_self(o);
	return r;
}

static int copy_symlink(int sfd, const char *name, int dfd, const struct copy_owner *o)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(sfd, name, target, sizeof(target) - 1);
	int r;

	if (n < 0)
		return -errno;
	target[n] = '\0';
	r = as_owner(o);
	if (r < 0)
		return r;
	if (symlinkat(target, dfd, name) < 0)
		r = -errno;
	as_self(o);
	return r;
}

static int copy_entry(int sfd, const char *name, int dfd, const struct copy_owner *o,
		      unsigned depth);

/* Copy what is in directory sfd into directory dfd (which the caller created). */
static int copy_dir_contents(int sfd, int dfd, const struct copy_owner *o, unsigned depth)
{
	struct dirent *de;
	DIR *d;
	int r = 0, fd;

	fd = fcntl(sfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while (r >= 0 && (de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			r = copy_entry(sfd, de->d_name, dfd, o, depth);
	closedir(d);
	return r;
}

/* Directory from (open) becomes name in dfd. It is created private and gets its mode last,
 * so that a read-only source directory can still be filled. */
static int copy_dir(int from, int dfd, const char *name, mode_t mode, const struct copy_owner *o,
		    unsigned depth)
{
	_cleanup_close_ int to = -EBADF;
	int r;

	if (depth > COPY_TREE_MAX_DEPTH)
		return -ELOOP;
	to = mkdirat_open_as(dfd, name, 0700, o->uid, o->gid);
	if (to < 0)
		return to;
	r = copy_dir_contents(from, to, o, depth + 1);
	if (r < 0)
		return r;
	r = as_owner(o);
	if (r < 0)
		return r;
	if (fchmod(to, mode & 0777) < 0)
		r = -errno;
	as_self(o);
	return r;
}

static int copy_entry(int sfd, const char *name, int dfd, const struct copy_owner *o,
		      unsigned depth)
{
	struct stat st;

	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISREG(st.st_mode))
		return copy_regular(sfd, name, dfd, &st, o);
	if (S_ISLNK(st.st_mode))
		return copy_symlink(sfd, name, dfd, o);
	if (S_ISDIR(st.st_mode)) {
		_cleanup_close_ int from = -EBADF;

		from = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (from < 0)
			return -errno;
		return copy_dir(from, dfd, name, st.st_mode, o, depth);
	}
	return -EBADMSG;
}

int copy_tree_owned_at(int src_dir_fd, const char *src, int dst_dir_fd, const char *dst,
		       uid_t uid, gid_t gid)
{
	const struct copy_owner o = {.uid = uid, .gid = gid};
	_cleanup_close_ int sfd = -EBADF, dfd = -EBADF;
	const char *base = NULL; /* set by split_dir() on success; gcc -O3 cannot tell */
	int r;

	if (isempty(dst) || endswith(dst, "/"))
		return -EINVAL;
	/* The top may be a symlink (a /usr/src/NAME-VER link): follow that one only. */
	sfd = openat(src_dir_fd, src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	r = split_dir(dst_dir_fd, dst, &dfd, &base);
	if (r < 0)
		return r;
	/* The top directory itself is always 0755: the caller decides who may enter. */
	return copy_dir(sfd, dfd >= 0 ? dfd : dst_dir_fd, base, 0755, &o, 0);
}

int copy_tree_at(int src_dir_fd, const char *src, int dst_dir_fd, const char *dst)
{
	return copy_tree_owned_at(src_dir_fd, src, dst_dir_fd, dst, (uid_t) -1, (gid_t) -1);
}

int mkdtemp_at(int dir_fd, const char *prefix, char **ret_name)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
		uint8_t rnd[6];
		char suffix[7];
		char *name;

		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			return -errno;
		for (size_t i = 0; i < 6; i++)
			suffix[i] = chars[rnd[i] % (sizeof(chars) - 1)];
		suffix[6] = '\0';
		name = strjoin(prefix, suffix);
		if (!name)
			return -ENOMEM;
		if (mkdirat(dir_fd, name, 0700) >= 0) {
			*ret_name = name;
			return 0;
		}
		free(name);
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a);

	while (n > 1 && a[n - 1] == '/')
		n--;
	while (*b == '/')
		b++;
	if (n == 1 && a[0] == '/')
		return strjoin("/", b);
	char *r = malloc(n + 1 + strlen(b) + 1);
	if (!r)
		return NULL;
	memcpy(r, a, n);
	r[n] = '/';
	memcpy(r + n + 1, b, strlen(b) + 1);
	return r;
}

bool path_is_safe_relative(const char *path)
{
	const char *p = path;

	if (isempty(path) || path[0] == '/')
		return false;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 2 && strneq(p, "..", 2)))
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

static int dir_size_fd(int fd, uint64_t *sum)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;

	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode))
			*sum += (uint64_t) st.st_size;
		else if (S_ISDIR(st.st_mode)) {
			int c = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (c >= 0)
				(void) dir_size_fd(c, sum);
		}
	}
	closedir(d);
	return 0;
}

int dir_size_at(int dir_fd, const char *path, uint64_t *ret)
{
	uint64_t sum = 0;
	int fd, r;

	fd = openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = dir_size_fd(fd, &sum);
	if (r < 0)
		return r;
	*ret = sum;
	return 0;
}
