/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dkms.conf packages built for real through the builder, against the installed kernel's
 * headers: a fixture with its own MAKE, and the real Debian acpi-call-dkms package. */
#include <fcntl.h>

#include "core/context.h"
#include "core/kernels.h"
#include "pipeline/builder.h"
#include "recipe/dkms.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static void diag_fail(const char *file, unsigned line, const char *message,
		      void *userdata)
{
	fail_msg("unexpected diagnostic %s:%u: %s", file, line, message);
}

/* Write ROOT/usr/src/<pkg>/dkms.conf and return the package directory. */
static char *write_pkg(struct test_root *t, const char *pkg, const char *conf)
{
	_cleanup_free_ char *rel = strjoin("usr/src/", pkg, "/dkms.conf");

	assert_non_null(rel);
	test_write_file(t->fd, rel, conf);
	return strjoin(t->path, "/usr/src/", pkg);
}

static const char hello_c[] = "// SPDX-License-Identifier: GPL-2.0\n"
			      "#include <linux/module.h>\n"
			      "static int __init h_init(void) { return 0; }\n"
			      "static void __exit h_exit(void) { }\n"
			      "module_init(h_init);\n"
			      "module_exit(h_exit);\n"
			      "MODULE_LICENSE(\"GPL\");\n"
			      "MODULE_DESCRIPTION(\"dm2 dkms fixture\");\n";

/* Build a dkms.conf package for real through the builder and check the result. */
static void build_pkg(struct test_root *t, struct dm2_context *ctx, struct kbw_kernel *k,
		      const char *dir, const char *work, const char *expect_ko)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *wd = NULL, *log = NULL;
	struct kbw_build_result *res = NULL;

	ASSERT_OK(dkms_recipe_load(&(struct dkms_load_params){.ctx = ctx,
							    .dir = dir,
							    .kernel_release = t->kver,
							    .kernel_build_dir = kbw_kernel_build_dir(k),
							    .kernel = k},
				   diag_fail, NULL, &r));
	wd = strjoin(t->path, "/", work);
	log = strjoin(t->path, "/", work, ".log");
	ASSERT_OK(builder_build(ctx, r, k, dir, wd, log, NULL, &res));
	if (!kbw_build_succeeded(res))
		test_system("cat '%s'", log);
	assert_true(kbw_build_succeeded(res));
	/* A MAKE line's make stays on the builds' jobserver: no -jN of dm2's own. */
	assert_int_equal(test_system("grep -q 'resetting jobserver mode' '%s'", log), 1);
	assert_int_equal(strv_length(res->modules), 1);
	assert_non_null(endswith(res->modules[0], expect_ko));
	assert_int_equal(test_system("modinfo -F vermagic '%s' | grep -q '^%s '",
				     res->modules[0], t->kver),
			 0);
	kbw_build_result_free(res);
}

static void test_real_build(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *dir = NULL;
	struct kbw_kernel *k = NULL;

	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(kernel_find(ctx, t->kver, &k));

	/* A custom MAKE that builds in a subdirectory of DKMS' build dir, as many
	 * packages do: dm2 runs it in its own copy ("$PWD") with KERNELRELEASE set. */
	test_write_file(t->fd, "usr/src/dm2fixture-1.0/src/Kbuild",
			"obj-m := dm2_dkms_fix.o\n");
	test_write_file(t->fd, "usr/src/dm2fixture-1.0/src/dm2_dkms_fix.c", hello_c);
	dir = write_pkg(
		t, "dm2fixture-1.0",
		"PACKAGE_NAME=dm2fixture\n"
		"PACKAGE_VERSION=1.0\n"
		"MAKE[0]=\"make -C ${kernel_source_dir} "
		"M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build/src modules\"\n"
		"BUILT_MODULE_NAME[0]=dm2_dkms_fix\n"
		"BUILT_MODULE_LOCATION[0]=src/\n"
		"DEST_MODULE_NAME[0]=dm2_dkms_renamed\n"
		"DEST_MODULE_LOCATION[0]=/extra\n"
		"AUTOINSTALL=yes\n");
	build_pkg(t, ctx, k, dir, "work-fixture", "/work-fixture/src/dm2_dkms_fix.ko");

	/* The real Debian package: its MAKE is DKMS' default, built by dm2's own kbuild
	 * call. */
	assert_non_null(test_acpi_call_dir());
	build_pkg(t, ctx, k, test_acpi_call_dir(), "work-acpi",
		  "/work-acpi/acpi_call.ko");
	kbw_kernel_unref(k);
}

/*
 * west-chamber's dkms.conf: PSRC=/usr/src/NAME-VERSION, another package's tree found with
 * `find /usr/src ...` at evaluation, a MAKE that links a file of that tree into its own
 * and a Makefile that prints MAKEFLAGS. In a fake root the build sees the root's usr/src
 * at /usr/src as evaluation did, and its make runs on the builds' jobserver.
 */
static void test_root_view(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *dir = NULL, *log = NULL;
	struct kbw_kernel *k = NULL;

	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(kernel_find(ctx, t->kver, &k));
	test_write_file(t->fd, "usr/src/dm2other-2.0/extensions/part.c",
			"int dm2_wc_part(void) { return 0; }\n");
	test_write_file(t->fd, "usr/src/dm2wc-1.0/extensions/Kbuild",
			"obj-m := dm2_wc.o\ndm2_wc-y := main.o part.o\n");
	test_write_file(t->fd, "usr/src/dm2wc-1.0/extensions/main.c", hello_c);
	test_write_file(t->fd, "usr/src/dm2wc-1.0/Makefile",
			"all:\n\t@echo \"dm2-makeflags: $(MAKEFLAGS)\"\n"
			"\t$(MAKE) -C $(KSRC) M=$(PSRC)/extensions modules\n");
	dir = write_pkg(
		t, "dm2wc-1.0",
		"PACKAGE_NAME=dm2wc\nPACKAGE_VERSION=1.0\n"
		"PSRC=\"/usr/src/${PACKAGE_NAME}-${PACKAGE_VERSION}\"\n"
		"OTHER=`find /usr/src -maxdepth 1 -type d -name 'dm2other-*' | sort | tail -1`\n"
		"KSRC=\"/lib/modules/$kernelver/build\"\n"
		"MAKE=\"ln -s -f ${OTHER}/extensions/part.c ${PSRC}/extensions; "
		"make KSRC=${KSRC} PSRC=${PSRC}\"\n"
		"BUILT_MODULE_NAME[0]=dm2_wc\nBUILT_MODULE_LOCATION[0]=extensions/\n"
		"DEST_MODULE_LOCATION[0]=/updates\n");
	build_pkg(t, ctx, k, dir, "work-wc", "/work-wc/extensions/dm2_wc.ko");
	log = strjoin(t->path, "/work-wc.log");
	assert_int_equal(test_system("grep -q '^dm2-makeflags: .*--jobserver-auth=3,4' '%s'", log), 0);
	assert_int_equal(test_system("grep -q 'make: warning: -j' '%s'", log), 1);
	kbw_kernel_unref(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_build),
		cmocka_unit_test(test_root_view),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
