/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <lzma.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "core/context.h"
#include "recipe/recipe-set.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"
#include "tests.h"

struct diags {
	const char *file;
	char **lines; /* "LINE: message" */
};

static void collect(const char *file, unsigned line, const char *message, void *userdata)
{
	struct diags *d = userdata;
	char *s = NULL;

	if (d->file)
		assert_string_equal(file, d->file);
	assert_true(asprintf(&s, "%u: %s", line, message) >= 0);
	assert_int_equal(strv_consume(&d->lines, s), 0);
}

/* The problem reported at exactly 'line' whose message contains 'needle'. */
static void expect_problem(struct diags *d, unsigned line, const char *needle)
{
	char prefix[32];

	snprintf(prefix, sizeof(prefix), "%u: ", line);
	STRV_FOREACH(l, d->lines)
	if (startswith(*l, prefix) && strstr(*l, needle))
		return;
	fprintf(stderr, "reported problems:\n");
	STRV_FOREACH(l, d->lines)
	fprintf(stderr, "  %s\n", *l);
	fail_msg("no problem '%s' reported at line %u", needle, line);
}

static char *data_path(const char *name)
{
	_cleanup_free_ char *rel = strjoin("tests/data/recipes/", name);

	return test_source_path(rel);
}

/* Write text as NAME in the test root and load it, collecting problems. */
static int load_text(struct test_root *t, const char *name, const char *text,
		     struct diags *d, struct recipe **ret)
{
	_cleanup_free_ char *path = path_join(t->path, name);

	test_write_file(t->fd, name, text);
	d->file = NULL;
	return recipe_load(path, RECIPE_ORIGIN_FILE, collect, d, ret);
}

static const char *const minimal =
	"[Recipe]\nName=mini\nLicense=GPL\n[Source]\nVersion=1\nPath=/usr/src/mini-1\n"
	"[Build]\nModules=mini\n";

static void test_minimal_defaults(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	struct diags d = {};
	char hex[SHA256_HEX_SIZE];
	const char *h;

	ASSERT_OK(load_text(t, "mini.recipe", minimal, &d, &r));
	assert_null(d.lines);
	assert_string_equal(r->name, "mini");
	assert_null(r->description);
	assert_string_equal(r->install_dir, "updates/dm2");
	assert_int_equal(r->n_modules, 1);
	assert_string_equal(r->modules[0].built_location, "");
	assert_string_equal(r->modules[0].dest_dir, "updates/dm2");
	assert_true(r->modules[0].strip);
	assert_true(r->autoinstall);
	assert_int_equal(r->origin, RECIPE_ORIGIN_FILE);
	assert_int_equal(r->sources[0].kernel.n, 0);
	assert_int_equal(r->sources[0].line, 4);
	/* The CRC at load time, the sha256 (build key) only when asked for. */
	assert_int_equal(r->content_crc, lzma_crc64((const uint8_t *) minimal, strlen(minimal), 0));
	assert_null(r->content_hash);
	ASSERT_OK(recipe_content_hash(r, &h));
	sha256_buf_hex(minimal, strlen(minimal), hex);
	assert_string_equal(h, hex);
	assert_ptr_equal(h, r->content_hash);
	assert_string_equal(r->dir, t->path);
	assert_true(startswith(r->path, t->path) && endswith(r->path, "/mini.recipe"));
}

/* A recipe edited after it was loaded must not lend its new hash to the old content. */
/* Values reach --json and terminals: a byte that is not UTF-8 is refused with its line
 * (issue 12, attack 12). */
static void test_invalid_utf8(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	struct diags d = {};

	ASSERT_ERR(load_text(t, "l1.recipe",
			     "[Recipe]\nName=l1\nDescription=caf\xe9\nLicense=GPL\xff\n["
			     "Source]\n"
			     "Version=1\nPath=/usr/src/l1-1\n[Build]\nModules=l1\n",
			     &d, &r),
		   -EBADMSG);
	expect_problem(&d, 3, "Description= is not valid UTF-8");
	expect_problem(&d, 4, "License= is not valid UTF-8");
	strv_free(d.lines);
	d = (struct diags){};
	ASSERT_OK(load_text(
		t, "u8.recipe",
		"[Recipe]\nName=u8\nDescription=caf\xc3\xa9 \xe2\x82\xac\nLicense=GPL\n"
		"[Source]\nVersion=1\nPath=/usr/src/u8-1\n[Build]\nModules=u8\n",
		&d, &r));
	assert_string_equal(r->description, "caf\xc3\xa9 \xe2\x82\xac");
}

