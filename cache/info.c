/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the index knows besides files: the origin of each entry (recipe, source, kernel),
 * which push signs into the manifest and export selects by, and how many remote entries
 * were refused for each reason. Both tables are created on first use, so an index from
 * before them needs no migration; a missing origin only means the entry is not pushed.
 */
#include "cache-internal.h"

static const char *const cache_refusal_table[_CACHE_REFUSAL_MAX] = {
	[CACHE_REFUSAL_UNSIGNED] = "unsigned",
	[CACHE_REFUSAL_UNKNOWN_SIGNER] = "unknown-signer",
	[CACHE_REFUSAL_BAD_SIGNATURE] = "bad-signature",
	[CACHE_REFUSAL_REPLAY] = "replay",
	[CACHE_REFUSAL_MALFORMED] = "malformed",
	[CACHE_REFUSAL_OBJECT_MISMATCH] = "object-mismatch",
	[CACHE_REFUSAL_TRUNCATED] = "truncated",
	[CACHE_REFUSAL_MODULE_SIGNATURE] = "module-signature",
};
DEFINE_STRING_TABLE(cache_refusal, _CACHE_REFUSAL_MAX);

static int tables_ensure(struct cache *c)
{
	return sql_exec(c->db, "CREATE TABLE IF NOT EXISTS entry_info ("
			       "key TEXT PRIMARY KEY, recipe TEXT NOT NULL, "
			       "version TEXT NOT NULL, source_id TEXT NOT NULL, "
			       "kernel_release TEXT NOT NULL, kernel_identity TEXT NOT NULL, "
			       "arch TEXT NOT NULL);"
			       "CREATE TABLE IF NOT EXISTS refusals ("
			       "reason TEXT PRIMARY KEY, count INTEGER NOT NULL);");
}

int cache_info_set(struct cache *c, const char *key, const struct cache_entry_info *i)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const char *v[] = {i->recipe,	      i->version,	  i->source_id,
			   i->kernel_release, i->kernel_identity, i->arch};
	int r, rc;

	for (size_t k = 0; k < ELEMENTSOF(v); k++)
		if (isempty(v[k]))
			return -EINVAL;
	r = tables_ensure(c);
	if (r < 0)
		return r;
	r = sql_prepare(c->db, "INSERT OR REPLACE INTO entry_info VALUES (?, ?, ?, ?, ?, ?, ?)",
			&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	for (size_t k = 0; k < ELEMENTSOF(v); k++)
		sqlite3_bind_text(st, (int) k + 2, v[k], -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc) ?: -EIO;
}

void cache_entry_info_done(struct cache_entry_info *i)
{
	free((char *) i->recipe);
	free((char *) i->version);
	free((char *) i->source_id);
	free((char *) i->kernel_release);
	free((char *) i->kernel_identity);
	free((char *) i->arch);
	*i = (struct cache_entry_info){};
}

int cache_info_get(struct cache *c, const char *key, struct cache_entry_info *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_(cache_entry_info_done) struct cache_entry_info i = {};
	const char **v[] = {&i.recipe,	       &i.version,	   &i.source_id,
			    &i.kernel_release, &i.kernel_identity, &i.arch};
	int r, rc;

	r = tables_ensure(c);
	if (r < 0)
		return r;
	r = sql_prepare(c->db,
			"SELECT recipe, version, source_id, kernel_release, kernel_identity, "
			"arch FROM entry_info WHERE key = ?",
			&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc) ?: -EIO;
	for (size_t k = 0; k < ELEMENTSOF(v); k++) {
		*v[k] = strdup((const char *) sqlite3_column_text(st, (int) k) ?: "");
		if (!*v[k])
			return -ENOMEM;
	}
	*ret = i;
	i = (struct cache_entry_info){};
	return 0;
}

void cache_refusal_note(struct cache *c, enum cache_refusal why)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	if (!c || why < 0 || why >= _CACHE_REFUSAL_MAX || tables_ensure(c) < 0 ||
	    sql_prepare(c->db,
			"INSERT INTO refusals VALUES (?, 1) ON CONFLICT(reason) DO UPDATE "
			"SET count = count + 1",
			&st) < 0)
		return;
	sqlite3_bind_text(st, 1, cache_refusal_to_string(why), -1, SQLITE_STATIC);
	(void) sqlite3_step(st);
}

int cache_refusals(struct cache *c, uint64_t ret[_CACHE_REFUSAL_MAX])
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	uint64_t n[_CACHE_REFUSAL_MAX] = {};
	int r, rc;

	r = tables_ensure(c);
	if (r < 0)
		return r;
	r = sql_prepare(c->db, "SELECT reason, count FROM refusals", &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int i = cache_refusal_from_string((const char *) sqlite3_column_text(st, 0));

		if (i >= 0)
			n[i] = (uint64_t) sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc) ?: -EIO;
	memcpy(ret, n, sizeof(n));
	return 0;
}
