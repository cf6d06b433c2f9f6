/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2's kernel list, build user, recipe -> kbuild mapping and `dm2 kernel|build`, for
 * real. */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>

#include "core/build-user.h"
#include "pipeline/builder.h"
#include "core/context.h"
#include "core/kernels.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static void resultp(struct kbw_build_result **r)
{
	kbw_build_result_free(*r);
}
static void kbw_unrefp(struct kbw_kernel **k)
{
	kbw_kernel_unref(*k);
}

static char *module_src(const char *name)
{
	_cleanup_free_ char *rel = strjoin("tests/data/modules/", name);

	return test_source_path(rel);
}

/* Write ROOT/rec/NAME.recipe with a Path= source of tests/data/modules/MODULE. */
static char *write_recipe(struct test_root *t, const char *name, const char *module,
			  const char *build_extra)
{
	_cleanup_free_ char *src = module_src(module), *text = NULL, *rel = NULL;

	assert_true(asprintf(&text,
			     "[Recipe]\nName=%s\nLicense=GPL\n\n[Source]\nVersion=1."
			     "0\nPath=%s\n\n"
			     "[Build]\n%s\n",
			     name, src, build_extra) > 0);
	assert_true(asprintf(&rel, "rec/%s.recipe", name) > 0);
	test_write_file(t->fd, rel, text);
	return path_join(t->path, rel);
}

static struct recipe *load_recipe(const char *path)
{
	struct recipe *r = NULL;

	ASSERT_OK(recipe_load(path, RECIPE_ORIGIN_FILE, NULL, NULL, &r));
	return r;
}

static void test_kernels_list_sorted(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	struct kbw_kernel **ks = NULL, *k = NULL;
	size_t n = 0;

	ASSERT_OK(mkdir_p_at(t->fd, "lib/modules/9.9.9-new", 0755));
	ASSERT_OK(mkdir_p_at(t->fd, "lib/modules/5.10.0-1-amd64", 0755));
	test_write_file(t->fd, "lib/modules/not-a-kernel-file", "x");
	ASSERT_OK(context_new(t->path, &ctx));

	ASSERT_OK(kernels_list(ctx, &ks, &n));
	assert_int_equal(n, 3);
	assert_string_equal(kbw_kernel_release(ks[0]), "9.9.9-new");
	assert_string_equal(kbw_kernel_release(ks[1]), t->kver);
	assert_string_equal(kbw_kernel_release(ks[2]), "5.10.0-1-amd64");
	assert_false(kbw_kernel_complete(ks[0], NULL));
	assert_true(kbw_kernel_complete(ks[1], NULL));
	kernels_free(ks, n);

	ASSERT_ERR(kernel_find(ctx, "0.0.1-none", &k), -ENOENT);
	ASSERT_ERR(kernel_find(ctx, "..", &k), -EINVAL);
	ASSERT_ERR(kernel_find(ctx, "a/b", &k), -EINVAL);
	ASSERT_OK(kernel_find(ctx, t->kver, &k));
	assert_string_equal(kbw_kernel_release(k), t->kver);
	kbw_kernel_unref(k);

	/* No lib/modules at all: an empty list. */
	ASSERT_OK(rm_rf_at(t->fd, "lib"));
	ASSERT_OK(kernels_list(ctx, &ks, &n));
	assert_int_equal(n, 0);
	kernels_free(ks, n);
}

