/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "shared/sqlite-util.h"
#include "shared/util.h"

/* The extended code of db's last error, if it is the one rc reports. */
static int extended(sqlite3 *db, int rc)
{
	int ext;

	if (!db)
		return rc;
	ext = sqlite3_extended_errcode(db);
	return (ext & 0xff) == (rc & 0xff) ? ext : rc;
}

/* For I/O and open errors: what the kernel said, which tells ENOENT from EACCES from EIO. */
static int system_errno(sqlite3 *db, int fallback)
{
	int e = db ? sqlite3_system_errno(db) : 0;

	return e > 0 ? -e : fallback;
}

int sql_error(sqlite3 *db, int rc)
{
	int ext;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		/* Another connection holds the lock past the busy timeout: try again later. */
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		/* A write to a database that cannot be written: opened read-only (dm2 status,
		 * a read-only root), or its file, directory or file system is. That is EROFS,
		 * not EACCES: being denied access at open time comes back as SQLITE_CANTOPEN
		 * with the kernel's EACCES (below), and "permission denied" here would send
		 * people chmod-ing a file that is fine. */
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		/* The access mode or an authorizer refused the operation. */
		return -EACCES;
	case SQLITE_CANTOPEN:
		/* Usually a missing directory (ENOENT) or permissions (EACCES): say which. */
		return system_errno(db, -ENOENT);
	case SQLITE_IOERR:
		if (extended(db, rc) == SQLITE_IOERR_NOMEM)
			return -ENOMEM;
		return system_errno(db, -EIO);
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOLFS:
		return -EFBIG;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		/* The file is there but is not a database we can read: bad content. */
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
		ext = extended(db, rc);
		/* A row that exists already; any other broken rule is a bad value. */
		if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY ||
		    ext == SQLITE_CONSTRAINT || ext == SQLITE_CONSTRAINT_ROWID)
			return -EEXIST;
		return -EINVAL;
	case SQLITE_MISMATCH:
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
		/* Our own mistakes in a statement or its parameters. */
		return -EINVAL;
	case SQLITE_INTERRUPT:
		return -EINTR;
	case SQLITE_ABORT:
		return -ECANCELED;
	default:
		/* SQLITE_ERROR (bad SQL, missing table), SQLITE_PROTOCOL, SQLITE_SCHEMA... */
		return -EIO;
	}
}

int sql_exec(sqlite3 *db, const char *sql)
{
	return sql_error(db, sqlite3_exec(db, sql, NULL, NULL, NULL));
}

int sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
	return sql_error(db, sqlite3_prepare_v2(db, sql, -1, ret, NULL));
}

/*
 * Switching a fresh database to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY
 * at once, without calling the busy handler, when another process opens the same fresh file
 * at that moment (two jobs or builds starting together on a new machine). Once the file is
 * in WAL mode the pragma is a no-op, so this only ever waits on first use.
 */
int sql_set_wal(sqlite3 *db, uint64_t timeout_usec)
{
	uint64_t deadline = now_mono_usec() + timeout_usec;
	int r;

	for (;;) {
		r = sql_exec(db, "PRAGMA journal_mode = WAL");
		if (r != -EBUSY || now_mono_usec() >= deadline)
			return r;
		(void) usleep(10000 + (unsigned) (now_mono_usec() % 20000));
	}
}

int sql_begin(sqlite3 *db)
{
	return sql_exec(db, "BEGIN IMMEDIATE");
}

int sql_commit(sqlite3 *db)
{
	int r;

	r = sql_exec(db, "COMMIT");
	if (r < 0)
		sql_rollback(db);
	return r;
}

void sql_rollback(sqlite3 *db)
{
	/* After some errors SQLite has rolled back already; a second ROLLBACK would only
	 * overwrite the error the caller may still want to read. */
	if (!sqlite3_get_autocommit(db))
		(void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}
