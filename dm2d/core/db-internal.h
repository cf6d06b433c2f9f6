/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by db.c (the queries) and db-open.c (opening, recovery); nothing else includes
 * it. */

#include <sqlite3.h>

#include "core/db.h"

struct db {
	sqlite3 *sql; /* NULL while suspended (db_suspend()) */
	char *path;
	const char *name; /* the file name part of path */
	int dir_fd;	  /* the directory holding it */
	int root_fd;	  /* where the install manifests are; -EBADF: db_open_path() */
	bool writable;
	bool immutable;	   /* read-only fallback, see connect_immutable() */
	unsigned tx_depth; /* >0 while db_begin() is open */
	char *broken;	   /* why the database was moved aside, for the rebuild's log */
};

/* (Re)connect if suspended (db_suspend()), checking the schema (and recovering). */
int db_connect(struct db *d);
/* One statement, or several separated by ';', on the (re)connected database. */
int db_exec(struct db *d, const char *sql);
int db_prepare(struct db *d, const char *sql, sqlite3_stmt **ret);
