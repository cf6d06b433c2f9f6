/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dkms.conf import: fixtures are written into a fake root's usr/src by each test. */
#include <fcntl.h>
#include <sys/wait.h>

#include "recipe/dkms-eval.h"
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

static int load(struct test_root *t, const char *conf, const char *kver, struct diags *d,
		struct dkms_conf **ret)
{
	_cleanup_free_ char *dir = write_pkg(t, "pkg-1", conf);

	return dkms_conf_load(dir, kver, "x86_64", NULL, NULL, diag_collect, d, ret);
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

/* The kernel-independent view (what dm2d compares) of the ovr package: it evaluates no
 * kernel-specific override, but a change to one is a change of the package. */
static void check_overrides_kernel_independent(struct test_root *t, const char *dir,
					       const char *etc)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *indep = NULL, *indep2 = NULL;
	_cleanup_(recipe_unrefp) struct recipe *ri = NULL;
	struct diags d = {};
	const char *h;

	ASSERT_OK(dkms_conf_load(dir, NULL, "x86_64", NULL, etc, diag_collect, &d, &indep));
	assert_true(indep->autoinstall);
	assert_int_equal(strv_length(indep->overrides), 1);
	assert_int_equal(strv_length(indep->kernel_overrides), 2);
	assert_true(endswith(indep->kernel_overrides[0], "/ovr--6.1.0-1-amd64-x86_64.conf"));
	ASSERT_OK(dkms_conf_to_recipe(indep, &ri));
	ASSERT_OK(recipe_content_hash(ri, &h));
	test_write_file(t->fd, "etc/dkms/ovr--6.1.0-1-amd64-x86_64.conf",
			"BUILT_MODULE_NAME[0]=ovr_ka2\n");
	ASSERT_OK(dkms_conf_load(dir, NULL, "x86_64", NULL, etc, diag_collect, &d, &indep2));
	assert_int_not_equal(indep->content_crc, indep2->content_crc);
	diags_done(&d);
}

/* An override that names the package anew (found by fuzz-dkms-conf): the kernel overrides
 * are still looked up by dkms.conf's name, not through freed memory. */
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
	ASSERT_OK(dkms_conf_load(dir, NULL, "x86_64", NULL, etc, diag_collect, &d, &renamed));
	assert_string_equal(renamed->name, "renamed");
	assert_int_equal(strv_length(renamed->overrides), 1);
	assert_int_equal(strv_length(renamed->kernel_overrides), 2);
	diags_done(&d);
}

/* The admin's /etc/dkms/<m>[-<v>[-<k>[-<a>]]].conf and <m>--<k>[-<a>].conf override
 * dkms.conf, later ones winning; kernel-specific ones only for that kernel. */