/* Each build gets a uid of its own from UidRange=, held by a lock file until released. */
static void test_build_uid_allocation(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	struct build_uid a = BUILD_UID_NULL, b = BUILD_UID_NULL, c = BUILD_UID_NULL;

	test_write_file(t->fd, "etc/dm2/dm2d.conf", "[Build]\nUidRange=61000-61001\n");
	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(build_uid_acquire(ctx, &a));
	ASSERT_OK(build_uid_acquire(ctx, &b));
	assert_int_equal(a.uid, 61000);
	assert_int_equal(a.gid, 61000);
	assert_int_equal(b.uid, 61001);
	assert_int_equal(faccessat(t->fd, "var/lib/dm2/locks/build-uid/61000", F_OK, 0), 0);
	/* The range is exhausted while both are held, by this process or any other. */
	ASSERT_ERR(build_uid_acquire(ctx, &c), -EBUSY);
	assert_int_equal(test_system("flock -n '%s/var/lib/dm2/locks/build-uid/61001' true",
				     t->path),
			 1);
	build_uid_release(&a);
	ASSERT_OK(build_uid_acquire(ctx, &c));
	assert_int_equal(c.uid, 61000);
	build_uid_release(&b);
	build_uid_release(&c);

	/* A uid that names a user of the machine is skipped: nobody is 65534. */
	test_write_file(t->fd, "etc/dm2/dm2d.conf", "[Build]\nUidRange=65534-65535\n");
	context_free(ctx);
	ASSERT_OK(context_new(t->path, &ctx));
	if (getpwuid(65534) && !getpwuid(65535) && !getgrgid(65535)) {
		ASSERT_OK(build_uid_acquire(ctx, &a));
		assert_int_equal(a.uid, 65535);
		build_uid_release(&a);
	}

	/* Bad ranges are refused with the line. */
	context_free(ctx);
	ctx = NULL;
	test_write_file(t->fd, "etc/dm2/dm2d.conf", "[Build]\nUidRange=0-100\n");
	assert_true(context_new(t->path, &ctx) < 0);
	test_write_file(t->fd, "etc/dm2/dm2d.conf", "[Build]\nUidRange=200-100\n");
	assert_true(context_new(t->path, &ctx) < 0);
}

/* dm2d.conf's limits reach the build, and a limit that is hit is the reason. */
static void test_builder_limits_and_strip(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL, *ok = NULL;
	_cleanup_(kbw_unrefp) struct kbw_kernel *k = NULL;
	_cleanup_(resultp) struct kbw_build_result *res = NULL, *res2 = NULL;
	_cleanup_free_ char *path = NULL, *path2 = NULL, *work = NULL, *log = NULL,
			    *hostile = module_src("hostile");
	_cleanup_free_ char *buf = NULL, *reason = NULL;
	size_t size = 0, before;

	test_write_file(t->fd, "etc/dm2/dm2d.conf",
			"[Build]\nDiskMax=64M\nProcessMax=64\nCPUTimeMaxSec=100\n");
	ASSERT_OK(context_new(t->path, &ctx));
	assert_int_equal(ctx->config->build_disk_max, 64ULL << 20);
	assert_int_equal(ctx->config->build_processes_max, 64);
	assert_int_equal(ctx->config->build_cpu_usec, 100 * 1000000ULL);
	ASSERT_OK(kernel_find(ctx, t->kver, &k));
	path = write_recipe(t, "fill", "hostile",
			    "Modules=dm2_hostile\nMakeVariable=DM2_RULE=fill\n"
			    "MakeVariable=DM2_ARG=100");
	r = load_recipe(path);
	work = path_join(t->path, "var/lib/dm2/work/fill");
	log = path_join(t->path, "var/lib/dm2/logs/fill.log");
	ASSERT_OK(builder_build(ctx, r, k, hostile, work, log, NULL, &res));
	assert_false(kbw_build_succeeded(res));
	assert_string_equal(res->reason, "build exceeded its disk budget of 64 MiB");
	assert_true(res->build_uid >= 60928 && res->build_uid <= 61183);

	/* Strip runs in the sandbox too, on a buffer. */
	ASSERT_OK(rm_rf_at(AT_FDCWD, work));
	path2 = write_recipe(t, "plain", "hostile", "Modules=dm2_hostile");
	ok = load_recipe(path2);
	ASSERT_OK(builder_build(ctx, ok, k, hostile, work, log, NULL, &res2));
	if (!kbw_build_succeeded(res2))
		fprintf(stderr, "reason: %s\n", strna(res2->reason));
	assert_true(kbw_build_succeeded(res2));
	ASSERT_OK(read_full_file_at(AT_FDCWD, res2->modules[0], 0, &buf, &size));
	before = size;
	ASSERT_OK(builder_strip(ctx, k, "dm2_hostile.ko", log, &buf, &size, &reason));
	assert_true(size > 0 && size < before);
}

