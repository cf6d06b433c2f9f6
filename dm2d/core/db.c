/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state db's queries; opening it (and recovering it) is db-open.c. */
#include <assert.h>
#include <stdarg.h>
#include <sqlite3.h>

#include "core/db-internal.h"
#include "shared/sqlite-util.h"
#include "shared/util.h"

int db_exec(struct db *d, const char *sql)
{
	int r = db_connect(d);

	if (r < 0)
		return r;
	return sql_exec(d->sql, sql);
}

int db_prepare(struct db *d, const char *sql, sqlite3_stmt **ret)
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

	r = db_prepare(d, sql, &st);
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

	r = db_prepare(d, "SELECT " KERNEL_COLS " FROM kernels WHERE release = ?", &st);
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

	r = db_prepare(d, "SELECT " KERNEL_COLS " FROM kernels ORDER BY release", &st);
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

	r = db_prepare(d, sql, &st);
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

	r = db_prepare(d, sql, &st);
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

	r = db_prepare(d,
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

	r = db_prepare(d,
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

	r = db_prepare(d,
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

int db_duration_record(struct db *d, const char *recipe, const char *kver, uint64_t wall_usec,
		       uint64_t cpu_usec)
{
	int r = WRITE_TX(
		d, run(d,
		       "INSERT INTO build_durations (recipe, kernel, wall_usec, cpu_usec, at) "
		       "VALUES (?, ?, ?, ?, ?) ON CONFLICT (recipe, kernel) DO UPDATE SET "
		       "wall_usec = excluded.wall_usec, cpu_usec = excluded.cpu_usec, "
		       "at = excluded.at",
		       "ttuuu", recipe, kver, wall_usec, cpu_usec, now_usec()));
	return MIN(r, 0);
}

int db_duration_expected(struct db *d, const char *recipe, const char *kver,
			 uint64_t *ret_wall_usec)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = db_prepare(d,
		    "SELECT wall_usec FROM build_durations WHERE recipe = ? "
		    "ORDER BY kernel = ? DESC, at DESC LIMIT 1",
		    &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, recipe, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, strempty(kver), -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(d->sql, rc);
	*ret_wall_usec = (uint64_t) sqlite3_column_int64(st, 0);
	return 0;
}
