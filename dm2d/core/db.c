/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/db.h"
#include "core/manifest.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/sqlite-util.h"
#include "shared/util.h"

#define DB_BUSY_TIMEOUT_MSEC (60 * 1000)
/* How long to retry switching a fresh database to WAL (see sql_set_wal()). */
#define DB_WAL_SWITCH_TIMEOUT_USEC (10 * 1000000ULL)

struct db {
	sqlite3 *sql;      /* NULL while suspended (db_suspend()) */
	char *path;
	const char *name;  /* the file name part of path */
	int dir_fd;        /* the directory holding it */
	int root_fd;       /* where the install manifests are; -EBADF: db_open_path() */
	bool writable;
	bool immutable;    /* read-only fallback, see connect_immutable() */
	unsigned tx_depth; /* >0 while db_begin() is open */
	char *broken;      /* why the database was moved aside, for the rebuild's log */
};

static int db_connect(struct db *d);

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
};

static int exec(struct db *d, const char *sql)
{
	int r = db_connect(d);

	if (r < 0)
		return r;
	return sql_exec(d->sql, sql);
}

static int prepare(struct db *d, const char *sql, sqlite3_stmt **ret)
{
	int r = db_connect(d);

	if (r < 0)
		return r;
	return sql_prepare(d->sql, sql, ret);
}

/* Bind "t" text (NULL allowed), "i" int64, "u" uint64, "b" bool (int). */
static int bind_args(sqlite3_stmt *st, const char *fmt, va_list ap)
{
	int rc = SQLITE_OK;

	for (int i = 0; fmt[i] && rc == SQLITE_OK; i++) {
		switch (fmt[i]) {
		case 't': {
			const char *s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, i + 1);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		case 'u':
			rc = sqlite3_bind_int64(st, i + 1,
						(int64_t) va_arg(ap, uint64_t));
			break;
		case 'b':
			rc = sqlite3_bind_int(st, i + 1, va_arg(ap, int));
			break;
		default:
			return -EINVAL;
		}
	}
	return rc == SQLITE_OK ? 0 : -EIO;
}

/* Run one statement that returns no rows; returns the number of changed rows. */
static int run(struct db *d, const char *sql, const char *fmt, ...)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	va_list ap;
	int r, rc;

	r = prepare(d, sql, &st);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	r = bind_args(st, fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sql_error(d->sql, rc);
	return sqlite3_changes(d->sql);
}

int db_begin(struct db *d)
{
	int r;

	if (d->tx_depth > 0) {
		d->tx_depth++;
		return 0;
	}
	r = db_connect(d);
	if (r < 0)
		return r;
	r = sql_begin(d->sql);
	if (r < 0)
		return r;
	d->tx_depth = 1;
	return 0;
}

int db_commit(struct db *d)
{
	assert(d->tx_depth > 0);
	if (--d->tx_depth > 0)
		return 0;
	return sql_commit(d->sql);
}

void db_rollback(struct db *d)
{
	if (d->tx_depth == 0)
		return;
	d->tx_depth = 0;
	sql_rollback(d->sql);
}