static void test_builder_nested(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_(kbw_unrefp) struct kbw_kernel *k = NULL;
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	_cleanup_free_ char *path = NULL, *src = module_src("nested"), *work = NULL,
			    *log = NULL;

	test_write_file(t->fd, "etc/dm2/dm2d.conf",
			"[Build]\nMakeJobs=2\nTimeoutSec=300\n");
	ASSERT_OK(context_new(t->path, &ctx));
	assert_int_equal(builder_make_jobs(ctx), 2);
	ASSERT_OK(kernel_find(ctx, t->kver, &k));

	/* Directory= holds the Kbuild file; one module is built in a subdirectory of it.
	 */
	path = write_recipe(t, "nested", "nested",
			    "Directory=src\nModules=dm2_nested_a sub/dm2_nested_b");
	r = load_recipe(path);
	work = path_join(t->path, "var/lib/dm2/work/nested");
	log = path_join(t->path, "var/lib/dm2/logs/nested/k/build.log");
	ASSERT_OK(builder_build(ctx, r, k, src, work, log, NULL, &res));
	if (!kbw_build_succeeded(res))
		test_system("cat '%s'", log);
	assert_true(kbw_build_succeeded(res));
	assert_int_equal(strv_length(res->modules), 2);
	assert_non_null(endswith(res->modules[0], "/nested/src/dm2_nested_a.ko"));
	assert_non_null(endswith(res->modules[1], "/nested/src/sub/dm2_nested_b.ko"));
	assert_non_null(endswith(res->symvers, "/nested/src/Module.symvers"));
	assert_int_not_equal(res->build_uid, 0);
	assert_true(res->network_isolated);
	assert_int_equal(access(log, R_OK), 0);

	/* Again into the same work dir: it is started afresh. */
	kbw_build_result_free(res);
	res = NULL;
	ASSERT_OK(builder_build(ctx, r, k, src, work, log, NULL, &res));
	if (!kbw_build_succeeded(res))
		fprintf(stderr, "reason: %s\n", strna(res->reason));
	assert_true(kbw_build_succeeded(res));
}

static void test_builder_missing_module_and_command(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL, *dkms = NULL;
	_cleanup_(kbw_unrefp) struct kbw_kernel *k = NULL;
	_cleanup_(resultp) struct kbw_build_result *res = NULL, *res2 = NULL;
	_cleanup_free_ char *path = NULL, *path2 = NULL, *src = module_src("hello"),
			    *work = NULL, *log = NULL;

	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(kernel_find(ctx, t->kver, &k));
	path = write_recipe(t, "hello", "hello", "Modules=dm2_hello dm2_absent");
	r = load_recipe(path);
	work = path_join(t->path, "var/lib/dm2/work/hello");
	log = path_join(t->path, "var/lib/dm2/logs/hello.log");
	ASSERT_OK(builder_build(ctx, r, k, src, work, log, NULL, &res));
	assert_false(kbw_build_succeeded(res));
	assert_string_equal(res->reason, "module 'dm2_absent.ko' was not produced");

	/* DKMS MAKE[]: a command run by the shell with kernelver and kernel_source_dir.
	 */
	path2 = write_recipe(t, "dkmsish", "hello", "Modules=dm2_hello");
	dkms = load_recipe(path2);
	dkms->make_command = strdup("make -C \"$kernel_source_dir\" M=\"$PWD\" "
				    "KERNELRELEASE=\"$kernelver\" CC=\"$CC\" modules");
	assert_non_null(dkms->make_command);
	ASSERT_OK(builder_build(ctx, dkms, k, src, work, log, NULL, &res2));
	if (!kbw_build_succeeded(res2))
		test_system("cat '%s'", log);
	if (!kbw_build_succeeded(res2))
		fprintf(stderr, "reason: %s\n", strna(res2->reason));
	assert_true(kbw_build_succeeded(res2));
	assert_int_equal(
		test_system("grep -q 'make -C' '%s' || grep -q 'Entering directory' '%s'",
			    log, log),
		0);
}

