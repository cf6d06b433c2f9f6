/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LRU eviction, the sweep of what a crash left behind, and statistics. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cache-internal.h"

#define TMP_MAX_AGE_USEC (3600ULL * 1000000ULL)

static int total_bytes(struct cache *c, uint64_t *ret_bytes, uint64_t *ret_objects)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	r = sql_prepare(c->db,
			"SELECT COUNT(*), COALESCE(SUM(s), 0) FROM "
			"(SELECT MAX(size) AS s FROM entry_files GROUP BY sha256)",
			&st);
	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW)
		return sql_error(c->db, sqlite3_errcode(c->db)) ?: -EIO;
	if (ret_objects)
		*ret_objects = (uint64_t) sqlite3_column_int64(st, 0);
	*ret_bytes = (uint64_t) sqlite3_column_int64(st, 1);
	return 0;
}

static DIR *opendir_at(int dir_fd, const char *path)
{
	int fd = openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d)
		safe_close(fd);
	return d;
}

/* Temporaries older than an hour: a writer that died. Younger ones may be in use. */
static void sweep_tmp(struct cache *c)
{
	uint64_t now = now_usec();
	struct dirent *de;
	DIR *d;

	d = opendir_at(c->tmp_fd, ".");
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat st;

		if (!startswith(de->d_name, CAS_TMP_PREFIX))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if ((uint64_t) st.st_mtim.tv_sec * 1000000ULL + TMP_MAX_AGE_USEC < now)
			(void) unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* Objects of one fan-out directory that no entry references. */
static int sweep_objects_in(struct cache *c, DIR *sd, const char *prefix, uint64_t *freed)
{
	struct dirent *se;

	while ((se = readdir(sd))) {
		struct stat st;
		int r;

		if (!sha256_hex_canonical(se->d_name) || !startswith(se->d_name, prefix))
			continue;
		r = cache_sha_referenced(c, se->d_name);
		if (r < 0)
			return r;
		if (r > 0 || fstatat(dirfd(sd), se->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (unlinkat(dirfd(sd), se->d_name, 0) >= 0)
			*freed += (uint64_t) st.st_size;
	}
	return 0;
}

/* Within the write transaction: remove objects nothing references (left by a crash
 * between rename and commit) and stale temporaries. */
static int sweep(struct cache *c, uint64_t *freed)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	sweep_tmp(c);
	d = opendir_at(c->objects.dir_fd, ".");
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (r >= 0 && (de = readdir(d))) {
		DIR *sd;

		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		sd = opendir_at(dirfd(d), de->d_name);
		if (!sd)
			continue;
		r = sweep_objects_in(c, sd, de->d_name, freed);
		closedir(sd);
	}
	closedir(d);
	return r;
}

/* Within the write transaction: the least recently used key, or -ENOENT. */
static int lru_key(struct cache *c, char **ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char *key;
	int rc, r;

	r = sql_prepare(c->db, "SELECT key FROM entries ORDER BY last_used, key LIMIT 1", &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc);
	key = strdup((const char *) sqlite3_column_text(st, 0));
	if (!key)
		return -ENOMEM;
	*ret = key;
	return 0;
}

/* Within the write transaction: evict until at most max_size; the number evicted. */
static int evict(struct cache *c, uint64_t max_size, uint64_t *freed)
{
	uint64_t total;
	int r, evicted = 0;

	r = total_bytes(c, &total, NULL);
	if (r < 0)
		return r;
	while (total > max_size) {
		_cleanup_free_ char *key = NULL;

		r = lru_key(c, &key);
		if (r == -ENOENT)
			break;
		if (r < 0)
			return r;
		r = cache_remove_entry_locked(c, key, freed);
		if (r < 0)
			return r;
		evicted++;
		/* Recount rather than trust the unlink sizes: objects may have been missing. */
		r = total_bytes(c, &total, NULL);
		if (r < 0)
			return r;
	}
	return evicted;
}

int cache_gc(struct cache *c, uint64_t max_size, uint64_t *ret_freed)
{
	uint64_t freed = 0;
	int r, evicted;

	r = sql_begin(c->db);
	if (r < 0)
		return r;
	r = evicted = evict(c, max_size, &freed);
	if (r >= 0)
		r = sweep(c, &freed);
	if (r < 0) {
		sql_rollback(c->db);
		return r;
	}
	r = sql_commit(c->db);
	if (r < 0)
		return r;
	if (ret_freed)
		*ret_freed = freed;
	return evicted;
}

int cache_stat(struct cache *c, struct cache_stats *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct cache_stats s = {};
	int r;

	/* One read transaction, so the numbers agree with each other. */
	r = sql_exec(c->db, "BEGIN");
	if (r < 0)
		return r;
	r = total_bytes(c, &s.bytes, &s.objects);
	if (r < 0)
		goto finish;
	r = sql_prepare(c->db,
			"SELECT COUNT(*), COALESCE(MIN(last_used), 0), "
			"COALESCE(MAX(last_used), 0) FROM entries",
			&st);
	if (r < 0)
		goto finish;
	if (sqlite3_step(st) != SQLITE_ROW) {
		r = sql_error(c->db, sqlite3_errcode(c->db)) ?: -EIO;
		goto finish;
	}
	s.entries = (uint64_t) sqlite3_column_int64(st, 0);
	s.oldest_used = (uint64_t) sqlite3_column_int64(st, 1);
	s.newest_used = (uint64_t) sqlite3_column_int64(st, 2);
finish:
	sql_rollback(c->db);
	if (r < 0)
		return r;
	*ret = s;
	return 0;
}
