/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dkms.conf import: fixtures are written into a fake root's usr/src by each test. */
#include <sys/utsname.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "recipe/dkms-run.h"
#include "recipe/dkms-vars.h"
#include "recipe/dkms.h"
#include "core/kernels.h"
#include "pipeline/plan.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

struct diags {
	unsigned n, n_warnings;
	unsigned lines[32];
	char *messages[32];
};

static void diag_collect(const char *file, unsigned line, const char *message,
			 void *userdata)
{
	struct diags *d = userdata;

	assert_non_null(file);
	if (startswith(message, "warning: "))
		d->n_warnings++;
	if (d->n < ELEMENTSOF(d->lines)) {
		d->lines[d->n] = line;
		d->messages[d->n] = strdup(message);
	}
	d->n++;
}

static void diags_done(struct diags *d)
{
	for (unsigned i = 0; i < MIN(d->n, (unsigned) ELEMENTSOF(d->lines)); i++)
		free(d->messages[i]);
}

/* Is there a diagnostic at line mentioning text? */
static bool diags_have(const struct diags *d, unsigned line, const char *text)
{
	for (unsigned i = 0; i < MIN(d->n, (unsigned) ELEMENTSOF(d->lines)); i++)
		if (d->lines[i] == line && strstr(d->messages[i], text))
			return true;
	for (unsigned i = 0; i < MIN(d->n, (unsigned) ELEMENTSOF(d->lines)); i++)
		fprintf(stderr, "  diag %u: %s\n", d->lines[i], d->messages[i]);
	return false;
}

/* Write ROOT/usr/src/<pkg>/dkms.conf and return the package directory. */
static char *write_pkg(struct test_root *t, const char *pkg, const char *conf)
{
	_cleanup_free_ char *rel = strjoin("usr/src/", pkg, "/dkms.conf");

	assert_non_null(rel);
	test_write_file(t->fd, rel, conf);
	return strjoin(t->path, "/usr/src/", pkg);
}

/* A context for t's root (one at a time: tests use one root each). */
static struct dm2_context *tctx(struct test_root *t)
{
	static struct dm2_context *ctx;
	static char *path;

	if (!path || !streq(path, t->path)) {
		ctx = context_free(ctx);
		free(path);
		path = strdup(t->path);
		ASSERT_OK(context_new(t->path, &ctx));
	}
	return ctx;
}

static int recipe_load_dkms(struct test_root *t, const char *dir, const char *kver,
			    const char *ksrc, const char *etc, struct diags *d,
			    struct recipe **ret)
{
	return dkms_recipe_load(&(struct dkms_load_params){.ctx = tctx(t),
							 .dir = dir,
							 .kernel_release = kver,
							 .kernel_build_dir = ksrc,
							 .overrides_dir = etc},
				diag_collect, d, ret);
}

static int load(struct test_root *t, const char *conf, const char *kver, struct diags *d,
		struct dkms_conf **ret)
{
	_cleanup_free_ char *dir = write_pkg(t, "pkg-1", conf);

	return dkms_conf_load(tctx(t), dir, kver, "x86_64", NULL, NULL, diag_collect, d, ret);
}

