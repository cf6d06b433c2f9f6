/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The local store: objects/<sha256[0:2]>/<sha256> (a shared/cas.h store), each content
 * once, indexed in SQLite. Objects are created and deleted only while holding the index's
 * write lock (BEGIN IMMEDIATE), so a gc in one process can never delete an object another
 * process is just adding to an entry.
 */
#include <fcntl.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "cache-internal.h"
#include "shared/fs-util.h"

static int schema_init(struct cache *c)
{
	static const char schema[] =
		"CREATE TABLE entries ("
		"  key TEXT PRIMARY KEY NOT NULL,"
		"  created INTEGER NOT NULL,"
		"  last_used INTEGER NOT NULL,"
		"  size INTEGER NOT NULL);"
		"CREATE INDEX entries_last_used ON entries(last_used);"
		"CREATE TABLE entry_files ("
		"  key TEXT NOT NULL REFERENCES entries(key) ON DELETE CASCADE,"
		"  name TEXT NOT NULL,"
		"  sha256 TEXT NOT NULL,"
		"  size INTEGER NOT NULL,"
		"  PRIMARY KEY (key, name));"
		"CREATE INDEX entry_files_sha256 ON entry_files(sha256);"
		"PRAGMA user_version = 1;";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, version;

	r = sql_begin(c->db);
	if (r < 0)
		return r;
	r = sql_prepare(c->db, "PRAGMA user_version", &st);
	if (r < 0)
		goto fail;
	if (sqlite3_step(st) != SQLITE_ROW) {
		r = sql_error(c->db, sqlite3_errcode(c->db)) ?: -EIO;
		goto fail;
	}
	version = sqlite3_column_int(st, 0);
	if (version > CACHE_SCHEMA_VERSION) {
		r = -EPROTONOSUPPORT; /* written by a newer dm2 */
		goto fail;
	}
	if (version == 0) {
		r = sql_exec(c->db, schema);
		if (r < 0)
			goto fail;
	}
	return sql_commit(c->db);
fail:
	sql_rollback(c->db);
	return r;
}