static void test_content_hash_stale(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	struct diags d = {};
	const char *h;

	ASSERT_OK(load_text(t, "mini.recipe", minimal, &d, &r));
	test_write_file(t->fd, "mini.recipe", "# edited\n");
	ASSERT_ERR(recipe_content_hash(r, &h), -ESTALE);
	assert_null(r->content_hash);
	test_write_file(t->fd, "mini.recipe", minimal);
	ASSERT_OK(recipe_content_hash(r, &h));
}

static void test_full(void **state)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *path = data_path("full.recipe"), *dir = data_path("");
	_cleanup_free_ char *src = NULL, *p1 = NULL, *p2 = NULL;
	struct diags d = {.file = path};
	const struct recipe_source *s;

	ASSERT_OK(recipe_load(path, RECIPE_ORIGIN_VENDOR, collect, &d, &r));
	assert_null(d.lines);
	/* data_path("") ends in '/'. */
	dir[strlen(dir) - 1] = '\0';
	assert_string_equal(r->dir, dir);
	assert_string_equal(r->name, "full-example_1.0+x");
	assert_string_equal(r->description, "A recipe that uses every key");
	assert_string_equal(r->license, "Dual MIT/GPL");
	assert_int_equal(r->origin, RECIPE_ORIGIN_VENDOR);
	assert_int_equal(r->n_sources, 3);

	s = &r->sources[0];
	assert_string_equal(s->version, "2.1");
	assert_int_equal(strv_length(s->urls), 2);
	assert_string_equal(s->urls[1], "http://mirror.example.org/full-2.1.tar.gz");
	assert_null(s->path);
	assert_string_equal(
		s->sha256,
		"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	assert_string_equal(s->git_tree, "0123456789abcdef0123456789abcdef01234567");
	assert_int_equal(s->kernel.n, 1);
	assert_int_equal(s->kernel.c[0].op, RANGE_OP_GE);
	assert_string_equal(s->kernel.c[0].version, "6.8");
	assert_int_equal(s->line, 7);

	s = &r->sources[1];
	assert_int_equal(s->kernel.n, 2);
	assert_string_equal(s->kernel.text, ">=5.10 <6.8");
	assert_int_equal(s->n_patches, 2);
	p1 = path_join(dir, "fix-old.patch");
	p2 = path_join(dir, "patches/second.patch");
	assert_string_equal(s->patches[0].path, p1);
	assert_string_equal(s->patches[1].path, p2);
	assert_null(s->patches[0].match);

	s = &r->sources[2];
	src = path_join(dir, "full-src");
	assert_string_equal(s->path, src);
	assert_null(s->urls);

	assert_string_equal(r->subdir, "src");
	assert_int_equal(r->n_modules, 2);
	assert_string_equal(r->modules[0].name, "full");
	assert_string_equal(r->modules[0].built_location, "");
	assert_string_equal(r->modules[1].name, "helper");
	assert_string_equal(r->modules[1].built_location, "sub/dir");
	assert_string_equal(r->modules[1].dest_name, "helper");
	assert_string_equal(r->modules[1].dest_dir, "extra/full");
	assert_false(r->modules[1].strip);
	assert_int_equal(strv_length(r->make_vars), 2);
	assert_string_equal(r->make_vars[1], "EXTRA_CFLAGS=-DX=1 -DY");
	assert_int_equal(strv_length(r->require_config), 3);
	assert_string_equal(r->require_config[2], "!CONFIG_FOO_BROKEN");
	assert_int_equal(strv_length(r->arches), 2);
	assert_string_equal(r->needs[0], "other-recipe");
	assert_string_equal(r->install_dir, "extra/full");

	assert_string_equal(recipe_latest_version(r), "2.1");
	assert_ptr_equal(recipe_find_source(r, "2.0.3"), &r->sources[1]);
	assert_null(recipe_find_source(r, "3"));
}