static void test_multi_module(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	struct diags d = {};

	ASSERT_OK(load(t,
		       "# a package with three modules\n"
		       "PACKAGE_NAME=\"multi\"\n"
		       "PACKAGE_VERSION=2.0\n"
		       "BUILT_MODULE_NAME[0]=\"foo\"\n"
		       "BUILT_MODULE_LOCATION[0]=\"src/foo/\"\n"
		       "DEST_MODULE_LOCATION[0]=\"/kernel/drivers/misc\"\n"
		       "BUILT_MODULE_NAME[1]=bar\n"
		       "BUILT_MODULE_LOCATION[1]=./src/bar\n"
		       "DEST_MODULE_NAME[1]=bar_new\n"
		       "DEST_MODULE_LOCATION[1]='/extra'\n"
		       "BUILT_MODULE_NAME[2]=baz DEST_MODULE_LOCATION[2]=/updates\n"
		       "STRIP[0]=no\n"
		       "STRIP[2]=\"yes\"\n"
		       "AUTOINSTALL=yes\n",
		       "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 0);
	assert_string_equal(c->name, "multi");
	assert_string_equal(c->version, "2.0");
	assert_true(c->autoinstall);
	assert_int_equal(c->n_modules, 3);
	assert_string_equal(c->modules[0].built_name, "foo");
	assert_string_equal(c->modules[0].built_location, "src/foo");
	assert_string_equal(c->modules[0].dest_name, "foo");
	assert_string_equal(c->modules[0].dest_location, "/kernel/drivers/misc");
	assert_false(c->modules[0].strip);
	assert_string_equal(c->modules[1].built_location, "src/bar");
	assert_string_equal(c->modules[1].dest_name, "bar_new");
	assert_false(c->modules[1].strip); /* STRIP[0] is the default for the others */
	assert_string_equal(c->modules[2].built_name, "baz");
	assert_string_equal(c->modules[2].built_location, "");
	assert_true(c->modules[2].strip);
	assert_null(c->make_command); /* no MAKE: dm2's own kbuild call */

	ASSERT_OK(dkms_conf_to_recipe(c, &r));
	assert_string_equal(r->name, "multi");
	assert_int_equal(r->origin, RECIPE_ORIGIN_DKMS);
	assert_int_equal(r->n_sources, 1);
	assert_string_equal(r->sources[0].version, "2.0");
	assert_string_equal(r->sources[0].path, c->dir);
	assert_string_equal(r->install_dir, "updates/dkms");
	assert_int_equal(r->n_modules, 3);
	assert_string_equal(r->modules[1].name, "bar");
	assert_string_equal(r->modules[1].dest_name, "bar_new");
	assert_string_equal(r->modules[1].built_location, "src/bar");
	assert_string_equal(r->modules[1].dest_dir, "updates/dkms");
	assert_non_null(strstr(r->description, "DEST_MODULE_LOCATION"));
	assert_true(r->autoinstall);
	diags_done(&d);
}

/* The admin's /etc/dkms/<m>[-<v>[-<k>[-<a>]]].conf and <m>--<k>[-<a>].conf override
 * dkms.conf, later ones winning; kernel-specific ones only for that kernel. */
static void test_overrides(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL, *other = NULL, *any = NULL,
						    *bad = NULL;
	_cleanup_(dkms_conf_freep) struct dkms_conf *indep = NULL, *indep2 = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL, *ri = NULL;
	_cleanup_free_ char *dir = NULL, *etc = strjoin(t->path, "/etc/dkms");
	struct diags d = {};
	const char *conf = "PACKAGE_NAME=ovr\nPACKAGE_VERSION=1.0\nBUILT_MODULE_NAME[0]=ovr\n"
			   "MAKE[0]=\"make one\"\nAUTOINSTALL=yes\n";
	const char *h;
	uint64_t crc;

	assert_non_null(etc);
	dir = write_pkg(t, "ovr-1.0", conf);
	test_write_file(t->fd, "etc/dkms/ovr.conf", "MAKE[0]=\"$MAKE two\"\nSTRIP[0]=no\n");
	test_write_file(t->fd, "etc/dkms/ovr-1.0-6.1.0-1-amd64.conf",
			"AUTOINSTALL=no\nBUILT_MODULE_NAME[0]=ovr_k\n");
	test_write_file(t->fd, "etc/dkms/ovr--6.1.0-1-amd64-x86_64.conf",
			"BUILT_MODULE_NAME[0]=ovr_ka\n");
	test_write_file(t->fd, "etc/dkms/other.conf", "AUTOINSTALL=no\n");

	ASSERT_OK(dkms_conf_load(tctx(t), dir, "6.1.0-1-amd64", "x86_64", NULL, etc, diag_collect, &d,
				 &c));
	assert_int_equal(d.n, 0);
	assert_string_equal(c->make, "make one two");
	assert_false(c->modules[0].strip);
	assert_false(c->autoinstall);
	assert_string_equal(c->modules[0].built_name, "ovr_ka"); /* the last one wins */
	assert_int_equal(strv_length(c->overrides), 3);
	assert_true(endswith(c->overrides[0], "/etc/dkms/ovr.conf"));

	/* Another kernel: only the package-wide override. */
	ASSERT_OK(dkms_conf_load(tctx(t), dir, "6.1.0-2-amd64", "x86_64", NULL, etc, diag_collect, &d,
				 &other));
	assert_true(other->autoinstall);
	assert_string_equal(other->modules[0].built_name, "ovr");
	assert_string_equal(other->make, "make one two");
	/* Without the overrides directory, dkms.conf alone. */
	ASSERT_OK(dkms_conf_load(tctx(t), dir, "6.1.0-2-amd64", "x86_64", NULL, NULL, diag_collect, &d,
				 &any));
	assert_string_equal(any->make, "make one");
	assert_true(any->modules[0].strip);
	assert_int_not_equal(any->content_crc, other->content_crc);

	/* The kernel-independent view (what dm2d compares) evaluates no kernel-specific
	 * override, but a change to one is a change of the package. */
	ASSERT_OK(dkms_conf_load(tctx(t), dir, NULL, "x86_64", NULL, etc, diag_collect, &d, &indep));
	assert_true(indep->autoinstall);
	assert_int_equal(strv_length(indep->overrides), 1);
	assert_int_equal(strv_length(indep->kernel_overrides), 2);
	assert_true(endswith(indep->kernel_overrides[0], "/ovr--6.1.0-1-amd64-x86_64.conf"));
	ASSERT_OK(dkms_conf_to_recipe(indep, &ri));
	ASSERT_OK(recipe_content_hash(ri, &h));
	test_write_file(t->fd, "etc/dkms/ovr--6.1.0-1-amd64-x86_64.conf",
			"BUILT_MODULE_NAME[0]=ovr_ka2\n");
	ASSERT_OK(dkms_conf_load(tctx(t), dir, NULL, "x86_64", NULL, etc, diag_collect, &d, &indep2));
	assert_int_not_equal(indep->content_crc, indep2->content_crc);

	/* The recipe's content (its sha256 for the build key) covers the overrides, and a
	 * changed override makes it stale. */
	ASSERT_OK(dkms_conf_to_recipe(other, &r));
	assert_int_equal(strv_length(r->content_more), 1);
	ASSERT_OK(recipe_content_hash(r, &h));
	crc = r->content_crc;
	test_write_file(t->fd, "etc/dkms/ovr.conf", "STRIP[0]=yes\n");
	free(r->content_hash);
	r->content_hash = NULL;
	ASSERT_ERR(recipe_content_hash(r, &h), -ESTALE);
	assert_int_equal(r->content_crc, crc);

	/* A problem in a value an override set names that file and its line. */
	test_write_file(t->fd, "etc/dkms/ovr.conf", "# fine\nBUILT_MODULE_NAME[0]=ovr.ko\n");
	d = (struct diags){};
	ASSERT_ERR(dkms_conf_load(tctx(t), dir, NULL, "x86_64", NULL, etc, diag_collect, &d, &bad),
		   -EBADMSG);
	assert_true(diags_have(&d, 2, "must be given without '.ko'"));
	diags_done(&d);
}

/* An override that names the package anew: the kernel overrides are still looked up by
 * dkms.conf's name ($module, as DKMS does). */
static void test_override_renames_package(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *renamed = NULL;
	_cleanup_free_ char *dir = NULL, *etc = strjoin(t->path, "/etc/dkms");
	struct diags d = {};

	assert_non_null(etc);
	dir = write_pkg(t, "ovr-1.0",
			"PACKAGE_NAME=ovr\nPACKAGE_VERSION=1.0\nBUILT_MODULE_NAME[0]=ovr\n");
	test_write_file(t->fd, "etc/dkms/ovr-1.0.conf",
			"PACKAGE_NAME=renamed\nPACKAGE_VERSION=9.9\n");
	test_write_file(t->fd, "etc/dkms/ovr--6.1.0-1-amd64.conf", "STRIP[0]=no\n");
	test_write_file(t->fd, "etc/dkms/ovr--6.1.0-1-amd64-x86_64.conf", "STRIP[0]=no\n");
	ASSERT_OK(dkms_conf_load(tctx(t), dir, NULL, "x86_64", NULL, etc, diag_collect, &d,
				 &renamed));
	assert_string_equal(renamed->name, "renamed");
	assert_int_equal(strv_length(renamed->overrides), 1);
	assert_int_equal(strv_length(renamed->kernel_overrides), 2);
	diags_done(&d);
}

static void test_patches(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *p0 = NULL;
	struct diags d = {};

	test_write_file(t->fd, "usr/src/pkg-1/patches/a.patch", "");
	test_write_file(t->fd, "usr/src/pkg-1/patches/b.patch", "");
	test_write_file(t->fd, "usr/src/pkg-1/patches/sub/c.patch", "");
	ASSERT_OK(load(t,
		       "PACKAGE_NAME=pkg\n"
		       "PACKAGE_VERSION=1\n"
		       "BUILT_MODULE_NAME[0]=pkg\n"
		       "PATCH[0]=\"a.patch\"\n"
		       "PATCH[1]=b.patch\n"
		       "PATCH_MATCH[1]=\"^6\\.[0-9]+\"\n"
		       "PATCH[2]=sub/c.patch\n"
		       "PATCH_MATCH[2]='^5\\.'\n"
		       "AUTOINSTALL=no\n",
		       "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 0);
	assert_false(c->autoinstall);
	assert_int_equal(c->n_patches, 3);
	assert_string_equal(c->patches[0].file, "a.patch");
	assert_null(c->patches[0].match);
	assert_string_equal(c->patches[1].file, "b.patch");
	assert_string_equal(c->patches[1].match, "^6\\.[0-9]+");
	assert_string_equal(c->patches[2].file, "sub/c.patch");
	assert_string_equal(c->patches[2].match, "^5\\.");

	ASSERT_OK(dkms_conf_to_recipe(c, &r));
	assert_int_equal(r->sources[0].n_patches, 3);
	p0 = strjoin(t->path, "/usr/src/pkg-1/patches/a.patch");
	assert_string_equal(r->sources[0].patches[0].path, p0);
	assert_string_equal(r->sources[0].patches[2].match, "^5\\.");
	diags_done(&d);
}

static const char *config_acpi_only(const char *option, void *userdata)
{
	return streq(option, "CONFIG_ACPI") ? "y" : NULL;
}

static void test_exclusive(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *reason = NULL;
	struct plan p = {};
	struct diags d = {};

	ASSERT_OK(load(t,
		       "PACKAGE_NAME=excl\n"
		       "PACKAGE_VERSION=1\n"
		       "BUILD_EXCLUSIVE_ARCH=\"aarch64|arm.*\"\n"
		       "BUILD_EXCLUSIVE_KERNEL=\"^6\\.\"\n"
		       "BUILD_EXCLUSIVE_KERNEL_MIN=\"5.10\"\n"
		       "BUILD_EXCLUSIVE_KERNEL_MAX=6.8\n"
		       "BUILD_EXCLUSIVE_CONFIG=\"CONFIG_ACPI !CONFIG_FOO\"\n"
		       "BUILD_DEPENDS=(base other)\n",
		       NULL, &d, &c));
	assert_int_equal(d.n, 1); /* warning: no modules */
	assert_int_equal(d.n_warnings, 1);
	ASSERT_OK(dkms_conf_to_recipe(c, &r));
	assert_string_equal(r->require_config[0], "CONFIG_ACPI");
	assert_string_equal(r->require_config[1], "!CONFIG_FOO");
	assert_null(r->require_config[2]);
	assert_string_equal(r->needs[0], "base");
	assert_string_equal(r->needs[1], "other");

	assert_false(dkms_applies(r, "6.1.0-56-amd64", "6.1.0", "x86_64", &reason));
	assert_non_null(strstr(reason, "BUILD_EXCLUSIVE_ARCH"));
	reason = mfree(reason);
	assert_true(dkms_applies(r, "6.1.0-56-amd64", "6.1.0", "aarch64", NULL));
	assert_false(dkms_applies(r, "5.15.0-1-arm64", "5.15.0", "aarch64", &reason));
	assert_non_null(strstr(reason, "BUILD_EXCLUSIVE_KERNEL '^6\\.'"));
	reason = mfree(reason);
	assert_false(dkms_applies(r, "6.9.1-arm64", "6.9.1", "aarch64", &reason));
	assert_non_null(strstr(reason, "MIN/MAX"));

	/* The plan skips the arch and honours BUILD_EXCLUSIVE_CONFIG through
	 * RequireConfig. */
	ASSERT_OK(plan_recipe_for(r, "6.1.0-56-amd64", "6.1.0", "x86_64",
				  config_acpi_only, NULL, true, &p));
	assert_false(p.applicable);
	plan_done(&p);
	ASSERT_OK(plan_recipe_for(r, "6.1.0-56-arm64", "6.1.0", "aarch64",
				  config_acpi_only, NULL, true, &p));
	assert_true(p.applicable);
	plan_done(&p);
	ASSERT_OK(plan_recipe_for(r, "6.1.0-56-arm64", "6.1.0", "aarch64", NULL, NULL,
				  true, &p));
	assert_false(p.applicable);
	assert_non_null(strstr(p.skip_reason, "CONFIG_ACPI"));
	plan_done(&p);
	diags_done(&d);
}

static void test_make(void **state)
{
	static const char conf[] = "PACKAGE_NAME=mk\n"
				   "PACKAGE_VERSION=1.0\n"
				   "BUILT_MODULE_NAME=mk\n"
				   "MAKE[0]=\"make -C ${kernel_source_dir} M=\\$(pwd) "
				   "-j$(nproc) KVER=$kernelver "
				   "A=`uname -m` U=$(uname -r) CPUS=$(getconf "
				   "_NPROCESSORS_ONLN) T=$dkms_tree "
				   "S=$source_tree/${PACKAGE_NAME}-${PACKAGE_VERSION}\"\n"
				   "MAKE_MATCH[1]=\"^5\\.\"\n"
				   "MAKE[1]='make old'\n"
				   "MAKE_MATCH[2]=\"^6\\.1\"\n"
				   "MAKE[2]=\"make new KV=${kernelver%%-*} "
				   "B=$dkms_tree/$PACKAGE_NAME/$PACKAGE_VERSION/build\"\n"
				   "CLEAN=\"make clean\"\n";
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL, *c5 = NULL, *c4 = NULL;
	_cleanup_free_ char *expect = NULL;
	long np = sysconf(_SC_NPROCESSORS_ONLN);
	struct utsname u;
	struct diags d = {};

	ASSERT_OK(load(t, conf, "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 0);
	assert_string_equal(c->make, "make new KV=6.1.0 B=/var/lib/dkms/mk/1.0/build");
	/* No -jN: the builds' jobserver comes in MAKEFLAGS, and -jN would leave it. */
	assert_string_equal(c->make_command, "make KERNELRELEASE=6.1.0-56-amd64 new KV=6.1.0 B=$PWD");
	assert_string_equal(c->clean, "make clean");
	expect = mfree(expect);

	ASSERT_OK(load(t, conf, "5.10.0-9-amd64", &d, &c5));
	assert_string_equal(c5->make, "make old");

	ASSERT_OK(load(t, conf, "4.19.0", &d, &c4));
	/* bash runs uname: the machine's kernel, as under DKMS. */
	assert_int_equal(uname(&u), 0);
	assert_true(
		asprintf(&expect,
			 "make -C /lib/modules/4.19.0/build M=$(pwd) -j%ld KVER=4.19.0 "
			 "A=x86_64 U=%s CPUS=%ld T=/var/lib/dkms S=/usr/src/mk-1.0",
			 np, u.release, np) > 0);
	assert_string_equal(c4->make, expect);
	expect = mfree(expect);
	/* The package's own -j$(nproc) stays: the packager asked for it. */
	assert_true(
		asprintf(&expect,
			 "make KERNELRELEASE=4.19.0 -C /lib/modules/4.19.0/build "
			 "M=$(pwd) -j%ld KVER=4.19.0 A=x86_64 U=%s CPUS=%ld "
			 "T=/var/lib/dkms S=$PWD",
			 np, u.release, np) > 0);
	assert_string_equal(c4->make_command, expect);
	assert_int_equal(d.n, 0);
	diags_done(&d);
}

/* MakeJobs= fixes -jN (and then there is no jobserver): DKMS' rewrite keeps it. */
static void test_make_fixed_jobs(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	struct diags d = {};

	test_write_file(t->fd, "etc/dm2/dm2d.conf", "[Build]\nMakeJobs=3\n");
	ASSERT_OK(load(t, "PACKAGE_NAME=mj\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=mj\n"
		       "MAKE=\"make all\"\n", "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 0);
	assert_string_equal(c->make_command, "make -j3 KERNELRELEASE=6.1.0-56-amd64 all");
	diags_done(&d);
}

static void test_crlf(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	struct diags d = {};

	ASSERT_OK(load(t,
		       "PACKAGE_NAME=\"crlf\"\r\n"
		       "PACKAGE_VERSION=0.9\r\n"
		       "MAKE[0]=\"make -C ${kernel_source_dir} \\\r\n"
		       "  M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build\"\r\n"
		       "BUILT_MODULE_NAME[0]=crlf\r\n"
		       "DEST_MODULE_LOCATION[0]=\"/updates/dkms\"\r\n"
		       "AUTOINSTALL=yes\r\n",
		       "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 0);
	assert_string_equal(c->name, "crlf");
	assert_string_equal(c->version, "0.9");
	assert_string_equal(c->modules[0].built_name, "crlf");
	assert_true(c->autoinstall);
	/* DKMS' default make call: dm2 uses its own kbuild invocation. */
	assert_null(c->make_command);
	diags_done(&d);
}

/* What packagers write (v4l2loopback, openafs, iptables-netflow, west-chamber) is bash,
 * and bash reads it, with DKMS' variables. */
static void test_bash_constructs(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	struct diags d = {};

	test_write_file(t->fd, "usr/src/pkg-1/helper.sh", "HELPER=from-helper\n");
	ASSERT_OK(load(t,
		       "PACKAGE_NAME=\"bash\"\n"
		       "pushd `dirname $BASH_SOURCE` >/dev/null\n"
		       ". ./helper.sh\n"
		       "PACKAGE_VERSION=1.0\n"
		       "popd >/dev/null\n"
		       "ARCH=`echo \"$kernelver\" | cut -d- -f3`\n"
		       "case \"$ARCH\" in amd64) S=amd64_linux ;; *) S=other ;; esac\n"
		       "if ! { echo \"$kernelver\"; echo 5.18; } | sort -V -C; then NEW=y; fi\n"
		       "f() { echo \"$1-$2\"; }\n"
		       "BUILT_MODULE_NAME[0]=$(f $S $NEW)\n"
		       "MAKE[0]=\"make KVER=$kernelver ARCH=$arch SRC=$source_tree "
		       "TREE=$dkms_tree M=$module/$module_version H=$HELPER "
		       "K=$kernel_source_dir C=${kernel_config##*/} J=$(nproc | tr -c -d 0-9 | "
		       "head -c 0)\"\n"
		       "for i in 1 2; do BUILT_MODULE_NAME[$i]=m$i; done\n"
		       "AUTOINSTALL=yes\n",
		       "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 0);
	assert_string_equal(c->version, "1.0");
	assert_int_equal(c->n_modules, 3);
	assert_string_equal(c->modules[0].built_name, "amd64_linux-y");
	assert_string_equal(c->modules[2].built_name, "m2");
	assert_string_equal(c->make,
			    "make KVER=6.1.0-56-amd64 ARCH=x86_64 SRC=/usr/src "
			    "TREE=/var/lib/dkms M=bash/1.0 H=from-helper "
			    "K=/lib/modules/6.1.0-56-amd64/build C=.config J=");
	assert_string_equal(dkms_vars_get(c->vars, "dm2_module", 0), "bash");
	diags_done(&d);
}

/* The dump's parser takes exactly what the runner prints, and nothing else. */
static void check_dump_bad(const char *data, size_t size, const char *error)
{
	_cleanup_(dkms_vars_freep) struct dkms_vars *v = NULL;
	_cleanup_free_ char *e = NULL;

	ASSERT_ERR(dkms_vars_parse(data, size, &v, &e), -EBADMSG);
	assert_null(v);
	if (!e || !strstr(e, error))
		fail_msg("error '%s' does not contain '%s'", strna(e), error);
	assert_null(strchr(e, '\n'));
}

static void test_dump_parser(void **state)
{
	static const char good[] = "PACKAGE_NAME\0" "0\0" "x\0"
				   "MAKE\0" "12\0" "make\nall\0"
				   "BUILT_MODULE_NAME\0" "0\0" "\0"
				   "dm2_module\0" "0\0" "x";
	_cleanup_(dkms_vars_freep) struct dkms_vars *v = NULL;

	ASSERT_OK(dkms_vars_parse(good, sizeof(good), &v, NULL));
	assert_string_equal(dkms_vars_get(v, "PACKAGE_NAME", 0), "x");
	assert_string_equal(dkms_vars_get(v, "MAKE", 12), "make\nall");
	assert_int_equal(dkms_vars_size(v, "MAKE"), 13);
	assert_string_equal(dkms_vars_get(v, "BUILT_MODULE_NAME", 0), "");
	dkms_vars_free(TAKE_PTR(v));
	ASSERT_OK(dkms_vars_parse("", 0, &v, NULL));
	assert_int_equal(dkms_vars_size(v, "MAKE"), 0);

	check_dump_bad("MAKE\0" "0\0" "x", 7, "the value is not terminated");
	check_dump_bad("MAKE\0" "0", 6, "the index is not terminated");
	check_dump_bad("EVIL\0" "0\0" "x", 9, "'EVIL' is not a DKMS directive");
	check_dump_bad("MA KE\0" "0\0" "x", 10, "is not a variable name");
	/* found by fuzz-dkms-vars: the name quoted in the error had a newline */
	check_dump_bad("MAMA\nE\0" "0\0" "x", 10, "'MAMA?E' is not a variable name");
	check_dump_bad("MAKE\0" "01\0" "x", 10, "index '01' of 'MAKE'");
	check_dump_bad("MAKE\0" "-1\0" "x", 10, "not a plain decimal");
	check_dump_bad("MAKE\0" "key\0" "x", 11, "not a plain decimal");
	check_dump_bad("MAKE\0" "100000\0" "x", 14, "too large");
	check_dump_bad("MAKE\0" "0\0" "a\0" "MAKE\0" "0\0" "b", 18,
		       "record 2: 'MAKE[0]' appears twice");
}

/* The dkms.conf of an attacker: each try fails inside the sandbox, and the file is
 * rejected with one line saying why. */
static void check_hostile(struct test_root *t, const char *body, const char *why)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_free_ char *conf = strjoin("PACKAGE_NAME=evil\nPACKAGE_VERSION=1\n"
					    "BUILT_MODULE_NAME=evil\n", body);
	struct diags d = {};
	int r;

	r = load(t, conf, t->kver, &d, &c);
	if (why) {
		assert_int_equal(r, -EBADMSG);
		if (!diags_have(&d, 0, why))
			fail_msg("no diagnostic '%s' for:\n%s", why, body);
		for (unsigned i = 0; i < MIN(d.n, (unsigned) ELEMENTSOF(d.messages)); i++)
			assert_null(strchr(d.messages[i], '\n'));
	}
	diags_done(&d);
}

static void test_hostile(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *key = NULL;
	struct stat st;

	test_write_file(t->fd, "var/lib/dm2/keys/signing_key.pem", "SECRET KEY\n");
	assert_int_equal(fchmodat(t->fd, "var/lib/dm2/keys/signing_key.pem", 0600, 0), 0);
	assert_int_equal(fchmodat(t->fd, "var/lib/dm2/keys", 0700, 0), 0);
	key = strjoin(t->path, "/var/lib/dm2/keys/signing_key.pem");

	/* Writing outside: the file system is read-only, /tmp private. */
	check_hostile(t,
		      "touch /etc/dm2-pwned " "$source_tree/pwned /tmp/x 2>/dev/null\n"
		      "echo x > /usr/src/pkg-1/pwned\n"
		      "[ -e /etc/dm2-pwned ] || [ -e /usr/src/pkg-1/pwned ] || MAKE=safe\n",
		      NULL);
	assert_int_equal(faccessat(t->fd, "usr/src/pkg-1/pwned", F_OK, 0), -1);
	assert_int_equal(access("/etc/dm2-pwned", F_OK), -1);
	/* Reaching the network or the signing key: nothing. */
	check_hostile(t,
		      "exec 9<>/dev/tcp/127.0.0.1/22 || BUILD_EXCLUSIVE_KERNEL=nonet\n"
		      "ip link 2>/dev/null | grep -q 'eth\\|ens' && BUILD_EXCLUSIVE_KERNEL=net\n",
		      NULL);
	{
		_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
		_cleanup_free_ char *body = strjoin("PACKAGE_NAME=evil\nPACKAGE_VERSION=1\n"
						    "MAKE=\"$(cat ", key,
						    " /var/lib/dm2/keys/signing_key.pem "
						    "2>&1)\"\n");
		struct diags d = {};

		ASSERT_OK(load(t, body, t->kver, &d, &c));
		/* Under /tmp the root is out of sight; elsewhere the key is root's 0600. */
		assert_null(strstr(c->make, "SECRET"));
		assert_true(strstr(c->make, "No such file") ||
			    strstr(c->make, "Permission denied"));
		diags_done(&d);
	}
	/* Looping forever: the time limit. */
	check_hostile(t, "while :; do :; done\n", "timed out after 30 s");
	/* A daemon left behind dies with the PID namespace; the result comes back. */
	check_hostile(t, "(setsid sleep 1000 >/dev/null 2>&1 &)\n", NULL);
	assert_int_not_equal(test_system("pgrep -x -f 'sleep 1000' >/dev/null"), 0);
	/* Too much output. */
	check_hostile(t, "MAKE=$(head -c 2000000 /dev/zero | tr '\\0' x)\n",
		      "cannot be evaluated");
	/* Issue 12, attack 6, against the old evaluator: a string doubled 40 times (the
	 * sandbox's memory limit stops bash), and expansions nested 20,000 deep. Either ends
	 * in a one-line reason or a result; never a crash of dm2 or memory of the machine. */
	check_hostile(t, "A=x\nfor i in $(seq 40); do A=\"$A$A\"; done\nMAKE=\"$A\"\n", NULL);
	{
		_cleanup_free_ char *deep = malloc(20000 * 6 + 64);
		char *p = deep;

		assert_non_null(deep);
		p = stpcpy(p, "MAKE=\"");
		for (int i = 0; i < 20000; i++)
			p = stpcpy(p, "${a:-");
		for (int i = 0; i < 20000; i++)
			*p++ = '}';
		(void) stpcpy(p, "\"\n");
		check_hostile(t, deep, NULL);
	}
	(void) st;
}

/* A result is cached per (content, overrides, kernel); a change is seen at once. */
static void test_cache(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *a = NULL, *b = NULL, *c2 = NULL,
						    *e = NULL;
	_cleanup_free_ char *dir = NULL, *etc = strjoin(t->path, "/etc/dkms");
	struct diags d = {};
	uint64_t t0, t1, t2;

	dir = write_pkg(t, "cache-1", "PACKAGE_NAME=cache\nPACKAGE_VERSION=1\n"
				      "BUILT_MODULE_NAME=cache\nMAKE=\"make $(date +%N)\"\n");
	t0 = now_mono_usec();
	ASSERT_OK(dkms_conf_load(tctx(t), dir, t->kver, "x86_64", NULL, etc, diag_collect,
				 &d, &a));
	t1 = now_mono_usec();
	ASSERT_OK(dkms_conf_load(tctx(t), dir, t->kver, "x86_64", NULL, etc, diag_collect,
				 &d, &b));
	t2 = now_mono_usec();
	fprintf(stderr, "dkms.conf evaluation: %llu us, cached: %llu us\n",
		(unsigned long long) (t1 - t0), (unsigned long long) (t2 - t1));
	assert_string_equal(a->make, b->make); /* date +%N ran once */
	/* An override appearing is a change. */
	test_write_file(t->fd, "etc/dkms/cache.conf", "MAKE=\"make over\"\n");
	ASSERT_OK(dkms_conf_load(tctx(t), dir, t->kver, "x86_64", NULL, etc, diag_collect,
				 &d, &c2));
	assert_string_equal(c2->make, "make over");
	/* A broken file is reported when evaluated, then quietly from the cache. */
	free(write_pkg(t, "cache-1", "PACKAGE_NAME=cache\nPACKAGE_VERSION=1\n"
				     "BUILT_MODULE_NAME=cache.ko\n"));
	diags_done(&d);
	d = (struct diags){};
	ASSERT_ERR(dkms_conf_load(tctx(t), dir, t->kver, "x86_64", NULL, etc, diag_collect,
				  &d, &e), -EBADMSG);
	assert_int_equal(d.n, 1);
	diags_done(&d);
	d = (struct diags){};
	ASSERT_ERR(dkms_conf_load(tctx(t), dir, t->kver, "x86_64", NULL, etc, diag_collect,
				  &d, &e), -EBADMSG);
	assert_int_equal(d.n, 0);
	diags_done(&d);
}

/* A malformed dkms.conf fails with one diagnostic at the expected line. */
static void check_bad(const char *conf, unsigned line, const char *text)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	struct diags d = {};

	ASSERT_ERR(load(t, conf, "6.1.0-56-amd64", &d, &c), -EBADMSG);
	assert_null(c);
	if (!diags_have(&d, line, text))
		fail_msg("no diagnostic at line %u containing '%s' for:\n%s", line, text,
			 conf);
	diags_done(&d);
}

static void test_malformed(void **state)
{
	check_bad("", 1, "no directives");
	check_bad("# only a comment\n\n", 1, "no directives");
	check_bad("PACKAGE_VERSION=1\nBUILT_MODULE_NAME=x\n", 0,
		  "PACKAGE_NAME is not set");
	check_bad("PACKAGE_NAME=x\n", 0, "PACKAGE_VERSION is not set");
	check_bad(
		"PACKAGE_NAME=x\nPACKAGE_VERSION=1\nPATCH[0]=\"../../etc/evil.patch\"\n",
		3, "no '..'");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\n\nPATCH[0]=/tmp/abs.patch\n", 4,
		  "absolute path");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nPATCH[0]=missing.patch\n", 3,
		  "not found");
	/* bash stops at a syntax error: nothing is set. */
	check_bad("PACKAGE_NAME=\"x\nPACKAGE_VERSION=1\n", 1, "no directives");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nset -e\nfalse\n", 0,
		  "exited with status 1");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a\n"
		  "DEST_MODULE_LOCATION[0]=/extra\nDEST_MODULE_LOCATION[1]=/extra\n",
		  5, "no BUILT_MODULE_NAME for record #1");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a\n"
		  "BUILT_MODULE_NAME[2]=b\n",
		  3, "no BUILT_MODULE_NAME for record #1");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a.ko\n", 3,
		  "without '.ko'");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a\n"
		  "BUILT_MODULE_NAME[1]=b\nDEST_MODULE_NAME[1]=a\n",
		  4, "duplicate DEST_MODULE_NAME 'a'");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nAUTOINSTALL=maybe\n", 3,
		  "AUTOINSTALL");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILD_EXCLUSIVE_CONFIG=\"ACPI\"\n",
		  3, "BUILD_EXCLUSIVE_CONFIG entry 'ACPI'");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILD_EXCLUSIVE_KERNEL=\"(\"\n", 3,
		  "not a valid extended regular expression");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nDEST_MODULE_LOCATION=/opt\n", 3,
		  "must begin with");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_LOCATION=../up\n", 3,
		  "inside the package");
}

