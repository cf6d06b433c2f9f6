/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dkms.conf packages as recipes of the recipe set, evaluated per kernel, and what DKMS
 * installed. The build/takeover paths run in tests/integration/test-dkms-takeover.sh. */
#include <fcntl.h>
#include <unistd.h>

#include "pipeline/dkms-takeover.h"
#include "recipe/dkms.h"
#include "core/kernels.h"
#include "recipe/recipe-set.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

struct diags {
	unsigned n;
	char *first;
};

static void diag_collect(const char *file, unsigned line, const char *message,
			 void *userdata)
{
	struct diags *d = userdata;

	fprintf(stderr, "diag: %s:%u: %s\n", file, line, message);
	if (!d->first)
		d->first = strjoin(file, ": ", message);
	d->n++;
}

static void kernel_unrefp(struct kbw_kernel **k)
{
	kbw_kernel_unref(*k);
}

static const char foo_conf[] =
	"PACKAGE_NAME=\"foo\"\n"
	"PACKAGE_VERSION=\"1.0\"\n"
	"BUILT_MODULE_NAME[0]=\"foo\"\n"
	"DEST_MODULE_LOCATION[0]=\"/updates/dkms\"\n"
	"MAKE[0]=\"make -C $kernel_source_dir M=$dkms_tree/foo/1.0/build "
	"TAG=$kernelver\"\n"
	"MAKE[1]=\"make -C $kernel_source_dir M=$dkms_tree/foo/1.0/build OLD=1\"\n"
	"MAKE_MATCH[1]=\"^2\\.6\\.\"\n"
	"PATCH[0]=\"only-new.patch\"\n"
	"PATCH_MATCH[0]=\"^[6-9]\\.\"\n"
	"AUTOINSTALL=\"yes\"\n";

static void write_source(struct test_root *t, const char *pkg, const char *module)
{
	_cleanup_free_ char *c = strjoin("usr/src/", pkg, "/", module, ".c");

	assert_non_null(c);
	test_write_file(t->fd, c,
			"#include <linux/module.h>\nMODULE_LICENSE(\"GPL\");\n");
	if (streq(module, "foo"))
		test_write_file(t->fd, "usr/src/foo-1.0/patches/only-new.patch", "");
}