static void assert_recipes_equal(const struct recipe *a, const struct recipe *b)
{
	assert_string_equal(a->name, b->name);
	assert_string_equal(strempty(a->description), strempty(b->description));
	assert_string_equal(a->license, b->license);
	assert_int_equal(a->n_sources, b->n_sources);
	for (size_t i = 0; i < a->n_sources; i++) {
		const struct recipe_source *x = &a->sources[i], *y = &b->sources[i];
		_cleanup_free_ char *ux = strv_join(x->urls, " "),
				    *uy = strv_join(y->urls, " ");

		assert_string_equal(x->version, y->version);
		assert_string_equal(strempty(ux), strempty(uy));
		assert_string_equal(strempty(x->path), strempty(y->path));
		assert_string_equal(strempty(x->sha256), strempty(y->sha256));
		assert_string_equal(strempty(x->git_tree), strempty(y->git_tree));
		assert_int_equal(x->kernel.n, y->kernel.n);
		for (size_t k = 0; k < x->kernel.n; k++) {
			assert_int_equal(x->kernel.c[k].op, y->kernel.c[k].op);
			assert_string_equal(x->kernel.c[k].version,
					    y->kernel.c[k].version);
		}
		assert_int_equal(x->n_patches, y->n_patches);
		for (size_t k = 0; k < x->n_patches; k++)
			assert_string_equal(startswith(x->patches[k].path, a->dir),
					    startswith(y->patches[k].path, b->dir));
	}
	assert_string_equal(strempty(a->subdir), strempty(b->subdir));
	assert_int_equal(a->n_modules, b->n_modules);
	for (size_t i = 0; i < a->n_modules; i++) {
		assert_string_equal(a->modules[i].name, b->modules[i].name);
		assert_string_equal(a->modules[i].built_location,
				    b->modules[i].built_location);
		assert_string_equal(a->modules[i].dest_dir, b->modules[i].dest_dir);
		assert_int_equal(a->modules[i].strip, b->modules[i].strip);
	}
	const char *const *lists[][2] = {
		{(const char *const *) a->make_vars, (const char *const *) b->make_vars},
		{(const char *const *) a->require_config,
		 (const char *const *) b->require_config},
		{(const char *const *) a->arches, (const char *const *) b->arches},
		{(const char *const *) a->needs, (const char *const *) b->needs},
	};
	for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
		_cleanup_free_ char *x = strv_join((char **) lists[i][0], "|");
		_cleanup_free_ char *y = strv_join((char **) lists[i][1], "|");

		assert_string_equal(strempty(x), strempty(y));
	}
	assert_string_equal(a->install_dir, b->install_dir);
}

static void test_round_trip(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *a = NULL, *b = NULL;
	_cleanup_free_ char *path = data_path("full.recipe"), *text = NULL, *text2 = NULL;
	struct diags d = {};

	ASSERT_OK(recipe_load(path, RECIPE_ORIGIN_VENDOR, collect, &d, &a));
	ASSERT_OK(recipe_format(a, &text));
	assert_non_null(strstr(text, "\nPatch=patches/second.patch\n"));
	assert_non_null(strstr(text, "\nModules=full sub/dir/helper\n"));
	/* Patches are written relative to the recipe: put the copy beside them. */
	assert_int_equal(test_system("cp -r '%s/.' '%s/'", a->dir, t->path), 0);
	ASSERT_OK(load_text(t, "full.recipe", text, &d, &b));
	assert_null(d.lines);
	assert_recipes_equal(a, b);
	/* Relative Path= was written absolute, so it still names the original directory.
	 */
	assert_string_equal(b->sources[2].path, a->sources[2].path);
	/* Canonical text is a fixed point. */
	ASSERT_OK(recipe_format(b, &text2));
	assert_string_equal(text, text2);
}

