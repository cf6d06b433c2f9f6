/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>

#include "libkbuild-wrap.h"
#include "pipeline/plan.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static struct recipe *load(struct test_root *t, const char *build_extra,
			   const char *license, const char *sources)
{
	_cleanup_free_ char *text = NULL, *path = path_join(t->path, "p.recipe");
	struct recipe *r = NULL;

	assert_true(asprintf(&text,
			     "[Recipe]\nName=p\nLicense=%s\n%s\n[Build]\nModules=p\n%s\n",
			     license, sources, build_extra) >= 0);
	test_write_file(t->fd, "p.recipe", text);
	ASSERT_OK(recipe_load(path, RECIPE_ORIGIN_FILE, NULL, NULL, &r));
	return r;
}

#define TWO_SOURCES                                                                      \
	"[Source]\nVersion=2.0\nPath=/src/p-2\nKernel=>=6.8\n"                           \
	"[Source]\nVersion=1.0\nPath=/src/p-1\nKernel=<6.8\n"

/* A fake .config for plan_recipe_for(). */
static const char *fake_config(const char *option, void *userdata)
{
	static const char *const cfg[][2] = {
		{"CONFIG_NET", "y"},
		{"CONFIG_USB", "m"},
		{"CONFIG_DEBUG_X", "n"},
		{"CONFIG_MODULE_SIG_HASH", "sha256"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cfg); i++)
		if (streq(cfg[i][0], option))
			return cfg[i][1];
	return NULL;
}

static void expect_skip(const struct recipe *r, const char *version, const char *arch,
			bool allow, const char *reason)
{
	struct plan p = {};

	ASSERT_OK(plan_recipe_for(r, "6.1.0-56-amd64", version, arch, fake_config, NULL,
				  allow, &p));
	if (p.applicable)
		fail_msg("expected a skip ('%s'), got source %s", reason,
			 p.source->version);
	assert_string_equal(p.skip_reason, reason);
	assert_null(p.source);
	plan_done(&p);
}

static const char *expect_source(const struct recipe *r, const char *version,
				 const char *arch, bool allow)
{
	struct plan p = {};
	const char *v;

	ASSERT_OK(plan_recipe_for(r, "6.1.0-56-amd64", version, arch, fake_config, NULL,
				  allow, &p));
	if (!p.applicable)
		fail_msg("expected applicable, got skip: %s", p.skip_reason);
	assert_null(p.skip_reason);
	assert_non_null(p.source);
	v = p.source->version;
	plan_done(&p);
	return v;
}

static void test_plan_source_choice(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = load(t, "", "GPL", TWO_SOURCES);
	struct plan p = {};

	ASSERT_OK(plan_recipe_for(r, "6.9.0-1", "6.9.0", "x86_64", fake_config, NULL,
				  false, &p));
	assert_true(p.applicable);
	assert_string_equal(p.source->version, "2.0");
	plan_done(&p);
	assert_false(p.applicable);
	assert_null(p.skip_reason);

	assert_string_equal(expect_source(r, "6.1.192", "x86_64", false), "1.0");
}

static void test_plan_skip_range(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *one =
		load(t, "", "GPL", "[Source]\nVersion=1\nPath=/x\nKernel=>=6.8\n");
	_cleanup_(recipe_unrefp) struct recipe *two =
		load(t, "", "GPL",
		     "[Source]\nVersion=2\nPath=/"
		     "x\nKernel=>=6.8\n[Source]\nVersion=1\nPath=/x\n"
		     "Kernel=>=5.0 <5.10\n");

	expect_skip(one, "6.1.192", "x86_64", false,
		    "kernel 6.1.192 does not match Kernel=>=6.8 of any source");
	expect_skip(
		two, "6.1.192", "x86_64", false,
		"kernel 6.1.192 does not match Kernel=>=6.8 or Kernel=>=5.0 <5.10 of any "
		"source");
}

static void test_plan_skip_arch(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r =
		load(t, "Arch=aarch64 riscv64", "GPL", TWO_SOURCES);

	expect_skip(r, "6.1.192", "x86_64", false,
		    "architecture x86_64 is not in Arch=aarch64 riscv64");
	assert_string_equal(expect_source(r, "6.1.192", "aarch64", false), "1.0");
}

static void test_plan_skip_config(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *ok = load(
		t, "RequireConfig=CONFIG_NET CONFIG_USB !CONFIG_DEBUG_X !CONFIG_NOPE",
		"GPL", TWO_SOURCES);
	_cleanup_(recipe_unrefp) struct recipe *missing =
		load(t, "RequireConfig=CONFIG_NET CONFIG_VIDEO_DEV", "GPL", TWO_SOURCES);
	_cleanup_(recipe_unrefp) struct recipe *notstr =
		load(t, "RequireConfig=CONFIG_MODULE_SIG_HASH", "GPL", TWO_SOURCES);
	_cleanup_(recipe_unrefp) struct recipe *forbidden =
		load(t, "RequireConfig=!CONFIG_USB", "GPL", TWO_SOURCES);

	assert_string_equal(expect_source(ok, "6.1.192", "x86_64", false), "1.0");
	expect_skip(missing, "6.1.192", "x86_64", false,
		    "kernel 6.1.0-56-amd64 lacks CONFIG_VIDEO_DEV (RequireConfig= needs "
		    "y or m, "
		    "it is not set)");
	expect_skip(notstr, "6.1.192", "x86_64", false,
		    "kernel 6.1.0-56-amd64 lacks CONFIG_MODULE_SIG_HASH (RequireConfig= "
		    "needs y "
		    "or m, it is sha256)");
	expect_skip(
		forbidden, "6.1.192", "x86_64", false,
		"kernel 6.1.0-56-amd64 has CONFIG_USB=m but the recipe needs it unset "
		"(RequireConfig=!CONFIG_USB)");
}

