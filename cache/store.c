/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The local store: objects/<sha256[0:2]>/<sha256>, each content once, indexed in SQLite.
 * Objects are created and deleted only while holding the index's write lock (BEGIN
 * IMMEDIATE), so a gc in one process can never delete an object another process is just
 * adding to an entry.
 */
#include <time.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cache-internal.h"

#define TMP_MAX_AGE_USEC (3600ULL * 1000000ULL)

static int mkdir_p(const char *path, mode_t mode)
{
	_cache_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

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
	_cache_stmt_ sqlite3_stmt *st = NULL;
	int r, version;

	r = cache_begin(c);
	if (r < 0)
		return r;
	r = cache_sqlite_error(
		sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL));
	if (r < 0)
		goto fail;
	if (sqlite3_step(st) != SQLITE_ROW) {
		r = -EIO;
		goto fail;
	}
	version = sqlite3_column_int(st, 0);
	if (version > CACHE_SCHEMA_VERSION) {
		r = -EPROTONOSUPPORT; /* written by a newer dm2 */
		goto fail;
	}
	if (version == 0) {
		r = cache_exec(c, schema);
		if (r < 0)
			goto fail;
	}
	return cache_commit_tx(c);
fail:
	cache_rollback(c);
	return r;
}

/*
 * Switching a fresh index to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at
 * once, without calling the busy handler, when another process opens the same fresh file at
 * that moment (two builds starting together on a new machine). Once the file is in WAL mode
 * the pragma is a no-op, so this only ever waits on first use.
 */
static int set_wal(struct cache *c)
{
	struct timespec start, now;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		r = cache_exec(c, "PRAGMA journal_mode=WAL;");
		if (r != -EBUSY)
			return r;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= 10)
			return r;
		(void) usleep(10000 + (unsigned) (now.tv_nsec / 1000 % 20000));
	}
}

