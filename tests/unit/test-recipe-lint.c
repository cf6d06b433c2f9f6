/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* recipe-lint.c: the checks of logic over Kernel= ranges, their order, "did you mean";
 * and [Install] ModuleDirectory= (recipe.c). */
#include "recipe/recipe-lint.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static const char *const head = "[Recipe]\nName=t\nLicense=GPL\n";
static const char *const tail = "[Build]\nModules=t\n";

/* Lint head + sources + tail, written as t.recipe in t's root. */
static void lint_text(struct test_root *t, const char *sources, struct lint_result *res)
{
	_cleanup_free_ char *text = strjoin(head, sources, tail);
	_cleanup_free_ char *path = path_join(t->path, "t.recipe");

	test_write_file(t->fd, "t.recipe", text);
	ASSERT_OK(recipe_lint_file(path, res));
}

static bool has(const struct lint_result *res, enum lint_severity sev, const char *needle)
{
	for (size_t i = 0; i < res->n; i++)
		if (res->diags[i].severity == sev &&
		    strstr(res->diags[i].message, needle))
			return true;
	return false;
}

/* Two sources with these Kernel= values: the findings. */
static void lint_two(struct test_root *t, const char *a, const char *b,
		     struct lint_result *res)
{
	_cleanup_free_ char *s =
		strjoin("[Source]\nVersion=1\nPath=/\nKernel=", a,
			"\n[Source]\nVersion=2\nPath=/\nKernel=", b, "\n");

	lint_result_done(res);
	lint_text(t, s, res);
}

static void test_gaps(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(lint_result_done) struct lint_result res = {};

	lint_two(t, "<6.8", ">6.8", &res);
	assert_true(has(&res, LINT_WARNING, "kernels >=6.8 <6.9"));
	assert_int_equal(res.n, 1);
	/* "<=6.8" takes every 6.8.x, as kernel_range_match() does: no gap, no overlap. */
	lint_two(t, "<=6.8", ">6.8", &res);
	assert_int_equal(res.n, 0);
	lint_two(t, "<6.8", ">=6.8", &res);
	assert_int_equal(res.n, 0);
	lint_two(t, "<6.8.3", ">=6.8.4", &res);
	assert_true(has(&res, LINT_WARNING, "kernels >=6.8.3 <6.8.4"));
	/* Before the first and after the last is the recipe's window, not a gap. */
	lint_two(t, ">=5.10 <6.1", ">=6.1 <6.6", &res);
	assert_int_equal(res.n, 0);
}

static void test_empty_overlap_four(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(lint_result_done) struct lint_result res = {};

	lint_two(t, ">=6.8 <6.1", ">=6.8", &res);
	assert_true(has(&res, LINT_ERROR, "'>=6.8 <6.1' matches no kernel"));
	assert_int_equal(res.n_errors, 1);
	lint_two(t, "=6.8 >6.8", "<6.8", &res);
	assert_true(has(&res, LINT_ERROR, "matches no kernel"));
	lint_two(t, "<6.8", ">=6.5", &res);
	assert_true(
		has(&res, LINT_WARNING, "for kernels >=6.5 <6.8: Version=2 is chosen"));
	lint_two(t, ">=6.10 <6.12", ">=6.5", &res);
	assert_true(has(&res, LINT_WARNING, "Version=1 is never chosen"));
	lint_two(t, "<6.1.0.1", ">=6.2", &res);
	assert_true(has(&res, LINT_ERROR, "'6.1.0.1' has more than three numbers"));
	assert_int_equal(res.diags[0].column, strlen("Kernel=<") + 1);
}

static void test_downloads_paths(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(lint_result_done) struct lint_result res = {};

	lint_text(t,
		  "[Source]\nVersion=1\nURL=http://h/a.tgz\n"
		  "[Source]\nVersion=2\nURL=https://h/b.tgz\nKernel=>=6.1\n"
		  "[Source]\nVersion=3\nURL=https://h/c.tgz\nGitTree="
		  "0123456789012345678901234567890123456789\nKernel=>=6.2\n"
		  "[Source]\nVersion=4\nPath=/nonexistent-dm2\nKernel=>=6.3\n",
		  &res);
	assert_true(has(&res, LINT_ERROR, "'http://h/a.tgz' has neither"));
	assert_true(has(&res, LINT_WARNING, "'https://h/b.tgz' has neither"));
	assert_false(has(&res, LINT_WARNING, "c.tgz"));
	assert_true(has(&res, LINT_WARNING, "'/nonexistent-dm2' does not exist"));
	assert_int_equal(res.n_errors, 1);
}

static void test_sorted_and_suggested(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(lint_result_done) struct lint_result res = {};
	_cleanup_free_ char *path = path_join(t->path, "s.recipe");

	/* The missing [Build] is found last, at line 1: printed first. */
	test_write_file(t->fd, "s.recipe",
			"[Recipe]\nName=s\nLicence=GPL\n[Source]\nVersion=1\nPath=/\n"
			"Kernal=<6.1\n[Biuld]\n");
	ASSERT_OK(recipe_lint_file(path, &res));
	for (size_t i = 1; i < res.n; i++)
		assert_true(res.diags[i - 1].line <= res.diags[i].line);
	assert_int_equal(res.diags[0].line, 1);
	assert_true(has(&res, LINT_ERROR,
			"'Licence=' in section [Recipe]; did you mean "
			"'License='?"));
	assert_true(has(&res, LINT_ERROR, "did you mean 'Kernel='?"));
	assert_true(has(&res, LINT_ERROR, "[Biuld]; did you mean [Build]?"));
	assert_string_equal(recipe_suggest_key("Source", "sha256"), "SHA256");
	assert_string_equal(recipe_suggest_key("Build", "Module"), "Modules");
	assert_null(recipe_suggest_key("Build", "Colour"));
	assert_null(recipe_suggest_key("Install", "D"));
	assert_null(recipe_suggest_section("Extra"));
	ASSERT_ERR(recipe_lint_file("/nonexistent-dm2.recipe", &res), -ENOENT);
}

static void test_module_directory(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = NULL, *again = NULL;
	_cleanup_free_ char *path = path_join(t->path, "m.recipe");
	_cleanup_free_ char *text = NULL, *text2 = NULL;

	test_write_file(t->fd, "m.recipe",
			"[Recipe]\nName=m\nLicense=GPL\n[Source]\nVersion=1\nPath=/\n"
			"[Build]\nModules=a sub/b\n[Install]\nDirectory=updates/x\n"
			"ModuleDirectory=b kernel/drivers/misc\n");
	ASSERT_OK(recipe_load(path, RECIPE_ORIGIN_FILE, NULL, NULL, &r));
	assert_string_equal(r->modules[0].dest_dir, "updates/x");
	assert_string_equal(r->modules[1].dest_dir, "kernel/drivers/misc");
	ASSERT_OK(recipe_format(r, &text));
	assert_non_null(strstr(text, "\nModuleDirectory=b kernel/drivers/misc\n"));
	test_write_file(t->fd, "m.recipe", text);
	ASSERT_OK(recipe_load(path, RECIPE_ORIGIN_FILE, NULL, NULL, &again));
	ASSERT_OK(recipe_format(again, &text2));
	assert_string_equal(text, text2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gaps),
		cmocka_unit_test(test_empty_overlap_four),
		cmocka_unit_test(test_downloads_paths),
		cmocka_unit_test(test_sorted_and_suggested),
		cmocka_unit_test(test_module_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