static void test_cli(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_free_ char *dm2 = test_build_path("dm2"), *a = NULL, *b = NULL,
			    *c = NULL, *out = NULL, *err = NULL, *ko = NULL;
	const char *kv = t->kver;

	a = write_recipe(t, "hello", "hello", "Modules=dm2_hello");
	b = write_recipe(t, "broken", "broken", "Modules=dm2_broken");
	c = write_recipe(t, "armonly", "hello", "Modules=dm2_hello\nArch=aarch64");
	ASSERT_OK(mkdir_p_at(t->fd, "lib/modules/9.9.9-waiting", 0755));

#define DM2(args) "'%s' --root '%s' --recipes '%s/rec' " args " >'%s/out' 2>'%s/err'"
	assert_int_equal(
		test_system(DM2("kernel list"), dm2, t->path, t->path, t->path, t->path),
		0);
	ASSERT_OK(read_full_file_at(t->fd, "out", 0, &out, NULL));
	assert_non_null(strstr(out, "complete"));
	assert_non_null(strstr(out, "waiting: "));
	assert_non_null(strstr(out, "linux-headers-9.9.9-waiting"));
	free(out);
	assert_int_equal(test_system(DM2("kernel list --json"), dm2, t->path, t->path,
				     t->path, t->path),
			 0);
	ASSERT_OK(read_full_file_at(t->fd, "out", 0, &out, NULL));
	assert_non_null(strstr(out, "\"kernels\": ["));
	assert_non_null(strstr(out, "\"complete\": true"));
	assert_non_null(strstr(out, "\"sig_hash\": \"sha256\""));
	free(out);

	assert_int_equal(test_system(DM2("build hello -k %s"), dm2, t->path, t->path, kv,
				     t->path, t->path),
			 0);
	ASSERT_OK(read_full_file_at(t->fd, "out", 0, &out, NULL));
	assert_true(asprintf(&ko, "%s/var/lib/dm2/work/build-hello-%s/build/dm2_hello.ko",
			     t->path, kv) > 0);
	assert_non_null(strstr(out, ko));
	assert_non_null(strstr(out, "/var/lib/dm2/logs/hello/"));
	assert_int_equal(access(ko, R_OK), 0);

	assert_int_equal(test_system(DM2("build broken -k %s"), dm2, t->path, t->path, kv,
				     t->path, t->path),
			 5);
	ASSERT_OK(read_full_file_at(t->fd, "err", 0, &err, NULL));
	assert_non_null(strstr(err, "error: 'dm2_no_such_identifier' undeclared"));
	free(err);

	assert_int_equal(test_system(DM2("build armonly -k %s"), dm2, t->path, t->path,
				     kv, t->path, t->path),
			 10);
	assert_int_equal(test_system(DM2("build hello -k 9.9.9-waiting"), dm2, t->path,
				     t->path, t->path, t->path),
			 9);
	ASSERT_OK(read_full_file_at(t->fd, "err", 0, &err, NULL));
	assert_non_null(strstr(err, "linux-headers-9.9.9-waiting"));
	assert_int_equal(test_system(DM2("build hello -k 0.0.0-none"), dm2, t->path,
				     t->path, t->path, t->path),
			 4);
	assert_int_equal(test_system(DM2("build nosuchrecipe -k %s"), dm2, t->path,
				     t->path, kv, t->path, t->path),
			 4);
	assert_int_equal(
		test_system(DM2("build hello"), dm2, t->path, t->path, t->path, t->path),
		2);
#undef DM2
}

/* The shipped example is real: it builds warning-free with kbuild against the test
 * kernel. */
static void test_shipped_example_builds(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_free_ char *src = test_source_path("recipes/dm2-example"), *log = NULL;

	assert_int_equal(test_system("cp -r '%s' '%s/src'", src, t->path), 0);
	assert_int_equal(test_system("make -C '%s' M='%s/src' modules >'%s/log' 2>&1",
				     t->tree, t->path, t->path),
			 0);
	assert_int_equal(faccessat(t->fd, "src/dm2_example.ko", F_OK, 0), 0);
	ASSERT_OK(read_full_file_at(t->fd, "log", 0, &log, NULL));
	if (strstr(log, "warning:"))
		fail_msg("the example module builds with warnings:\n%s", log);
	assert_int_equal(
		test_system("modinfo -F license '%s/src/dm2_example.ko' | grep -qx GPL",
			    t->path),
		0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernels_list_sorted),
		cmocka_unit_test(test_build_uid_allocation),
		cmocka_unit_test(test_builder_limits_and_strip),
		cmocka_unit_test(test_builder_nested),
		cmocka_unit_test(test_builder_missing_module_and_command),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_shipped_example_builds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
