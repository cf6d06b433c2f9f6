/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm2 cache import: an archive written by cache_export() (export.c), believed no more than
 * a server. Every member is read first (objects into dir/tmp, hashed there; manifests into
 * memory, bounded), then each manifest is accepted like a pull (trust.c) and each of its
 * objects checked against it; an entry goes in whole or not at all, and each refusal is
 * reported and counted on its own.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>

#include "cache-internal.h"
#include "shared/fs-util.h"

#define IMPORT_MANIFEST_MAX (1024U * 1024U)
#define IMPORT_MAX_MEMBERS 100000U

struct member {
	char *key;  /* of a manifest, else NULL */
	char *text; /* manifest content */
	size_t len;
	char name_sha[SHA256_HEX_SIZE]; /* of an object: what its name claims */
	char sha256[SHA256_HEX_SIZE];	/* what it holds */
	uint64_t size;
	char *tmp; /* in dir/tmp */
};

struct import {
	struct cache *c;
	const char *file;
	struct member *m;
	size_t n;
	cache_import_fn report;
	void *userdata;
};

static void import_done(struct import *im)
{
	for (size_t i = 0; i < im->n; i++) {
		if (im->m[i].tmp)
			(void) unlinkat(im->c->tmp_fd, im->m[i].tmp, 0);
		free(im->m[i].tmp);
		free(im->m[i].key);
		free(im->m[i].text);
	}
	free(im->m);
}

static void report(struct import *im, const char *key, int r, const char *reason)
{
	if (im->report)
		im->report(key, r, reason, im->userdata);
}

static inline void archive_read_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

/* An object member into dir/tmp, hashed: what it holds, not what it is called. */
static int read_object(struct import *im, struct archive *a, uint64_t max, struct member *m)
{
	_cleanup_close_ int fd = -EBADF;
	uint64_t total = 0;
	int r;

	r = cas_tmp_new(im->c->tmp_fd, &fd, &m->tmp);
	if (r < 0)
		return r;
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int k = archive_read_data_block(a, &buf, &size, &off);

		if (k == ARCHIVE_EOF)
			break;
		if (k < ARCHIVE_WARN)
			return -EBADMSG;
		total += size;
		if (total > max)
			return -EFBIG;
		r = loop_write(fd, buf, size);
		if (r < 0)
			return r;
	}
	return cas_seal(fd, m->sha256, &m->size);
}

static int read_manifest(struct archive *a, struct member *m)
{
	char *text = malloc(IMPORT_MANIFEST_MAX + 1);
	la_ssize_t n;

	if (!text)
		return -ENOMEM;
	n = archive_read_data(a, text, IMPORT_MANIFEST_MAX + 1);
	if (n < 0 || (size_t) n > IMPORT_MANIFEST_MAX) {
		free(text);
		return n < 0 ? -EBADMSG : -EFBIG;
	}
	text[n] = '\0';
	m->text = text;
	m->len = (size_t) n;
	return 0;
}

/* One member: "v1/<key>/manifest" or "v1/objects/<sha256>"; anything else is reported
 * and skipped. */
static int read_member(struct import *im, struct archive *a, struct archive_entry *e,
		       uint64_t max)
{
	const char *path = archive_entry_pathname(e) ?: "";
	const char *rest = startswith(path, "v1/");
	struct member m = {}, *grown;
	_cleanup_free_ char *why = NULL;
	int r = -EBADMSG;

	if (archive_entry_filetype(e) == AE_IFREG && rest && startswith(rest, "objects/") &&
	    sha256_hex_canonical(rest + 8)) {
		memcpy(m.name_sha, rest + 8, SHA256_HEX_SIZE);
		r = read_object(im, a, max, &m);
	} else if (archive_entry_filetype(e) == AE_IFREG && rest && strlen(rest) == 64 + 9 &&
		   streq(rest + 64, "/manifest")) {
		m.key = strndup(rest, 64);
		r = !m.key ? -ENOMEM : cache_key_valid(m.key) ? read_manifest(a, &m) : -EBADMSG;
	}
	if (r >= 0 && im->n < IMPORT_MAX_MEMBERS &&
	    (grown = realloc(im->m, (im->n + 1) * sizeof(*grown)))) {
		im->m = grown;
		im->m[im->n++] = m;
		return 0;
	}
	if (m.tmp)
		(void) unlinkat(im->c->tmp_fd, m.tmp, 0);
	free(m.tmp);
	free(m.key);
	free(m.text);
	if (r == -ENOMEM || r >= 0)
		return -ENOMEM;
	why = strdup_printf("Archive '%s' member '%s' is %s, ignoring it", im->file, path,
			    r == -EFBIG ? "too large" : "not a dm2 cache member");
	report(im, NULL, r, why);
	return 0;
}

