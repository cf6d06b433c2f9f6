/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static char tree[PATH_MAX], release[256];

static bool tree_usable(const char *dir)
{
	char p[PATH_MAX + 64];

	if (snprintf(p, sizeof(p), "%s/.config", dir) >= (int) sizeof(p) || access(p, R_OK) < 0)
		return false;
	if (snprintf(p, sizeof(p), "%s/include/generated/utsrelease.h", dir) >= (int) sizeof(p))
		return false;
	return access(p, R_OK) >= 0;
}

static bool read_release(const char *dir)
{
	_cleanup_free_ char *text = NULL;
	char p[PATH_MAX + 64], *q, *e;

	if (snprintf(p, sizeof(p), "%s/include/generated/utsrelease.h", dir) >= (int) sizeof(p))
		return false;
	if (read_full_file_at(AT_FDCWD, p, 0, &text, NULL) < 0)
		return false;
	q = strchr(text, '"');
	if (!q)
		return false;
	e = strchr(++q, '"');
	if (!e)
		return false;
	*e = '\0';
	snprintf(release, sizeof(release), "%s", q);
	return true;
}

static void find_tree(void)
{
	DIR *d;
	struct dirent *de;

	if (tree[0])
		return;
	if (getenv("DM2_TEST_NO_KERNEL")) {
		fprintf(stderr, "FATAL: this test asked for the real kernel build tree, but ctest "
				"runs it with DM2_TEST_NO_KERNEL=1: its source must say "
				"test_root_new(.kernel = true) (or call test_kernel_tree()) so "
				"that CMake labels it 'kernel'.\n");
		abort();
	}
	const char *env = getenv("DM2_TEST_KERNEL_TREE");
	if (env && tree_usable(env) && realpath(env, tree) && read_release(tree))
		return;

	d = opendir("/lib/modules");
	while (d && (de = readdir(d))) {
		char p[PATH_MAX + 64];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/lib/modules/%s/build", de->d_name);
		if (tree_usable(p) && realpath(p, tree) && read_release(tree))
			break;
		tree[0] = '\0';
	}
	if (d)
		closedir(d);
	if (tree[0])
		return;

	d = opendir("/usr/src");
	while (d && (de = readdir(d))) {
		char p[PATH_MAX + 64];

		if (!startswith(de->d_name, "linux-headers-"))
			continue;
		snprintf(p, sizeof(p), "/usr/src/%s", de->d_name);
		if (tree_usable(p) && realpath(p, tree) && read_release(tree))
			break;
		tree[0] = '\0';
	}
	if (d)
		closedir(d);
	if (tree[0])
		return;

	fprintf(stderr, "FATAL: no kernel build tree found under /lib/modules/*/build or "
			"/usr/src/linux-headers-*. Install one (apt-get install linux-headers-amd64); "
			"these tests build real modules and must not be skipped.\n");
	abort();
}

const char *test_kernel_tree(void)
{
	find_tree();
	return tree;
}

const char *test_kernel_release(void)
{
	find_tree();
	return release;
}

struct test_root *test_root_new_opts(const struct test_root_options *o)
{
	struct test_root *t = calloc(1, sizeof(*t));
	const char *tmp = getenv("TMPDIR") ?: "/tmp";
	char p[PATH_MAX + 64];

	assert_non_null(t);
	if (o->kernel) {
		find_tree();
		t->kver = release;
		t->tree = tree;
	} else
		t->kver = TEST_FAKE_KVER;
	snprintf(p, sizeof(p), "%s/dm2-test-XXXXXX", tmp);
	assert_non_null(mkdtemp(p));
	t->path = strdup(p);
	t->fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t->fd >= 0);

	snprintf(p, sizeof(p), "lib/modules/%s", t->kver);
	assert_int_equal(mkdir_p_at(t->fd, p, 0755), 0);
	if (t->tree) {
		snprintf(p, sizeof(p), "lib/modules/%s/build", t->kver);
		assert_int_equal(symlinkat(t->tree, t->fd, p), 0);
	}
	return t;
}

void test_root_free(struct test_root *t)
{
	if (!t)
		return;
	if (!getenv("DM2_TEST_KEEP"))
		(void) rm_rf_at(AT_FDCWD, t->path);
	else
		fprintf(stderr, "keeping test root %s\n", t->path);
	safe_close(t->fd);
	free(t->path);
	free(t);
}

const char *test_acpi_call_dir(void)
{
	static char dir[256];
	glob_t g = {};

	if (dir[0])
		return dir;
	if (glob("/usr/src/acpi-call-*/dkms.conf", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
		snprintf(dir, sizeof(dir), "%s", g.gl_pathv[0]);
		*strrchr(dir, '/') = '\0';
	}
	globfree(&g);
	return dir[0] ? dir : NULL;
}

char *test_source_path(const char *rel)
{
	return path_join(getenv("DM2_SOURCE_DIR") ?: DM2_CMAKE_SOURCE_DIR, rel);
}

char *test_build_path(const char *rel)
{
	return path_join(getenv("DM2_BUILD_DIR") ?: DM2_CMAKE_BUILD_DIR, rel);
}

void test_write_file(int dir_fd, const char *path, const char *content)
{
	const char *slash = strrchr(path, '/');

	if (slash) {
		_cleanup_free_ char *d = strndup(path, (size_t) (slash - path));
		assert_int_equal(mkdir_p_at(dir_fd, d, 0755), 0);
	}
	assert_int_equal(write_file_atomic_at(dir_fd, path, content, strlen(content), 0644), 0);
}

int test_system(const char *format, ...)
{
	_cleanup_free_ char *cmd = NULL;
	va_list ap;
	int r;

	va_start(ap, format);
	r = vasprintf(&cmd, format, ap);
	va_end(ap);
	if (r < 0)
		return -1;
	r = system(cmd);
	if (r < 0 || !WIFEXITED(r))
		return -1;
	return WEXITSTATUS(r);
}
