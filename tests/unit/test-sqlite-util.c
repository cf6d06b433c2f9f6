/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shared/sqlite-util.c, the SQLite glue of the state db and the cache index: real SQLite
 * databases in a temporary directory, no kernel needed. */
#include <fcntl.h>
#include <limits.h>

#include "core/db.h"
#include "shared/fs-util.h"
#include "shared/sqlite-util.h"
#include "shared/util.h"
#include "tests.h"

static char dir[PATH_MAX];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/dm2-sqlite-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	return rm_rf_at(AT_FDCWD, dir);
}

static void sqlite3_closep(sqlite3 **db)
{
	if (*db)
		sqlite3_close_v2(*db);
}

static sqlite3 *open_db(const char *name, int flags)
{
	_cleanup_free_ char *path = path_join(dir, name);
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK)
		fail_msg("cannot open '%s': %s", path, sqlite3_errstr(rc));
	return db;
}

static void test_codes(void **state)
{
	/* The table without a connection to refine it. */
	assert_int_equal(sql_error(NULL, SQLITE_OK), 0);
	assert_int_equal(sql_error(NULL, SQLITE_ROW), 0);
	assert_int_equal(sql_error(NULL, SQLITE_DONE), 0);
	assert_int_equal(sql_error(NULL, SQLITE_BUSY), -EBUSY);
	assert_int_equal(sql_error(NULL, SQLITE_LOCKED), -EBUSY);
	assert_int_equal(sql_error(NULL, SQLITE_NOMEM), -ENOMEM);
	/* The two old copies disagreed here (EACCES in the cache, EROFS in the state db). */
	assert_int_equal(sql_error(NULL, SQLITE_READONLY), -EROFS);
	assert_int_equal(sql_error(NULL, SQLITE_READONLY_DBMOVED), -EROFS);
	assert_int_equal(sql_error(NULL, SQLITE_PERM), -EACCES);
	assert_int_equal(sql_error(NULL, SQLITE_CANTOPEN), -ENOENT);
	assert_int_equal(sql_error(NULL, SQLITE_FULL), -ENOSPC);
	assert_int_equal(sql_error(NULL, SQLITE_CORRUPT), -EBADMSG);
	assert_int_equal(sql_error(NULL, SQLITE_NOTADB), -EBADMSG);
	assert_int_equal(sql_error(NULL, SQLITE_CONSTRAINT), -EEXIST);
	assert_int_equal(sql_error(NULL, SQLITE_CONSTRAINT_NOTNULL), -EINVAL);
	assert_int_equal(sql_error(NULL, SQLITE_IOERR_NOMEM), -ENOMEM);
	assert_int_equal(sql_error(NULL, SQLITE_IOERR), -EIO);
	assert_int_equal(sql_error(NULL, SQLITE_ERROR), -EIO);
}

static void test_readonly(void **state)
{
	_cleanup_(sqlite3_closep) sqlite3 *rw = open_db("ro.db", SQLITE_OPEN_READWRITE |
								 SQLITE_OPEN_CREATE);
	_cleanup_(sqlite3_closep) sqlite3 *ro = NULL;

	ASSERT_OK(sql_exec(rw, "CREATE TABLE t (x INTEGER)"));
	ro = open_db("ro.db", SQLITE_OPEN_READONLY);
	ASSERT_ERR(sql_exec(ro, "INSERT INTO t VALUES (1)"), -EROFS);
	ASSERT_OK(sql_begin(ro));
	ASSERT_ERR(sql_exec(ro, "INSERT INTO t VALUES (2)"), -EROFS);
	sql_rollback(ro);
	assert_true(sqlite3_get_autocommit(ro));
}

/* What the state db says for the same thing: the one mapping, through db.c. */
static void test_readonly_state_db(void **state)
{
	_cleanup_free_ char *path = path_join(dir, "state.db");
	_cleanup_(db_closep) struct db *rw = NULL, *ro = NULL;

	ASSERT_OK(db_open_path(path, true, &rw));
	ASSERT_OK(db_open_path(path, false, &ro));
	ASSERT_ERR(db_kernel_upsert(ro, "6.1.0-1-amd64", NULL, "x86_64", "complete", NULL),
		   -EROFS);
	ASSERT_OK(db_kernel_upsert(rw, "6.1.0-1-amd64", NULL, "x86_64", "complete", NULL));
}

