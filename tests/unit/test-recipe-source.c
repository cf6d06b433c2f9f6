/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* [Source] details a packager relies on: "Patch=FILE RANGE" (a patch for some kernels of
 * one source) and recipe_build_rules(), the part of the build key a recipe gives. */
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static void no_diag(const char *file, unsigned line, const char *message, void *userdata)
{
	char **first = userdata;

	if (!*first)
		assert_true(asprintf(first, "%s:%u: %s", file, line, message) >= 0);
}

static struct recipe *load(struct test_root *t, const char *text, char **ret_diag)
{
	_cleanup_free_ char *path = path_join(t->path, "r.recipe");
	struct recipe *r = NULL;
	int k;

	test_write_file(t->fd, "strscpy.patch", "");
	test_write_file(t->fd, "other.patch", "");
	test_write_file(t->fd, "r.recipe", text);
	*ret_diag = NULL;
	k = recipe_load(path, RECIPE_ORIGIN_FILE, no_diag, ret_diag, &r);
	if (k < 0)
		return NULL;
	return r;
}

#define HEAD "[Recipe]\nName=r\nLicense=GPL\n"
#define BUILD "[Build]\nModules=r\n"

static void test_patch_kernel_range(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *diag = NULL, *text = NULL;
	const struct recipe_source *s;

	r = load(t,
		 HEAD "[Source]\nVersion=0.12.7\nPath=/usr/src/r-0.12.7\n"
		      "Patch=other.patch\nPatch=strscpy.patch   >=6.8 <7\n" BUILD,
		 &diag);
	assert_null(diag);
	assert_non_null(r);
	s = &r->sources[0];
	assert_int_equal(s->n_patches, 2);
	assert_true(endswith(s->patches[1].path, "/strscpy.patch"));
	/* strlcpy went away in 6.8: the strscpy patch is for 6.8 and later. */
	assert_false(recipe_patch_for_kernel(&s->patches[1], "6.1.0-57-amd64"));
	assert_true(recipe_patch_for_kernel(&s->patches[1], "6.12.117+deb12-amd64"));
	assert_false(recipe_patch_for_kernel(&s->patches[1], "7.0.1"));
	/* Without a range: every kernel. */
	assert_true(recipe_patch_for_kernel(&s->patches[0], "6.1.0-57-amd64"));

	/* Written back the same way. */
	ASSERT_OK(recipe_format(r, &text));
	assert_non_null(
		strstr(text, "Patch=other.patch\nPatch=strscpy.patch >=6.8 <7\n"));
}

static void test_patch_bad_range(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *diag = NULL;

	r = load(t, HEAD "[Source]\nVersion=1\nPath=/x\nPatch=strscpy.patch 6.8\n" BUILD,
		 &diag);
	assert_null(r);
	assert_non_null(diag);
	assert_non_null(strstr(diag,
			       "r.recipe:7: invalid kernel range '6.8' after Patch= "
			       "'strscpy.patch'"));
}

static char *rules(struct recipe *r, const char *version)
{
	char *text = NULL;

	ASSERT_OK(recipe_build_rules(r, recipe_find_source(r, version), &text));
	return text;
}

/* Editing or adding the source of other kernels leaves a source's rules as they were;
 * the [Build] and [Install] sections and the source's own version change them. */
static void test_build_rules_per_source(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *diag = NULL, *a = NULL, *b = NULL, *c = NULL, *d = NULL;
	struct recipe *r;

	r = load(t, HEAD "[Source]\nVersion=1\nPath=/a\nKernel=<6.8\n" BUILD, &diag);
	assert_non_null(r);
	a = rules(r, "1");
	recipe_unref(r);

	r = load(t,
		 HEAD
		 "[Source]\nVersion=1\nPath=/a\nKernel=<6.8\n"
		 "[Source]\nVersion=2\nPath=/b\nKernel=>=6.8\nPatch=other.patch\n" BUILD,
		 &diag);
	assert_non_null(r);
	b = rules(r, "1");
	assert_string_equal(a, b);
	c = rules(r, "2");
	assert_string_not_equal(a, c);
	recipe_unref(r);

	r = load(t,
		 HEAD "[Source]\nVersion=1\nPath=/a\nKernel=<6.8\n" BUILD
		      "MakeVariable=X=1\n",
		 &diag);
	assert_non_null(r);
	d = rules(r, "1");
	assert_string_not_equal(a, d);
	recipe_unref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patch_kernel_range),
		cmocka_unit_test(test_patch_bad_range),
		cmocka_unit_test(test_build_rules_per_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
