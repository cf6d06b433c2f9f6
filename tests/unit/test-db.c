/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "core/context.h"
#include "core/db.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static void test_rootp(struct test_root **t)
{
	test_root_free(*t);
}

static char *db_path(struct test_root *t)
{
	char *p = path_join(t->path, "state.db");

	assert_non_null(p);
	return p;
}

static int count_rows(const char *path, const char *sql)
{
	sqlite3 *s = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;

	assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(s);
	return n;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *s = NULL;

	assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
	assert_int_equal(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(s);
}

static void test_schema(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(db_closep) struct db *d = NULL, *ro = NULL;
	_cleanup_free_ char *path = NULL;
	int v;

	ASSERT_OK(context_new(t->path, &ctx));
	/* Read-only before anything was written: no database. */
	ASSERT_ERR(db_open(ctx, false, &ro), -ENOENT);
	ASSERT_OK(db_open(ctx, true, &d));
	ASSERT_OK(db_schema_version(d, &v));
	assert_int_equal(v, DB_SCHEMA_VERSION);

	path = path_join(t->path, DM2_STATE_DB);
	assert_int_equal(
		count_rows(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
				 " AND name IN ('kernels', 'recipes', 'jobs',"
				 " 'installed_files')"),
		4);
	{
		sqlite3 *s = NULL;
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL),
				 SQLITE_OK);
		assert_int_equal(
			sqlite3_prepare_v2(s, "PRAGMA journal_mode", -1, &st, NULL),
			SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *) sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
		sqlite3_close(s);
	}
	ASSERT_OK(db_open(ctx, false, &ro));
	ASSERT_OK(db_schema_version(ro, &v));
	assert_int_equal(v, DB_SCHEMA_VERSION);
	/* A reader cannot write. */
	assert_true(db_kernel_upsert(ro, "1.0", NULL, NULL, "complete", NULL) < 0);
}

static void test_migrations(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	_cleanup_free_ char *path = db_path(t);
	struct db *d = NULL;
	int v;

	/* Version 0: a database file that exists but has never seen our schema. */
	raw_exec(path, "CREATE TABLE unrelated (x); PRAGMA user_version = 0;");
	ASSERT_ERR(db_open_path(path, false, &d), -ENOENT);
	ASSERT_OK(db_open_path(path, true, &d));
	ASSERT_OK(db_schema_version(d, &v));
	assert_int_equal(v, DB_SCHEMA_VERSION);
	ASSERT_OK(
		db_kernel_upsert(d, "6.1.0-1-amd64", "abc", "x86_64", "complete", NULL));
	d = db_close(d);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM unrelated"), 0);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM kernels"), 1);

	/* Opening again migrates nothing and keeps the data. */
	ASSERT_OK(db_open_path(path, true, &d));
	d = db_close(d);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM kernels"), 1);

	/* A schema from the future is refused, read-only or not, and left alone. */
	raw_exec(path, "PRAGMA user_version = 99;");
	ASSERT_ERR(db_open_path(path, true, &d), -EPROTO);
	ASSERT_ERR(db_open_path(path, false, &d), -EPROTO);
	assert_int_equal(count_rows(path, "PRAGMA user_version"), 99);
}

/* foo on 6.1 from queued to installed, with one interrupted attempt; returns its id. */
static int64_t job_first_install(struct db *d)
{
	struct db_job j = {}, *l = NULL;
	size_t n = 0;
	int64_t id, id2;

	ASSERT_OK(db_job_enqueue(d, "foo", "6.1", &id));
	ASSERT_OK(db_job_get(d, id, &j));
	assert_int_equal(j.state, JOB_STATE_QUEUED);
	assert_int_equal(j.attempt, 1);
	assert_true(j.created > 0);
	assert_int_equal(j.started, 0);
	db_job_done(&j);

	/* Queued twice is one job (the daemon's row is continued by its child). */
	ASSERT_OK(db_job_enqueue(d, "foo", "6.1", &id2));
	assert_int_equal(id, id2);

	ASSERT_OK(db_job_set_state(d, id, JOB_STATE_FETCHING, NULL, NULL, NULL));
	ASSERT_OK(db_job_set_build(d, id, "1.0", "k1", false, NULL));
	ASSERT_OK(db_job_set_state(d, id, JOB_STATE_BUILDING, NULL, NULL, "/log"));
	ASSERT_OK(db_jobs_unfinished(d, &l, &n));
	assert_int_equal(n, 1);
	assert_int_equal(l[0].state, JOB_STATE_BUILDING);
	assert_true(l[0].started > 0);
	db_jobs_free(l, n);

	/* Interrupted in building (crash): enqueuing again resumes it as a new attempt.
	 */
	ASSERT_OK(db_job_enqueue(d, "foo", "6.1", &id2));
	assert_int_equal(id, id2);
	ASSERT_OK(db_job_get(d, id, &j));
	assert_int_equal(j.attempt, 2);
	db_job_done(&j);

	ASSERT_OK(db_job_set_build(d, id, NULL, NULL, true, "Test CA"));
	ASSERT_OK(db_job_set_state(d, id, JOB_STATE_INSTALLED, NULL, NULL, NULL));
	ASSERT_OK(db_job_get(d, id, &j));
	assert_int_equal(j.state, JOB_STATE_INSTALLED);
	assert_string_equal(j.version, "1.0");
	assert_string_equal(j.build_key, "k1");
	assert_string_equal(j.log_path, "/log");
	assert_string_equal(j.signer, "Test CA");
	assert_true(j.from_cache);
	assert_true(j.finished >= j.started);
	assert_null(j.stage);
	db_job_done(&j);
	ASSERT_OK(db_jobs_unfinished(d, &l, &n));
	assert_int_equal(n, 0);
	free(l);
	return id;
}

