/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Finding dkms.conf packages and what their sources declare. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "core/context.h"
#include "recipe/dkms.h"
#include "shared/fs-util.h"
#include "shared/util.h"

static int license_from_file(int dir_fd, const char *name, char **ret)
{
	_cleanup_free_ char *text = NULL;
	const char *p, *e;
	size_t size;

	if (read_full_file_at(dir_fd, name, 4 << 20, &text, &size) < 0)
		return 0;
	for (p = text; (p = strstr(p, "MODULE_LICENSE")); p += 14) {
		p += 14;
		while (*p == ' ' || *p == '\t' || *p == '(')
			p++;
		if (*p != '"')
			continue;
		e = strchr(p + 1, '"');
		if (!e)
			break;
		*ret = strndup(p + 1, e - p - 1);
		return *ret ? 1 : -ENOMEM;
	}
	return 0;
}

static int find_license(int dir_fd, unsigned depth, unsigned *budget, char **license)
{
	_cleanup_free_ struct dirent **ents = NULL;
	DIR *d;
	int fd, r = 0;

	fd = dup(dir_fd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		safe_close(fd);
		return -errno;
	}
	for (struct dirent *de; r >= 0 && (de = readdir(d)) && *budget > 0;) {
		_cleanup_free_ char *found = NULL;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		(*budget)--;
		if (S_ISDIR(st.st_mode) && depth < 6) {
			_cleanup_close_ int sub = openat(
				dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub >= 0)
				r = find_license(sub, depth + 1, budget, license);
			continue;
		}
		if (!S_ISREG(st.st_mode) || !endswith(de->d_name, ".c"))
			continue;
		r = license_from_file(dirfd(d), de->d_name, &found);
		if (r <= 0)
			continue;
		/* A package mixing licenses is judged by its non-GPL part. */
		if (!*license || (license_is_gpl_compatible(*license) &&
				  !license_is_gpl_compatible(found))) {
			free(*license);
			*license = TAKE_PTR(found);
		}
	}
	closedir(d);
	return r < 0 ? r : 0;
}

int dkms_find_license(const char *dir, char **ret)
{
	_cleanup_free_ char *license = NULL;
	_cleanup_close_ int fd = -EBADF;
	unsigned budget = 5000;
	int r;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = find_license(fd, 0, &budget, &license);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(license);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

int dkms_scan(int root_fd, const char *root, char ***ret_dirs)
{
	_cleanup_strv_free_ char **l = NULL;
	_cleanup_free_ char *base = NULL;
	DIR *d;
	int fd, r = 0;

	fd = openat(root_fd, DM2_USR_SRC_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		*ret_dirs = NULL;
		return 0;
	}
	d = fdopendir(fd);
	if (!d) {
		safe_close(fd);
		return -errno;
	}
	base = path_join(root, DM2_USR_SRC_DIR);
	if (!base) {
		closedir(d);
		return -ENOMEM;
	}
	for (struct dirent *de; (de = readdir(d));) {
		_cleanup_free_ char *conf = NULL;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		conf = strjoin(de->d_name, "/dkms.conf");
		if (!conf) {
			r = -ENOMEM;
			break;
		}
		if (fstatat(dirfd(d), conf, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = strv_consume(&l, path_join(base, de->d_name));
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0)
		return r;
	if (l)
		qsort(l, strv_length(l), sizeof(char *), cmp_str);
	*ret_dirs = TAKE_PTR(l);
	return 0;
}
