/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gittree_hash_dir() against `git rev-parse HEAD^{tree}` of the same files. */
#include <fcntl.h>
#include <sys/stat.h>

#include "pipeline/gittree.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

#define GIT "GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 git"

static char *git_tree_of(const char *dir)
{
	_cleanup_free_ char *out = path_join(dir, "../tree-id");
	char *text = NULL;

	assert_int_equal(
		test_system(
			"cd '%s' && " GIT " init -q && " GIT " add -A && " GIT
			" -c user.name=t -c user.email=t@example.com commit -qm t && " GIT
			" rev-parse 'HEAD^{tree}' > '%s'",
			dir, out),
		0);
	assert_int_equal(read_full_file_at(AT_FDCWD, out, 0, &text, NULL), 0);
	strstrip(text);
	assert_int_equal(strlen(text), 40);
	return text;
}

static void test_matches_git(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *dir = path_join(t->path, "src"), *expected = NULL;
	char id[41];

	/* Names that sort differently when a directory is not compared as "a/". */
	test_write_file(t->fd, "src/a.c", "int a;\n");
	test_write_file(t->fd, "src/a-b", "dash\n");
	test_write_file(t->fd, "src/a/x", "in dir a\n");
	test_write_file(t->fd, "src/a0", "zero\n");
	test_write_file(t->fd, "src/run.sh", "#!/bin/sh\n");
	assert_int_equal(fchmodat(t->fd, "src/run.sh", 0755, 0), 0);
	assert_int_equal(symlinkat("a/x", t->fd, "src/link"), 0);
	assert_int_equal(symlinkat("does-not-exist", t->fd, "src/dangling"), 0);
	test_write_file(t->fd, "src/sub/deep/er/file.h", "");
	assert_int_equal(mkdir_p_at(t->fd, "src/empty", 0755), 0);
	assert_int_equal(mkdir_p_at(t->fd, "src/e2/e3", 0755), 0);

	assert_int_equal(gittree_hash_dir(t->fd, "src", id), 0);
	expected = git_tree_of(dir);
	assert_string_equal(id, expected);

	/* After git ran, .git exists and is ignored like git ignores it. */
	assert_int_equal(gittree_hash_dir(AT_FDCWD, dir, id), 0);
	assert_string_equal(id, expected);

	/* A mode change is a different tree. */
	assert_int_equal(fchmodat(t->fd, "src/a.c", 0755, 0), 0);
	assert_int_equal(gittree_hash_dir(t->fd, "src", id), 0);
	assert_string_not_equal(id, expected);
}

static void test_empty_and_special(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	char id[41];

	assert_int_equal(mkdir_p_at(t->fd, "empty/only/dirs", 0755), 0);
	assert_int_equal(gittree_hash_dir(t->fd, "empty", id), 0);
	assert_string_equal(id, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");

	assert_int_equal(mkdirat(t->fd, "fifo", 0755), 0);
	assert_int_equal(mkfifoat(t->fd, "fifo/p", 0644), 0);
	assert_int_equal(gittree_hash_dir(t->fd, "fifo", id), -EBADMSG);
	assert_int_equal(gittree_hash_dir(t->fd, "missing", id), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_git),
		cmocka_unit_test(test_empty_and_special),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
