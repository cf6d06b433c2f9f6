/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* copy_tree_at() and copy_tree_owned_at() (shared/fs-util.c), the one tree copy of dm2:
 * sources into work dirs, and libkbuild-wrap's private copy for the build user. */
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static char dir[PATH_MAX];
static int dir_fd = -EBADF;

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/dm2-copy-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir))
		return -1;
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -1;
	/* src/: a file, a setuid script, a symlink, a read-only subdirectory. */
	test_write_file(dir_fd, "src/a.c", "int a;\n");
	test_write_file(dir_fd, "src/ro/inner.h", "#define X 1\n");
	test_write_file(dir_fd, "src/run.sh", "#!/bin/sh\n");
	if (fchmodat(dir_fd, "src/run.sh", 04755, 0) < 0 || fchmodat(dir_fd, "src/ro", 0555, 0) < 0)
		return -1;
	if (symlinkat("a.c", dir_fd, "src/link") < 0 || symlinkat("src", dir_fd, "srclink") < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void) fchmodat(dir_fd, "src/ro", 0755, 0);
	dir_fd = safe_close(dir_fd);
	return rm_rf_at(AT_FDCWD, dir);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(fstatat(dir_fd, path, &st, AT_SYMLINK_NOFOLLOW), 0);
	return st.st_mode;
}

static void test_copy(void **state)
{
	_cleanup_free_ char *text = NULL;
	char target[64];
	ssize_t n;

	ASSERT_OK(copy_tree_at(dir_fd, "src", dir_fd, "copy"));
	ASSERT_OK(read_full_file_at(dir_fd, "copy/ro/inner.h", 0, &text, NULL));
	assert_string_equal(text, "#define X 1\n");
	n = readlinkat(dir_fd, "copy/link", target, sizeof(target) - 1);
	assert_int_equal(n, 3);
	target[n] = '\0';
	assert_string_equal(target, "a.c");
	/* Modes as they were, but no setuid bit; the read-only directory could be filled. */
	assert_int_equal(mode_of("copy/run.sh") & 07777, 0755);
	assert_int_equal(mode_of("copy/ro") & 07777, 0555);
	assert_int_equal(mode_of("copy") & 07777, 0755);
	/* dst must not exist. */
	ASSERT_ERR(copy_tree_at(dir_fd, "src", dir_fd, "copy"), -EEXIST);
}

/* The effective, permitted and inheritable sets without CAP_CHOWN, CAP_FOWNER and CAP_DAC_*,
 * as dm2d.service's bounding set leaves them. */
static int drop_fs_caps(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	const uint32_t drop = 1U << CAP_CHOWN | 1U << CAP_DAC_OVERRIDE |
			      1U << CAP_DAC_READ_SEARCH | 1U << CAP_FOWNER;

	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	d[0].effective &= ~drop;
	d[0].permitted &= ~drop;
	d[0].inheritable &= ~drop;
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

static void test_owned_and_top_symlink(void **state)
{
	struct stat st;
	int status;
	pid_t pid;

	/* Entries are created as the owner, so the destination's parent must let the owner
	 * in, as the workspace's 1777 root does. */
	assert_int_equal(mkdirat(dir_fd, "pub", 0755), 0);
	assert_int_equal(fchmodat(dir_fd, "pub", 01777, 0), 0);
	/* The top may be a symlink (a /usr/src/NAME-VER link), and absolute paths work. */
	_cleanup_free_ char *src = path_join(dir, "srclink"), *dst = path_join(dir, "pub/owned");
	/* Without CAP_CHOWN, CAP_FOWNER or CAP_DAC_* (dm2d.service has none); after the copy
	 * the file-system ids are ours again. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(drop_fs_caps() < 0 ||
		      copy_tree_owned_at(AT_FDCWD, src, AT_FDCWD, dst, 4242, 4343) < 0 ||
		      setfsuid((uid_t) -1) != (int) geteuid() ||
		      setfsgid((gid_t) -1) != (int) getegid());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	const char *const paths[] = {"pub/owned", "pub/owned/a.c", "pub/owned/ro",
				     "pub/owned/ro/inner.h", "pub/owned/link"};
	for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
		assert_int_equal(fstatat(dir_fd, paths[i], &st, AT_SYMLINK_NOFOLLOW), 0);
		if (st.st_uid != 4242 || st.st_gid != 4343)
			fail_msg("'%s' is owned by %u:%u", paths[i], st.st_uid, st.st_gid);
	}
	assert_true(S_ISLNK(mode_of("pub/owned/link")));
	assert_int_equal(mode_of("pub/owned/ro") & 07777, 0555);
	assert_int_equal(mode_of("pub/owned/run.sh") & 07777, 0755);
	/* A parent the owner may not write to: refused, nothing made. */
	_cleanup_free_ char *dst2 = path_join(dir, "owned");
	ASSERT_ERR(copy_tree_owned_at(AT_FDCWD, src, AT_FDCWD, dst2, 4242, 4343), -EACCES);
	assert_int_equal(faccessat(dir_fd, "owned", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

static void test_refused(void **state)
{
	char deep[PATH_MAX] = "deep";

	/* A fifo is no source file. */
	assert_int_equal(mkfifoat(dir_fd, "src/fifo", 0644), 0);
	ASSERT_ERR(copy_tree_at(dir_fd, "src", dir_fd, "withfifo"), -EBADMSG);
	assert_int_equal(unlinkat(dir_fd, "src/fifo", 0), 0);
	/* Nor a tree deeper than anything real. */
	for (int i = 0; i < 70; i++)
		strcat(deep, "/d");
	ASSERT_OK(mkdir_p_at(dir_fd, deep, 0755));
	ASSERT_ERR(copy_tree_at(dir_fd, "deep", dir_fd, "deepcopy"), -ELOOP);
	/* A destination without a name. */
	ASSERT_ERR(copy_tree_at(dir_fd, "src", dir_fd, "x/"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_owned_and_top_symlink),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