static void test_job_transitions(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	_cleanup_free_ char *path = db_path(t);
	_cleanup_(db_closep) struct db *d = NULL;
	struct db_job j = {}, *l = NULL;
	size_t n = 0;
	int64_t id, id2, id3;

	ASSERT_OK(db_open_path(path, true, &d));
	id = job_first_install(d);

	/* A new attempt that fails: current is the failure, the installed one is kept. */
	ASSERT_OK(db_job_enqueue(d, "foo", "6.1", &id3));
	assert_true(id3 > id);
	ASSERT_OK(
		db_job_set_state(d, id3, JOB_STATE_FAILED, "building", "error: x", NULL));
	ASSERT_OK(db_job_current(d, "foo", "6.1", &j));
	assert_int_equal(j.id, id3);
	assert_int_equal(j.state, JOB_STATE_FAILED);
	assert_string_equal(j.stage, "building");
	assert_string_equal(j.reason, "error: x");
	assert_true(j.finished > 0);
	db_job_done(&j);
	ASSERT_OK(db_job_last_installed(d, "foo", "6.1", &j));
	assert_int_equal(j.id, id);
	db_job_done(&j);

	/* History is pruned to the current job plus the last installed one. */
	ASSERT_OK(db_job_enqueue(d, "foo", "6.1", &id2));
	ASSERT_OK(db_job_set_state(d, id2, JOB_STATE_SKIPPED, NULL, "arch", NULL));
	assert_int_equal(count_rows(path, "SELECT count(*) FROM jobs"), 2);
	ASSERT_OK(db_job_get(d, id2, &j));
	assert_null(j.stage);
	assert_string_equal(j.reason, "arch");
	db_job_done(&j);

	ASSERT_OK(db_job_enqueue(d, "bar", "6.1", &id3));
	ASSERT_OK(db_jobs_current(d, NULL, NULL, &l, &n));
	assert_int_equal(n, 2);
	assert_string_equal(l[0].recipe, "bar");
	assert_string_equal(l[1].recipe, "foo");
	assert_int_equal(l[1].id, id2);
	db_jobs_free(l, n);

	ASSERT_ERR(db_job_set_state(d, 4242, JOB_STATE_FAILED, "x", "y", NULL), -ENOENT);
	ASSERT_ERR(db_job_get(d, 4242, &j), -ENOENT);
	ASSERT_ERR(db_job_set_state(d, id, _JOB_STATE_MAX, NULL, NULL, NULL), -EINVAL);

	ASSERT_OK(db_job_forget(d, "foo", "6.1"));
	ASSERT_ERR(db_job_current(d, "foo", "6.1", &j), -ENOENT);

	for (int s = 0; s < _JOB_STATE_MAX; s++)
		assert_int_equal(job_state_from_string(job_state_to_string(s)), s);
	assert_false(job_state_is_final(JOB_STATE_BUILDING));
	assert_true(job_state_is_final(JOB_STATE_WAITING));
}