/* The directories: artifacts_dir, its object store and its private tmp/. */
static int open_dirs(struct cache *c, const char *artifacts_dir)
{
	int r;

	r = mkdir_p_at(AT_FDCWD, artifacts_dir, 0755);
	if (r < 0)
		return r;
	c->dir_fd = open(artifacts_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dir_fd < 0)
		return -errno;
	r = cas_open_at(&c->objects, c->dir_fd, CACHE_OBJECTS_DIR, true);
	if (r < 0)
		return r;
	if (mkdirat(c->dir_fd, CACHE_TMP_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	c->tmp_fd = openat(c->dir_fd, CACHE_TMP_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->tmp_fd < 0)
		return -errno;
	return 0;
}

/* quick_check: a truncated index opens and answers its first queries. */
static int index_check(struct cache *c)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int r, rc;

	r = sql_prepare(c->db, "PRAGMA quick_check(1)", &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc);
	t = sqlite3_column_text(st, 0);
	return t && strcmp((const char *) t, "ok") == 0 ? 0 : -EBADMSG;
}

static int open_index(struct cache *c, const char *index_db_path)
{
	int rc, r;

	rc = sqlite3_open_v2(index_db_path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			     NULL);
	r = sql_error(c->db, rc);
	if (r >= 0) {
		sqlite3_busy_timeout(c->db, 10000);
		r = sql_set_wal(c->db, 10 * 1000000ULL);
	}
	if (r >= 0)
		r = sql_exec(c->db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;");
	if (r >= 0)
		r = index_check(c);
	if (r >= 0)
		r = schema_init(c);
	if (r < 0) {
		sqlite3_close_v2(c->db);
		c->db = NULL;
	}
	return r;
}

/*
 * The index is a cache of what the store holds: one SQLite cannot read (not a database,
 * corrupt, truncated) is moved aside to index.db.broken (with its -wal and -shm, replacing
 * an older one) and a new, empty one started, so a build rebuilds rather than fails.
 * Under a lock on the store, and only when the file is still the one found broken, so two
 * processes finding it at once start one new index, not two.
 */
static int index_reset(struct cache *c, const char *path, const struct stat *found)
{
	static const char *const suffixes[] = {"-wal", "-shm", ""};
	struct stat now;
	int r = 0;

	if (flock(c->dir_fd, LOCK_EX) < 0)
		return -errno;
	if (stat(path, &now) >= 0 && now.st_ino == found->st_ino &&
	    now.st_dev == found->st_dev) {
		for (size_t i = 0; i < ELEMENTSOF(suffixes) && r >= 0; i++) {
			_cleanup_free_ char *from = strjoin(path, suffixes[i]);
			_cleanup_free_ char *to = strjoin(path, ".broken", suffixes[i]);

			if (!from || !to)
				r = -ENOMEM;
			else if (rename(from, to) < 0 && errno != ENOENT)
				r = -errno;
		}
		c->index_reset = r >= 0;
	}
	if (r >= 0)
		r = open_index(c, path);
	(void) flock(c->dir_fd, LOCK_UN);
	return r;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct cache *, cache_close);

int cache_open(const char *artifacts_dir, const char *index_db_path, struct cache **ret)
{
	_cleanup_(cache_closep) struct cache *c = NULL;
	struct stat found = {};
	int r;

	if (!artifacts_dir || !index_db_path)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dir_fd = c->tmp_fd = c->objects.dir_fd = -EBADF;
	c->dir = strdup(artifacts_dir);
	if (!c->dir)
		return -ENOMEM;
	r = open_dirs(c, artifacts_dir);
	if (r < 0)
		return r;
	(void) stat(index_db_path, &found);
	r = open_index(c, index_db_path);
	if (r == -EBADMSG && found.st_ino != 0)
		r = index_reset(c, index_db_path, &found);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}

bool cache_index_was_reset(const struct cache *c)
{
	return c->index_reset;
}

struct cache *cache_close(struct cache *c)
{
	if (!c)
		return NULL;
	if (c->db)
		sqlite3_close_v2(c->db);
	cas_close(&c->objects);
	safe_close(c->tmp_fd);
	safe_close(c->dir_fd);
	free(c->dir);
	return mfree(c);
}

struct cache_entry *cache_entry_free(struct cache_entry *e)
{
	if (!e)
		return NULL;
	free(e->key);
	strv_free(e->files);
	strv_free(e->names);
	free(e->symvers);
	return mfree(e);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cache_entry *, cache_entry_free);

int cache_sha_referenced(struct cache *c, const char *sha256)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc, r;

	r = sql_prepare(c->db, "SELECT 1 FROM entry_files WHERE sha256 = ? LIMIT 1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, sha256, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc);
}

/* Within a write transaction: unlink those of shas no longer referenced by any entry. */
static int drop_unreferenced(struct cache *c, char **shas, uint64_t *sizes, uint64_t *freed)
{
	for (size_t i = 0; shas && shas[i]; i++) {
		_cleanup_free_ char *rel = NULL;
		int r;

		r = cache_sha_referenced(c, shas[i]);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		r = cas_object_path(&c->objects, shas[i], &rel);
		if (r < 0)
			continue;
		if (unlinkat(c->objects.dir_fd, rel, 0) < 0) {
			if (errno != ENOENT)
				return -errno;
			continue;
		}
		if (freed && sizes)
			*freed += sizes[i];
	}
	return 0;
}

/* The distinct objects of an entry, with their sizes. */
static int entry_objects(struct cache *c, const char *key, char ***ret_shas,
			 uint64_t **ret_sizes)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_strv_free_ char **shas = NULL;
	_cleanup_free_ uint64_t *sizes = NULL;
	size_t n = 0;
	int rc, r;

	r = sql_prepare(c->db,
			"SELECT sha256, MAX(size) FROM entry_files WHERE key = ? GROUP BY sha256",
			&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t *m = realloc(sizes, (n + 1) * sizeof(uint64_t));

		if (!m)
			return -ENOMEM;
		sizes = m;
		sizes[n] = (uint64_t) sqlite3_column_int64(st, 1);
		r = strv_extend(&shas, (const char *) sqlite3_column_text(st, 0));
		if (r < 0)
			return r;
		n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc);
	*ret_shas = TAKE_PTR(shas);
	if (ret_sizes)
		*ret_sizes = TAKE_PTR(sizes);
	return 0;
}

static int delete_entry(struct cache *c, const char *key)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc, r;

	r = sql_prepare(c->db, "DELETE FROM entries WHERE key = ?", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc);
	return sqlite3_changes(c->db) > 0 ? 0 : -ENOENT;
}

int cache_remove_entry_locked(struct cache *c, const char *key, uint64_t *freed)
{
	_cleanup_strv_free_ char **shas = NULL;
	_cleanup_free_ uint64_t *sizes = NULL;
	int r;

	r = entry_objects(c, key, &shas, &sizes);
	if (r < 0)
		return r;
	r = delete_entry(c, key);
	if (r < 0)
		return r;
	return drop_unreferenced(c, shas, sizes, freed);
}