static void test_scripts(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	struct diags d = {};

	ASSERT_OK(
		load(t,
		     "PACKAGE_NAME=s\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=s\n"
		     "PRE_BUILD=\"configure --kernel=$kernelver\"\nPOST_INSTALL=post.sh\n"
		     "REMAKE_INITRD=yes\nOBSOLETE_BY=6.2\nPOST_BUILD=after.sh\n",
		     "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 1);
	assert_int_equal(d.n_warnings, 1);
	assert_true(diags_have(&d, 5, "POST_INSTALL 'post.sh' is not run: dm2 runs no "
				      "package script as root"));
	assert_string_equal(c->pre_build, "configure --kernel=6.1.0-56-amd64");
	assert_string_equal(c->post_build, "after.sh");
	assert_string_equal(c->scripts[0], "POST_INSTALL=post.sh");
	assert_string_equal(c->exclusive_kernel_max, "6.2");
	ASSERT_OK(dkms_conf_to_recipe(c, &r));
	assert_string_equal(r->dkms_pre_build, "configure --kernel=6.1.0-56-amd64");
	diags_done(&d);
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nPRE_BUILD=../up.sh\n", 3,
		  "must name a script inside the package");
}

static void test_scan(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_strv_free_ char **dirs = NULL, **none = NULL;
	_cleanup_free_ char *a = NULL, *b = NULL;

	ASSERT_OK(dkms_scan(t->fd, t->path, &none));
	assert_null(none);
	test_write_file(t->fd, "usr/src/zz-2/dkms.conf", "PACKAGE_NAME=zz\n");
	test_write_file(t->fd, "usr/src/aa-1/dkms.conf", "PACKAGE_NAME=aa\n");
	test_write_file(t->fd, "usr/src/linux-headers-x/Makefile", "");
	ASSERT_OK(dkms_scan(t->fd, t->path, &dirs));
	assert_int_equal(strv_length(dirs), 2);
	a = strjoin(t->path, "/usr/src/aa-1");
	b = strjoin(t->path, "/usr/src/zz-2");
	assert_string_equal(dirs[0], a);
	assert_string_equal(dirs[1], b);
}

static void test_real_acpi_call(void **state)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL, *any = NULL;
	const char *dir = test_acpi_call_dir();
	struct diags d = {};

	/* CI installs acpi-call-dkms (.ci/setup): a missing tree must fail, not pass. */
	if (!dir)
		fail_msg("/usr/src/acpi-call-*/dkms.conf is missing: apt-get install acpi-call-dkms");
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();

	ASSERT_OK(recipe_load_dkms(t, dir, TEST_FAKE_KVER, NULL, NULL, &d, &r));
	assert_int_equal(d.n, 0);
	assert_string_equal(r->name, "acpi-call");
	assert_int_equal(r->origin, RECIPE_ORIGIN_DKMS);
	assert_string_equal(r->sources[0].version, dir + strlen("/usr/src/acpi-call-"));
	assert_string_equal(r->sources[0].path, dir);
	assert_int_equal(r->n_modules, 1);
	assert_string_equal(r->modules[0].name, "acpi_call");
	assert_string_equal(r->modules[0].dest_dir, "updates/dkms");
	assert_true(r->autoinstall);
	assert_string_equal(r->require_config[0], "CONFIG_ACPI");
	assert_null(r->make_command); /* its MAKE is DKMS' default kbuild call */
	assert_non_null(r->clean_command);
	assert_null(r->license); /* judged from the built module */
	assert_true(dkms_applies(r, TEST_FAKE_KVER, NULL, "x86_64", NULL));
	ASSERT_OK(recipe_load_dkms(t, dir, NULL, NULL, NULL, &d, &any));
	assert_string_equal(any->modules[0].name, "acpi_call");
	diags_done(&d);
}

