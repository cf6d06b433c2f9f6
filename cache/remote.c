/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Remote cache on any HTTP(S) server with GET and PUT (e.g. nginx with WebDAV):
 *   BASE/v1/<key>/manifest     "dm2-cache-manifest 1\n" "key <key>\n"
 *                              then one "file <sha256> <size> <name>\n" per file
 *   BASE/v1/objects/<sha256>   the file's content
 * Nothing from the remote is trusted: names are checked like local ones, a download stops
 * at the size the manifest gives, and every object lands in dir/tmp, is hashed there and
 * refused unless size and sha256 match the manifest; only then may it become an object.
 * How the bytes move is the transport's business (remote-internal.h): plain HTTP(S) in
 * remote-http.c, OCI registries in remote-oci.c.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/stat.h>

#include "remote-internal.h"
#include "shared/fs-util.h"

#define MANIFEST_MAGIC "dm2-cache-manifest 1"
#define MANIFEST_MAX_FILES 10000U

void cache_manifest_free(struct cache_manifest_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i].name);
	free(f);
}

int cache_manifest_parse(char *text, const char *key, const char *url,
			 struct cache_manifest_file **ret, size_t *ret_n, char **reason)
{
	struct cache_manifest_file *files = NULL;
	size_t n = 0;
	unsigned line = 0;
	bool key_seen = false;
	char *save = NULL;

	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *end;

		line++;
		if (line == 1) {
			if (strcmp(l, MANIFEST_MAGIC) != 0)
				goto bad;
			continue;
		}
		if (strncmp(l, "key ", 4) == 0) {
			if (strcmp(l + 4, key) != 0)
				goto bad;
			key_seen = true;
			continue;
		}
		if (strncmp(l, "file ", 5) == 0 && strlen(l) > 5 + 64 + 1 &&
		    l[5 + 64] == ' ') {
			struct cache_manifest_file *m, *f;

			if (n >= MANIFEST_MAX_FILES)
				goto bad;
			m = realloc(files, (n + 1) * sizeof(*files));
			if (!m) {
				cache_manifest_free(files, n);
				return -ENOMEM;
			}
			files = m;
			f = &files[n];
			*f = (struct cache_manifest_file){};
			memcpy(f->sha256, l + 5, 64);
			f->sha256[64] = '\0';
			errno = 0;
			f->size = strtoull(l + 5 + 65, &end, 10);
			if (!sha256_hex_canonical(f->sha256) || errno != 0 ||
			    end == l + 5 + 65 || *end != ' ' ||
			    !cache_name_valid(end + 1))
				goto bad;
			for (size_t i = 0; i < n; i++)
				if (strcmp(files[i].name, end + 1) == 0)
					goto bad;
			f->name = strdup(end + 1);
			if (!f->name) {
				cache_manifest_free(files, n);
				return -ENOMEM;
			}
			n++;
			continue;
		}
		goto bad;
	}
	if (!key_seen || n == 0) {
		line = 0;
		goto bad;
	}
	*ret = files;
	*ret_n = n;
	return 0;
bad:
	cache_manifest_free(files, n);
	if (line > 0)
		set_reason(reason, "Manifest '%s' line %u is malformed, refusing it", url,
			   line);
	else
		set_reason(reason,
			   "Manifest '%s' has no key line or no files, refusing it", url);
	return -EBADMSG;
}

/* GET one object of the manifest into dir/tmp, then check that it is what the manifest
 * says before it may go further. */
static int download_object(struct cache *c, struct remote *rm,
			   const struct cache_manifest_file *f,
			   const struct cache_remote_options *o, struct cache_staged *ret,
			   char **reason)
{
	_cleanup_free_ char *tmp = NULL, *name = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint64_t max = o && o->max_object_size ? o->max_object_size : (1ULL << 30);
	uint64_t size = 0;
	char hex[SHA256_HEX_SIZE];
	int r;

	if (f->size > max) {
		set_reason(reason, "Object '%s' is %" PRIu64 " bytes, over the limit of %" PRIu64,
			   f->sha256, f->size, max);
		return -EFBIG;
	}
	name = strdup(f->name);
	if (!name)
		return -ENOMEM;
	r = cas_tmp_new(c->tmp_fd, &fd, &tmp);
	if (r < 0)
		return r;

	r = rm->ops->get_object(rm, f->sha256, fd, f->size, reason);
	if (r == -EFBIG) {
		*reason = mfree(*reason);
		set_reason(reason,
			   "Object '%s' on '%s' is larger than the manifest says, refusing it",
			   f->sha256, rm->shown);
		r = -EBADMSG;
	} else if (r >= 0)
		r = cas_seal(fd, hex, &size);
	if (r >= 0 && (size != f->size || !streq(hex, f->sha256))) {
		set_reason(reason,
			   "Object '%s' on '%s' has sha256 %s and %" PRIu64
			   " bytes, expected %" PRIu64 " bytes; refusing the tampered object",
			   f->sha256, rm->shown, hex, size, f->size);
		r = -EBADMSG;
	}
	if (r < 0) {
		(void) unlinkat(c->tmp_fd, tmp, 0);
		return r;
	}
	memcpy(ret->sha256, hex, sizeof(hex));
	ret->size = size;
	ret->name = TAKE_PTR(name);
	ret->tmp = TAKE_PTR(tmp);
	return 0;
}