int cache_remove(struct cache *c, const char *key)
{
	int r;

	if (!cache_key_valid(key))
		return -EINVAL;
	r = sql_begin(c->db);
	if (r < 0)
		return r;
	r = cache_remove_entry_locked(c, key, NULL);
	if (r < 0) {
		sql_rollback(c->db);
		return r;
	}
	return sql_commit(c->db);
}

/* A corrupt entry: drop it, and any of its objects that are still bad (re-checked under
 * the lock, since another process may have repaired them meanwhile). */
static int drop_corrupt(struct cache *c, const char *key, char **bad)
{
	int r;

	r = sql_begin(c->db);
	if (r < 0)
		return r;
	r = cache_remove_entry_locked(c, key, NULL);
	if (r < 0 && r != -ENOENT) {
		sql_rollback(c->db);
		return r;
	}
	STRV_FOREACH(sha, bad) {
		_cleanup_free_ char *rel = NULL;

		if (cas_verify(&c->objects, *sha, CAS_SIZE_ANY) != -EBADMSG)
			continue;
		if (cas_object_path(&c->objects, *sha, &rel) >= 0)
			(void) unlinkat(c->objects.dir_fd, rel, 0);
	}
	return sql_commit(c->db);
}

/* The entries row: when it was made and how large it is. -ENOENT if there is none. */
static int lookup_entry(struct cache *c, struct cache_entry *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc, r;

	r = sql_prepare(c->db, "SELECT created, size FROM entries WHERE key = ?", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, e->key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc);
	e->created = (uint64_t) sqlite3_column_int64(st, 0);
	e->size = (uint64_t) sqlite3_column_int64(st, 1);
	return 0;
}

/* One file of the entry, its object verified: into e, or its sha256 into *bad. */
static int lookup_file(struct cache *c, struct cache_entry *e, const char *name,
		       const char *sha, uint64_t size, char ***bad)
{
	_cleanup_free_ char *full = NULL;
	int r;

	r = cas_verify(&c->objects, sha, size);
	if (r == -ENOENT || r == -EBADMSG || r == -EINVAL)
		return strv_extend(bad, sha);
	if (r < 0)
		return r;
	r = cache_object_full_path(c, sha, &full);
	if (r < 0)
		return r;
	if (streq(name, CACHE_SYMVERS_NAME)) {
		free(e->symvers);
		e->symvers = TAKE_PTR(full);
		return 0;
	}
	r = strv_consume(&e->files, TAKE_PTR(full));
	if (r < 0)
		return r;
	return strv_extend(&e->names, name);
}

/* The entry's files; the sha256 of each missing or damaged object in *ret_bad. */
static int lookup_files(struct cache *c, struct cache_entry *e, char ***ret_bad)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_strv_free_ char **bad = NULL;
	int rc, r;

	r = sql_prepare(c->db,
			"SELECT name, sha256, size FROM entry_files WHERE key = ? ORDER BY name",
			&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, e->key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = lookup_file(c, e, (const char *) sqlite3_column_text(st, 0),
				(const char *) sqlite3_column_text(st, 1),
				(uint64_t) sqlite3_column_int64(st, 2), &bad);
		if (r < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc);
	/* Keep the "NULL-terminated" promise for an entry holding only a symvers. */
	if (!e->files)
		e->files = calloc(1, sizeof(char *));
	if (!e->names)
		e->names = calloc(1, sizeof(char *));
	if (!e->files || !e->names)
		return -ENOMEM;
	*ret_bad = TAKE_PTR(bad);
	return 0;
}

static int touch_entry(struct cache *c, struct cache_entry *e)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	e->last_used = now_usec();
	r = sql_prepare(c->db, "UPDATE entries SET last_used = ? WHERE key = ?", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, (sqlite3_int64) e->last_used);
	sqlite3_bind_text(st, 2, e->key, -1, SQLITE_STATIC);
	return sql_error(c->db, sqlite3_step(st));
}

int cache_lookup(struct cache *c, const char *key, struct cache_entry **ret)
{
	_cleanup_(cache_entry_freep) struct cache_entry *e = NULL;
	_cleanup_strv_free_ char **bad = NULL;
	int r;

	if (!c || !ret || !cache_key_valid(key))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->key = strdup(key);
	if (!e->key)
		return -ENOMEM;

	r = lookup_entry(c, e);
	if (r < 0)
		return r;
	r = lookup_files(c, e, &bad);
	if (r < 0)
		return r;
	if (bad) {
		r = drop_corrupt(c, key, bad);
		return r < 0 ? r : -ENOENT;
	}
	r = touch_entry(c, e);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(e);
	return 0;
}