static void test_set_has_dkms(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_free_ char *real = NULL, *link = NULL;
	struct diags d = {};
	struct recipe *r;

	test_write_file(t->fd, "usr/src/foo-1.0/dkms.conf", foo_conf);
	write_source(t, "foo-1.0", "foo");
	/* An older and a newer version of one package: the newer one wins. */
	test_write_file(t->fd, "usr/src/multi-1.9/dkms.conf",
			"PACKAGE_NAME=multi\nPACKAGE_VERSION=1.9\n");
	test_write_file(t->fd, "usr/src/multi-1.10/dkms.conf",
			"PACKAGE_NAME=multi\nPACKAGE_VERSION=1.10\nAUTOINSTALL=no\n");
	/* Debian's order: a release candidate is older than the release, whichever is read
	 * first. */
	test_write_file(t->fd, "usr/src/rc-1.0/dkms.conf", "PACKAGE_NAME=rc\nPACKAGE_VERSION=1.0\n");
	test_write_file(t->fd, "usr/src/rc-1.0~rc1/dkms.conf",
			"PACKAGE_NAME=rc\nPACKAGE_VERSION=1.0~rc1\n");
	/* Invalid: reported and skipped. */
	test_write_file(t->fd, "usr/src/bad-1/dkms.conf", "PACKAGE_VERSION=1\n");
	/* Shadowed by the dm2 recipe of the same name below. */
	test_write_file(t->fd, "usr/src/shadow-1/dkms.conf",
			"PACKAGE_NAME=shadow\nPACKAGE_VERSION=1\n");
	test_write_file(t->fd, "etc/dm2/recipes.d/shadow.recipe",
			"[Recipe]\nName=shadow\nLicense=GPL\n[Source]\nVersion=7\n"
			"Path=/nonexistent\n[Build]\nModules=shadow\n");
	/* A package directory that is a symlink (as in the README demo). */
	test_write_file(t->fd, "outside/linked-3/dkms.conf",
			"PACKAGE_NAME=linked\nPACKAGE_VERSION=3\n");
	real = strjoin(t->path, "/outside/linked-3");
	link = strjoin(t->path, "/usr/src/linked-3");
	assert_int_equal(symlink(real, link), 0);

	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(recipe_set_load(ctx, diag_collect, &d, &set));

	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.first, "usr/src/bad-1/dkms.conf"));
	free(d.first);

	r = recipe_set_find(set, "foo");
	assert_non_null(r);
	assert_int_equal(r->origin, RECIPE_ORIGIN_DKMS);
	assert_string_equal(recipe_latest_version(r), "1.0");
	assert_true(recipe_autoinstall(r));
	/* The kernel-independent view: $kernelver is empty. */
	assert_non_null(r->make_command);
	assert_null(strstr(r->make_command, t->kver));

	r = recipe_set_find(set, "multi");
	assert_non_null(r);
	assert_string_equal(recipe_latest_version(r), "1.10");
	r = recipe_set_find(set, "rc");
	assert_non_null(r);
	assert_string_equal(recipe_latest_version(r), "1.0");
	assert_false(recipe_autoinstall(r));

	r = recipe_set_find(set, "shadow");
	assert_non_null(r);
	assert_int_equal(r->origin, RECIPE_ORIGIN_ADMIN);
	assert_true(recipe_autoinstall(r));

	r = recipe_set_find(set, "linked");
	assert_non_null(r);
	assert_int_equal(r->origin, RECIPE_ORIGIN_DKMS);
	assert_null(recipe_set_find(set, "bad"));
	(void) state;
}

static void test_for_kernel(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_(kernel_unrefp) struct kbw_kernel *k = NULL;
	_cleanup_(recipe_unrefp) struct recipe *rk = NULL, *same = NULL;
	_cleanup_free_ char *want = NULL;
	struct recipe *r;

	test_write_file(t->fd, "usr/src/foo-1.0/dkms.conf", foo_conf);
	write_source(t, "foo-1.0", "foo");
	test_write_file(t->fd, "etc/dm2/recipes.d/plain.recipe",
			"[Recipe]\nName=plain\nLicense=GPL\n[Source]\nVersion=1\n"
			"Path=/nonexistent\n[Build]\nModules=plain\n");
	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(recipe_set_load(ctx, NULL, NULL, &set));
	ASSERT_OK(kernel_find(ctx, t->kver, &k));

	r = recipe_set_find(set, "foo");
	assert_non_null(r);
	ASSERT_OK(recipe_for_kernel(ctx, r, k, NULL, NULL, &rk));
	assert_ptr_not_equal(rk, r);
	assert_int_equal(rk->origin, RECIPE_ORIGIN_DKMS);
	want = strjoin("TAG=", t->kver);
	assert_non_null(rk->make_command);
	assert_non_null(strstr(rk->make_command, want));
	assert_non_null(strstr(rk->make_command, kbw_kernel_build_dir(k)));
	/* MAKE_MATCH[1] is for 2.6 kernels only. */
	assert_null(strstr(rk->make_command, "OLD=1"));
	assert_int_equal(rk->n_sources, 1);
	assert_int_equal(rk->sources[0].n_patches, 1);

	r = recipe_set_find(set, "plain");
	assert_non_null(r);
	ASSERT_OK(recipe_for_kernel(ctx, r, k, NULL, NULL, &same));
	assert_ptr_equal(same, r);
	(void) state;
}

static void mkdir_rel(struct test_root *t, const char *rel)
{
	ASSERT_OK(mkdir_p_at(t->fd, rel, 0755));
}