static void test_cantopen_says_why(void **state)
{
	_cleanup_free_ char *file = path_join(dir, "plain"), *below = path_join(file, "x.db");
	_cleanup_free_ char *missing = path_join(dir, "no/such/dir/x.db");
	sqlite3 *db = NULL;
	int rc;

	ASSERT_OK(write_file_atomic_at(AT_FDCWD, file, "x", 1, 0644));
	rc = sqlite3_open_v2(missing, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	ASSERT_ERR(sql_error(db, rc), -ENOENT);
	sqlite3_close_v2(db);
	/* The errno SQLite saw, not a guess: a file where a directory should be. */
	rc = sqlite3_open_v2(below, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	ASSERT_ERR(sql_error(db, rc), -ENOTDIR);
	sqlite3_close_v2(db);
}

static void test_not_a_database(void **state)
{
	_cleanup_free_ char *path = path_join(dir, "junk.db");
	_cleanup_(sqlite3_closep) sqlite3 *db = NULL;
	char junk[4096];

	memset(junk, 'j', sizeof(junk));
	ASSERT_OK(write_file_atomic_at(AT_FDCWD, path, junk, sizeof(junk), 0644));
	db = open_db("junk.db", SQLITE_OPEN_READWRITE);
	ASSERT_ERR(sql_exec(db, "SELECT * FROM sqlite_master"), -EBADMSG);
}

static void test_constraints(void **state)
{
	_cleanup_(sqlite3_closep) sqlite3 *db = open_db("c.db", SQLITE_OPEN_READWRITE |
								 SQLITE_OPEN_CREATE);

	ASSERT_OK(sql_exec(db, "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL)"));
	ASSERT_OK(sql_exec(db, "INSERT INTO t VALUES ('a', 'x')"));
	ASSERT_ERR(sql_exec(db, "INSERT INTO t VALUES ('a', 'y')"), -EEXIST);
	ASSERT_ERR(sql_exec(db, "INSERT INTO t VALUES ('b', NULL)"), -EINVAL);
	ASSERT_ERR(sql_exec(db, "SELECT * FROM no_such_table"), -EIO);
}

static int count_rows(sqlite3 *db)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	ASSERT_OK(sql_prepare(db, "SELECT COUNT(*) FROM child", &st));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	return sqlite3_column_int(st, 0);
}

static void test_transactions(void **state)
{
	_cleanup_(sqlite3_closep) sqlite3 *db = open_db("tx.db", SQLITE_OPEN_READWRITE |
								  SQLITE_OPEN_CREATE);

	ASSERT_OK(sql_exec(db, "PRAGMA foreign_keys = ON;"
			       "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
			       "CREATE TABLE child (p INTEGER REFERENCES parent(id) "
			       "DEFERRABLE INITIALLY DEFERRED)"));
	sql_rollback(db); /* nothing open: nothing happens */

	ASSERT_OK(sql_begin(db));
	ASSERT_OK(sql_exec(db, "INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1)"));
	sql_rollback(db);
	assert_int_equal(count_rows(db), 0);
	assert_true(sqlite3_get_autocommit(db));

	/* A commit that fails (a deferred foreign key) leaves no transaction open behind:
	 * SQLite itself would keep it, and the next BEGIN would fail. */
	ASSERT_OK(sql_begin(db));
	ASSERT_OK(sql_exec(db, "INSERT INTO child VALUES (42)"));
	ASSERT_ERR(sql_commit(db), -EINVAL);
	assert_true(sqlite3_get_autocommit(db));
	assert_int_equal(count_rows(db), 0);
	ASSERT_OK(sql_begin(db));
	ASSERT_OK(sql_exec(db, "INSERT INTO parent VALUES (7); INSERT INTO child VALUES (7)"));
	ASSERT_OK(sql_commit(db));
	assert_int_equal(count_rows(db), 1);
	/* Every statement of _cleanup_stmt_ was finalized. */
	assert_null(sqlite3_next_stmt(db, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes),
		cmocka_unit_test(test_readonly),
		cmocka_unit_test(test_readonly_state_db),
		cmocka_unit_test(test_cantopen_says_why),
		cmocka_unit_test(test_not_a_database),
		cmocka_unit_test(test_constraints),
		cmocka_unit_test(test_transactions),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