/* Fetch and parse the manifest of key. */
static int get_manifest(struct remote *rm, const char *key, struct cache_manifest_file **ret,
			size_t *ret_n, char **reason)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;

	r = rm->ops->get_manifest(rm, key, &text, &len, reason);
	if (r < 0)
		return r;
	if (strlen(text) != len) {
		set_reason(reason, "Manifest of '%s' on '%s' contains a NUL byte, refusing it",
			   key, rm->shown);
		return -EBADMSG;
	}
	return cache_manifest_parse(text, key, rm->shown, ret, ret_n, reason);
}

int cache_remote_pull(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cleanup_(remote_closep) struct remote *rm = NULL;
	_cleanup_free_ char *reason = NULL;
	struct cache_manifest_file *files = NULL;
	struct cache_staged *staged = NULL;
	size_t n = 0, k = 0;
	int r;

	if (!c || !cache_key_valid(key)) {
		set_reason(&reason, "'%s' is not a cache key (64 hex digits)", key ?: "");
		r = -EINVAL;
		goto finish;
	}
	r = remote_open(base_url, o, &rm, &reason);
	if (r >= 0)
		r = get_manifest(rm, key, &files, &n, &reason);
	if (r < 0)
		goto finish;

	staged = calloc(n, sizeof(*staged));
	if (!staged) {
		r = -ENOMEM;
		goto finish;
	}
	for (k = 0; k < n; k++) {
		r = download_object(c, rm, &files[k], o, &staged[k], &reason);
		if (r < 0)
			goto finish;
	}
	r = cache_commit(c, key, staged, n);
	if (r < 0)
		set_reason(&reason, "Storing '%s' in the local cache failed: %s", key,
			   strerror(-r));
finish:
	if (staged)
		cache_staged_done(c, staged, k);
	free(staged);
	cache_manifest_free(files, n);
	if (r < 0 && ret_reason)
		*ret_reason = TAKE_PTR(reason);
	return r;
}

/* One file of the entry: its manifest line, and its object uploaded unless already there. */
static int push_object(struct cache *c, struct remote *rm, const char *name, const char *sha,
		       uint64_t size, FILE *manifest, char **reason)
{
	_cleanup_free_ char *rel = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	fprintf(manifest, "file %s %" PRIu64 " %s\n", sha, size, name);
	r = cas_object_path(&c->objects, sha, &rel);
	if (r < 0)
		return r;
	if (rm->ops->has_object(rm, sha, size) > 0)
		return 0;
	fd = openat(c->objects.dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		set_reason(reason, "Object '%s' vanished from the local cache", sha);
		return r;
	}
	return rm->ops->put_object(rm, sha, fd, size, reason);
}

/* The objects a manifest references, for the transport (a registry keeps only what a
 * manifest references). */
static int objects_add(struct remote_object **objects, size_t *n, const char *sha,
		       uint64_t size)
{
	struct remote_object *m = realloc(*objects, (*n + 1) * sizeof(**objects));

	if (!m)
		return -ENOMEM;
	*objects = m;
	m[*n] = (struct remote_object){.size = size};
	memcpy(m[*n].sha256, sha, SHA256_HEX_SIZE - 1);
	m[*n].sha256[SHA256_HEX_SIZE - 1] = '\0';
	(*n)++;
	return 0;
}

/* Every object of the entry, each line of its manifest into *ret_manifest. */
static int push_objects(struct cache *c, struct remote *rm, const char *key,
			char **ret_manifest, size_t *ret_len,
			struct remote_object **objects, size_t *n_objects, char **reason)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_fclose_ FILE *m = NULL;
	size_t len = 0;
	int rc, r;

	m = open_memstream(&text, &len);
	if (!m)
		return -ENOMEM;
	fprintf(m, MANIFEST_MAGIC "\nkey %s\n", key);
	r = sql_prepare(c->db,
			"SELECT name, sha256, size FROM entry_files WHERE key = ? ORDER BY name",
			&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *sha = (const char *) sqlite3_column_text(st, 1);
		uint64_t size = (uint64_t) sqlite3_column_int64(st, 2);

		if (!sha || strlen(sha) != SHA256_HEX_SIZE - 1)
			return -EBADMSG;
		r = push_object(c, rm, (const char *) sqlite3_column_text(st, 0), sha, size, m,
				reason);
		if (r >= 0)
			r = objects_add(objects, n_objects, sha, size);
		if (r < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc);
	if (fclose(TAKE_PTR(m)) != 0)
		return -ENOMEM;
	*ret_manifest = TAKE_PTR(text);
	*ret_len = len;
	return 0;
}

int cache_remote_push(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cleanup_(remote_closep) struct remote *rm = NULL;
	_cleanup_free_ char *reason = NULL, *manifest = NULL;
	_cleanup_free_ struct remote_object *objects = NULL;
	struct cache_entry *e = NULL;
	size_t len = 0, n_objects = 0;
	int r;

	if (!c || !cache_key_valid(key)) {
		set_reason(&reason, "'%s' is not a cache key (64 hex digits)", key ?: "");
		r = -EINVAL;
		goto finish;
	}
	r = remote_open(base_url, o, &rm, &reason);
	if (r < 0)
		goto finish;
	/* Verifies every object, so we never spread a corrupt one. */
	r = cache_lookup(c, key, &e);
	if (r == -ENOENT)
		set_reason(&reason, "Cache entry '%s' is not in the local cache", key);
	if (r >= 0)
		r = push_objects(c, rm, key, &manifest, &len, &objects, &n_objects, &reason);
	if (r < 0)
		goto finish;
	/* Last: only now may readers see the entry. */
	r = rm->ops->put_manifest(rm, key, manifest, len, objects, n_objects, &reason);
finish:
	cache_entry_free(e);
	if (r < 0 && ret_reason)
		*ret_reason = TAKE_PTR(reason);
	return r;
}
