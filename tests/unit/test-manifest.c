/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Install manifests (core/manifest.c) and the state db rebuilt from them (core/db.c). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "core/context.h"
#include "core/db.h"
#include "core/manifest.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"
#include "tests.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static struct manifest *example(void)
{
	struct manifest *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->recipe = strdup("foo");
	m->kernel = strdup("6.1.0-1-amd64");
	m->version = strdup("1.2");
	m->build_key = strdup(HEX_A);
	m->signer = strdup("dm2 key = with spaces");
	m->from_cache = true;
	m->installed = 1234;
	ASSERT_OK(manifest_add_file(m, "lib/modules/6.1.0-1-amd64/updates/dm2/foo.ko",
				    HEX_A, "lib/modules/6.1.0-1-amd64/kernel/foo.ko"));
	ASSERT_OK(manifest_add_file(m, "lib/modules/6.1.0-1-amd64/extra/a b.ko", HEX_A,
				    NULL));
	return m;
}

static void test_roundtrip(void **state)
{
	_cleanup_(manifest_freep) struct manifest *m = example(), *back = NULL;
	_cleanup_free_ char *text = NULL, *again = NULL;
	const char *why = NULL;
	unsigned line = 0;

	ASSERT_OK(manifest_format(m, &text));
	ASSERT_OK(manifest_parse(text, &back, &line, &why));
	assert_string_equal(back->signer, "dm2 key = with spaces");
	assert_true(back->from_cache);
	assert_int_equal(back->installed, 1234);
	assert_int_equal(back->n_files, 2);
	assert_string_equal(back->files[1].path,
			    "lib/modules/6.1.0-1-amd64/extra/a b.ko");
	assert_null(back->files[1].overrides_intree);
	ASSERT_OK(manifest_format(back, &again));
	assert_string_equal(text, again);
}

/* What a value may not hold, and paths outside lib/modules/KVER, never reach the file. */
static void test_format_refuses(void **state)
{
	_cleanup_(manifest_freep) struct manifest *m = example();
	_cleanup_free_ char *text = NULL;

	free(m->signer);
	m->signer = strdup("a\nFile=" HEX_A " - lib/modules/6.1.0-1-amd64/x.ko");
	ASSERT_ERR(manifest_format(m, &text), -EINVAL);
	free(m->signer);
	m->signer = NULL;
	free(m->files[0].path);
	m->files[0].path = strdup("lib/modules/6.1.0-1-amd64/../../../etc/shadow");
	ASSERT_ERR(manifest_format(m, &text), -EINVAL);
}

static void expect_bad(const char *text, unsigned want_line, const char *want_why)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	const char *why = NULL;
	unsigned line = 0;

	ASSERT_ERR(manifest_parse(text, &m, &line, &why), -EBADMSG);
	assert_int_equal(line, want_line);
	assert_non_null(why);
	assert_non_null(strstr(why, want_why));
}

static void test_parse_errors(void **state)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	const char *why = NULL;
	unsigned line = 0;

	expect_bad("Recipe=foo\n", 1, "does not start with Manifest=");
	expect_bad("Manifest=1\nRecipe=foo\nKernel=k\nColour=red\n", 4, "unknown key");
	expect_bad("Manifest=1\nRecipe=foo\nRecipe=bar\n", 3, "twice");
	expect_bad("Manifest=1\nRecipe=../x\n", 2, "plain name");
	expect_bad("Manifest=1\nRecipe=foo\nKernel=k\nFile=" HEX_A
		   " - lib/modules/j/x.ko\n",
		   4, "outside lib/modules/KVER");
	expect_bad("Manifest=1\nRecipe=foo\nKernel=k\nFile=xyz - lib/modules/k/x.ko\n", 4,
		   "sha256");
	expect_bad("Manifest=1\nRecipe=foo\nKernel=k\nFile=" HEX_A "\n", 4, "needs");
	expect_bad("Manifest=1\nRecipe=foo\nKernel=k\nFromCache=maybe\n", 4,
		   "yes nor no");
	expect_bad("Manifest=1\nRecipe=foo\n", 2, "missing");
	expect_bad("Manifest=1\nnothing here\n", 2, "Key=Value");
	/* A newer format is not a syntax error: it is somebody else's. */
	ASSERT_ERR(manifest_parse("Manifest=2\nWhatever=x\n", &m, &line, &why), -EPROTO);
}

static int count_broken(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".broken-") && !endswith(de->d_name, "-wal") &&
		    !endswith(de->d_name, "-shm"))
			n++;
	closedir(d);
	return n;
}

/* A root with one installed module and its manifest, the state db gone. */
static void make_install(struct test_root *t, struct dm2_context *ctx)
{
	_cleanup_(manifest_freep) struct manifest *m = calloc(1, sizeof(*m));
	_cleanup_free_ char *ko = strjoin("lib/modules/", t->kver, "/updates/dm2/foo.ko");
	char hex[SHA256_HEX_SIZE];

	assert_non_null(m);
	test_write_file(t->fd, ko, "module");
	sha256_buf_hex("module", 6, hex);
	m->recipe = strdup("foo");
	m->kernel = strdup(t->kver);
	m->version = strdup("3.0");
	ASSERT_OK(manifest_add_file(m, ko, hex, NULL));
	/* The old file of a replaced install, gone since: still listed, ignored. */
	ASSERT_OK(manifest_add_file(m, ko, HEX_A, NULL));
	ASSERT_OK(manifest_write(t->fd, m));
}

static void test_rebuild(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(db_closep) struct db *d = NULL;
	struct db_installed_file owner = {};
	struct db_job job = {};

	ASSERT_OK(context_new(t->path, &ctx));
	make_install(t, ctx);
	ASSERT_OK(db_open(ctx, true, &d));
	ASSERT_OK(db_job_current(d, "foo", t->kver, &job));
	assert_int_equal(job.state, JOB_STATE_INSTALLED);
	assert_string_equal(job.version, "3.0");
	db_job_done(&job);
	_cleanup_free_ char *ko = strjoin("lib/modules/", t->kver, "/updates/dm2/foo.ko");
	ASSERT_OK(db_installed_owner(d, ko, &owner));
	assert_string_equal(owner.recipe, "foo");
	db_installed_file_done(&owner);
}

/* Four processes find the same damaged db at once: one moves it aside, all go on. */
static void test_concurrent_recovery(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *dir = NULL;
	enum { OPENERS = 4 };
	pid_t pids[OPENERS];
	int go[2];

	ASSERT_OK(context_new(t->path, &ctx));
	make_install(t, ctx);
	test_write_file(t->fd, DM2_STATE_DB,
			"this is not an SQLite database, not at all\n");
	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < OPENERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct db *d = NULL;
			struct db_job job = {};
			char c;
			int r;

			close(go[1]);
			(void) !read(go[0], &c, 1);
			r = db_open(ctx, true, &d);
			if (r >= 0)
				r = db_job_current(d, "foo", t->kver, &job);
			db_job_done(&job);
			db_close(d);
			_exit(r < 0 ? 1 : 0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < OPENERS; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	dir = path_join(t->path, DM2_STATE_DIR);
	assert_int_equal(count_broken(dir), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_format_refuses),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_rebuild),
		cmocka_unit_test(test_concurrent_recovery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
