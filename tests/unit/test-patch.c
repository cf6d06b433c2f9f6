/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* patch_apply() with the real GNU patch; the order source_prepare() applies them in. */
#include <fcntl.h>

#include "core/context.h"
#include "pipeline/patch.h"
#include "pipeline/source.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

/* src/hello.c; one.patch: b -> b1; two.patch: b1 -> b2, so it applies only after one. */
static const char hello[] = "int a;\nint b;\nint c;\n";
static const char one[] = "--- a/hello.c\n+++ b/hello.c\n@@ -1,3 +1,3 @@\n int a;\n"
			  "-int b;\n+int b1;\n int c;\n";
static const char two[] = "--- a/hello.c\n+++ b/hello.c\n@@ -1,3 +1,3 @@\n int a;\n"
			  "-int b1;\n+int b2;\n int c;\n";

struct fixture {
	struct test_root *t;
	char *src, *one, *two;
};

static void fixture_init(struct fixture *f)
{
	f->t = test_root_new();
	test_write_file(f->t->fd, "src/hello.c", hello);
	test_write_file(f->t->fd, "p/one.patch", one);
	test_write_file(f->t->fd, "p/two.patch", two);
	f->src = path_join(f->t->path, "src");
	f->one = path_join(f->t->path, "p/one.patch");
	f->two = path_join(f->t->path, "p/two.patch");
	assert_true(f->src && f->one && f->two);
}

static void fixture_done(struct fixture *f)
{
	test_root_free(f->t);
	free(f->src);
	free(f->one);
	free(f->two);
}

static void assert_file(struct fixture *f, const char *rel, const char *want)
{
	_cleanup_free_ char *text = NULL;

	ASSERT_OK(read_full_file_at(f->t->fd, rel, 0, &text, NULL));
	assert_string_equal(text, want);
}

/* A failure is one line that starts with the patch's file name. */
static void assert_reason(const char *reason, const char *want)
{
	assert_non_null(reason);
	if (!strstr(reason, want))
		fail_msg("reason '%s' lacks '%s'", reason, want);
	assert_null(strchr(reason, '\n'));
}

static void test_applies_in_order(void **state)
{
	_cleanup_free_ char *reason = NULL;
	struct fixture f = {};

	fixture_init(&f);
	ASSERT_OK(patch_apply(f.src, f.one, &reason));
	assert_null(reason);
	assert_file(&f, "src/hello.c", "int a;\nint b1;\nint c;\n");
	ASSERT_OK(patch_apply(f.src, f.two, &reason));
	assert_file(&f, "src/hello.c", "int a;\nint b2;\nint c;\n");
	/* No backup or reject files are left behind. */
	assert_int_equal(faccessat(f.t->fd, "src/hello.c.orig", F_OK, 0), -1);
	fixture_done(&f);
}

static void test_failure_names_patch_file_and_hunk(void **state)
{
	_cleanup_free_ char *reason = NULL;
	struct fixture f = {};

	fixture_init(&f);
	/* two before one: its context is not there yet. */
	ASSERT_ERR(patch_apply(f.src, f.two, &reason), -ENOEXEC);
	assert_reason(reason,
		      "patch 'two.patch' does not apply: hello.c: Hunk #1 FAILED at 1");
	assert_file(&f, "src/hello.c", hello);
	assert_int_equal(faccessat(f.t->fd, "src/hello.c.rej", F_OK, 0), -1);
	assert_int_equal(faccessat(f.t->fd, "src/hello.c.orig", F_OK, 0), -1);
	reason = mfree(reason);

	/* Applied twice: --forward refuses rather than reverting it. */
	ASSERT_OK(patch_apply(f.src, f.one, NULL));
	ASSERT_ERR(patch_apply(f.src, f.one, &reason), -ENOEXEC);
	assert_reason(reason, "patch 'one.patch' does not apply: Reversed (or previously "
			      "applied) patch detected!");
	assert_file(&f, "src/hello.c", "int a;\nint b1;\nint c;\n");
	fixture_done(&f);
}

static void test_other_failures(void **state)
{
	_cleanup_free_ char *reason = NULL, *missing = NULL, *gone = NULL, *junk = NULL;
	struct fixture f = {};

	fixture_init(&f);
	/* The patch file itself is missing: its path and the errno. */
	missing = path_join(f.t->path, "p/missing.patch");
	ASSERT_ERR(patch_apply(f.src, missing, &reason), -ENOENT);
	assert_reason(reason, "p/missing.patch': No such file or directory");
	assert_non_null(startswith(reason, "patch '/"));
	reason = mfree(reason);

	/* A patch of a file the tree does not have. */
	test_write_file(f.t->fd, "p/gone.patch",
			"--- a/gone.c\n+++ b/gone.c\n@@ -1 +1 @@\n-x\n+y\n");
	gone = path_join(f.t->path, "p/gone.patch");
	ASSERT_ERR(patch_apply(f.src, gone, &reason), -ENOEXEC);
	assert_reason(reason,
		      "patch 'gone.patch' does not apply: can't find file to patch");
	reason = mfree(reason);

	/* Not a patch at all. */
	test_write_file(f.t->fd, "p/junk.patch", "this is not a diff\n");
	junk = path_join(f.t->path, "p/junk.patch");
	ASSERT_ERR(patch_apply(f.src, junk, &reason), -ENOEXEC);
	assert_reason(reason, "patch 'junk.patch' does not apply: ");
	assert_non_null(strstr(reason, "garbage"));
	assert_file(&f, "src/hello.c", hello);

	/* Without ret_reason, the error alone. */
	ASSERT_ERR(patch_apply(f.src, junk, NULL), -ENOEXEC);
	fixture_done(&f);
}

/* source_prepare() applies a source's patches in the recipe's order, and a failing one
 * is named in the reason. */
static void test_source_order(void **state)
{
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *dest = NULL, *id = NULL, *reason = NULL;
	struct recipe rcp = {.name = (char *) "hello"};
	struct recipe_patch patches[2] = {};
	struct recipe_source s = {};
	struct fixture f = {};

	fixture_init(&f);
	ASSERT_OK(context_new(f.t->path, &ctx));
	dest = path_join(f.t->path, "work");
	s = (struct recipe_source){.version = (char *) "1",
				   .path = f.src,
				   .patches = patches,
				   .n_patches = 2};

	patches[0] = (struct recipe_patch){.path = f.one};
	patches[1] = (struct recipe_patch){.path = f.two};
	ASSERT_OK(source_prepare(ctx, &rcp, &s, f.t->kver, dest, &id, &reason));
	assert_file(&f, "work/hello.c", "int a;\nint b2;\nint c;\n");
	assert_non_null(strstr(id, "+patches:"));
	ASSERT_OK(rm_rf_at(f.t->fd, "work"));

	patches[0] = (struct recipe_patch){.path = f.two};
	patches[1] = (struct recipe_patch){.path = f.one};
	ASSERT_ERR(source_prepare(ctx, &rcp, &s, f.t->kver, dest, &id, &reason),
		   -ENOEXEC);
	assert_reason(reason,
		      "patch 'two.patch' does not apply: hello.c: Hunk #1 FAILED");
	assert_int_equal(faccessat(f.t->fd, "work", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	fixture_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_applies_in_order),
		cmocka_unit_test(test_failure_names_patch_file_and_hunk),
		cmocka_unit_test(test_other_failures),
		cmocka_unit_test(test_source_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