static void test_overrides(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL, *other = NULL, *any = NULL,
						    *bad = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
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

	ASSERT_OK(dkms_conf_load(dir, "6.1.0-1-amd64", "x86_64", NULL, etc, diag_collect, &d,
				 &c));
	assert_int_equal(d.n, 0);
	assert_string_equal(c->make, "make one two");
	assert_false(c->modules[0].strip);
	assert_false(c->autoinstall);
	assert_string_equal(c->modules[0].built_name, "ovr_ka"); /* the last one wins */
	assert_int_equal(strv_length(c->overrides), 3);
	assert_true(endswith(c->overrides[0], "/etc/dkms/ovr.conf"));

	/* Another kernel: only the package-wide override. */
	ASSERT_OK(dkms_conf_load(dir, "6.1.0-2-amd64", "x86_64", NULL, etc, diag_collect, &d,
				 &other));
	assert_true(other->autoinstall);
	assert_string_equal(other->modules[0].built_name, "ovr");
	assert_string_equal(other->make, "make one two");
	/* Without the overrides directory, dkms.conf alone. */
	ASSERT_OK(dkms_conf_load(dir, "6.1.0-2-amd64", "x86_64", NULL, NULL, diag_collect, &d,
				 &any));
	assert_string_equal(any->make, "make one");
	assert_true(any->modules[0].strip);
	assert_int_not_equal(any->content_crc, other->content_crc);

	check_overrides_kernel_independent(t, dir, etc);

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

	/* A problem in an override names that file and its line. */
	test_write_file(t->fd, "etc/dkms/ovr.conf", "# fine\nX=$(rm -rf /)\n");
	d = (struct diags){};
	ASSERT_ERR(dkms_conf_load(dir, NULL, "x86_64", NULL, etc, diag_collect, &d, &bad),
		   -EBADMSG);
	assert_true(diags_have(&d, 2, "cannot be evaluated"));
	diags_done(&d);
	/* Also when the problem is found after evaluation, in the value an override set. */
	test_write_file(t->fd, "etc/dkms/ovr.conf", "# fine\nBUILT_MODULE_NAME[0]=ovr.ko\n");
	d = (struct diags){};
	bad = dkms_conf_free(bad);
	ASSERT_ERR(dkms_conf_load(dir, NULL, "x86_64", NULL, etc, diag_collect, &d, &bad),
		   -EBADMSG);
	assert_true(diags_have(&d, 2, "must be given without '.ko'"));
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
	struct diags d = {};

	ASSERT_OK(load(t, conf, "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 0);
	assert_string_equal(c->make, "make new KV=6.1.0 B=/var/lib/dkms/mk/1.0/build");
	assert_true(asprintf(&expect,
			     "make -j%ld KERNELRELEASE=6.1.0-56-amd64 new KV=6.1.0 "
			     "B=$PWD",
			     np) > 0);
	assert_string_equal(c->make_command, expect);
	assert_string_equal(c->clean, "make clean");
	expect = mfree(expect);

	ASSERT_OK(load(t, conf, "5.10.0-9-amd64", &d, &c5));
	assert_string_equal(c5->make, "make old");

	ASSERT_OK(load(t, conf, "4.19.0", &d, &c4));
	assert_true(
		asprintf(&expect,
			 "make -C /lib/modules/4.19.0/build M=$(pwd) -j%ld KVER=4.19.0 "
			 "A=x86_64 U=4.19.0 CPUS=%ld T=/var/lib/dkms S=/usr/src/mk-1.0",
			 np, np) > 0);
	assert_string_equal(c4->make, expect);
	expect = mfree(expect);
	assert_true(
		asprintf(&expect,
			 "make -j%ld KERNELRELEASE=4.19.0 -C /lib/modules/4.19.0/build "
			 "M=$(pwd) -j%ld KVER=4.19.0 A=x86_64 U=4.19.0 CPUS=%ld "
			 "T=/var/lib/dkms S=/usr/src/mk-1.0",
			 np, np, np) > 0);
	assert_string_equal(c4->make_command, expect);
	assert_int_equal(d.n, 0);
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

static void test_eval_subset(void **state)
{
	static const char text[] = "W=\"four five\"\n"
				   "X=(one \"two three\" $W)   # comment\n"
				   "A=1 B=2; C=3\n"
				   "N=${#X[@]} L=${#W}\n"
				   "J=\"${X[@]}\"\n"
				   "D=${UNSET:-def} E=${W:+set} F=${W#* } G=${W%% *}\n"
				   "H=${X[1]// /-} I=${W/o/0}\n"
				   "K='single $W \\' \n"
				   "M=\"esc \\\" \\$W \\\\ \"\n"
				   "X+=(six)\n"
				   "export P=exported\n"
				   "Q=a\\\n"
				   "b\n"
				   "R=`uname -r`\n";
	_cleanup_(dkms_vars_freep) struct dkms_vars *v = NULL;
	struct dkms_eval_params p = { .kernelver = "6.1.0-56-amd64",
				      .arch = "x86_64",
				      .nproc = 2 };
	struct diags d = {};

	ASSERT_OK(dkms_vars_new(&v));
	ASSERT_OK(dkms_eval("t.conf", text, strlen(text), v, &p, diag_collect, &d));
	assert_int_equal(d.n, 0);
	assert_string_equal(dkms_vars_get(v, "X", 0), "one");
	assert_string_equal(dkms_vars_get(v, "X", 1), "two three");
	assert_string_equal(dkms_vars_get(v, "X", 2), "four");
	assert_string_equal(dkms_vars_get(v, "X", 3), "five");
	assert_string_equal(dkms_vars_get(v, "X", 4), "six");
	assert_int_equal(dkms_vars_line(v, "X", 4), 10);
	assert_string_equal(dkms_vars_get(v, "C", 0), "3");
	assert_string_equal(dkms_vars_get(v, "B", 0), "2");
	assert_string_equal(dkms_vars_get(v, "N", 0), "4");
	assert_string_equal(dkms_vars_get(v, "L", 0), "9");
	assert_string_equal(dkms_vars_get(v, "J", 0), "one two three four five");
	assert_string_equal(dkms_vars_get(v, "D", 0), "def");
	assert_string_equal(dkms_vars_get(v, "E", 0), "set");
	assert_string_equal(dkms_vars_get(v, "F", 0), "five");
	assert_string_equal(dkms_vars_get(v, "G", 0), "four");
	assert_string_equal(dkms_vars_get(v, "H", 0), "two-three");
	assert_string_equal(dkms_vars_get(v, "I", 0), "f0ur five");
	assert_string_equal(dkms_vars_get(v, "K", 0), "single $W \\");
	assert_string_equal(dkms_vars_get(v, "M", 0), "esc \" $W \\ ");
	assert_string_equal(dkms_vars_get(v, "P", 0), "exported");
	assert_string_equal(dkms_vars_get(v, "Q", 0), "ab");
	assert_int_equal(dkms_vars_line(v, "R", 0), 14);
	assert_string_equal(dkms_vars_get(v, "R", 0), "6.1.0-56-amd64");
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
	check_bad("PACKAGE_NAME=x\nMAKE=\"$(rm -rf /)\"\nPACKAGE_VERSION=1\n", 2,
		  "command substitution '$(rm -rf /)' cannot be evaluated safely");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nV=`whoami`\n", 3,
		  "command substitution '`whoami`'");
	check_bad("PACKAGE_NAME=\"x\nPACKAGE_VERSION=1\n", 1,
		  "unterminated double quote");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION='1\n", 2, "unterminated single quote");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nif [ -e /x ]; then\n  A=1\nfi\n", 3,
		  "shell construct 'if'");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\necho hello\n", 3, "command 'echo'");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nfoo() {\n", 3,
		  "function definition");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=1 | tee /tmp/x\n", 2, "pipes");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=$1\n", 2, "special parameter '$1'");
	check_bad("PACKAGE_NAME=x\nPACKAGE_VERSION=$((1+1))\n", 2, "arithmetic");
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