static void test_errors_bad_file(void **state)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *path = data_path("bad.recipe");
	struct diags d = {.file = path};

	ASSERT_ERR(recipe_load(path, RECIPE_ORIGIN_FILE, collect, &d, &r), -EBADMSG);
	assert_null(r);
	expect_problem(&d, 2, "invalid Name= 'bad name'");
	expect_problem(&d, 3, "license 'Proprietary' is not GPL-compatible");
	expect_problem(&d, 4, "duplicate key 'License=' (first at line 3)");
	expect_problem(&d, 5, "unknown key 'Colour=' in section [Recipe]");
	expect_problem(&d, 9, "URL 'ftp://example.org/a.tar.gz' is not an https://");
	expect_problem(&d, 10, "URL= and Path= exclude each other (URL= at line 9)");
	expect_problem(&d, 11, "SHA256= must be 64 hexadecimal digits");
	expect_problem(&d, 12, "GitTree= must be 40 hexadecimal digits");
	expect_problem(&d, 13, "invalid kernel range '6.8'");
	expect_problem(&d, 16, "duplicate source Version= '1.0' (first at line 8)");
	expect_problem(&d, 17, "relative Path= '../outside' must stay below");
	expect_problem(&d, 18,
		       "Patch= '../escape.patch' must be a file beside the recipe");
	expect_problem(&d, 19, "Patch= '/etc/passwd' must be a file beside the recipe");
	expect_problem(&d, 20, "patch file 'missing.patch' not found");
	expect_problem(&d, 22, "[Source] has no Version=");
	expect_problem(&d, 26, "Modules= is empty");
	expect_problem(&d, 27,
		       "RequireConfig= entry 'NET' is not CONFIG_NAME or !CONFIG_NAME");
	expect_problem(&d, 28,
		       "invalid MakeVariable= 'M=/tmp': this variable is set by dm2");
	expect_problem(&d, 29, "Strip= must be 'yes' or 'no'");
	expect_problem(&d, 32, "Directory= '../../boot' must be relative");
	expect_problem(&d, 34, "unknown section [Extra]");
	/* Exactly these, each once: all problems of the file, none invented. */
	assert_int_equal(strv_length(d.lines), 21);
	strv_free(d.lines);
}

static void test_errors_missing(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	struct recipe *r = NULL;
	struct diags d = {};

	ASSERT_ERR(load_text(t, "a.recipe", "# nothing\n", &d, &r), -EBADMSG);
	expect_problem(&d, 1, "missing section [Recipe]");
	expect_problem(&d, 1, "missing section [Source]");
	expect_problem(&d, 1, "missing section [Build] with Modules=");
	d.lines = strv_free(d.lines);

	ASSERT_ERR(load_text(t, "b.recipe",
			     "[Recipe]\nDescription=x\n\n[Source]\nVersion=1\n\n[Build]\n"
			     "Arch=x86_64\n[Recipe]\n",
			     &d, &r),
		   -EBADMSG);
	expect_problem(&d, 1, "[Recipe] has no Name=");
	expect_problem(&d, 1, "[Recipe] has no License=");
	expect_problem(&d, 4, "[Source] has neither URL= nor Path=");
	expect_problem(&d, 7, "[Build] has no Modules=");
	expect_problem(&d, 9, "section [Recipe] appears again (first at line 1)");
	assert_int_equal(strv_length(d.lines), 5);
	d.lines = strv_free(d.lines);

	/* Syntax errors from the INI reader keep their line, and parsing goes on. */
	ASSERT_ERR(
		load_text(t, "c.recipe",
			  "[Recipe]\nName=c\nLicense=GPL\ngarbage\n[Source]\nVersion=1\n"
			  "Path=/x\nPath=/y\n[Build]\nModules=c c.ko x/../y\nNeeds=c\n",
			  &d, &r),
		-EBADMSG);
	expect_problem(&d, 4, "expected 'Key=Value'");
	expect_problem(&d, 8, "duplicate key 'Path=' (first at line 7)");
	expect_problem(&d, 10, "module 'c.ko': write the name without '.ko'");
	expect_problem(&d, 10, "invalid module 'x/../y'");
	expect_problem(&d, 9, "Needs= names the recipe itself");
	assert_int_equal(strv_length(d.lines), 5);
	d.lines = strv_free(d.lines);
	assert_null(r);

	/* A relative Path= ships with the recipe; an absolute one may appear later. */
	ASSERT_ERR(load_text(t, "d.recipe",
			     "[Recipe]\nName=d\nLicense=GPL\n[Source]\nVersion=1\n"
			     "Path=d-src\n[Build]\nModules=d\nArch=X86\n",
			     &d, &r),
		   -EBADMSG);
	expect_problem(&d, 6, "Path= directory 'd-src' not found beside the recipe");
	expect_problem(&d, 9, "Arch= entry 'X86' is not an architecture name");
	assert_int_equal(strv_length(d.lines), 2);
	d.lines = strv_free(d.lines);
	ASSERT_OK(mkdir_p_at(t->fd, "d-src", 0755));
	test_write_file(t->fd, "d.recipe",
			"[Recipe]\nName=d\nLicense=GPL\n[Source]\nVersion=1\nPath=d-src\n"
			"[Build]\nModules=d\n");
	_cleanup_free_ char *dpath = path_join(t->path, "d.recipe");
	_cleanup_free_ char *dsrc = path_join(t->path, "d-src");
	ASSERT_OK(recipe_load(dpath, RECIPE_ORIGIN_FILE, collect, &d, &r));
	assert_null(d.lines);
	assert_string_equal(r->sources[0].path, dsrc);
	r = recipe_unref(r);
}