static void test_kernels_and_files(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	_cleanup_free_ char *path = db_path(t);
	_cleanup_(db_closep) struct db *d = NULL;
	struct db_kernel k = {}, *kl = NULL;
	struct db_installed_file f = {}, *fl = NULL;
	size_t n = 0;
	int64_t id;

	ASSERT_OK(db_open_path(path, true, &d));
	ASSERT_OK(db_kernel_upsert(d, "6.1", NULL, "x86_64", "incomplete", "no .config"));
	ASSERT_OK(db_kernel_upsert(d, "6.1", "id1", "x86_64", "complete", NULL));
	ASSERT_OK(db_kernel_upsert(d, "6.2", "id2", "x86_64", "complete", NULL));
	ASSERT_OK(db_kernel_get(d, "6.1", &k));
	assert_string_equal(k.identity, "id1");
	assert_string_equal(k.state, "complete");
	assert_null(k.reason);
	db_kernel_done(&k);
	ASSERT_OK(db_kernels_list(d, &kl, &n));
	assert_int_equal(n, 2);
	db_kernels_free(kl, n);
	ASSERT_OK(db_recipe_upsert(d, "foo", "vendor", "/x/foo.recipe", "h"));

	ASSERT_OK(db_job_enqueue(d, "foo", "6.1", &id));
	ASSERT_OK(db_installed_add(d, "6.1", "foo", "lib/modules/6.1/updates/dm2/foo.ko",
				   "aa", NULL));
	ASSERT_OK(db_installed_add(d, "6.2", "foo", "lib/modules/6.2/updates/dm2/foo.ko",
				   "bb", "builtin"));
	ASSERT_OK(db_installed_owner(d, "lib/modules/6.2/updates/dm2/foo.ko", &f));
	assert_string_equal(f.recipe, "foo");
	assert_string_equal(f.overrides_intree, "builtin");
	db_installed_file_done(&f);
	ASSERT_ERR(db_installed_owner(d, "lib/modules/6.2/other.ko", &f), -ENOENT);
	ASSERT_OK(db_installed_list(d, NULL, "foo", &fl, &n));
	assert_int_equal(n, 2);
	db_installed_files_free(fl, n);

	/* The kernel went away: its jobs and records go, the other kernel's stay. */
	ASSERT_OK(db_kernel_remove(d, "6.1"));
	ASSERT_ERR(db_kernel_get(d, "6.1", &k), -ENOENT);
	ASSERT_ERR(db_job_get(d, id, &(struct db_job){}), -ENOENT);
	ASSERT_OK(db_installed_list(d, NULL, NULL, &fl, &n));
	assert_int_equal(n, 1);
	assert_string_equal(fl[0].kernel, "6.2");
	db_installed_files_free(fl, n);

	/* Grouped writes: a rollback undoes them all. */
	ASSERT_OK(db_begin(d));
	ASSERT_OK(db_kernel_upsert(d, "7.0", NULL, NULL, "complete", NULL));
	ASSERT_OK(db_installed_remove(d, "lib/modules/6.2/updates/dm2/foo.ko"));
	db_rollback(d);
	ASSERT_ERR(db_kernel_get(d, "7.0", &k), -ENOENT);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM installed_files"), 1);
}