/* Evaluate text alone (no dkms.conf checks), collecting diagnostics. */
static int eval_text(const char *text, struct diags *d, struct dkms_vars **ret)
{
	_cleanup_(dkms_vars_freep) struct dkms_vars *v = NULL;
	struct dkms_eval_params p = {.kernelver = "6.1.0-56-amd64", .arch = "x86_64"};
	int r;

	ASSERT_OK(dkms_vars_new(&v));
	r = dkms_eval("t.conf", text, strlen(text), v, &p, diag_collect, d);
	*ret = TAKE_PTR(v);
	return r;
}

/* Attack 6 of issue 12: a hostile dkms.conf must fail with FILE:LINE, not take the
 * machine: 20,000 nested "${a:-" overflowed the stack, 40 doublings of a value took 24
 * GB. */
static void test_eval_hostile(void **state)
{
	_cleanup_free_ char *nest = NULL, *nest_q = NULL, *doubling = NULL, *many = NULL;
	_cleanup_(dkms_vars_freep) struct dkms_vars *v = NULL;
	const unsigned depth = 20000;
	struct diags d = {};
	size_t k = 0;

	nest = malloc(64 + depth * 6);
	assert_non_null(nest);
	k = (size_t) snprintf(nest, 64, "PACKAGE_NAME=x\nPACKAGE_VERSION=1\n\nA=");
	for (unsigned i = 0; i < depth; i++, k += 5)
		memcpy(nest + k, "${a:-", 5);
	nest[k++] = 'x';
	memset(nest + k, '}', depth);
	k += depth;
	memcpy(nest + k, "\n", 2);
	check_bad(nest, 4, "nested more than 32 deep");

	/* The same inside double quotes, which parse_dquote() expands. */
	nest_q = malloc(64 + depth * 8);
	assert_non_null(nest_q);
	k = (size_t) snprintf(nest_q, 64, "PACKAGE_NAME=x\nPACKAGE_VERSION=1\nA=");
	for (unsigned i = 0; i < depth; i++, k += 6)
		memcpy(nest_q + k, "\"${a:-", 6);
	for (unsigned i = 0; i < depth; i++, k += 2)
		memcpy(nest_q + k, "}\"", 2);
	memcpy(nest_q + k, "\n", 2);
	check_bad(nest_q, 3, "nested more than 32 deep");

	/* A=x, then A="$A$A" 40 times: line 18 would make 2^17 bytes. */
	assert_non_null(doubling = strdup("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nA=x\n"));
	for (unsigned i = 0; i < 40; i++) {
		char *n = strjoin(doubling, "A=\"$A$A\"\n");

		assert_non_null(n);
		free(doubling);
		doubling = n;
	}
	check_bad(doubling, 3 + 17, "longer than 65536 bytes");
	ASSERT_ERR(eval_text(doubling, &d, &v), -EBADMSG);
	assert_int_equal(strlen(dkms_vars_get(v, "A", 0)), DKMS_EVAL_VALUE_MAX);
	assert_int_equal(d.lines[0], 3 + 17);
	diags_done(&d);
	v = dkms_vars_free(v);

	/* Appending and arrays are bounded the same way. */
	check_bad(
		"PACKAGE_NAME=x\nPACKAGE_VERSION=1\nA=x\nA=\"$A$A$A$A$A$A$A$A\"\n"
		"A=\"$A$A$A$A$A$A$A$A\"\nA=\"$A$A$A$A$A$A$A$A\"\nA=\"$A$A$A$A$A$A$A$A\"\n"
		"A=\"$A$A$A$A$A$A$A$A\"\nB=$A\nB+=$A$A\n",
		10, "longer than 65536 bytes");
	d = (struct diags){};
	assert_non_null(many = strdup(""));
	for (unsigned i = 0; i < DKMS_VARS_MAX + 10; i++) {
		char *n = NULL;

		assert_true(asprintf(&n, "%sV%u=%u\n", many, i, i) > 0);
		free(many);
		many = n;
	}
	ASSERT_ERR(eval_text(many, &d, &v), -EBADMSG);
	assert_true(diags_have(&d, DKMS_VARS_MAX + 1, "more than 1024 variables"));
	diags_done(&d);
	v = dkms_vars_free(v);

	d = (struct diags){};
	ASSERT_ERR(
		eval_text("A=\"a a a a a a a a a a a a a a a a a a a a a a a a a a a a a "
			  "a\"\n"
			  "A=\"$A $A $A $A $A $A $A $A $A $A $A $A $A $A $A $A $A $A\"\n"
			  "X=($A $A $A $A $A $A $A $A $A $A $A $A $A $A $A $A $A $A)\n",
			  &d, &v),
		-EBADMSG);
	assert_true(
		diags_have(&d, 3, "more than 1024 variables, array elements or words"));
	diags_done(&d);
}

