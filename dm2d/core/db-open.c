/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening the state db: schema, integrity, recovery from the install manifests, readers
 * without write access (db.h). */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/db-internal.h"
#include "core/manifest.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/sqlite-util.h"
#include "shared/util.h"

#define DB_BUSY_TIMEOUT_MSEC (60 * 1000)
/* How long to retry switching a fresh database to WAL (see sql_set_wal()). */
#define DB_WAL_SWITCH_TIMEOUT_USEC (10 * 1000000ULL)

/* Schema migrations: entry i brings the database from version i to i + 1. Never edit an
 * entry once released; append a new one and bump DB_SCHEMA_VERSION. */
static const char *const migrations[DB_SCHEMA_VERSION] = {
	/* 0 -> 1 */
	"CREATE TABLE kernels ("
	"  release TEXT PRIMARY KEY,"
	"  identity TEXT,"
	"  arch TEXT,"
	"  state TEXT NOT NULL,"
	"  reason TEXT,"
	"  seen INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE recipes ("
	"  name TEXT PRIMARY KEY,"
	"  origin TEXT,"
	"  path TEXT,"
	"  content_hash TEXT);"
	"CREATE TABLE jobs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  recipe TEXT NOT NULL,"
	"  kernel TEXT NOT NULL,"
	"  version TEXT,"
	"  state TEXT NOT NULL,"
	"  stage TEXT,"
	"  reason TEXT,"
	"  log_path TEXT,"
	"  build_key TEXT,"
	"  from_cache INTEGER NOT NULL DEFAULT 0,"
	"  signer TEXT,"
	"  created INTEGER NOT NULL,"
	"  started INTEGER NOT NULL DEFAULT 0,"
	"  finished INTEGER NOT NULL DEFAULT 0,"
	"  attempt INTEGER NOT NULL DEFAULT 1);"
	"CREATE INDEX jobs_pair ON jobs (recipe, kernel, id);"
	"CREATE INDEX jobs_state ON jobs (state);"
	"CREATE TABLE installed_files ("
	"  path TEXT PRIMARY KEY,"
	"  kernel TEXT NOT NULL,"
	"  recipe TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  overrides_intree TEXT);"
	"CREATE INDEX installed_pair ON installed_files (kernel, recipe);",
	/* 1 -> 2 */
	"CREATE TABLE build_durations ("
	"  recipe TEXT NOT NULL,"
	"  kernel TEXT NOT NULL,"
	"  wall_usec INTEGER NOT NULL,"
	"  cpu_usec INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (recipe, kernel));",
};

static int get_version(struct db *d, int *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	r = db_prepare(d, "PRAGMA user_version", &st);
	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW)
		return sql_error(d->sql, sqlite3_errcode(d->sql));
	*ret = sqlite3_column_int(st, 0);
	return 0;
}

const char *db_filename(const struct db *d)
{
	return d->path;
}

int db_schema_version(struct db *d, int *ret)
{
	return get_version(d, ret);
}

/* A database created just now (schema version 0) while install manifests exist: the old
 * one was lost, emptied or moved aside as damaged. Record what the manifests say, in the
 * transaction that creates the schema, so no process ever sees it half rebuilt. */
static int import_manifests(struct db *d)
{
	struct manifest_import_stats st = {};
	int r;

	if (d->root_fd < 0)
		return 0;
	r = manifest_import_all(d, d->root_fd, &st);
	if (r < 0)
		return r;
	if (st.manifests == 0)
		return 0;
	if (!d->broken)
		log_warning("The state db '%s' was missing or empty while %u install "
			    "manifest%s exist%s: rebuilt it from them.",
			    d->path, st.manifests, st.manifests == 1 ? "" : "s",
			    st.manifests == 1 ? "s" : "");
	log_notice(
		"event: state-db-rebuilt, db=%s, manifests=%u, installed=%u, files=%u, "
		"skipped=%u",
		d->path, st.manifests, st.imported, st.files, st.skipped);
	return 0;
}

