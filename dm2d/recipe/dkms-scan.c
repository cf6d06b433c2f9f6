/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Finding dkms.conf packages. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "core/context.h"
#include "recipe/dkms.h"
#include "shared/fs-util.h"
#include "shared/util.h"

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
