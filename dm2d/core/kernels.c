/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "core/kernels.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

static bool release_valid(const char *release)
{
	return !isempty(release) && !strchr(release, '/') && !streq(release, ".") &&
	       !streq(release, "..") && strlen(release) < 256;
}

int kernel_find(struct dm2_context *ctx, const char *release, struct kbw_kernel **ret)
{
	_cleanup_free_ char *rel = NULL, *dir = NULL;
	struct kbw_kernel *k;
	int r;

	if (!release_valid(release))
		return -EINVAL;
	rel = strjoin(DM2_MODULES_DIR "/", release);
	if (!rel)
		return -ENOMEM;
	dir = context_path(ctx, rel);
	if (!dir)
		return -ENOMEM;
	r = kbw_kernel_probe(dir, release, &k);
	if (r == -ENOTDIR)
		return -ENOENT;
	if (r < 0)
		return r;
	*ret = k;
	return 0;
}

void kernels_free(struct kbw_kernel **k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kbw_kernel_unref(k[i]);
	free(k);
}

static int compare_newest_first(const void *a, const void *b)
{
	const struct kbw_kernel *x = *(struct kbw_kernel *const *) a;
	const struct kbw_kernel *y = *(struct kbw_kernel *const *) b;

	return version_compare(kbw_kernel_release(y), kbw_kernel_release(x));
}

int kernels_list(struct dm2_context *ctx, struct kbw_kernel ***ret, size_t *ret_n)
{
	struct kbw_kernel **list = NULL;
	size_t n = 0;
	DIR *d;
	struct dirent *de;
	int fd, r = 0;

	fd = openat(ctx->root_fd, DM2_MODULES_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		safe_close(fd);
		return r;
	}
	while ((de = readdir(d))) {
		struct kbw_kernel *k, **l;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
			continue;
		r = kernel_find(ctx, de->d_name, &k);
		if (r == -ENOENT) {
			r = 0;
			continue; /* removed meanwhile */
		}
		if (r < 0)
			break;
		l = realloc(list, (n + 1) * sizeof(*l));
		if (!l) {
			kbw_kernel_unref(k);
			r = -ENOMEM;
			break;
		}
		list = l;
		list[n++] = k;
	}
	closedir(d);
	if (r < 0) {
		kernels_free(list, n);
		return r;
	}
	if (n > 1)
		qsort(list, n, sizeof(*list), compare_newest_first);
	*ret = list;
	*ret_n = n;
	return 0;
}

int kernel_tree_stamp(const struct kbw_kernel *k, char **ret)
{
	static const char *const files[] = {
		".config", "Module.symvers", "include/generated/utsrelease.h",
		"include/generated/autoconf.h",
	};
	const char *dir = kbw_kernel_build_dir(k);
	_cleanup_free_ char *s = NULL;

	if (!dir)
		return -ENOENT;
	s = strjoin("stamp:", kbw_kernel_release(k));
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *p = path_join(dir, files[i]);
		struct stat st;
		char *n;

		if (!p || !s)
			return -ENOMEM;
		if (stat(p, &st) < 0)
			return -errno;
		if (asprintf(&n, "%s:%llx.%llx.%09ld", s, (unsigned long long) st.st_size,
			     (unsigned long long) st.st_mtim.tv_sec, st.st_mtim.tv_nsec) < 0)
			return -ENOMEM;
		free(s);
		s = n;
	}
	*ret = TAKE_PTR(s);
	return 0;
}