static int migrate(struct db *d)
{
	int v, r;

	r = db_begin(d);
	if (r < 0)
		return r;
	r = get_version(d, &v);
	if (r < 0)
		goto fail;
	if (v > DB_SCHEMA_VERSION) {
		r = -EPROTO;
		goto fail;
	}
	bool fresh = v == 0;
	for (; v < DB_SCHEMA_VERSION; v++) {
		char buf[64];

		r = db_exec(d, migrations[v]);
		if (r < 0)
			goto fail;
		snprintf(buf, sizeof(buf), "PRAGMA user_version = %d", v + 1);
		r = db_exec(d, buf);
		if (r < 0)
			goto fail;
	}
	if (fresh) {
		r = import_manifests(d);
		if (r < 0)
			goto fail;
	}
	return db_commit(d);
fail:
	db_rollback(d);
	return r;
}

/* A half-written or truncated file opens and may answer the first queries: look at every
 * page once (quick_check: no index cross-check, about a millisecond for a state db). */
static int check_integrity(struct db *d)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const char *t;
	int r, rc;

	r = db_prepare(d, "PRAGMA quick_check(1)", &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return sql_error(d->sql, rc);
	t = (const char *) sqlite3_column_text(st, 0);
	if (t && streq(t, "ok"))
		return 0;
	if (d->writable && free_and_strdup(&d->broken, strna(t)) < 0)
		return -ENOMEM;
	return -EBADMSG;
}

/* Check (read-only) or bring (writable) the schema to the version this dm2 knows. */
static int check_schema(struct db *d)
{
	int r, v;

	if (d->writable) {
		/* WAL (stored in the file): readers (dm2 status) never block the writer.
		 */
		r = sql_set_wal(d->sql, DB_WAL_SWITCH_TIMEOUT_USEC);
		if (r >= 0)
			r = check_integrity(d);
		if (r < 0)
			return r;
		return migrate(d);
	}
	r = get_version(d, &v);
	if (r >= 0 && v == DB_SCHEMA_VERSION)
		r = check_integrity(d);
	if (r < 0)
		return r;
	if (v > DB_SCHEMA_VERSION)
		return -EPROTO;
	if (v < DB_SCHEMA_VERSION)
		return -ENOENT; /* never written by a dm2 that knows this schema */
	return 0;
}

/*
 * Anyone may read status (dm2(1)), and a reader without write access to the directory can
 * read a WAL database only when its -wal and -shm files exist and are readable (SQLite's
 * read-only WAL support): so writers create the database world-readable, whatever the
 * umask (the -wal and -shm files copy its mode), and keep -wal and -shm when they close
 * (SQLITE_FCNTL_PERSIST_WAL). Nothing in it is secret: it is what `dm2 status` shows.
 */
static int create_readable(struct db *d)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	fd = openat(d->dir_fd, d->name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((st.st_mode & 0444) != 0444 && st.st_uid == geteuid() &&
	    fchmod(fd, (st.st_mode & 07777) | 0444) < 0)
		return -errno;
	return 0;
}

static int connect_once(struct db *d, const char *filename, int flags)
{
	int rc, r;

	rc = sqlite3_open_v2(filename, &d->sql, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = sql_error(d->sql, rc);
		sqlite3_close_v2(d->sql);
		d->sql = NULL;
		return r;
	}
	/* Writers hold the lock for milliseconds, but on a loaded machine (parallel
	 * builds fsyncing, synchronous=FULL) one commit can take seconds: a job must not
	 * fail, or a daemon miss a transition, because the disk was slow. */
	sqlite3_busy_timeout(d->sql, DB_BUSY_TIMEOUT_MSEC);
	r = db_exec(d, "PRAGMA foreign_keys = ON");
	/* The write volume is tiny, so FULL costs nothing and keeps the last transitions
	 * across power loss. */
	if (r >= 0 && d->writable) {
		int one = 1;

		r = db_exec(d, "PRAGMA synchronous = FULL");
		if (r >= 0)
			r = sql_error(d->sql, sqlite3_file_control(
						      d->sql, "main",
						      SQLITE_FCNTL_PERSIST_WAL, &one));
	}
	if (r >= 0)
		r = check_schema(d);
	/* What SQLite said, for the one line that reports the move aside. */
	if (r == -EBADMSG && d->writable && !d->broken &&
	    free_and_strdup(&d->broken, sqlite3_errmsg(d->sql)) < 0)
		r = -ENOMEM;
	if (r < 0) {
		sqlite3_close_v2(d->sql);
		d->sql = NULL;
	}
	return r;
}