static void test_license(void **state)
{
	const char *good[] = {"GPL",
			      "GPL v2",
			      "GPL-2.0",
			      "GPL-2.0-only",
			      "GPL-2.0-or-later",
			      "GPL-3.0-only",
			      "GPL-3.0-or-later",
			      "Dual BSD/GPL",
			      "Dual MIT/GPL",
			      "Dual MPL/GPL",
			      "LGPL-2.1-or-later",
			      "GPL and additional rights"};
	const char *bad[] = {"",    "Proprietary", "MIT",     "BSD-3-Clause",
			     "gpl", "GPLv2 ",	   "Dual BSD"};

	for (size_t i = 0; i < ELEMENTSOF(good); i++)
		assert_true(license_is_gpl_compatible(good[i]));
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_false(license_is_gpl_compatible(bad[i]));
	assert_false(license_is_gpl_compatible(NULL));
	assert_true(recipe_name_valid("v4l2loopback"));
	assert_true(recipe_name_valid("a.b_c+d-1"));
	assert_false(recipe_name_valid(".hidden"));
	assert_false(recipe_name_valid("a/b"));
	assert_false(recipe_name_valid(""));
}

static void test_kernel_range(void **state)
{
	struct kernel_range k = {};

	ASSERT_OK(kernel_range_parse(">=6.8", &k));
	assert_true(kernel_range_match(&k, "6.8.0"));
	assert_true(kernel_range_match(&k, "6.10.2"));
	assert_false(kernel_range_match(&k, "6.1.192"));
	kernel_range_done(&k);

	ASSERT_OK(kernel_range_parse(">=5.10 <6.8", &k));
	assert_int_equal(k.n, 2);
	assert_true(kernel_range_match(&k, "6.1.192"));
	assert_true(kernel_range_match(&k, "5.10.0"));
	assert_false(kernel_range_match(&k, "6.8.1"));
	assert_false(kernel_range_match(&k, "5.9.16"));
	kernel_range_done(&k);

	/* A bound covers every patch level of the release it names. */
	ASSERT_OK(kernel_range_parse("<=6.1", &k));
	assert_true(kernel_range_match(&k, "6.1.192"));
	assert_false(kernel_range_match(&k, "6.2.0"));
	kernel_range_done(&k);
	ASSERT_OK(kernel_range_parse("=6.1 >6.0", &k));
	assert_true(kernel_range_match(&k, "6.1.5"));
	assert_false(kernel_range_match(&k, "6.10.1"));
	kernel_range_done(&k);

	assert_true(kernel_range_match(&k, "1.0")); /* empty range: any */
	ASSERT_ERR(kernel_range_parse("6.8", &k), -EINVAL);
	ASSERT_ERR(kernel_range_parse(">=6.x", &k), -EINVAL);
	ASSERT_ERR(kernel_range_parse(">=", &k), -EINVAL);
	ASSERT_ERR(kernel_range_parse("", &k), -EINVAL);
	ASSERT_ERR(kernel_range_parse("~6.8", &k), -EINVAL);
	ASSERT_ERR(kernel_range_parse(">=6..8", &k), -EINVAL);
}