static void test_cli(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *dm2 = test_build_path("dm2"), *out = NULL, *good = NULL,
			    *bad = NULL;

	good = write_pkg(t, "good-1",
			 "PACKAGE_NAME=good\nPACKAGE_VERSION=1\nAUTOINSTALL=yes\n"
			 "BUILT_MODULE_NAME=good\n");
	bad = write_pkg(t, "bad-2", "PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=bad.ko\n");
	assert_int_equal(test_system("%s --root %s dkms import %s -k %s >/dev/null", dm2,
				     t->path, good, t->kver),
			 0);
	assert_int_equal(test_system("%s --root %s dkms import %s --json | grep -q "
				     "'\"name\": \"good\"'",
				     dm2, t->path, good),
			 0);
	assert_int_equal(test_system("%s --root %s dkms import %s 2>%s/err", dm2, t->path,
				     bad, t->path),
			 3);
	assert_int_equal(test_system("grep -q 'dkms.conf:3: BUILT_MODULE_NAME.* without' %s/err",
				     t->path),
			 0);
	assert_int_equal(
		test_system("%s --root %s dkms import %s/nonexistent 2>/dev/null", dm2,
			    t->path, t->path),
		4);
	assert_int_equal(
		test_system("%s --root %s dkms list >%s/list", dm2, t->path, t->path), 0);
	assert_int_equal(test_system("grep -q '^good .* yes .*ok$' %s/list", t->path), 0);
	assert_int_equal(test_system("grep -q '^bad-2 .*invalid: .*dkms.conf:3:' %s/list",
				     t->path),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multi_module),
		cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_override_renames_package),
		cmocka_unit_test(test_patches),
		cmocka_unit_test(test_exclusive),
		cmocka_unit_test(test_make),
		cmocka_unit_test(test_make_fixed_jobs),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_bash_constructs),
		cmocka_unit_test(test_dump_parser),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_real_acpi_call),
		cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
