/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Signed manifests of local entries, and the offline form of the remote cache: one tar
 * archive laid out like a remote (v1/<key>/manifest, v1/objects/<sha256>; unpacked into a
 * WebDAV root it is one). Import believes an archive no more than a server: every manifest
 * is accepted like a pull (trust.c) and every object checked against it, entry by entry.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <inttypes.h>

#include "cache-internal.h"
#include "shared/fs-util.h"

static inline void archive_write_freep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

/* The files of the entry in manifest order (by name). */
static int entry_files(struct cache *c, const char *key, struct cache_manifest *m)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc, r;

	r = sql_prepare(c->db,
			"SELECT name, sha256, size FROM entry_files WHERE key = ? ORDER BY name",
			&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct cache_manifest_file *f;
		const char *sha = (const char *) sqlite3_column_text(st, 1);

		f = realloc(m->files, (m->n_files + 1) * sizeof(*f));
		if (!f)
			return -ENOMEM;
		m->files = f;
		f = &m->files[m->n_files];
		*f = (struct cache_manifest_file){
			.size = (uint64_t) sqlite3_column_int64(st, 2),
			.name = strdup((const char *) sqlite3_column_text(st, 0) ?: ""),
		};
		if (!f->name)
			return -ENOMEM;
		snprintf(f->sha256, sizeof(f->sha256), "%s", sha ?: "");
		m->n_files++;
	}
	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc);
}

int cache_manifest_build(struct cache *c, const char *key, const struct cache_remote_options *o,
			 char **ret_text, size_t *ret_len, struct cache_manifest *ret_files,
			 char **reason)
{
	_cleanup_(cache_entry_info_done) struct cache_entry_info info = {};
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	_cleanup_free_ char *text = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	size_t len = 0;
	int r;

	if (!o || !o->sign) {
		cache_set_reason(reason, "No signing key: refusing to publish '%s' unsigned",
				 key);
		return -ENOKEY;
	}
	/* What the signature vouches for: an entry whose origin is unknown is not published. */
	r = cache_info_get(c, key, &info);
	if (r == -ENOENT)
		cache_set_reason(reason,
				 "Cache entry '%s' has no recorded origin (recipe, kernel); "
				 "rebuild it to publish it",
				 key);
	if (r >= 0)
		r = entry_files(c, key, &m);
	if (r < 0)
		return r;
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	r = cache_manifest_format_header(f, key, &info);
	if (r < 0) {
		cache_set_reason(reason, "Cache entry '%s' has an unprintable origin", key);
		return r;
	}
	for (size_t i = 0; i < m.n_files; i++)
		fprintf(f, "file %s %" PRIu64 " %s\n", m.files[i].sha256, m.files[i].size,
			m.files[i].name);
	if (fclose(TAKE_PTR(f)) != 0)
		return -ENOMEM;
	r = cache_manifest_sign(&text, &len, o, reason);
	if (r < 0)
		return r;
	*ret_text = TAKE_PTR(text);
	*ret_len = len;
	*ret_files = m;
	m = (struct cache_manifest){};
	return 0;
}

int cache_commit_accepted(struct cache *c, const struct cache_manifest *m,
			  struct cache_staged *staged, char **reason)
{
	const struct cache_entry_info info = {
		.recipe = m->recipe,
		.version = m->version,
		.source_id = m->source_id,
		.kernel_release = m->kernel_release,
		.kernel_identity = m->kernel_identity,
		.arch = m->arch,
	};
	int r;

	r = cache_commit(c, m->key, staged, m->n_files);
	if (r >= 0)
		r = cache_info_set(c, m->key, &info);
	if (r < 0)
		cache_set_reason(reason, "Storing '%s' in the local cache failed: %s", m->key,
				 strerror(-r));
	return r;
}

static int write_member(struct archive *a, const char *path, int fd, const void *buf,
			uint64_t size)
{
	struct archive_entry *e = archive_entry_new();
	char chunk[65536];
	int r = 0;

	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t) size);
	if (archive_write_header(a, e) != ARCHIVE_OK)
		r = -EIO;
	archive_entry_free(e);
	if (r < 0 || buf)
		return r < 0 || archive_write_data(a, buf, size) == (la_ssize_t) size ? r : -EIO;
	for (uint64_t done = 0; done < size;) {
		ssize_t n = read(fd, chunk, MIN(sizeof(chunk), size - done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* shrank under us */
		if (archive_write_data(a, chunk, (size_t) n) != n)
			return -EIO;
		done += (uint64_t) n;
	}
	return 0;
}

/* One entry: its objects not written yet (*written remembers), then its manifest. */
static int export_entry(struct cache *c, struct archive *a, const char *key,
			const struct cache_remote_options *o, char ***written, char **reason)
{
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	_cleanup_free_ char *text = NULL, *path = NULL;
	struct cache_entry *e = NULL;
	size_t len = 0;
	int r;

	/* Verifies every object, so we never spread a corrupt one. */
	r = cache_lookup(c, key, &e);
	cache_entry_free(e);
	if (r == -ENOENT)
		cache_set_reason(reason, "Cache entry '%s' is not in the local cache", key);
	if (r >= 0)
		r = cache_manifest_build(c, key, o, &text, &len, &m, reason);
	for (size_t i = 0; r >= 0 && i < m.n_files; i++) {
		_cleanup_free_ char *rel = NULL, *member = NULL;
		_cleanup_close_ int fd = -EBADF;

		if (strv_contains(*written, m.files[i].sha256))
			continue;
		r = cas_object_path(&c->objects, m.files[i].sha256, &rel);
		if (r < 0)
			break;
		fd = openat(c->objects.dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		member = strjoin("v1/objects/", m.files[i].sha256);
		if (fd < 0 || !member)
			return fd < 0 ? -errno : -ENOMEM;
		r = write_member(a, member, fd, NULL, m.files[i].size);
		if (r >= 0)
			r = strv_extend(written, m.files[i].sha256);
	}
	if (r < 0)
		return r;
	path = strdup_printf("v1/%s/manifest", key);
	return path ? write_member(a, path, -EBADF, text, len) : -ENOMEM;
}

int cache_export(struct cache *c, int fd, char *const *keys,
		 const struct cache_remote_options *o, char **ret_reason)
{
	_cleanup_(archive_write_freep) struct archive *a = NULL;
	_cleanup_strv_free_ char **written = NULL;
	_cleanup_free_ char *reason = NULL;
	int r = 0;

	a = archive_write_new();
	if (!a)
		return -ENOMEM;
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK)
		r = -EIO;
	STRV_FOREACH(k, keys)
	{
		if (r < 0)
			break;
		r = export_entry(c, a, *k, o, &written, &reason);
		if (r < 0 && !reason)
			cache_set_reason(&reason, "Writing '%s' into the archive failed: %s", *k,
					 r == -EIO ? archive_error_string(a) : strerror(-r));
	}
	if (r >= 0 && archive_write_close(a) != ARCHIVE_OK) {
		cache_set_reason(&reason, "Finishing the archive failed: %s",
				 archive_error_string(a));
		r = -EIO;
	}
	if (r < 0 && ret_reason)
		*ret_reason = TAKE_PTR(reason);
	return r;
}
