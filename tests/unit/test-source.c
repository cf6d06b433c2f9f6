/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* source_prepare(): Path= and URL= sources, SHA256=/GitTree= checks, patches. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "core/context.h"
#include "control/exit-codes.h"
#include "pipeline/gittree.h"
#include "pipeline/patch.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"
#include "pipeline/source.h"
#include "tests.h"

#define GIT "GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 git"

static char work[PATH_MAX];

static int setup(void **state)
{
	snprintf(work, sizeof(work), "%s/dm2-source-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(work))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void) rm_rf_at(AT_FDCWD, work);
	return 0;
}

static char *wpath(const char *rel)
{
	char *p = path_join(work, rel);
	assert_non_null(p);
	return p;
}

static void write_at(const char *rel, const char *content)
{
	_cleanup_close_ int fd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	test_write_file(fd, rel, content);
}

/* hello-1.0/: the upstream tree; fix.patch applies to it, bad.patch does not. */
static void make_tree(void)
{
	write_at("hello-1.0/hello.c", "int a;\nint b;\nint c;\n");
	write_at("hello-1.0/Kbuild", "obj-m += hello.o\n");
	write_at("fix.patch",
		 "--- a/hello.c\n+++ b/hello.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n"
		 "+int b2;\n int c;\n");
	write_at("bad.patch",
		 "--- a/hello.c\n+++ b/hello.c\n@@ -1,3 +1,3 @@\n int x;\n-int y;\n"
		 "+int y2;\n int z;\n");
}

static char *git_tree_of(const char *dir)
{
	_cleanup_free_ char *out = wpath("tree-id");
	char *text = NULL;

	assert_int_equal(
		test_system(
			"rm -rf '%s/../git' && cp -a '%s' '%s/../git' && cd '%s/../git' "
			"&& " GIT " init -q && " GIT " add -A && " GIT
			" -c user.name=t -c user.email=t@example.com commit -qm t && " GIT
			" rev-parse 'HEAD^{tree}' > '%s'",
			dir, dir, dir, dir, out),
		0);
	assert_int_equal(read_full_file_at(AT_FDCWD, out, 0, &text, NULL), 0);
	strstrip(text);
	return text;
}

static struct dm2_context *context_for(struct test_root *t)
{
	struct dm2_context *ctx = NULL;

	assert_int_equal(context_new(t->path, &ctx), 0);
	return ctx;
}

static void test_path_source_and_patches(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t);
	_cleanup_free_ char *src = NULL, *dest = NULL, *id = NULL, *reason = NULL,
			    *text = NULL;
	_cleanup_free_ char *fix = NULL, *bad = NULL, *tree = NULL, *id2 = NULL,
			    *hello = NULL;
	struct recipe rcp = {.name = (char *) "hello"};
	struct recipe_patch patches[2] = {};
	struct recipe_source s = {};

	make_tree();
	src = wpath("hello-1.0");
	fix = wpath("fix.patch");
	bad = wpath("bad.patch");
	dest = path_join(t->path, "work/src");
	assert_int_equal(mkdir_p_at(t->fd, "work", 0755), 0);
	tree = git_tree_of(src);

	/* No patches: the content id is the git tree id, checked against GitTree=. */
	s = (struct recipe_source){
		.version = (char *) "1.0", .path = src, .git_tree = tree};
	ASSERT_OK(source_prepare(ctx, &rcp, &s, t->kver, dest, &id, &reason));
	assert_non_null(startswith(id, "git:"));
	assert_string_equal(id + 4, tree);
	assert_int_equal(rm_rf_at(t->fd, "work/src"), 0);

	/* A patch that applies, and one whose match excludes this kernel. */
	patches[0] = (struct recipe_patch){.path = fix};
	patches[1] = (struct recipe_patch){.path = bad, .match = (char *) "^2\\.6\\."};
	s.patches = patches;
	s.n_patches = 2;
	ASSERT_OK(source_prepare(ctx, &rcp, &s, t->kver, dest, &id2, &reason));
	assert_non_null(startswith(id2, id));
	assert_non_null(strstr(id2, "+patches:"));
	hello = path_join(dest, "hello.c");
	assert_int_equal(read_full_file_at(AT_FDCWD, hello, 0, &text, NULL), 0);
	assert_string_equal(text, "int a;\nint b2;\nint c;\n");
	free(text);
	text = NULL;
	/* the original was not touched, and no patch leftovers */
	free(hello);
	hello = path_join(src, "hello.c");
	assert_int_equal(read_full_file_at(AT_FDCWD, hello, 0, &text, NULL), 0);
	assert_string_equal(text, "int a;\nint b;\nint c;\n");
	assert_int_equal(faccessat(t->fd, "work/src/hello.c.orig", F_OK, 0), -1);
	assert_int_equal(faccessat(t->fd, "work/src/hello.c.rej", F_OK, 0), -1);
	assert_int_equal(rm_rf_at(t->fd, "work/src"), 0);

	/* A failing patch names the patch and the hunk; dest is removed. */
	patches[1].match = NULL;
	assert_int_equal(source_prepare(ctx, &rcp, &s, t->kver, dest, &id, &reason),
			 -ENOEXEC);
	fprintf(stderr, "# %s\n", reason);
	assert_non_null(strstr(
		reason, "patch 'bad.patch' does not apply: hello.c: Hunk #1 FAILED"));
	assert_null(strchr(reason, '\n'));
	assert_int_equal(faccessat(t->fd, "work/src", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	free(reason);
	reason = NULL;

	/* GitTree= mismatch on a Path= tree. */
	s = (struct recipe_source){
		.version = (char *) "1.0",
		.path = src,
		.git_tree = (char *) "0123456789012345678901234567890123456789"};
	assert_int_equal(source_prepare(ctx, &rcp, &s, t->kver, dest, &id, &reason),
			 -EUCLEAN);
	assert_non_null(strstr(reason, "GitTree mismatch"));
	assert_int_equal(faccessat(t->fd, "work/src", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

static void test_patch_reversed(void **state)
{
	_cleanup_free_ char *dir = NULL, *fix = NULL, *reason = NULL;

	make_tree();
	dir = wpath("copy");
	fix = wpath("fix.patch");
	assert_int_equal(
		test_system("rm -rf '%s' && cp -a '%s/hello-1.0' '%s'", dir, work, dir),
		0);
	ASSERT_OK(patch_apply(dir, fix, &reason));
	assert_int_equal(patch_apply(dir, fix, &reason), -ENOEXEC);
	fprintf(stderr, "# %s\n", reason);
	assert_non_null(strstr(reason, "patch 'fix.patch' does not apply: "));
	assert_non_null(strstr(reason, "previously applied"));
}

static void test_url_source(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t);
	_cleanup_free_ char *helper = test_source_path("tests/helpers/make-archive.py");
	_cleanup_free_ char *src = NULL, *archive = NULL, *url = NULL, *tree = NULL;
	_cleanup_free_ char *dest = NULL, *id = NULL, *reason = NULL, *evil_url = NULL;
	char sha[SHA256_HEX_SIZE];
	struct recipe rcp = {.name = (char *) "hello"};
	struct recipe_source s = {};
	char *urls[2] = {};

	make_tree();
	src = wpath("hello-1.0");
	archive = wpath("hello-1.0.tar.gz");
	assert_int_equal(test_system("python3 '%s' dir '%s' '%s'", helper, archive, src),
			 0);
	assert_int_equal(sha256_file_hex_at(AT_FDCWD, archive, sha), 0);
	tree = git_tree_of(src);
	assert_true(asprintf(&url, "file://%s", archive) > 0);
	urls[0] = url;
	dest = path_join(t->path, "src");

	/* SHA256= and GitTree=: both checked; the content id is the archive hash. */
	s = (struct recipe_source){
		.version = (char *) "1.0", .urls = urls, .sha256 = sha, .git_tree = tree};
	ASSERT_OK(source_prepare(ctx, &rcp, &s, t->kver, dest, &id, &reason));
	assert_non_null(startswith(id, "sha256:"));
	assert_string_equal(id + 7, sha);
	assert_int_equal(faccessat(t->fd, "src/Kbuild", F_OK, 0), 0);
	assert_int_equal(rm_rf_at(t->fd, "src"), 0);
	free(id);
	id = NULL;

	/* Only GitTree= (a re-compressed archive would still match): id is the tree. */
	s.sha256 = NULL;
	ASSERT_OK(source_prepare(ctx, &rcp, &s, t->kver, dest, &id, &reason));
	assert_string_equal(id + 4, tree);
	assert_int_equal(rm_rf_at(t->fd, "src"), 0);

	/* GitTree= mismatch. */
	s.git_tree = (char *) "0123456789012345678901234567890123456789";
	assert_int_equal(source_prepare(ctx, &rcp, &s, t->kver, dest, &id, &reason),
			 -EUCLEAN);
	assert_non_null(
		strstr(reason, "'hello-1.0.tar.gz': GitTree mismatch: expected 0123"));
	assert_int_equal(faccessat(t->fd, "src", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	free(reason);
	reason = NULL;

	/* A hostile archive is refused naming the entry; nothing is left. */
	free(archive);
	archive = wpath("evil.tar.gz");
	assert_int_equal(
		test_system("python3 '%s' dotdot '%s' dm2evilsrc", helper, archive), 0);
	assert_true(asprintf(&evil_url, "file://%s", archive) > 0);
	urls[0] = evil_url;
	s = (struct recipe_source){.version = (char *) "1.0", .urls = urls};
	assert_int_equal(source_prepare(ctx, &rcp, &s, t->kver, dest, &id, &reason),
			 -EBADMSG);
	assert_string_equal(reason,
			    "'evil.tar.gz': entry 'proj/../../dm2evilsrc-dotdot': path "
			    "escapes the source tree");
	assert_int_equal(faccessat(t->fd, "src", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(exit_code_from_source_error(-EBADMSG), EXIT_BAD_INPUT);
	assert_int_equal(exit_code_from_source_error(-EUCLEAN), EXIT_FETCH_FAILED);
}

/* dm2 fetch NAME: exits 0, 4 (unknown recipe), 6 (verify failure), 3 (bad archive). */
static void test_cli_fetch(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *helper = test_source_path("tests/helpers/make-archive.py");
	_cleanup_free_ char *dm2 = test_build_path("dm2"), *archive = NULL, *evil = NULL;
	_cleanup_free_ char *recipe = NULL, *expected = NULL, *out = NULL, *text = NULL;
	char sha[SHA256_HEX_SIZE], evil_sha[SHA256_HEX_SIZE];
	const char *zero =
		"0000000000000000000000000000000000000000000000000000000000000000";

	make_tree();
	archive = wpath("cli.tar.gz");
	evil = wpath("cli-evil.tar.gz");
	out = wpath("cli.out");
	assert_int_equal(test_system("python3 '%s' dir '%s' '%s/hello-1.0'", helper,
				     archive, work),
			 0);
	assert_int_equal(test_system("python3 '%s' fifo '%s' x", helper, evil), 0);
	assert_int_equal(sha256_file_hex_at(AT_FDCWD, archive, sha), 0);
	assert_int_equal(sha256_file_hex_at(AT_FDCWD, evil, evil_sha), 0);
	assert_true(asprintf(&recipe,
			     "[Recipe]\nName=hello\nLicense=GPL-2.0-only\n"
			     "[Source]\nVersion=1.0\nURL=file://%s\nSHA256=%s\n"
			     "[Source]\nVersion=0.9\nURL=file://%s\nSHA256=%s\n"
			     "[Source]\nVersion=0.8\nURL=file://%s\nSHA256=%s\n"
			     "[Build]\nModules=hello\n",
			     archive, sha, archive, zero, evil, evil_sha) > 0);
	test_write_file(t->fd, "usr/share/dm2/recipes/hello.recipe", recipe);

	assert_int_equal(
		test_system("'%s' --root '%s' fetch hello > '%s'", dm2, t->path, out), 0);
	assert_int_equal(read_full_file_at(AT_FDCWD, out, 0, &text, NULL), 0);
	assert_true(asprintf(&expected, "%s/var/cache/dm2/downloads/%s\n", t->path, sha) >
		    0);
	assert_string_equal(text, expected);
	assert_int_equal(test_system("'%s' --root '%s' fetch nosuch", dm2, t->path),
			 EXIT_NOT_FOUND);
	assert_int_equal(
		test_system("'%s' --root '%s' fetch hello --version 7", dm2, t->path),
		EXIT_NOT_FOUND);
	assert_int_equal(
		test_system("'%s' --root '%s' fetch hello --version 0.9", dm2, t->path),
		EXIT_FETCH_FAILED);
	assert_int_equal(
		test_system("'%s' --root '%s' fetch hello --version 0.8", dm2, t->path),
		EXIT_BAD_INPUT);
	/* the scratch unpack dirs are gone */
	assert_int_equal(
		test_system("test -z \"$(ls -A '%s/var/lib/dm2/work')\"", t->path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_source_and_patches),
		cmocka_unit_test(test_patch_reversed),
		cmocka_unit_test(test_url_source),
		cmocka_unit_test(test_cli_fetch),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
