/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm2d's SQLite, loaded only while a connection is open.
 *
 * The daemon touches its state db in bursts (a kernel appears, jobs run) and then idles for
 * weeks. Linked normally, libsqlite3 and libm would stay mapped all that time, and the pages
 * a burst touched would stay resident: about 1.5 MiB of a daemon that otherwise needs under
 * 3. So dm2d is linked with this file instead of -lsqlite3: it defines the sqlite3_*
 * functions that db.c and shared/sqlite-util.c call (the compiler checks each against
 * <sqlite3.h>), and each forwards to the real one. The first sqlite3_open_v2() dlopen()s
 * the library; closing the last connection (db_suspend(), when the daemon goes idle) shuts
 * SQLite down and dlclose()s it. dm2 and dm2-engine link libsqlite3 as usual and never see
 * this file.
 *
 * A function db.c or sqlite-util.c starts to use without a forwarder here makes the dm2d
 * link fail, or pull in libsqlite3 after all: tests/integration/test-daemon-footprint.sh
 * checks for both.
 */
#include <dlfcn.h>
#include <sqlite3.h>

#include "shared/log.h"

/* Forwarded as they are: only ever called with a handle from an open connection. */
#define FORWARDED(X)                                                                      \
	X(int, bind_int, (sqlite3_stmt * s, int i, int v), (s, i, v))                     \
	X(int, bind_int64, (sqlite3_stmt * s, int i, sqlite3_int64 v), (s, i, v))         \
	X(int, bind_null, (sqlite3_stmt * s, int i), (s, i))                              \
	X(int, bind_text, (sqlite3_stmt * s, int i, const char *v, int n, void (*f)(void *)), \
	  (s, i, v, n, f))                                                                \
	X(int, busy_timeout, (sqlite3 * db, int ms), (db, ms))                            \
	X(int, changes, (sqlite3 * db), (db))                                             \
	X(const char *, errmsg, (sqlite3 * db), (db))                                     \
	X(int, column_int, (sqlite3_stmt * s, int i), (s, i))                             \
	X(sqlite3_int64, column_int64, (sqlite3_stmt * s, int i), (s, i))                 \
	X(const unsigned char *, column_text, (sqlite3_stmt * s, int i), (s, i))          \
	X(int, exec,                                                                      \
	  (sqlite3 * db, const char *sql, int (*cb)(void *, int, char **, char **), void *u, \
	   char **err),                                                                   \
	  (db, sql, cb, u, err))                                                          \
	X(int, file_control, (sqlite3 * db, const char *name, int op, void *arg),         \
	  (db, name, op, arg))                                                            \
	X(int, finalize, (sqlite3_stmt * s), (s))                                         \
	X(int, get_autocommit, (sqlite3 * db), (db))                                      \
	X(sqlite3_int64, last_insert_rowid, (sqlite3 * db), (db))                         \
	X(int, prepare_v2,                                                                \
	  (sqlite3 * db, const char *sql, int n, sqlite3_stmt **st, const char **tail),   \
	  (db, sql, n, st, tail))                                                         \
	X(int, step, (sqlite3_stmt * s), (s))                                             \
	X(int, system_errno, (sqlite3 * db), (db))

/* Written out below: they load, unload, or must work without the library. */
#define SPECIAL(X)                                                                        \
	X(int, open_v2, (const char *f, sqlite3 **db, int fl, const char *vfs), ())       \
	X(int, close_v2, (sqlite3 * db), ())                                              \
	X(int, errcode, (sqlite3 * db), ())                                               \
	X(int, extended_errcode, (sqlite3 * db), ())                                      \
	X(int, shutdown, (void), ())

static struct {
	void *handle;
	unsigned n_open; /* connections handed out and not closed yet */
#define FIELD(ret, name, params, args) ret(*name) params;
	FORWARDED(FIELD)
	SPECIAL(FIELD)
#undef FIELD
} lib;

static void unload(void)
{
	void *h = lib.handle;

	lib = (typeof(lib)) {};
	(void) dlclose(h);
}

static int load(void)
{
	if (lib.handle)
		return 0;
	lib.handle = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!lib.handle) {
		log_error("Cannot load SQLite for the state db: %s", dlerror());
		return -ENOENT;
	}
#define SYM(ret, name, params, args)                                                     \
	*(void **) &lib.name = dlsym(lib.handle, "sqlite3_" #name);                      \
	if (!lib.name) {                                                                 \
		log_error("libsqlite3.so.0 has no sqlite3_" #name "().");                \
		unload();                                                                \
		return -ENOENT;                                                          \
	}
	FORWARDED(SYM)
	SPECIAL(SYM)
#undef SYM
	return 0;
}

#define FORWARD(ret, name, params, args)                                                 \
	ret sqlite3_##name params                                                        \
	{                                                                                \
		return lib.name args;                                                    \
	}
FORWARDED(FORWARD)
#undef FORWARD

int sqlite3_open_v2(const char *filename, sqlite3 **ret, int flags, const char *vfs)
{
	int rc;

	*ret = NULL;
	if (load() < 0)
		return SQLITE_CANTOPEN;
	rc = lib.open_v2(filename, ret, flags, vfs);
	if (*ret)
		lib.n_open++; /* even on failure: the handle must be closed */
	else if (lib.n_open == 0)
		sqlite3_shutdown();
	return rc;
}

int sqlite3_close_v2(sqlite3 *db)
{
	int rc;

	if (!db)
		return SQLITE_OK;
	rc = lib.close_v2(db);
	if (--lib.n_open == 0)
		sqlite3_shutdown();
	return rc;
}

int sqlite3_shutdown(void)
{
	if (!lib.handle)
		return SQLITE_OK;
	(void) lib.shutdown();
	unload();
	return SQLITE_OK;
}

/* After a failed open there is no handle and maybe no library: SQLite says NOMEM then. */
int sqlite3_errcode(sqlite3 *db)
{
	return db ? lib.errcode(db) : SQLITE_NOMEM;
}

int sqlite3_extended_errcode(sqlite3 *db)
{
	return db ? lib.extended_errcode(db) : SQLITE_NOMEM;
}