/* "file:/path?immutable=1", the path percent-encoded as URIs need. */
static char *immutable_uri(const char *path)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	fputs("file:", f);
	for (const unsigned char *p = (const unsigned char *) path; *p; p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/-._~", *p))
			fputc(*p, f);
		else
			fprintf(f, "%%%02X", *p);
	fputs("?immutable=1", f);
	if (fclose(f) != 0)
		return NULL;
	return TAKE_PTR(buf);
}

/*
 * A reader that may not create the -shm file (not root), of a database whose -wal and
 * -shm are gone (last closed by a dm2 that did not keep them): without a -wal file,
 * everything is in the database file itself, so reading it as immutable (no locks, no
 * -shm) sees all of it. Only a writer starting in that very moment could make that read
 * inconsistent; the next writer keeps -wal and -shm, and readers use them from then on.
 */
static int connect_immutable(struct db *d)
{
	_cleanup_free_ char *wal = strjoin(d->name, "-wal"),
			    *uri = immutable_uri(d->path);
	int r;

	if (!wal || !uri)
		return -ENOMEM;
	if (faccessat(d->dir_fd, wal, F_OK, 0) >= 0)
		return -EROFS;
	r = connect_once(d, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
	if (r >= 0)
		d->immutable = true;
	return r;
}

/* state.db -> state.db.broken-20261201T120000Z (and its -wal, -shm with it, so neither is
 * ever applied to the new database). */
static int move_aside(struct db *d, char **ret)
{
	static const char *const suffixes[] = {"-wal", "-shm", ""};
	char stamp[32];
	struct tm tm;
	time_t t = time(NULL);

	if (!gmtime_r(&t, &tm) ||
	    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
		return -EINVAL;
	for (unsigned n = 0; n < 100; n++) {
		_cleanup_free_ char *aside = NULL;
		char num[16] = "";
		int r = 0;

		if (n > 0)
			snprintf(num, sizeof(num), ".%u", n);
		aside = strjoin(d->name, ".broken-", stamp, num);
		if (!aside)
			return -ENOMEM;
		if (faccessat(d->dir_fd, aside, F_OK, AT_SYMLINK_NOFOLLOW) >= 0)
			continue;
		for (size_t i = 0; i < ELEMENTSOF(suffixes) && r >= 0; i++) {
			_cleanup_free_ char *from = strjoin(d->name, suffixes[i]);
			_cleanup_free_ char *to = strjoin(aside, suffixes[i]);

			if (!from || !to)
				r = -ENOMEM;
			else if (renameat(d->dir_fd, from, d->dir_fd, to) < 0 &&
				 errno != ENOENT)
				r = -errno;
		}
		if (r < 0)
			return r;
		*ret = strjoin(d->path, ".broken-", stamp, num);
		return *ret ? 0 : -ENOMEM;
	}
	return -EEXIST;
}

/*
 * The database is damaged (not a database, a truncated file, a failed integrity check):
 * move it aside and let connect_once() create a fresh one from the install manifests.
 * Several processes may find it damaged at once: under a lock on the directory, only the
 * first moves it (the others find another file there and just connect to it).
 */
static int recover_broken(struct db *d, const struct stat *found)
{
	_cleanup_free_ char *aside = NULL;
	struct stat now;
	int r;

	if (flock(d->dir_fd, LOCK_EX) < 0)
		return -errno;
	if (fstatat(d->dir_fd, d->name, &now, AT_SYMLINK_NOFOLLOW) >= 0 &&
	    now.st_ino == found->st_ino && now.st_dev == found->st_dev) {
		r = move_aside(d, &aside);
		if (r < 0) {
			(void) flock(d->dir_fd, LOCK_UN);
			return r;
		}
		log_warning("The state db '%s' is damaged (%s): moved it to '%s', "
			    "rebuilding it "
			    "from the install manifests.",
			    d->path, strna(d->broken), aside);
	}
	r = create_readable(d);
	if (r >= 0)
		r = connect_once(d, d->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	(void) flock(d->dir_fd, LOCK_UN);
	return r;
}

/*
 * (Re)open the connection. Also on a reconnect after db_suspend() the schema is checked:
 * a state db removed in between comes back whole, rebuilt from the install manifests, not
 * as an empty file.
 */
int db_connect(struct db *d)
{
	struct stat found = {};
	int r;

	if (d->sql)
		return 0;
	if (!d->writable) {
		if (faccessat(d->dir_fd, d->name, F_OK, 0) < 0)
			return -errno;
		if (d->immutable)
			return connect_immutable(d);
		r = connect_once(d, d->path, SQLITE_OPEN_READONLY);
		if (r != -EROFS)
			return r;
		return connect_immutable(d);
	}
	r = create_readable(d);
	if (r < 0)
		return r;
	if (fstatat(d->dir_fd, d->name, &found, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	r = connect_once(d, d->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (r != -EBADMSG)
		return r;
	r = recover_broken(d, &found);
	d->broken = mfree(d->broken);
	return r;
}

static int db_new(const char *path, bool writable, int root_fd, struct db **ret)
{
	_cleanup_(db_closep) struct db *d = NULL;
	_cleanup_free_ char *dir = NULL;
	char *slash;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	*d = (struct db){.writable = writable, .dir_fd = -EBADF, .root_fd = -EBADF};
	d->path = strdup(path);
	dir = strdup(path);
	if (!d->path || !dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	d->name = slash ? d->path + (slash - dir) + 1 : d->path;
	if (slash)
		slash[slash == dir ? 1 : 0] = '\0';
	d->dir_fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dir_fd < 0)
		return -errno;
	/* The daemon keeps its db across reconnects: its own copy of the root. */
	if (root_fd >= 0) {
		d->root_fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
		if (d->root_fd < 0)
			return -errno;
	}
	r = db_connect(d);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(d);
	return 0;
}

int db_open_path(const char *path, bool writable, struct db **ret)
{
	return db_new(path, writable, -EBADF, ret);
}

int db_open(struct dm2_context *ctx, bool writable, struct db **ret)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (writable) {
		r = mkdir_p_at(ctx->root_fd, DM2_STATE_DIR, 0755);
		if (r < 0)
			return r;
	}
	path = context_path(ctx, DM2_STATE_DB);
	if (!path)
		return -ENOMEM;
	return db_new(path, writable, ctx->root_fd, ret);
}

struct db *db_close(struct db *d)
{
	if (!d)
		return NULL;
	if (d->tx_depth > 0)
		sql_rollback(d->sql);
	sqlite3_close_v2(d->sql);
	safe_close(d->dir_fd);
	safe_close(d->root_fd);
	free(d->broken);
	free(d->path);
	return mfree(d);
}

int db_suspend(struct db *d)
{
	if (d->tx_depth > 0)
		return -EBUSY;
	if (!d->sql)
		return 0;
	sqlite3_close_v2(d->sql);
	d->sql = NULL;
	return 1;
}

void *db_sqlite(struct db *d)
{
	return db_connect(d) < 0 ? NULL : d->sql;
}
