/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Remote cache on any HTTP(S) server with GET and PUT (e.g. nginx with WebDAV):
 *   BASE/v1/<key>/manifest     "dm2-cache-manifest 1\n" "key <key>\n"
 *                              then one "file <sha256> <size> <name>\n" per file
 *   BASE/v1/objects/<sha256>   the file's content
 * Nothing from the remote is trusted: names are checked like local ones, a download stops
 * at the size the manifest gives, and every object lands in dir/tmp, is hashed there and
 * refused unless size and sha256 match the manifest; only then may it become an object.
 * Transfers use the one libcurl client, shared/curl-util.h.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cache-internal.h"
#include "shared/curl-util.h"
#include "shared/fs-util.h"

#define MANIFEST_MAGIC "dm2-cache-manifest 1"
#define MANIFEST_MAX_SIZE (1024U * 1024U)
#define MANIFEST_MAX_FILES 10000U

static void set_reason(char **reason, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_reason(char **reason, const char *fmt, ...)
{
	va_list ap;

	if (!reason || *reason)
		return;
	va_start(ap, fmt);
	if (vasprintf(reason, fmt, ap) < 0)
		*reason = NULL;
	va_end(ap);
}

static int base_normalize(const char *url, char **ret, char **reason)
{
	char *b;
	size_t l;

	if (!url ||
	    (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
		set_reason(reason, "Remote cache URL '%s' is not http:// or https://",
			   url ?: "");
		return -EINVAL;
	}
	for (const char *p = url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f) {
			set_reason(reason, "Remote cache URL '%s' contains whitespace",
				   url);
			return -EINVAL;
		}
	b = strdup(url);
	if (!b)
		return -ENOMEM;
	l = strlen(b);
	while (l > 0 && b[l - 1] == '/')
		b[--l] = '\0';
	*ret = b;
	return 0;
}

/* One transfer and where its body comes from or goes to. */
struct xfer {
	struct http_request req;
	/* download into memory */
	char *buf;
	size_t len, max;
	/* download into a file */
	int fd;
	uint64_t written, limit;
	bool too_big;
	/* upload */
	int up_fd;
	const char *up_buf;
	size_t up_len, up_off;
};

static void xfer_done(struct xfer *x)
{
	http_request_done(&x->req);
	free(x->buf);
	*x = (struct xfer){.fd = -EBADF, .up_fd = -EBADF};
}

static int xfer_init(struct xfer *x, const char *url, const struct cache_remote_options *o,
		     bool follow_redirects, char **reason)
{
	const struct http_options ho = {
		.protocols = "https,http",
		.follow_redirects = follow_redirects,
		.ca_file = o ? o->ca_file : NULL,
		.connect_timeout_usec = o ? o->connect_timeout_usec : 0,
		.stall_timeout_usec = o ? o->stall_timeout_usec : 0,
	};
	_cleanup_free_ char *why = NULL;
	int r;

	*x = (struct xfer){.fd = -EBADF, .up_fd = -EBADF};
	r = http_request_init(&x->req, url, &ho, &why);
	if (r < 0 && why)
		set_reason(reason, "%s", why);
	return r;
}

static size_t write_mem(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	char *m;

	if (x->len + n > x->max) {
		x->too_big = true;
		return 0;
	}
	m = realloc(x->buf, x->len + n + 1);
	if (!m)
		return 0;
	memcpy(m + x->len, p, n);
	x->len += n;
	m[x->len] = '\0';
	x->buf = m;
	return n;
}

static size_t write_file(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;

	if (x->written + n > x->limit) {
		x->too_big = true;
		return 0;
	}
	if (loop_write(x->fd, p, n) < 0)
		return 0;
	x->written += n;
	return n;
}

static size_t read_upload(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;

	if (x->up_buf) {
		n = MIN(n, x->up_len - x->up_off);
		memcpy(p, x->up_buf + x->up_off, n);
		x->up_off += n;
		return n;
	}
	for (;;) {
		ssize_t k = read(x->up_fd, p, n);

		if (k >= 0)
			return (size_t) k;
		if (errno != EINTR)
			return CURL_READFUNC_ABORT;
	}
}

/* Run the transfer; returns the HTTP status, or a negative errno with a reason. */
static int perform(struct xfer *x, const char *method, const char *url, char **reason)
{
	CURLcode cc = CURLE_OK;
	int r;

	r = http_request_perform(&x->req, &cc);
	if (r < 0)
		return r;
	if (x->too_big) {
		set_reason(reason, "%s '%s' failed: response larger than expected", method, url);
		return -EFBIG;
	}
	if (cc != CURLE_OK) {
		set_reason(reason, "%s '%s' failed: %s", method, url,
			   http_request_error(&x->req, cc));
		return http_curl_errno(cc);
	}
	return (int) http_request_status(&x->req);
}

static int http_error(int code, const char *method, const char *url, char **reason)
{
	if (code == 404 || code == 410)
		return -ENOENT;
	if (code == 401 || code == 403) {
		set_reason(reason, "%s '%s' failed: HTTP %d (permission denied)", method, url,
			   code);
		return -EACCES;
	}
	set_reason(reason, "%s '%s' failed: HTTP %d", method, url, code);
	return -EIO;
}

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

/* GET url into fd, at most limit bytes: the HTTP status, or a negative errno. */
static int get_to_fd(const char *url, int fd, uint64_t limit,
		     const struct cache_remote_options *o, uint64_t *ret_written, char **reason)
{
	struct xfer x;
	int r;

	r = xfer_init(&x, url, o, true, reason);
	if (r < 0)
		return r;
	x.fd = fd;
	x.limit = limit;
	if (curl_easy_setopt(x.req.easy, CURLOPT_WRITEFUNCTION, write_file) != CURLE_OK ||
	    curl_easy_setopt(x.req.easy, CURLOPT_WRITEDATA, &x) != CURLE_OK)
		r = -EIO;
	else
		r = perform(&x, "GET", url, reason);
	*ret_written = x.written;
	xfer_done(&x);
	return r;
}

/* GET one object of the manifest into dir/tmp, then check that it is what the manifest
 * says before it may go further. */
static int download_object(struct cache *c, const char *base,
			   const struct cache_manifest_file *f,
			   const struct cache_remote_options *o, struct cache_staged *ret,
			   char **reason)
{
	_cleanup_free_ char *url = NULL, *tmp = NULL, *name = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint64_t max = o && o->max_object_size ? o->max_object_size : (1ULL << 30);
	uint64_t written = 0, size = 0;
	char hex[SHA256_HEX_SIZE];
	int r;

	if (f->size > max) {
		set_reason(reason, "Object '%s' is %" PRIu64 " bytes, over the limit of %" PRIu64,
			   f->sha256, f->size, max);
		return -EFBIG;
	}
	url = strdup_printf("%s/v1/objects/%s", base, f->sha256);
	name = strdup(f->name);
	if (!url || !name)
		return -ENOMEM;
	r = cas_tmp_new(c->tmp_fd, &fd, &tmp);
	if (r < 0)
		return r;

	r = get_to_fd(url, fd, f->size, o, &written, reason);
	if (r == -EFBIG) {
		*reason = mfree(*reason);
		set_reason(reason, "Object '%s' is larger than the manifest says, refusing it",
			   url);
		r = -EBADMSG;
	} else if (r >= 0 && r != 200) {
		r = http_error(r, "GET", url, reason);
		if (r == -ENOENT)
			set_reason(reason, "Object '%s' listed in the manifest is missing", url);
	} else if (r >= 0)
		r = cas_seal(fd, hex, &size);
	if (r >= 0 && (size != f->size || !streq(hex, f->sha256))) {
		set_reason(reason,
			   "Object '%s' has sha256 %s and %" PRIu64 " bytes, expected %" PRIu64
			   " bytes; refusing the tampered object",
			   url, hex, size, f->size);
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

/* GET and parse BASE/v1/<key>/manifest. */
static int get_manifest(const char *base, const char *key,
			const struct cache_remote_options *o, struct cache_manifest_file **ret,
			size_t *ret_n, char **reason)
{
	_cleanup_free_ char *url = NULL;
	struct xfer x;
	int r;

	url = strdup_printf("%s/v1/%s/manifest", base, key);
	if (!url)
		return -ENOMEM;
	r = xfer_init(&x, url, o, true, reason);
	if (r < 0)
		return r;
	x.max = MANIFEST_MAX_SIZE;
	if (curl_easy_setopt(x.req.easy, CURLOPT_WRITEFUNCTION, write_mem) != CURLE_OK ||
	    curl_easy_setopt(x.req.easy, CURLOPT_WRITEDATA, &x) != CURLE_OK)
		r = -EIO;
	else
		r = perform(&x, "GET", url, reason);
	if (r >= 0 && r != 200) {
		r = http_error(r, "GET", url, reason);
		if (r == -ENOENT)
			set_reason(reason, "No cache entry '%s' on '%s'", key, base);
	}
	if (r >= 0)
		r = cache_manifest_parse(x.buf ?: (char[]){""}, key, url, ret, ret_n, reason);
	xfer_done(&x);
	return r;
}

int cache_remote_pull(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cleanup_free_ char *base = NULL, *reason = NULL;
	struct cache_manifest_file *files = NULL;
	struct cache_staged *staged = NULL;
	size_t n = 0, k = 0;
	int r;

	if (!c || !cache_key_valid(key)) {
		set_reason(&reason, "'%s' is not a cache key (64 hex digits)", key ?: "");
		r = -EINVAL;
		goto finish;
	}
	r = base_normalize(base_url, &base, &reason);
	if (r >= 0)
		r = get_manifest(base, key, o, &files, &n, &reason);
	if (r < 0)
		goto finish;

	staged = calloc(n, sizeof(*staged));
	if (!staged) {
		r = -ENOMEM;
		goto finish;
	}
	for (k = 0; k < n; k++) {
		r = download_object(c, base, &files[k], o, &staged[k], &reason);
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

/* PUT a file (fd >= 0) or a buffer. */
static int put(const char *url, int fd, const char *buf, uint64_t size,
	       const struct cache_remote_options *o, char **reason)
{
	struct xfer x;
	CURL *e;
	int r;

	r = xfer_init(&x, url, o, false, reason);
	if (r < 0)
		return r;
	x.up_fd = fd;
	x.up_buf = buf;
	x.up_len = buf ? size : 0;
	x.max = MANIFEST_MAX_SIZE; /* the server's response body, discarded */
	e = x.req.easy;
	if (curl_easy_setopt(e, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_upload) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_READDATA, &x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t) size) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_mem) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x) != CURLE_OK)
		r = -EIO;
	else
		r = perform(&x, "PUT", url, reason);
	if (r >= 0 && r != 200 && r != 201 && r != 204) {
		r = http_error(r, "PUT", url, reason);
		if (r == -ENOENT) {
			set_reason(reason, "PUT '%s' failed: HTTP 404 (does the server allow PUT?)",
				   url);
			r = -EIO;
		}
	}
	xfer_done(&x);
	return r < 0 ? r : 0;
}

/* True if the remote already holds an object of this size (its content is verified by
 * whoever pulls it). */
static bool remote_has(const char *url, uint64_t size, const struct cache_remote_options *o)
{
	struct xfer x;
	curl_off_t len = -1;
	int r;

	if (xfer_init(&x, url, o, false, NULL) < 0)
		return false;
	if (curl_easy_setopt(x.req.easy, CURLOPT_NOBODY, 1L) != CURLE_OK) {
		xfer_done(&x);
		return false;
	}
	r = perform(&x, "HEAD", url, NULL);
	if (r == 200)
		(void) curl_easy_getinfo(x.req.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	xfer_done(&x);
	return r == 200 && len >= 0 && (uint64_t) len == size;
}

/* One file of the entry: its manifest line, and its object uploaded unless already there. */
static int push_object(struct cache *c, const char *base, const char *name, const char *sha,
		       uint64_t size, const struct cache_remote_options *o, FILE *manifest,
		       char **reason)
{
	_cleanup_free_ char *obj_url = NULL, *rel = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	fprintf(manifest, "file %s %" PRIu64 " %s\n", sha, size, name);
	r = cas_object_path(&c->objects, sha, &rel);
	if (r < 0)
		return r;
	obj_url = strdup_printf("%s/v1/objects/%s", base, sha);
	if (!obj_url)
		return -ENOMEM;
	if (remote_has(obj_url, size, o))
		return 0;
	fd = openat(c->objects.dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		set_reason(reason, "Object '%s' vanished from the local cache", sha);
		return r;
	}
	return put(obj_url, fd, NULL, size, o, reason);
}

/* Every object of the entry, each line of its manifest into *ret_manifest. */
static int push_objects(struct cache *c, const char *base, const char *key,
			const struct cache_remote_options *o, char **ret_manifest,
			size_t *ret_len, char **reason)
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
		r = push_object(c, base, (const char *) sqlite3_column_text(st, 0),
				(const char *) sqlite3_column_text(st, 1),
				(uint64_t) sqlite3_column_int64(st, 2), o, m, reason);
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
	_cleanup_free_ char *base = NULL, *url = NULL, *reason = NULL, *manifest = NULL;
	struct cache_entry *e = NULL;
	size_t len = 0;
	int r;

	if (!c || !cache_key_valid(key)) {
		set_reason(&reason, "'%s' is not a cache key (64 hex digits)", key ?: "");
		r = -EINVAL;
		goto finish;
	}
	r = base_normalize(base_url, &base, &reason);
	if (r < 0)
		goto finish;
	/* Verifies every object, so we never spread a corrupt one. */
	r = cache_lookup(c, key, &e);
	if (r == -ENOENT)
		set_reason(&reason, "Cache entry '%s' is not in the local cache", key);
	if (r >= 0)
		r = push_objects(c, base, key, o, &manifest, &len, &reason);
	if (r < 0)
		goto finish;
	/* Last: only now may readers see the entry. */
	url = strdup_printf("%s/v1/%s/manifest", base, key);
	r = url ? put(url, -EBADF, manifest, len, o, &reason) : -ENOMEM;
finish:
	cache_entry_free(e);
	if (r < 0 && ret_reason)
		*ret_reason = TAKE_PTR(reason);
	return r;
}
