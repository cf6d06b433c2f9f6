/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one SQLite glue of dm2 (the state db in dm2d/core/db.c and the cache index in cache/):
 * result codes as negative errno, statements, transactions, the finalize cleanup.
 *
 * dm2d does not link libsqlite3: dm2d/core/sqlite-lazy.c forwards every sqlite3_* function
 * it reaches to a dlopen()ed library. A sqlite3_* call added here must be forwarded there
 * too (tests/integration/test-daemon-footprint.sh fails otherwise).
 */

#include <sqlite3.h>
#include <stdint.h>

#include "shared/macro.h"

/* A SQLite result code as 0 (OK, ROW, DONE) or a negative errno; sqlite-util.c's table says
 * which and why. db (may be NULL) refines the answer with its extended code and, for I/O
 * and open errors, the errno SQLite saw. */
int sql_error(sqlite3 *db, int rc);

/* Statements that return no rows (several may be separated by ';'). */
int sql_exec(sqlite3 *db, const char *sql);
int sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret);

/* Switch the database to WAL (stored in the file: readers never block the writer, nor it
 * them), retrying for up to timeout_usec while another connection stands in the way. */
int sql_set_wal(sqlite3 *db, uint64_t timeout_usec);

/* BEGIN IMMEDIATE: takes the write lock now, so that a transaction never fails half-way
 * because another writer came first. */
int sql_begin(sqlite3 *db);
/* COMMIT; a failed commit is rolled back, so the connection is usable again. */
int sql_commit(sqlite3 *db);
/* Roll back the open transaction, if there is one. */
void sql_rollback(sqlite3 *db);

static inline void sql_finalizep(sqlite3_stmt **s)
{
	if (*s)
		(void) sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(sql_finalizep)