/* Within the write transaction: the staged file becomes the object for its hash. */
static int object_install(struct cache *c, struct cache_staged *s)
{
	int r;

	r = cas_commit(&c->objects, c->tmp_fd, s->tmp, s->sha256, s->size);
	if (r < 0)
		return r;
	s->tmp = mfree(s->tmp);
	return 0;
}

static int step_done(struct cache *c, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc) ?: -EIO;
}

/* Within the write transaction: the index rows of entry key, replacing any before. */
static int record_entry(struct cache *c, const char *key, const struct cache_staged *s,
			size_t n, uint64_t total)
{
	_cleanup_stmt_ sqlite3_stmt *ins = NULL, *entry = NULL, *del = NULL;
	uint64_t now = now_usec();
	int r;

	r = sql_prepare(c->db, "DELETE FROM entry_files WHERE key = ?", &del);
	if (r < 0)
		return r;
	sqlite3_bind_text(del, 1, key, -1, SQLITE_STATIC);
	r = step_done(c, del);
	if (r < 0)
		return r;

	r = sql_prepare(c->db,
			"INSERT INTO entries (key, created, last_used, size) "
			"VALUES (?1, ?2, ?2, ?3) ON CONFLICT(key) DO UPDATE SET "
			"last_used = ?2, size = ?3",
			&entry);
	if (r < 0)
		return r;
	sqlite3_bind_text(entry, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(entry, 2, (sqlite3_int64) now);
	sqlite3_bind_int64(entry, 3, (sqlite3_int64) total);
	r = step_done(c, entry);
	if (r < 0)
		return r;

	r = sql_prepare(c->db,
			"INSERT INTO entry_files (key, name, sha256, size) VALUES (?, ?, ?, ?)",
			&ins);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, s[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, s[i].sha256, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 4, (sqlite3_int64) s[i].size);
		r = step_done(c, ins);
	}
	return r;
}

int cache_commit(struct cache *c, const char *key, struct cache_staged *s, size_t n)
{
	_cleanup_strv_free_ char **old = NULL;
	uint64_t total = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		if (!cache_name_valid(s[i].name))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (streq(s[i].name, s[j].name))
				return -EEXIST;
		total += s[i].size;
	}

	r = sql_begin(c->db);
	if (r < 0)
		return r;
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = object_install(c, &s[i]);
	if (r >= 0)
		r = entry_objects(c, key, &old, NULL);
	if (r >= 0)
		r = record_entry(c, key, s, n, total);
	/* Objects the entry used before a replacement and nobody uses now. */
	if (r >= 0)
		r = drop_unreferenced(c, old, NULL, NULL);
	if (r < 0) {
		sql_rollback(c->db);
		return r;
	}
	return sql_commit(c->db);
}

int cache_store(struct cache *c, const char *key, char **paths, char **names,
		const char *symvers_path)
{
	_cleanup_free_ struct cache_staged *s = NULL;
	size_t n, k = 0;
	int r = 0;

	if (!c || !cache_key_valid(key))
		return -EINVAL;
	n = strv_length(paths);
	if (n != strv_length(names))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!cache_name_valid(names[i]) || streq(names[i], CACHE_SYMVERS_NAME))
			return -EINVAL;

	s = calloc(n + 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i <= n && r >= 0; i++) {
		const char *path = i < n ? paths[i] : symvers_path;
		_cleanup_close_ int fd = -EBADF;

		if (!path)
			break;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			break;
		}
		r = cache_stage_fd(c, fd, i < n ? names[i] : CACHE_SYMVERS_NAME, &s[k]);
		if (r >= 0)
			k++;
	}
	if (r >= 0)
		r = cache_commit(c, key, s, k);
	cache_staged_done(c, s, k);
	return r;
}

int cache_list(struct cache *c, char ***ret_keys)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_strv_free_ char **keys = NULL;
	int rc, r;

	r = sql_prepare(c->db, "SELECT key FROM entries ORDER BY last_used, key", &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = strv_extend(&keys, (const char *) sqlite3_column_text(st, 0));
		if (r < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc);
	if (!keys) {
		keys = calloc(1, sizeof(char *));
		if (!keys)
			return -ENOMEM;
	}
	*ret_keys = TAKE_PTR(keys);
	return 0;
}