static void test_plan_skip_license(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = load(t, "", "GPL", TWO_SOURCES);
	_cleanup_free_ char *saved = NULL;

	/* recipe_load() refuses non-GPL licenses; a dkms.conf import can still carry one.
	 */
	saved = r->license;
	r->license = strdup("Proprietary");
	expect_skip(r, "6.1.192", "x86_64", false,
		    "license 'Proprietary' is not GPL-compatible (AllowNonGPL=yes in "
		    "dm2d.conf "
		    "builds it anyway)");
	assert_string_equal(expect_source(r, "6.1.192", "x86_64", true), "1.0");
	free(r->license);
	r->license = TAKE_PTR(saved);
}

static void test_plan_dkms_exclusive(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = load(t, "", "GPL", TWO_SOURCES);

	r->exclusive_kernel = strdup("^5\\.");
	expect_skip(
		r, "6.1.192", "x86_64", false,
		"kernel 6.1.0-56-amd64 does not match BUILD_EXCLUSIVE_KERNEL '^5\\.'");
	free(r->exclusive_kernel);
	r->exclusive_kernel = strdup("^6\\.1\\.");
	r->exclusive_arch = strdup("^(i.86|x86_64)$");
	assert_string_equal(expect_source(r, "6.1.192", "x86_64", false), "1.0");
	expect_skip(r, "6.1.192", "aarch64", false,
		    "architecture aarch64 does not match BUILD_EXCLUSIVE_ARCH "
		    "'^(i.86|x86_64)$'");
}

/* The same decisions for the real, probed kernel tree of this machine. */
static void test_plan_real_kernel(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_free_ char *mdir = NULL, *want = NULL;
	struct kbw_kernel *k = NULL;
	struct plan p = {};
	const char *version;

	assert_true(asprintf(&mdir, "%s/lib/modules/%s", t->path, t->kver) >= 0);
	ASSERT_OK(kbw_kernel_probe(mdir, t->kver, &k));
	version = kbw_kernel_version(k);
	assert_non_null(version);

	/* Debian 12's kernel is 6.1.x: the <6.8 source is picked. */
	_cleanup_(recipe_unrefp) struct recipe *r =
		load(t, "RequireConfig=CONFIG_MODULES !CONFIG_DM2_NO_SUCH_OPTION", "GPL",
		     TWO_SOURCES);
	ASSERT_OK(plan_recipe(r, k, false, &p));
	if (!p.applicable)
		fail_msg("not applicable: %s", p.skip_reason);
	assert_string_equal(p.source->version,
			    version_compare(version, "6.8") >= 0 ? "2.0" : "1.0");
	plan_done(&p);

	_cleanup_(recipe_unrefp) struct recipe *future =
		load(t, "", "GPL", "[Source]\nVersion=9\nPath=/x\nKernel=>=99.0\n");
	ASSERT_OK(plan_recipe(future, k, false, &p));
	assert_false(p.applicable);
	assert_true(asprintf(&want,
			     "kernel %s does not match Kernel=>=99.0 of any source",
			     version) >= 0);
	assert_string_equal(p.skip_reason, want);
	plan_done(&p);

	_cleanup_(recipe_unrefp) struct recipe *cfg =
		load(t, "RequireConfig=CONFIG_DM2_NO_SUCH_OPTION", "GPL", TWO_SOURCES);
	ASSERT_OK(plan_recipe(cfg, k, false, &p));
	assert_false(p.applicable);
	assert_non_null(strstr(p.skip_reason, "lacks CONFIG_DM2_NO_SUCH_OPTION"));
	plan_done(&p);

	_cleanup_(recipe_unrefp) struct recipe *arch =
		load(t, "Arch=dm2fakearch", "GPL", TWO_SOURCES);
	ASSERT_OK(plan_recipe(arch, k, false, &p));
	assert_false(p.applicable);
	free(want);
	assert_true(asprintf(&want, "architecture %s is not in Arch=dm2fakearch",
			     kbw_kernel_arch(k)) >= 0);
	assert_string_equal(p.skip_reason, want);
	plan_done(&p);

	kbw_kernel_unref(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_source_choice),
		cmocka_unit_test(test_plan_skip_range),
		cmocka_unit_test(test_plan_skip_arch),
		cmocka_unit_test(test_plan_skip_config),
		cmocka_unit_test(test_plan_skip_license),
		cmocka_unit_test(test_plan_dkms_exclusive),
		cmocka_unit_test(test_plan_real_kernel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