static void test_concurrent_reader(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	_cleanup_free_ char *path = db_path(t);
	_cleanup_(db_closep) struct db *w = NULL, *ro = NULL;
	sqlite3_stmt *st = NULL;
	int64_t id;
	uint64_t t0;
	pid_t pid;
	int status;

	ASSERT_OK(db_open_path(path, true, &w));
	ASSERT_OK(db_job_enqueue(w, "foo", "6.1", &id));
	ASSERT_OK(db_open_path(path, false, &ro));

	/* The reader holds an open read transaction (a snapshot) ... */
	assert_int_equal(sqlite3_exec(db_sqlite(ro), "BEGIN", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db_sqlite(ro),
					    "SELECT state FROM jobs WHERE id = 1", -1,
					    &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *) sqlite3_column_text(st, 0), "queued");
	sqlite3_reset(st);

	/* ... while the writer, in this process and in another one, commits without
	 * waiting. */
	t0 = now_mono_usec();
	ASSERT_OK(db_job_set_state(w, id, JOB_STATE_BUILDING, NULL, NULL, NULL));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct db *w2 = NULL;
		int r = db_open_path(path, true, &w2);

		for (int i = 0; r >= 0 && i < 50; i++)
			r = db_kernel_upsert(w2, "6.1", NULL, NULL, "complete", NULL);
		if (r >= 0)
			r = db_job_set_state(w2, id, JOB_STATE_INSTALLED, NULL, NULL,
					     NULL);
		db_close(w2);
		_exit(r < 0 ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(now_mono_usec() - t0 <
		    4 * 1000000ULL); /* well under the busy timeout */

	/* The reader's snapshot is unchanged; after it ends it sees the new state. */
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *) sqlite3_column_text(st, 0), "queued");
	sqlite3_reset(st);
	assert_int_equal(sqlite3_exec(db_sqlite(ro), "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *) sqlite3_column_text(st, 0), "installed");
	sqlite3_finalize(st);
}

/* Several processes opening the same fresh state db at once (jobs starting together on a
 * new root) all succeed: SQLite's immediate SQLITE_BUSY for the switch to WAL is retried.
 * Each round starts the openers together behind a pipe so they really race. */
static void test_concurrent_first_open(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	enum { ROUNDS = 40, OPENERS = 4 };

	for (int round = 0; round < ROUNDS; round++) {
		_cleanup_free_ char *path = NULL;
		char name[32];
		pid_t pids[OPENERS];
		int go[2];

		snprintf(name, sizeof(name), "fresh-%d.db", round);
		path = path_join(t->path, name);
		assert_non_null(path);
		assert_int_equal(pipe(go), 0);
		for (int i = 0; i < OPENERS; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				struct db *d = NULL;
				char c;
				int r;

				close(go[1]);
				(void) !read(go[0], &c, 1); /* EOF: everyone starts now */
				r = db_open_path(path, true, &d);
				if (r >= 0)
					r = db_kernel_upsert(d, "6.1", NULL, NULL, "complete",
							     NULL);
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
	}
}

/* dm2d closes its connection when idle; the next call opens it again, with its settings. */
static void test_suspend(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	_cleanup_(db_closep) struct db *d = NULL;
	_cleanup_free_ char *path = db_path(t);
	struct db_job j = {};
	sqlite3_stmt *st = NULL;
	int64_t id;

	ASSERT_OK(db_open_path(path, true, &d));
	ASSERT_OK(db_job_enqueue(d, "r", "k", &id));
	assert_int_equal(db_suspend(d), 1);
	assert_int_equal(db_suspend(d), 0);
	ASSERT_OK(db_job_get(d, id, &j));
	assert_string_equal(j.recipe, "r");
	db_job_done(&j);
	/* synchronous is per connection: the reopened one has it too (2 = FULL). */
	assert_int_equal(db_suspend(d), 1);
	assert_int_equal(sqlite3_prepare_v2(db_sqlite(d), "PRAGMA synchronous", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	sqlite3_finalize(st);
	ASSERT_OK(db_begin(d));
	ASSERT_ERR(db_suspend(d), -EBUSY);
	ASSERT_OK(db_commit(d));
	assert_int_equal(db_suspend(d), 1);
	assert_int_equal(count_rows(path, "SELECT COUNT(*) FROM jobs"), 1);

	/* Removed while suspended: the reconnect makes a whole new database, not an empty
	 * file. */
	for (const char *const *sfx = (const char *const[]){"", "-wal", "-shm", NULL}; *sfx;
	     sfx++) {
		_cleanup_free_ char *p = strjoin(path, *sfx);

		assert_non_null(p);
		(void) unlink(p);
	}
	ASSERT_ERR(db_job_get(d, id, &j), -ENOENT);
	ASSERT_OK(db_job_enqueue(d, "r2", "k", &id));
	assert_int_equal(db_suspend(d), 1);
	assert_int_equal(count_rows(path, "SELECT COUNT(*) FROM jobs"), 1);
}

/* Build durations: per recipe and kernel; another kernel's stands in when this one has none. */
static void test_durations(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	_cleanup_free_ char *path = NULL;
	struct db *d = NULL;
	uint64_t usec = 0;

	assert_true(asprintf(&path, "%s/state.db", t->path) > 0);
	ASSERT_OK(db_open_path(path, true, &d));
	ASSERT_ERR(db_duration_expected(d, "evdi", "6.1", &usec), -ENOENT);
	ASSERT_OK(db_duration_record(d, "evdi", "6.1", 9000000, 15000000));
	ASSERT_OK(db_duration_record(d, "evdi", "6.2", 7000000, 12000000));
	ASSERT_OK(db_duration_expected(d, "evdi", "6.1", &usec));
	assert_int_equal(usec, 9000000);
	ASSERT_OK(db_duration_expected(d, "evdi", "6.5", &usec));
	assert_int_equal(usec, 7000000); /* the latest */
	ASSERT_OK(db_duration_record(d, "evdi", "6.1", 8000000, 14000000));
	ASSERT_OK(db_duration_expected(d, "evdi", "6.1", &usec));
	assert_int_equal(usec, 8000000);
	ASSERT_ERR(db_duration_expected(d, "apfs", "6.1", &usec), -ENOENT);
	db_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema),
		cmocka_unit_test(test_migrations),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_job_transitions),
		cmocka_unit_test(test_kernels_and_files),
		cmocka_unit_test(test_concurrent_reader),
		cmocka_unit_test(test_concurrent_first_open),
		cmocka_unit_test(test_suspend),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