static void test_pick_source(void **state)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *path = data_path("full.recipe");

	ASSERT_OK(recipe_load(path, RECIPE_ORIGIN_VENDOR, NULL, NULL, &r));
	assert_string_equal(recipe_pick_source(r, "6.8.0")->version, "2.1");
	assert_string_equal(recipe_pick_source(r, "6.12.1")->version, "2.1");
	assert_string_equal(recipe_pick_source(r, "6.1.192")->version, "2.0.3");
	assert_string_equal(recipe_pick_source(r, "5.4.0")->version, "1.9");
}

static void test_pick_newest_matching(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	struct diags d = {};

	/* Order in the file does not matter; 1.10 is newer than 1.9. */
	ASSERT_OK(load_text(t, "n.recipe",
			    "[Recipe]\nName=n\nLicense=GPL\n"
			    "[Source]\nVersion=1.9\nPath=/a\n"
			    "[Source]\nVersion=1.10\nPath=/b\n"
			    "[Source]\nVersion=2.0\nPath=/c\nKernel=>=7.0\n"
			    "[Build]\nModules=n\n",
			    &d, &r));
	assert_string_equal(recipe_pick_source(r, "6.1.192")->version, "1.10");
	assert_string_equal(recipe_pick_source(r, "7.0.1")->version, "2.0");
	assert_string_equal(recipe_latest_version(r), "2.0");
}

/* Debian's version order (deb-version(7)): ~ sorts before the end, an epoch beats all. */
static void test_pick_debian_order(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(recipe_unrefp) struct recipe *r = NULL, *e = NULL;
	struct diags d = {};

	ASSERT_OK(load_text(t, "n.recipe",
			    "[Recipe]\nName=n\nLicense=GPL\n"
			    "[Source]\nVersion=1.0\nPath=/b\n"
			    "[Source]\nVersion=1.0~rc1\nPath=/a\n"
			    "[Build]\nModules=n\n",
			    &d, &r));
	assert_string_equal(recipe_pick_source(r, "6.1.192")->version, "1.0");
	assert_string_equal(recipe_latest_version(r), "1.0");
	ASSERT_OK(load_text(t, "e.recipe",
			    "[Recipe]\nName=e\nLicense=GPL\n"
			    "[Source]\nVersion=1:0.9\nPath=/b\n"
			    "[Source]\nVersion=2.0+dfsg\nPath=/a\n"
			    "[Build]\nModules=e\n",
			    &d, &e));
	assert_string_equal(recipe_latest_version(e), "1:0.9");
}

static void test_recipe_set(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(recipe_set_freep) struct recipe_set *s = NULL;
	_cleanup_free_ char *extra = path_join(t->path, "extra");
	struct diags d = {};
	struct recipe *r;

#define RCP(name, desc)                                                                  \
	"[Recipe]\nName=" name "\nDescription=" desc                                     \
	"\nLicense=GPL\n[Source]\nVersion=1\n"                                           \
	"Path=/x\n[Build]\nModules=m\n"
	test_write_file(t->fd, "usr/share/dm2/recipes/a.recipe", RCP("a", "vendor"));
	test_write_file(t->fd, "usr/share/dm2/recipes/b.recipe", RCP("b", "vendor"));
	test_write_file(t->fd, "usr/share/dm2/recipes/c.recipe", RCP("c", "vendor"));
	test_write_file(t->fd, "usr/share/dm2/recipes/broken.recipe",
			"[Recipe]\nName=z\n");
	test_write_file(t->fd, "usr/share/dm2/recipes/ignored.txt",
			RCP("txt", "not a recipe"));
	test_write_file(t->fd, "etc/dm2/recipes.d/b.recipe", RCP("b", "admin"));
	test_write_file(t->fd, "etc/dm2/recipes.d/other-name.recipe", RCP("c", "admin"));
	test_write_file(t->fd, "extra/c.recipe", RCP("c", "extra"));
#undef RCP

	ASSERT_OK(context_new(t->path, &ctx));
	assert_int_equal(strv_extend(&ctx->recipe_dirs, extra), 0);
	ASSERT_OK(recipe_set_load(ctx, collect, &d, &s));
	/* The broken file is reported with its line and skipped. */
	expect_problem(&d, 1, "[Recipe] has no License=");
	strv_free(d.lines);

	assert_int_equal(s->n, 3);
	assert_string_equal(s->recipes[0]->name, "a");
	assert_string_equal(s->recipes[1]->name, "b");
	assert_string_equal(s->recipes[2]->name, "c");
	r = recipe_set_find(s, "a");
	assert_string_equal(r->description, "vendor");
	assert_int_equal(r->origin, RECIPE_ORIGIN_VENDOR);
	r = recipe_set_find(s, "b");
	assert_string_equal(r->description, "admin");
	assert_int_equal(r->origin, RECIPE_ORIGIN_ADMIN);
	r = recipe_set_find(s, "c");
	assert_string_equal(r->description, "extra");
	assert_int_equal(r->origin, RECIPE_ORIGIN_EXTRA);
	assert_null(recipe_set_find(s, "txt"));
	assert_null(recipe_set_find(s, "z"));
	ASSERT_ERR(recipe_set_add(s, r), -EEXIST);
	assert_int_equal(r->n_ref, 1);
}