static int get_version(struct db *d, int *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	r = prepare(d, "PRAGMA user_version", &st);
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
	log_notice("event: state-db-rebuilt, db=%s, manifests=%u, installed=%u, files=%u, "
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

		r = exec(d, migrations[v]);
		if (r < 0)
			goto fail;
		snprintf(buf, sizeof(buf), "PRAGMA user_version = %d", v + 1);
		r = exec(d, buf);
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

	r = prepare(d, "PRAGMA quick_check(1)", &st);
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
		/* WAL (stored in the file): readers (dm2 status) never block the writer. */
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
	/* Writers hold the lock for milliseconds, but on a loaded machine (parallel builds
	 * fsyncing, synchronous=FULL) one commit can take seconds: a job must not fail, or
	 * a daemon miss a transition, because the disk was slow. */
	sqlite3_busy_timeout(d->sql, DB_BUSY_TIMEOUT_MSEC);
	r = exec(d, "PRAGMA foreign_keys = ON");
	/* The write volume is tiny, so FULL costs nothing and keeps the last transitions
	 * across power loss. */
	if (r >= 0 && d->writable) {
		int one = 1;

		r = exec(d, "PRAGMA synchronous = FULL");
		if (r >= 0)
			r = sql_error(d->sql, sqlite3_file_control(d->sql, "main",
								 SQLITE_FCNTL_PERSIST_WAL,
								 &one));
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
 * A reader that may not create the -shm file (not root), of a database whose -wal and -shm
 * are gone (last closed by a dm2 that did not keep them): without a -wal file, everything
 * is in the database file itself, so reading it as immutable (no locks, no -shm) sees
 * all of it. Only a writer starting in that very moment could make that read inconsistent;
 * the next writer keeps -wal and -shm, and readers use them from then on.
 */
static int connect_immutable(struct db *d)
{
	_cleanup_free_ char *wal = strjoin(d->name, "-wal"), *uri = immutable_uri(d->path);
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

	if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
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
			else if (renameat(d->dir_fd, from, d->dir_fd, to) < 0 && errno != ENOENT)
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
		log_warning("The state db '%s' is damaged (%s): moved it to '%s', rebuilding it "
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
 * (Re)open the connection. Also on a reconnect after db_suspend() the schema is checked: a
 * state db removed in between comes back whole, rebuilt from the install manifests, not as
 * an empty file.
 */
static int db_connect(struct db *d)
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

/* Wrap a single write in its own transaction unless the caller holds one. */
#define WRITE_TX(d, expr)                                                                \
	({                                                                               \
		int _r_ = db_begin(d);                                                   \
		if (_r_ >= 0) {                                                          \
			_r_ = (expr);                                                    \
			if (_r_ < 0)                                                     \
				db_rollback(d);                                          \
			else {                                                           \
				int _c_ = db_commit(d);                                  \
				if (_c_ < 0)                                             \
					_r_ = _c_;                                       \
			}                                                                \
		}                                                                        \
		_r_;                                                                     \
	})

static int col_strdup(sqlite3_stmt *st, int i, char **ret)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	if (!t) {
		*ret = NULL;
		return 0;
	}
	*ret = strdup((const char *) t);
	return *ret ? 0 : -ENOMEM;
}

/* ---- kernels ---- */

void db_kernel_done(struct db_kernel *k)
{
	if (!k)
		return;
	free(k->release);
	free(k->identity);
	free(k->arch);
	free(k->state);
	free(k->reason);
	*k = (struct db_kernel){};
}

void db_kernels_free(struct db_kernel *k, size_t n)
{
	for (size_t i = 0; k && i < n; i++)
		db_kernel_done(&k[i]);
	free(k);
}

int db_kernel_upsert(struct db *d, const char *release, const char *identity,
		     const char *arch, const char *state, const char *reason)
{
	int r = WRITE_TX(
		d,
		run(d,
		    "INSERT INTO kernels (release, identity, arch, state, reason, seen) "
		    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (release) DO UPDATE SET "
		    "identity = excluded.identity, arch = excluded.arch, "
		    "state = excluded.state, reason = excluded.reason, seen = "
		    "excluded.seen",
		    "tttttu", release, identity, arch, state, reason, now_usec()));
	return MIN(r, 0);
}

#define KERNEL_COLS "release, identity, arch, state, reason, seen"

static int kernel_from_row(sqlite3_stmt *st, struct db_kernel *k)
{
	*k = (struct db_kernel){.seen = (uint64_t) sqlite3_column_int64(st, 5)};
	if (col_strdup(st, 0, &k->release) < 0 || col_strdup(st, 1, &k->identity) < 0 ||
	    col_strdup(st, 2, &k->arch) < 0 || col_strdup(st, 3, &k->state) < 0 ||
	    col_strdup(st, 4, &k->reason) < 0) {
		db_kernel_done(k);
		return -ENOMEM;
	}
	return 0;
}

int db_kernel_get(struct db *d, const char *release, struct db_kernel *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = prepare(d, "SELECT " KERNEL_COLS " FROM kernels WHERE release = ?", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, release, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(d->sql, rc);
	return kernel_from_row(st, ret);
}

int db_kernels_list(struct db *d, struct db_kernel **ret, size_t *ret_n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct db_kernel *l = NULL;
	size_t n = 0;
	int r, rc;

	r = prepare(d, "SELECT " KERNEL_COLS " FROM kernels ORDER BY release", &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_kernel *nl = realloc(l, (n + 1) * sizeof(*l));
		if (!nl) {
			db_kernels_free(l, n);
			return -ENOMEM;
		}
		l = nl;
		r = kernel_from_row(st, &l[n]);
		if (r < 0) {
			db_kernels_free(l, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		db_kernels_free(l, n);
		return sql_error(d->sql, rc);
	}
	*ret = l;
	*ret_n = n;
	return 0;
}

static int kernel_remove_locked(struct db *d, const char *release)
{
	int r;

	r = run(d, "DELETE FROM installed_files WHERE kernel = ?", "t", release);
	if (r < 0)
		return r;
	r = run(d, "DELETE FROM jobs WHERE kernel = ?", "t", release);
	if (r < 0)
		return r;
	return run(d, "DELETE FROM kernels WHERE release = ?", "t", release);
}

int db_kernel_remove(struct db *d, const char *release)
{
	int r = WRITE_TX(d, kernel_remove_locked(d, release));
	return MIN(r, 0);
}

/* ---- recipes ---- */

int db_recipe_upsert(struct db *d, const char *name, const char *origin, const char *path,
		     const char *content_hash)
{
	int r = WRITE_TX(d, run(d,
				"INSERT INTO recipes (name, origin, path, content_hash) "
				"VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
				"origin = excluded.origin, path = excluded.path, "
				"content_hash = COALESCE(excluded.content_hash, content_hash)",
				"tttt", name, origin, path, content_hash));
	return MIN(r, 0);
}

/* ---- jobs ---- */

void db_job_done(struct db_job *j)
{
	if (!j)
		return;
	free(j->recipe);
	free(j->kernel);
	free(j->version);
	free(j->stage);
	free(j->reason);
	free(j->log_path);
	free(j->build_key);
	free(j->signer);
	*j = (struct db_job){};
}

void db_jobs_free(struct db_job *j, size_t n)
{
	for (size_t i = 0; j && i < n; i++)
		db_job_done(&j[i]);
	free(j);
}

#define JOB_COLS                                                                         \
	"id, recipe, kernel, version, state, stage, reason, log_path, build_key, "       \
	"from_cache, "                                                                   \
	"signer, created, started, finished, attempt"

static int job_from_row(sqlite3_stmt *st, struct db_job *j)
{
	int s = job_state_from_string((const char *) sqlite3_column_text(st, 4));

	*j = (struct db_job){
		.id = sqlite3_column_int64(st, 0),
		.state = s < 0 ? JOB_STATE_FAILED : (enum job_state) s,
		.from_cache = sqlite3_column_int(st, 9) != 0,
		.created = (uint64_t) sqlite3_column_int64(st, 11),
		.started = (uint64_t) sqlite3_column_int64(st, 12),
		.finished = (uint64_t) sqlite3_column_int64(st, 13),
		.attempt = (unsigned) sqlite3_column_int(st, 14),
	};
	if (col_strdup(st, 1, &j->recipe) < 0 || col_strdup(st, 2, &j->kernel) < 0 ||
	    col_strdup(st, 3, &j->version) < 0 || col_strdup(st, 5, &j->stage) < 0 ||
	    col_strdup(st, 6, &j->reason) < 0 || col_strdup(st, 7, &j->log_path) < 0 ||
	    col_strdup(st, 8, &j->build_key) < 0 || col_strdup(st, 10, &j->signer) < 0) {
		db_job_done(j);
		return -ENOMEM;
	}
	return 0;
}

static int job_query_one(struct db *d, struct db_job *ret, const char *sql,
			 const char *fmt, ...)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	va_list ap;
	int r, rc;

	r = prepare(d, sql, &st);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	r = bind_args(st, fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(d->sql, rc);
	return job_from_row(st, ret);
}

static int job_query_list(struct db *d, struct db_job **ret, size_t *ret_n,
			  const char *sql, const char *fmt, ...)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct db_job *l = NULL;
	size_t n = 0;
	va_list ap;
	int r, rc;

	r = prepare(d, sql, &st);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	r = bind_args(st, fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_job *nl = realloc(l, (n + 1) * sizeof(*l));
		if (!nl) {
			db_jobs_free(l, n);
			return -ENOMEM;
		}
		l = nl;
		r = job_from_row(st, &l[n]);
		if (r < 0) {
			db_jobs_free(l, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		db_jobs_free(l, n);
		return sql_error(d->sql, rc);
	}
	*ret = l;
	*ret_n = n;
	return 0;
}

#define UNFINISHED "('queued', 'fetching', 'building', 'signing', 'installing')"

static int job_enqueue_locked(struct db *d, const char *recipe, const char *kver,
			      int64_t *id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = prepare(d,
		    "SELECT id FROM jobs WHERE recipe = ? AND kernel = ? AND state "
		    "IN " UNFINISHED " ORDER BY id DESC LIMIT 1",
		    &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, recipe, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, kver, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		return run(d,
			   "UPDATE jobs SET attempt = attempt + 1 WHERE id = ? AND state "
			   "!= 'queued'",
			   "i", *id);
	}
	if (rc != SQLITE_DONE)
		return sql_error(d->sql, rc);

	r = run(d,
		"INSERT INTO jobs (recipe, kernel, state, created) VALUES (?, ?, "
		"'queued', ?)",
		"ttu", recipe, kver, now_usec());
	if (r < 0)
		return r;
	*id = sqlite3_last_insert_rowid(d->sql);

	/* History: keep only the new row and the newest installed one (whose module is
	 * still in place after a later failure), so the table stays as small as status
	 * needs. */
	return run(d,
		   "DELETE FROM jobs WHERE recipe = ?1 AND kernel = ?2 AND id < ?3 AND "
		   "id IS NOT "
		   "(SELECT MAX(id) FROM jobs WHERE recipe = ?1 AND kernel = ?2 "
		   "AND state = 'installed')",
		   "tti", recipe, kver, *id);
}

int db_job_enqueue(struct db *d, const char *recipe, const char *kver, int64_t *ret_id)
{
	int64_t id = 0;
	int r;

	r = WRITE_TX(d, job_enqueue_locked(d, recipe, kver, &id));
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = id;
	return 0;
}

int db_job_set_state(struct db *d, int64_t id, enum job_state st, const char *stage,
		     const char *reason, const char *log_path)
{
	const char *s = job_state_to_string(st);
	bool failed = st == JOB_STATE_FAILED, keeps_reason;
	uint64_t now = now_usec();
	int r;

	if (!s)
		return -EINVAL;
	keeps_reason = failed || st == JOB_STATE_SKIPPED || st == JOB_STATE_WAITING;

	r = WRITE_TX(d,
		     run(d,
			 "UPDATE jobs SET state = ?2,"
			 " stage = CASE WHEN ?3 THEN coalesce(?4, stage) ELSE NULL END,"
			 " reason = CASE WHEN ?5 THEN coalesce(?6, reason) ELSE NULL END,"
			 " log_path = coalesce(?7, log_path),"
			 " started = CASE WHEN started = 0 AND ?2 != 'queued' THEN ?8 "
			 "ELSE started END,"
			 " finished = CASE WHEN ?9 THEN ?8 ELSE 0 END"
			 " WHERE id = ?1",
			 "itbtbttub", id, s, (int) failed, stage, (int) keeps_reason,
			 reason, log_path, now, (int) job_state_is_final(st)));
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

int db_job_set_build(struct db *d, int64_t id, const char *version, const char *build_key,
		     bool from_cache, const char *signer)
{
	int r = WRITE_TX(d,
			 run(d,
			     "UPDATE jobs SET version = coalesce(?2, version),"
			     " build_key = coalesce(?3, build_key), from_cache = ?4,"
			     " signer = coalesce(?5, signer) WHERE id = ?1",
			     "ittbt", id, version, build_key, (int) from_cache, signer));
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

int db_job_get(struct db *d, int64_t id, struct db_job *ret)
{
	return job_query_one(d, ret, "SELECT " JOB_COLS " FROM jobs WHERE id = ?", "i",
			     id);
}

int db_job_current(struct db *d, const char *recipe, const char *kver, struct db_job *ret)
{
	return job_query_one(d, ret,
			     "SELECT " JOB_COLS
			     " FROM jobs WHERE recipe = ? AND kernel = ?"
			     " ORDER BY id DESC LIMIT 1",
			     "tt", recipe, kver);
}

int db_job_last_installed(struct db *d, const char *recipe, const char *kver,
			  struct db_job *ret)
{
	return job_query_one(d, ret,
			     "SELECT " JOB_COLS
			     " FROM jobs WHERE recipe = ? AND kernel = ?"
			     " AND state = 'installed' ORDER BY id DESC LIMIT 1",
			     "tt", recipe, kver);
}

int db_jobs_unfinished(struct db *d, struct db_job **ret, size_t *ret_n)
{
	return job_query_list(d, ret, ret_n,
			      "SELECT " JOB_COLS " FROM jobs WHERE state IN " UNFINISHED
			      " ORDER BY id",
			      "");
}

int db_jobs_current(struct db *d, const char *recipe, const char *kver,
		    struct db_job **ret, size_t *ret_n)
{
	return job_query_list(
		d, ret, ret_n,
		"SELECT " JOB_COLS " FROM jobs j WHERE"
		" (?1 IS NULL OR recipe = ?1) AND (?2 IS NULL OR kernel = ?2) AND"
		" id = (SELECT MAX(id) FROM jobs WHERE recipe = j.recipe"
		" AND kernel = j.kernel) ORDER BY recipe, kernel",
		"tt", recipe, kver);
}

static int job_forget_locked(struct db *d, const char *recipe, const char *kver)
{
	int r;

	r = run(d, "DELETE FROM installed_files WHERE recipe = ? AND kernel = ?", "tt",
		recipe, kver);
	if (r < 0)
		return r;
	return run(d, "DELETE FROM jobs WHERE recipe = ? AND kernel = ?", "tt", recipe,
		   kver);
}

int db_job_forget(struct db *d, const char *recipe, const char *kver)
{
	int r = WRITE_TX(d, job_forget_locked(d, recipe, kver));
	return MIN(r, 0);
}

int db_job_import(struct db *d, const char *recipe, const char *kver, const char *version,
		  const char *build_key, bool from_cache, const char *signer,
		  uint64_t installed)
{
	uint64_t when = installed ?: now_usec();
	int r = WRITE_TX(d, run(d,
				"INSERT INTO jobs (recipe, kernel, version, state, build_key, "
				"from_cache, signer, created, started, finished) VALUES "
				"(?, ?, ?, 'installed', ?, ?, ?, ?, ?, ?)",
				"ttttbtuuu", recipe, kver, version, build_key, (int) from_cache,
				signer, when, when, when));
	return MIN(r, 0);
}

/* ---- installed files ---- */

void db_installed_file_done(struct db_installed_file *f)
{
	if (!f)
		return;
	free(f->kernel);
	free(f->recipe);
	free(f->path);
	free(f->sha256);
	free(f->overrides_intree);
	*f = (struct db_installed_file){};
}

void db_installed_files_free(struct db_installed_file *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++)
		db_installed_file_done(&f[i]);
	free(f);
}

int db_installed_add(struct db *d, const char *kver, const char *recipe, const char *path,
		     const char *sha256, const char *overrides_intree)
{
	int r = WRITE_TX(
		d, run(d,
		       "INSERT INTO installed_files (path, kernel, recipe, sha256, "
		       "overrides_intree) VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO "
		       "UPDATE SET kernel = excluded.kernel, recipe = excluded.recipe, "
		       "sha256 = excluded.sha256, overrides_intree = "
		       "excluded.overrides_intree",
		       "ttttt", path, kver, recipe, sha256, overrides_intree));
	return MIN(r, 0);
}

int db_installed_remove(struct db *d, const char *path)
{
	int r = WRITE_TX(d,
			 run(d, "DELETE FROM installed_files WHERE path = ?", "t", path));
	return MIN(r, 0);
}

static int installed_from_row(sqlite3_stmt *st, struct db_installed_file *f)
{
	*f = (struct db_installed_file){};
	if (col_strdup(st, 0, &f->path) < 0 || col_strdup(st, 1, &f->kernel) < 0 ||
	    col_strdup(st, 2, &f->recipe) < 0 || col_strdup(st, 3, &f->sha256) < 0 ||
	    col_strdup(st, 4, &f->overrides_intree) < 0) {
		db_installed_file_done(f);
		return -ENOMEM;
	}
	return 0;
}

int db_installed_list(struct db *d, const char *kver, const char *recipe,
		      struct db_installed_file **ret, size_t *ret_n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct db_installed_file *l = NULL;
	size_t n = 0;
	int r, rc;

	r = prepare(d,
		    "SELECT path, kernel, recipe, sha256, overrides_intree FROM "
		    "installed_files"
		    " WHERE (?1 IS NULL OR kernel = ?1) AND (?2 IS NULL OR recipe = ?2)"
		    " ORDER BY kernel, recipe, path",
		    &st);
	if (r < 0)
		return r;
	if (kver)
		sqlite3_bind_text(st, 1, kver, -1, SQLITE_TRANSIENT);
	if (recipe)
		sqlite3_bind_text(st, 2, recipe, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_installed_file *nl = realloc(l, (n + 1) * sizeof(*l));
		if (!nl) {
			db_installed_files_free(l, n);
			return -ENOMEM;
		}
		l = nl;
		r = installed_from_row(st, &l[n]);
		if (r < 0) {
			db_installed_files_free(l, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		db_installed_files_free(l, n);
		return sql_error(d->sql, rc);
	}
	*ret = l;
	*ret_n = n;
	return 0;
}

int db_installed_owner(struct db *d, const char *path, struct db_installed_file *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = prepare(d,
		    "SELECT path, kernel, recipe, sha256, overrides_intree FROM "
		    "installed_files"
		    " WHERE path = ?",
		    &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(d->sql, rc);
	return installed_from_row(st, ret);
}