static const struct member *find_object(const struct import *im, const char *sha)
{
	for (size_t i = 0; i < im->n; i++)
		if (!im->m[i].key && streq(im->m[i].name_sha, sha))
			return &im->m[i];
	return NULL;
}

/* The manifest's objects, checked and copied into dir/tmp for cache_commit(). */
static int stage_objects(struct import *im, const struct cache_manifest *m,
			 struct cache_staged *staged, size_t *k, const char *where,
			 enum cache_refusal *why, char **reason)
{
	for (*k = 0; *k < m->n_files; (*k)++) {
		const struct cache_manifest_file *f = &m->files[*k];
		const struct member *o = find_object(im, f->sha256);
		_cleanup_free_ char *at = strdup_printf("%s:v1/objects/%s", where, f->sha256);
		_cleanup_close_ int fd = -EBADF;
		int r;

		if (!at)
			return -ENOMEM;
		if (!o) {
			*why = CACHE_REFUSAL_TRUNCATED;
			cache_set_reason(reason, "Object '%s' listed in the manifest is missing",
					 at);
			return -EBADMSG;
		}
		r = cache_object_check(f, o->sha256, o->size, at, why, reason);
		if (r < 0)
			return r;
		fd = openat(im->c->tmp_fd, o->tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -errno;
		/* A copy: objects may be shared between entries. */
		r = cache_stage_fd(im->c, fd, f->name, &staged[*k]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int import_entry(struct import *im, struct member *mf,
			const struct cache_remote_options *o)
{
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	_cleanup_free_ char *reason = NULL, *where = NULL;
	enum cache_refusal why = _CACHE_REFUSAL_INVALID;
	struct cache_staged *staged = NULL;
	size_t k = 0;
	int r;

	where = strdup_printf("%s:v1/%s/manifest", im->file, mf->key);
	if (!where)
		return -ENOMEM;
	r = cache_manifest_accept(mf->text, mf->len, mf->key, o, where, &m, &why, &reason);
	if (r >= 0) {
		staged = calloc(m.n_files, sizeof(*staged));
		r = staged ? stage_objects(im, &m, staged, &k, im->file, &why, &reason)
			   : -ENOMEM;
	}
	if (r >= 0)
		r = cache_commit_accepted(im->c, &m, staged, &reason);
	if (staged)
		cache_staged_done(im->c, staged, m.n_files); /* zeroed: all safe */
	free(staged);
	if (r < 0 && why != _CACHE_REFUSAL_INVALID)
		cache_refusal_note(im->c, why);
	report(im, mf->key, r, reason);
	return r == -ENOMEM ? r : r >= 0;
}

int cache_import(struct cache *c, int fd, const char *file,
		 const struct cache_remote_options *o, cache_import_fn fn, void *userdata,
		 char **ret_reason)
{
	_cleanup_(archive_read_freep) struct archive *a = NULL;
	struct import im = {.c = c, .file = file, .report = fn, .userdata = userdata};
	uint64_t max = o && o->max_object_size ? o->max_object_size : (1ULL << 30);
	struct archive_entry *e;
	int r = 0, k, imported = 0;

	a = archive_read_new();
	if (!a)
		return -ENOMEM;
	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_filter_all(a) < ARCHIVE_WARN ||
	    archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
		cache_set_reason(ret_reason, "Cannot read archive '%s': %s", file,
				 archive_error_string(a) ?: "not a tar archive");
		return -EBADMSG;
	}
	while (r >= 0 && (k = archive_read_next_header(a, &e)) != ARCHIVE_EOF) {
		if (k < ARCHIVE_WARN) {
			/* What came before stays usable: each entry stands on its own. */
			cache_set_reason(ret_reason, "Archive '%s' is damaged: %s", file,
					 archive_error_string(a));
			r = -EBADMSG;
			break;
		}
		r = read_member(&im, a, e, max);
	}
	for (size_t i = 0; r != -ENOMEM && i < im.n; i++)
		if (im.m[i].key) {
			int q = import_entry(&im, &im.m[i], o);

			if (q < 0)
				r = q;
			imported += q > 0;
		}
	import_done(&im);
	return r < 0 ? r : imported;
}