static void test_shipped_example(void **state)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *path = test_source_path("recipes/dm2-example.recipe");
	_cleanup_free_ char *src = test_source_path("recipes/dm2-example/dm2_example.c");
	struct diags d = {.file = path};
	struct stat st;

	ASSERT_OK(recipe_load(path, RECIPE_ORIGIN_VENDOR, collect, &d, &r));
	assert_null(d.lines);
	assert_string_equal(r->name, "dm2-example");
	assert_int_equal(r->n_sources, 1);
	assert_true(endswith(r->sources[0].path, "/recipes/dm2-example"));
	assert_int_equal(stat(src, &st), 0);
	assert_string_equal(r->modules[0].name, "dm2_example");
}

static void test_cli_lint(void **state)
{
	_cleanup_free_ char *dm2 = test_build_path("dm2");
	_cleanup_free_ char *good = test_source_path("recipes/dm2-example.recipe");
	_cleanup_free_ char *bad = data_path("bad.recipe");
	_cleanup_free_ char *out = NULL, *recipes = test_source_path("recipes");
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();

	if (access(dm2, X_OK) < 0)
		fail_msg("'%s' is not built", dm2);
	assert_int_equal(test_system("'%s' recipe lint '%s'", dm2, good), 0);
	assert_int_equal(test_system("'%s' recipe lint '%s' '%s' 2>'%s/err'", dm2, good,
				     bad, t->path),
			 3);
	ASSERT_OK(read_full_file_at(t->fd, "err", 0, &out, NULL));
	_cleanup_free_ char *want = strjoin(bad, ":2: invalid Name= 'bad name'");
	assert_non_null(strstr(out, want));
	/* A missing file is "no such file" (4), not an invalid recipe (3). */
	assert_int_equal(
		test_system("'%s' recipe lint /nonexistent.recipe 2>/dev/null", dm2), 4);
	assert_int_equal(test_system("'%s' recipe bogus 2>/dev/null", dm2), 2);
	assert_int_equal(test_system("cp -r '%s' '%s/extra'", recipes, t->path), 0);
	assert_int_equal(
		test_system("'%s' --root '%s' recipe list --recipes '%s/extra' --json "
			    ">'%s/list.json'",
			    dm2, t->path, t->path, t->path),
		0);
	out = mfree(out);
	ASSERT_OK(read_full_file_at(t->fd, "list.json", 0, &out, NULL));
	assert_non_null(strstr(out, "{\"name\":\"dm2-example\",\"versions\":[\"1.0\"],"
				    "\"origin\":\"extra\","));
	assert_int_equal(test_system("python3 -c 'import json,sys; json.load(sys.stdin)' "
				     "<'%s/list.json'",
				     t->path),
			 0);
	assert_int_equal(
		test_system("'%s' --root '%s' recipe show dm2-example >/dev/null 2>&1",
			    dm2, t->path),
		4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_content_hash_stale),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_errors_bad_file),
		cmocka_unit_test(test_errors_missing),
		cmocka_unit_test(test_license),
		cmocka_unit_test(test_kernel_range),
		cmocka_unit_test(test_pick_source),
		cmocka_unit_test(test_pick_newest_matching),
		cmocka_unit_test(test_pick_debian_order),
		cmocka_unit_test(test_recipe_set),
		cmocka_unit_test(test_shipped_example),
		cmocka_unit_test(test_cli_lint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