static void test_installed(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *mods = NULL, *foo = NULL, *linkp = NULL, *linkdir = NULL,
			    *owner = NULL, *tgt = NULL, *built = NULL, *renamed = NULL,
			    *linkp2 = NULL, *tgt2 = NULL;
	struct dkms_installed *l = NULL;
	size_t n = 0;

	ASSERT_OK(context_new(t->path, &ctx));
	/* Nothing DKMS at all. */
	ASSERT_OK(dkms_installed_modules(ctx, NULL, &l, &n));
	assert_int_equal(n, 0);
	dkms_installed_free(l, n);

	mods = strjoin("lib/modules/", t->kver, "/updates/dkms");
	foo = strjoin(mods, "/foo.ko");
	linkdir = strdup("var/lib/dkms/foo");
	linkp = strjoin(t->path, "/var/lib/dkms/foo/kernel-", t->kver, "-x86_64");
	tgt = strjoin("1.0/", t->kver, "/x86_64");
	mkdir_rel(t, mods);
	mkdir_rel(t, linkdir);
	test_write_file(t->fd, foo, "DKMS' foo");
	assert_int_equal(symlink(tgt, linkp), 0);
	/* Renamed on install (DEST_MODULE_NAME): found through DKMS' module/ dir. */
	built = strjoin("var/lib/dkms/bar/2.0/", t->kver,
			"/x86_64/module/bar_renamed.ko");
	renamed = strjoin(mods, "/bar_renamed.ko");
	test_write_file(t->fd, built, "bar");
	test_write_file(t->fd, renamed, "bar");
	linkp2 = strjoin(t->path, "/var/lib/dkms/bar/kernel-", t->kver, "-x86_64");
	tgt2 = strjoin("2.0/", t->kver, "/x86_64");
	assert_int_equal(symlink(tgt2, linkp2), 0);
	/* Marked installed, file gone. */
	mkdir_rel(t, "var/lib/dkms/gone");
	linkp2 = mfree(linkp2);
	linkp2 = strjoin(t->path, "/var/lib/dkms/gone/kernel-", t->kver, "-x86_64");
	assert_int_equal(symlink("5/x/y", linkp2), 0);
	/* Another kernel's link is not this kernel's. */
	linkp2 = mfree(linkp2);
	linkp2 = strjoin(t->path, "/var/lib/dkms/foo/kernel-", t->kver, "-extra-x86_64");
	assert_int_equal(symlink(tgt, linkp2), 0);

	ASSERT_OK(dkms_installed_modules(ctx, t->kver, &l, &n));
	assert_int_equal(n, 3);
	assert_string_equal(l[0].module, "bar");
	assert_string_equal(l[0].version, "2.0");
	assert_string_equal(l[0].path, renamed);
	assert_string_equal(l[1].module, "foo");
	assert_string_equal(l[1].version, "1.0");
	assert_string_equal(l[1].kernel, t->kver);
	assert_string_equal(l[1].arch, "x86_64");
	assert_string_equal(l[1].path, foo);
	assert_false(l[1].dm2_managed);
	assert_string_equal(l[2].module, "gone");
	assert_null(l[2].path);
	dkms_installed_free(l, n);

	/* Every kernel: the same for the only kernel directory. */
	ASSERT_OK(dkms_installed_modules(ctx, NULL, &l, &n));
	assert_int_equal(n, 3);
	dkms_installed_free(l, n);

	ASSERT_OK(dkms_file_owner(ctx, foo, &owner));
	assert_string_equal(owner, "foo");
	ASSERT_ERR(dkms_file_owner(ctx, "lib/modules/x/updates/dkms/foo.ko", &owner),
		   -ENOENT);
	ASSERT_ERR(dkms_file_owner(ctx, "etc/passwd", &owner), -ENOENT);
	(void) state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_has_dkms),
		cmocka_unit_test(test_for_kernel),
		cmocka_unit_test(test_installed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