/* Pattern operators keep bash's meaning and cannot be made to run for ever. (A backslash
 * in a pattern is removed before matching, so "${W#a\*}" is "${W#a*}": not covered.) */
static void test_eval_patterns(void **state)
{
	_cleanup_(dkms_vars_freep) struct dkms_vars *v = NULL, *slow = NULL;
	_cleanup_free_ char *text = NULL;
	struct diags d = {};

	ASSERT_OK(eval_text("K=6.1.0-56_amd64\nW='a*b?c[d]'\n"
			    "A=${K%%[-_]*} B=${K#*.} C=${K##*[.-]} D=${K%.*}\n"
			    "E=${W#a?} F=${W//[[:alpha:]]/x} G=${W/[?]/Q} H=${K//?/.}\n"
			    "I=${K//[!0-9]/} J=${W//[[]d[]]/} L=${K#6*1} M=${K##*}\n"
			    "N=${W%[]]} O=${K/[/x} P=${K//**.*/z}\n",
			    &d, &v));
	assert_int_equal(d.n, 0);
	assert_string_equal(dkms_vars_get(v, "A", 0), "6.1.0");
	assert_string_equal(dkms_vars_get(v, "B", 0), "1.0-56_amd64");
	assert_string_equal(dkms_vars_get(v, "C", 0), "56_amd64");
	assert_string_equal(dkms_vars_get(v, "D", 0), "6.1");
	assert_string_equal(dkms_vars_get(v, "E", 0), "b?c[d]");
	assert_string_equal(dkms_vars_get(v, "F", 0), "x*x?x[x]");
	assert_string_equal(dkms_vars_get(v, "G", 0), "a*bQc[d]");
	assert_string_equal(dkms_vars_get(v, "H", 0), "..............");
	assert_string_equal(dkms_vars_get(v, "I", 0), "6105664");
	assert_string_equal(dkms_vars_get(v, "J", 0), "a*b?c");
	assert_string_equal(dkms_vars_get(v, "L", 0), ".0-56_amd64");
	assert_string_equal(dkms_vars_get(v, "M", 0), "");
	assert_string_equal(dkms_vars_get(v, "N", 0), "a*b?c[d");
	assert_string_equal(dkms_vars_get(v, "O", 0), "6.1.0-56_amd64");
	assert_string_equal(dkms_vars_get(v, "P", 0), "z");
	diags_done(&d);

	/* Many '*' made fnmatch() backtrack exponentially; no match, quickly. */
	d = (struct diags){};
	ASSERT_OK(eval_text("W="
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaa\n"
			    "X=${W##*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b}\n"
			    "Y=${W//*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b/}\n",
			    &d, &slow));
	assert_int_equal(d.n, 0);
	assert_string_equal(dkms_vars_get(slow, "X", 0), dkms_vars_get(slow, "W", 0));
	assert_string_equal(dkms_vars_get(slow, "Y", 0), dkms_vars_get(slow, "W", 0));
	slow = dkms_vars_free(slow);

	/* Replacing in a 64 KiB value is cubic work: refused past the budget, and the
	 * rest of the file is not evaluated. */
	assert_non_null(text = malloc(DKMS_EVAL_VALUE_MAX + 30064));
	memcpy(text, "W=", 2);
	memset(text + 2, 'a', DKMS_EVAL_VALUE_MAX);
	memcpy(text + 2 + DKMS_EVAL_VALUE_MAX, "\nX=${W//*b/c}\nY=1\n", 19);
	ASSERT_ERR(eval_text(text, &d, &slow), -EBADMSG);
	assert_true(diags_have(&d, 2, "more than 4 MiB of work"));
	assert_int_equal(d.n, 1);
	assert_null(dkms_vars_get(slow, "Y", 0));
	diags_done(&d);
	slow = dkms_vars_free(slow);

	/* A bracket expression costs its length at every character it is tried on. */
	d = (struct diags){};
	memcpy(text + 2 + DKMS_EVAL_VALUE_MAX, "\nP=[", 4);
	memset(text + 6 + DKMS_EVAL_VALUE_MAX, 'b', 30000);
	memcpy(text + 30006 + DKMS_EVAL_VALUE_MAX, "]\nX=${W//$P/c}\n", 16);
	ASSERT_ERR(eval_text(text, &d, &slow), -EBADMSG);
	assert_true(diags_have(&d, 3, "more than 4 MiB of work"));
	diags_done(&d);
	slow = dkms_vars_free(slow);

	/* So is looking for the ']' of each of 30,000 '['. */
	d = (struct diags){};
	memset(text + 6 + DKMS_EVAL_VALUE_MAX, '[', 30000);
	memcpy(text + 30006 + DKMS_EVAL_VALUE_MAX, "x\nX=${W#$P}\n", 13);
	ASSERT_ERR(eval_text(text, &d, &slow), -EBADMSG);
	assert_true(diags_have(&d, 3, "more than 4 MiB of work"));
	diags_done(&d);
}