int cache_open(const char *artifacts_dir, const char *index_db_path, struct cache **ret)
{
	struct cache *c;
	_cache_free_ char *objects = NULL, *tmp = NULL;
	int r;

	if (!artifacts_dir || !index_db_path)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dir_fd = -EBADF;
	c->dir = strdup(artifacts_dir);
	if (!c->dir) {
		r = -ENOMEM;
		goto fail;
	}
	if (asprintf(&objects, "%s/" CACHE_OBJECTS_DIR, artifacts_dir) < 0 ||
	    asprintf(&tmp, "%s/" CACHE_TMP_DIR, artifacts_dir) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	r = mkdir_p(objects, 0755);
	if (r >= 0)
		r = mkdir_p(tmp, 0700);
	if (r < 0)
		goto fail;
	c->dir_fd = open(artifacts_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dir_fd < 0) {
		r = -errno;
		goto fail;
	}

	r = cache_sqlite_error(sqlite3_open_v2(
		index_db_path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL));
	if (r < 0)
		goto fail;
	sqlite3_busy_timeout(c->db, 10000);
	r = set_wal(c);
	if (r < 0)
		goto fail;
	r = cache_exec(c, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;");
	if (r < 0)
		goto fail;
	r = schema_init(c);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	cache_close(c);
	return r;
}

struct cache *cache_close(struct cache *c)
{
	if (!c)
		return NULL;
	if (c->db)
		sqlite3_close_v2(c->db);
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	free(c->dir);
	free(c);
	return NULL;
}

struct cache_entry *cache_entry_free(struct cache_entry *e)
{
	if (!e)
		return NULL;
	free(e->key);
	cache_strv_free(e->files);
	cache_strv_free(e->names);
	free(e->symvers);
	free(e);
	return NULL;
}

static void cache_entry_freep(struct cache_entry **e)
{
	cache_entry_free(*e);
}

/* 0 if the object exists with this content, -ENOENT if missing, -EBADMSG if different. */
static int object_verify(struct cache *c, const char *sha256, uint64_t size)
{
	_cache_free_ char *rel = NULL;
	_cache_close_ int fd = -EBADF;
	char hex[CACHE_HEX_SIZE];
	uint64_t got;
	int r;

	r = cache_object_path(sha256, &rel);
	if (r < 0)
		return r;
	fd = openat(c->dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	r = cache_hash_fd(fd, hex, &got);
	if (r < 0)
		return r;
	if (got != size || strcmp(hex, sha256) != 0)
		return -EBADMSG;
	return 0;
}

static int sha_referenced(struct cache *c, const char *sha256)
{
	_cache_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(c->db,
				"SELECT 1 FROM entry_files WHERE sha256 = ? LIMIT 1", -1,
				&st, NULL);
	if (rc != SQLITE_OK)
		return cache_sqlite_error(rc);
	sqlite3_bind_text(st, 1, sha256, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : cache_sqlite_error(rc);
}

/* Within a write transaction: unlink those of shas no longer referenced by any entry. */
static int drop_unreferenced(struct cache *c, char **shas, uint64_t *sizes,
			     uint64_t *freed)
{
	for (size_t i = 0; shas && shas[i]; i++) {
		_cache_free_ char *rel = NULL;
		int r;

		r = sha_referenced(c, shas[i]);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		r = cache_object_path(shas[i], &rel);
		if (r < 0)
			continue;
		if (unlinkat(c->dir_fd, rel, 0) < 0) {
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
	_cache_stmt_ sqlite3_stmt *st = NULL;
	_cache_strv_ char **shas = NULL;
	_cache_free_ uint64_t *sizes = NULL;
	size_t n = 0;
	int rc, r;

	rc = sqlite3_prepare_v2(c->db,
				"SELECT sha256, MAX(size) FROM entry_files WHERE key = ? "
				"GROUP BY sha256",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return cache_sqlite_error(rc);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t *m = realloc(sizes, (n + 1) * sizeof(uint64_t));

		if (!m)
			return -ENOMEM;
		sizes = m;
		sizes[n] = (uint64_t) sqlite3_column_int64(st, 1);
		r = cache_strv_push(&shas,
				    strdup((const char *) sqlite3_column_text(st, 0)));
		if (r < 0)
			return r;
		n++;
	}
	if (rc != SQLITE_DONE)
		return cache_sqlite_error(rc);
	*ret_shas = CACHE_TAKE_PTR(shas);
	if (ret_sizes)
		*ret_sizes = CACHE_TAKE_PTR(sizes);
	return 0;
}

static int delete_entry(struct cache *c, const char *key)
{
	_cache_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(c->db, "DELETE FROM entries WHERE key = ?", -1, &st,
				NULL);
	if (rc != SQLITE_OK)
		return cache_sqlite_error(rc);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return cache_sqlite_error(rc);
	return sqlite3_changes(c->db) > 0 ? 0 : -ENOENT;
}

/* Within a write transaction: delete an entry and the objects only it used. */
static int remove_entry_locked(struct cache *c, const char *key, uint64_t *freed)
{
	_cache_strv_ char **shas = NULL;
	_cache_free_ uint64_t *sizes = NULL;
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
	r = cache_begin(c);
	if (r < 0)
		return r;
	r = remove_entry_locked(c, key, NULL);
	if (r < 0) {
		cache_rollback(c);
		return r;
	}
	return cache_commit_tx(c);
}

/* A corrupt entry: drop it, and any of its objects that are still bad (re-checked under
 * the lock, since another process may have repaired them meanwhile). */
static int drop_corrupt(struct cache *c, const char *key, char **bad)
{
	int r;

	r = cache_begin(c);
	if (r < 0)
		return r;
	r = remove_entry_locked(c, key, NULL);
	if (r < 0 && r != -ENOENT)
		goto fail;
	for (size_t i = 0; bad && bad[i]; i++) {
		_cache_free_ char *rel = NULL;
		_cache_close_ int fd = -EBADF;
		char hex[CACHE_HEX_SIZE];

		if (cache_object_path(bad[i], &rel) < 0)
			continue;
		fd = openat(c->dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (cache_hash_fd(fd, hex, NULL) >= 0 && strcmp(hex, bad[i]) == 0)
			continue;
		(void) unlinkat(c->dir_fd, rel, 0);
	}
	return cache_commit_tx(c);
fail:
	cache_rollback(c);
	return r;
}

int cache_lookup(struct cache *c, const char *key, struct cache_entry **ret)
{
	cache_cleanup_(cache_entry_freep) struct cache_entry *e = NULL;
	_cache_stmt_ sqlite3_stmt *st = NULL, *files = NULL, *touch = NULL;
	_cache_strv_ char **bad = NULL;
	int rc, r;

	if (!c || !ret || !cache_key_valid(key))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->key = strdup(key);
	if (!e->key)
		return -ENOMEM;

	rc = sqlite3_prepare_v2(c->db, "SELECT created, size FROM entries WHERE key = ?",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return cache_sqlite_error(rc);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return cache_sqlite_error(rc);
	e->created = (uint64_t) sqlite3_column_int64(st, 0);
	e->size = (uint64_t) sqlite3_column_int64(st, 1);
	sqlite3_reset(st);

	rc = sqlite3_prepare_v2(
		c->db,
		"SELECT name, sha256, size FROM entry_files WHERE key = ? "
		"ORDER BY name",
		-1, &files, NULL);
	if (rc != SQLITE_OK)
		return cache_sqlite_error(rc);
	sqlite3_bind_text(files, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(files)) == SQLITE_ROW) {
		const char *name = (const char *) sqlite3_column_text(files, 0);
		const char *sha = (const char *) sqlite3_column_text(files, 1);
		uint64_t size = (uint64_t) sqlite3_column_int64(files, 2);
		_cache_free_ char *rel = NULL, *full = NULL;

		r = object_verify(c, sha, size);
		if (r == -ENOENT || r == -EBADMSG || r == -EINVAL) {
			r = cache_strv_push(&bad, strdup(sha));
			if (r < 0)
				return r;
			continue;
		}
		if (r < 0)
			return r;
		r = cache_object_path(sha, &rel);
		if (r < 0)
			return r;
		r = cache_full_path(c, rel, &full);
		if (r < 0)
			return r;
		if (strcmp(name, CACHE_SYMVERS_NAME) == 0) {
			free(e->symvers);
			e->symvers = CACHE_TAKE_PTR(full);
			continue;
		}
		r = cache_strv_push(&e->files, CACHE_TAKE_PTR(full));
		if (r < 0)
			return r;
		r = cache_strv_push(&e->names, strdup(name));
		if (r < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return cache_sqlite_error(rc);
	sqlite3_finalize(files);
	files = NULL;

	if (bad) {
		r = drop_corrupt(c, key, bad);
		if (r < 0)
			return r;
		return -ENOENT;
	}
	if (!e->files) {
		/* Keep the "NULL-terminated" promise for an entry holding only a symvers.
		 */
		e->files = calloc(1, sizeof(char *));
		e->names = calloc(1, sizeof(char *));
		if (!e->files || !e->names)
			return -ENOMEM;
	}

	e->last_used = cache_now_usec();
	rc = sqlite3_prepare_v2(c->db, "UPDATE entries SET last_used = ? WHERE key = ?",
				-1, &touch, NULL);
	if (rc != SQLITE_OK)
		return cache_sqlite_error(rc);
	sqlite3_bind_int64(touch, 1, (sqlite3_int64) e->last_used);
	sqlite3_bind_text(touch, 2, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(touch);
	if (rc != SQLITE_DONE)
		return cache_sqlite_error(rc);

	*ret = CACHE_TAKE_PTR(e);
	return 0;
}

/* Within the write transaction: make the staged file the object for its hash. */
static int object_install(struct cache *c, struct cache_staged *s, bool *synced_dirs)
{
	_cache_free_ char *rel = NULL;
	char sub[sizeof(CACHE_OBJECTS_DIR) + 3];
	int r;

	r = cache_object_path(s->sha256, &rel);
	if (r < 0)
		return r;
	snprintf(sub, sizeof(sub), CACHE_OBJECTS_DIR "/%.2s", s->sha256);
	if (mkdirat(c->dir_fd, sub, 0755) < 0 && errno != EEXIST)
		return -errno;

	r = object_verify(c, s->sha256, s->size);
	if (r == 0) {
		/* Already there and intact: keep the one copy. */
		(void) unlinkat(c->dir_fd, s->tmp, 0);
		s->tmp = (free(s->tmp), NULL);
		return 0;
	}
	if (r != -ENOENT && r != -EBADMSG)
		return r;
	if (renameat(c->dir_fd, s->tmp, c->dir_fd, rel) < 0)
		return -errno;
	s->tmp = (free(s->tmp), NULL);
	{
		_cache_close_ int dfd =
			openat(c->dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd < 0 || fsync(dfd) < 0)
			return -errno;
	}
	*synced_dirs = true;
	return 0;
}

int cache_commit(struct cache *c, const char *key, struct cache_staged *s, size_t n)
{
	_cache_stmt_ sqlite3_stmt *ins = NULL, *entry = NULL, *del = NULL;
	_cache_strv_ char **old = NULL;
	uint64_t total = 0, now = cache_now_usec();
	bool synced = false;
	int r, rc;

	for (size_t i = 0; i < n; i++) {
		if (!cache_name_valid(s[i].name))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(s[i].name, s[j].name) == 0)
				return -EEXIST;
		total += s[i].size;
	}

	r = cache_begin(c);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		r = object_install(c, &s[i], &synced);
		if (r < 0)
			goto fail;
	}

	r = entry_objects(c, key, &old, NULL);
	if (r < 0)
		goto fail;
	rc = sqlite3_prepare_v2(c->db, "DELETE FROM entry_files WHERE key = ?", -1, &del,
				NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(del, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(del) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(
			c->db,
			"INSERT INTO entries (key, created, last_used, size) "
			"VALUES (?1, ?2, ?2, ?3) ON CONFLICT(key) DO UPDATE SET "
			"last_used = ?2, size = ?3",
			-1, &entry, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(entry, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(entry, 2, (sqlite3_int64) now);
		sqlite3_bind_int64(entry, 3, (sqlite3_int64) total);
		rc = sqlite3_step(entry) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(
			c->db,
			"INSERT INTO entry_files (key, name, sha256, size) "
			"VALUES (?, ?, ?, ?)",
			-1, &ins, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, s[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, s[i].sha256, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 4, (sqlite3_int64) s[i].size);
		rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	if (rc != SQLITE_OK) {
		r = cache_sqlite_error(sqlite3_errcode(c->db));
		if (r == 0)
			r = -EIO;
		goto fail;
	}
	/* Objects the entry used before a replacement and nobody uses now. */
	r = drop_unreferenced(c, old, NULL, NULL);
	if (r < 0)
		goto fail;
	return cache_commit_tx(c);
fail:
	cache_rollback(c);
	return r;
}

int cache_store(struct cache *c, const char *key, char **paths, char **names,
		const char *symvers_path)
{
	struct cache_staged *s;
	size_t n, k = 0;
	int r = 0;

	if (!c || !cache_key_valid(key))
		return -EINVAL;
	n = cache_strv_length(paths);
	if (n != cache_strv_length(names))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!cache_name_valid(names[i]) ||
		    strcmp(names[i], CACHE_SYMVERS_NAME) == 0)
			return -EINVAL;

	s = calloc(n + 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i <= n && r >= 0; i++) {
		const char *path = i < n ? paths[i] : symvers_path;
		int fd;

		if (!path)
			break;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			break;
		}
		r = cache_stage_fd(c, fd, i < n ? names[i] : CACHE_SYMVERS_NAME, &s[k]);
		close(fd);
		if (r >= 0)
			k++;
	}
	if (r >= 0)
		r = cache_commit(c, key, s, k);
	cache_staged_done(c, s, k);
	free(s);
	return r;
}

int cache_list(struct cache *c, char ***ret_keys)
{
	_cache_stmt_ sqlite3_stmt *st = NULL;
	_cache_strv_ char **keys = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(c->db, "SELECT key FROM entries ORDER BY last_used, key",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return cache_sqlite_error(rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = cache_strv_push(&keys,
				    strdup((const char *) sqlite3_column_text(st, 0)));
		if (r < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return cache_sqlite_error(rc);
	if (!keys) {
		keys = calloc(1, sizeof(char *));
		if (!keys)
			return -ENOMEM;
	}
	*ret_keys = CACHE_TAKE_PTR(keys);
	return 0;
}

static int total_bytes(struct cache *c, uint64_t *ret_bytes, uint64_t *ret_objects)
{
	_cache_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(
		c->db,
		"SELECT COUNT(*), COALESCE(SUM(s), 0) FROM "
		"(SELECT MAX(size) AS s FROM entry_files GROUP BY sha256)",
		-1, &st, NULL);
	if (rc != SQLITE_OK)
		return cache_sqlite_error(rc);
	if (sqlite3_step(st) != SQLITE_ROW)
		return cache_sqlite_error(sqlite3_errcode(c->db)) ?: -EIO;
	if (ret_objects)
		*ret_objects = (uint64_t) sqlite3_column_int64(st, 0);
	*ret_bytes = (uint64_t) sqlite3_column_int64(st, 1);
	return 0;
}

/* Within the write transaction: remove objects nothing references (left by a crash
 * between rename and commit) and temporaries older than an hour. */
static int sweep(struct cache *c, uint64_t *freed)
{
	DIR *d;
	struct dirent *de;
	uint64_t now = cache_now_usec();
	int fd;

	fd = openat(c->dir_fd, CACHE_TMP_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && (d = fdopendir(fd))) {
		while ((de = readdir(d))) {
			struct stat st;

			if (de->d_name[0] != '.' || strncmp(de->d_name, ".tmp-", 5) != 0)
				continue;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if ((uint64_t) st.st_mtim.tv_sec * 1000000ULL + TMP_MAX_AGE_USEC <
			    now)
				(void) unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	} else if (fd >= 0)
		close(fd);

	fd = openat(c->dir_fd, CACHE_OBJECTS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		DIR *sd;
		struct dirent *se;
		int sfd;

		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		sfd = openat(dirfd(d), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (sfd < 0)
			continue;
		sd = fdopendir(sfd);
		if (!sd) {
			close(sfd);
			continue;
		}
		while ((se = readdir(sd))) {
			struct stat st;
			int r;

			if (!cache_sha256_valid(se->d_name) ||
			    strncmp(se->d_name, de->d_name, 2) != 0)
				continue;
			r = sha_referenced(c, se->d_name);
			if (r < 0) {
				closedir(sd);
				closedir(d);
				return r;
			}
			if (r > 0 ||
			    fstatat(dirfd(sd), se->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (unlinkat(dirfd(sd), se->d_name, 0) >= 0)
				*freed += (uint64_t) st.st_size;
		}
		closedir(sd);
	}
	closedir(d);
	return 0;
}

int cache_gc(struct cache *c, uint64_t max_size, uint64_t *ret_freed)
{
	uint64_t total, freed = 0;
	int r, evicted = 0;

	r = cache_begin(c);
	if (r < 0)
		return r;
	r = total_bytes(c, &total, NULL);
	if (r < 0)
		goto fail;
	while (total > max_size) {
		_cache_stmt_ sqlite3_stmt *st = NULL;
		_cache_free_ char *key = NULL;
		int rc;

		rc = sqlite3_prepare_v2(
			c->db, "SELECT key FROM entries ORDER BY last_used, key LIMIT 1",
			-1, &st, NULL);
		if (rc != SQLITE_OK) {
			r = cache_sqlite_error(rc);
			goto fail;
		}
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			r = cache_sqlite_error(rc);
			goto fail;
		}
		key = strdup((const char *) sqlite3_column_text(st, 0));
		if (!key) {
			r = -ENOMEM;
			goto fail;
		}
		r = remove_entry_locked(c, key, &freed);
		if (r < 0)
			goto fail;
		evicted++;
		/* Recount rather than trust the unlink sizes: objects may have been
		 * missing. */
		r = total_bytes(c, &total, NULL);
		if (r < 0)
			goto fail;
	}
	r = sweep(c, &freed);
	if (r < 0)
		goto fail;
	r = cache_commit_tx(c);
	if (r < 0)
		return r;
	if (ret_freed)
		*ret_freed = freed;
	return evicted;
fail:
	cache_rollback(c);
	return r;
}

int cache_stat(struct cache *c, struct cache_stats *ret)
{
	_cache_stmt_ sqlite3_stmt *st = NULL;
	struct cache_stats s = {};
	int rc, r;

	/* One read transaction, so the numbers agree with each other. */
	r = cache_exec(c, "BEGIN");
	if (r < 0)
		return r;
	r = total_bytes(c, &s.bytes, &s.objects);
	if (r < 0)
		goto finish;
	rc = sqlite3_prepare_v2(c->db,
				"SELECT COUNT(*), COALESCE(MIN(last_used), 0), "
				"COALESCE(MAX(last_used), 0) FROM entries",
				-1, &st, NULL);
	if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		r = cache_sqlite_error(sqlite3_errcode(c->db)) ?: -EIO;
		goto finish;
	}
	s.entries = (uint64_t) sqlite3_column_int64(st, 0);
	s.oldest_used = (uint64_t) sqlite3_column_int64(st, 1);
	s.newest_used = (uint64_t) sqlite3_column_int64(st, 2);
finish:
	cache_rollback(c);
	if (r < 0)
		return r;
	*ret = s;
	return 0;
}