static void test_scripts_warn(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	struct diags d = {};

	ASSERT_OK(
		load(t,
		     "PACKAGE_NAME=s\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=s\n"
		     "PRE_BUILD=\"configure --kernel=$kernelver\"\nPOST_INSTALL=post.sh\n"
		     "REMAKE_INITRD=yes\nOBSOLETE_BY=6.2\n",
		     "6.1.0-56-amd64", &d, &c));
	assert_int_equal(d.n, 2);
	assert_int_equal(d.n_warnings, 2);
	assert_true(diags_have(
		&d, 4, "PRE_BUILD 'configure --kernel=6.1.0-56-amd64' is not run"));
	assert_true(diags_have(&d, 5, "dm2 does not run package scripts"));
	assert_string_equal(c->scripts[0], "PRE_BUILD=configure --kernel=6.1.0-56-amd64");
	assert_string_equal(c->exclusive_kernel_max, "6.2");
	diags_done(&d);
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
	ASSERT_OK(dkms_recipe_load(dir, TEST_FAKE_KVER, NULL, NULL, NULL, diag_collect, &d,
				   &r));
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
	assert_string_equal(r->license, "GPL");
	assert_true(dkms_applies(r, TEST_FAKE_KVER, NULL, "x86_64", NULL));
	ASSERT_OK(dkms_recipe_load(dir, NULL, NULL, NULL, NULL, diag_collect, &d, &any));
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
	bad = write_pkg(t, "bad-2", "PACKAGE_NAME=bad\nPACKAGE_VERSION=$(date)\n");
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
	assert_int_equal(test_system("grep -q 'dkms.conf:2: command substitution' %s/err",
				     t->path),
			 0);
	assert_int_equal(
		test_system("%s --root %s dkms import %s/nonexistent 2>/dev/null", dm2,
			    t->path, t->path),
		4);
	assert_int_equal(
		test_system("%s --root %s dkms list >%s/list", dm2, t->path, t->path), 0);
	assert_int_equal(test_system("grep -q '^good .* yes .*ok$' %s/list", t->path), 0);
	assert_int_equal(test_system("grep -q '^bad-2 .*invalid: .*dkms.conf:2:' %s/list",
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
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_eval_subset),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_eval_hostile),
		cmocka_unit_test(test_eval_patterns),
		cmocka_unit_test(test_scripts_warn),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_real_acpi_call),
		cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
