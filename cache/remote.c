/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Remote cache on any HTTP(S) server with GET and PUT (e.g. nginx with WebDAV):
 *   BASE/v1/<key>/manifest     "dm2-cache-manifest 1\n" "key <key>\n"
 *                              then one "file <sha256> <size> <name>\n" per file
 *   BASE/v1/objects/<sha256>   the file's content
 * Nothing from the remote is trusted: names are checked like local ones and every object
 * is hashed while it downloads and refused unless size and sha256 match the manifest.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <curl/curl.h>

#include "cache-internal.h"

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

struct xfer {
	CURL *h;
	char errbuf[CURL_ERROR_SIZE];
	/* download into memory */
	char *buf;
	size_t len, max;
	/* download into a file, hashed on the way */
	int fd;
	struct cache_hash *hash;
	uint64_t written, limit;
	bool too_big;
	/* upload */
	int up_fd;
	const char *up_buf;
	size_t up_len, up_off;
};

static void xfer_done(struct xfer *x)
{
	if (x->h)
		curl_easy_cleanup(x->h);
	free(x->buf);
	cache_hash_free(x->hash);
	curl_global_cleanup();
	*x = (struct xfer){.fd = -EBADF, .up_fd = -EBADF};
}

static int xfer_init(struct xfer *x, const struct cache_remote_options *o)
{
	uint64_t connect =
		o && o->connect_timeout_usec ? o->connect_timeout_usec : 10000000ULL;
	uint64_t stall = o && o->stall_timeout_usec ? o->stall_timeout_usec : 30000000ULL;

	*x = (struct xfer){.fd = -EBADF, .up_fd = -EBADF};
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	x->h = curl_easy_init();
	if (!x->h) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	if (curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") !=
		    CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, (long) (connect / 1000)) !=
		    CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME,
			     (long) MAX_(stall / 1000000, 1)) != CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "dm2-cache/1") != CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    (o && o->ca_file &&
	     curl_easy_setopt(x->h, CURLOPT_CAINFO, o->ca_file) != CURLE_OK)) {
		xfer_done(x);
		return -EIO;
	}
	return 0;
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
	size_t n = size * nmemb, w = 0;

	if (x->written + n > x->limit) {
		x->too_big = true;
		return 0;
	}
	while (w < n) {
		ssize_t k = write(x->fd, p + w, n - w);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		w += k;
	}
	if (cache_hash_update(x->hash, p, n) < 0)
		return 0;
	x->written += n;
	return n;
}

static size_t read_upload(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;

	if (x->up_buf) {
		n = MIN_(n, x->up_len - x->up_off);
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

static int curl_to_errno(CURLcode c)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_FILESIZE_EXCEEDED:
		return -EFBIG;
	default:
		return -EIO;
	}
}

/* Run the transfer; returns the HTTP status, or a negative errno with a reason. */
static int perform(struct xfer *x, const char *method, const char *url, char **reason)
{
	CURLcode cc;
	long code = 0;

	if (curl_easy_setopt(x->h, CURLOPT_URL, url) != CURLE_OK)
		return -ENOMEM;
	x->errbuf[0] = '\0';
	cc = curl_easy_perform(x->h);
	if (x->too_big) {
		set_reason(reason, "%s '%s' failed: response larger than expected",
			   method, url);
		return -EFBIG;
	}
	if (cc != CURLE_OK) {
		set_reason(reason, "%s '%s' failed: %s", method, url,
			   x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
		return curl_to_errno(cc);
	}
	(void) curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	return (int) code;
}

static int http_error(int code, const char *method, const char *url, char **reason)
{
	if (code == 404 || code == 410)
		return -ENOENT;
	if (code == 401 || code == 403) {
		set_reason(reason, "%s '%s' failed: HTTP %d (permission denied)", method,
			   url, code);
		return -EACCES;
	}
	set_reason(reason, "%s '%s' failed: HTTP %d", method, url, code);
	return -EIO;
}

struct manifest_file {
	char sha256[CACHE_HEX_SIZE];
	uint64_t size;
	char *name;
};

static void manifest_free(struct manifest_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i].name);
	free(f);
}

static int manifest_parse(char *text, const char *key, const char *url,
			  struct manifest_file **ret, size_t *ret_n, char **reason)
{
	struct manifest_file *files = NULL;
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
			struct manifest_file *m, *f;

			if (n >= MANIFEST_MAX_FILES)
				goto bad;
			m = realloc(files, (n + 1) * sizeof(*files));
			if (!m) {
				manifest_free(files, n);
				return -ENOMEM;
			}
			files = m;
			f = &files[n];
			*f = (struct manifest_file){};
			memcpy(f->sha256, l + 5, 64);
			f->sha256[64] = '\0';
			errno = 0;
			f->size = strtoull(l + 5 + 65, &end, 10);
			if (!cache_sha256_valid(f->sha256) || errno != 0 ||
			    end == l + 5 + 65 || *end != ' ' ||
			    !cache_name_valid(end + 1))
				goto bad;
			for (size_t i = 0; i < n; i++)
				if (strcmp(files[i].name, end + 1) == 0)
					goto bad;
			f->name = strdup(end + 1);
			if (!f->name) {
				manifest_free(files, n);
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
	manifest_free(files, n);
	if (line > 0)
		set_reason(reason, "Manifest '%s' line %u is malformed, refusing it", url,
			   line);
	else
		set_reason(reason,
			   "Manifest '%s' has no key line or no files, refusing it", url);
	return -EBADMSG;
}

static int download_object(struct cache *c, const char *base,
			   const struct manifest_file *f,
			   const struct cache_remote_options *o, struct cache_staged *ret,
			   char **reason)
{
	_cache_free_ char *url = NULL, *rel = NULL, *name = NULL;
	uint64_t max = o && o->max_object_size ? o->max_object_size : (1ULL << 30);
	struct xfer x;
	char hex[CACHE_HEX_SIZE];
	int r, fd = -EBADF;

	if (f->size > max) {
		set_reason(reason,
			   "Object '%s' is %" PRIu64 " bytes, over the limit of %" PRIu64,
			   f->sha256, f->size, max);
		return -EFBIG;
	}
	if (asprintf(&url, "%s/v1/objects/%s", base, f->sha256) < 0)
		return -ENOMEM;
	name = strdup(f->name);
	if (!name)
		return -ENOMEM;
	r = xfer_init(&x, o);
	if (r < 0)
		return r;
	r = cache_hash_new(&x.hash);
	if (r >= 0)
		r = cache_tmp_open(c, &fd, &rel);
	if (r < 0)
		goto finish;
	x.fd = fd;
	x.limit = f->size;
	if (curl_easy_setopt(x.h, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_MAXREDIRS, 5L) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, write_file) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x) != CURLE_OK) {
		r = -EIO;
		goto finish;
	}
	r = perform(&x, "GET", url, reason);
	if (r == -EFBIG) {
		free(*reason);
		*reason = NULL;
		set_reason(reason,
			   "Object '%s' is larger than the manifest says, refusing it",
			   url);
		r = -EBADMSG;
	}
	if (r < 0)
		goto finish;
	if (r != 200) {
		r = http_error(r, "GET", url, reason);
		if (r == -ENOENT)
			set_reason(reason,
				   "Object '%s' listed in the manifest is missing", url);
		goto finish;
	}
	r = cache_hash_final_hex(x.hash, hex);
	if (r < 0)
		goto finish;
	if (x.written != f->size || strcmp(hex, f->sha256) != 0) {
		set_reason(reason,
			   "Object '%s' has sha256 %s and %" PRIu64
			   " bytes, expected %" PRIu64
			   " bytes; refusing the tampered object",
			   url, hex, x.written, f->size);
		r = -EBADMSG;
		goto finish;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto finish;
	}
	memcpy(ret->sha256, hex, CACHE_HEX_SIZE);
	ret->size = f->size;
	ret->name = CACHE_TAKE_PTR(name);
	ret->tmp = CACHE_TAKE_PTR(rel);
	r = 0;
finish:
	if (rel)
		(void) unlinkat(c->dir_fd, rel, 0);
	if (fd >= 0)
		close(fd);
	xfer_done(&x);
	return r;
}

int cache_remote_pull(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cache_free_ char *base = NULL, *url = NULL, *reason = NULL;
	struct manifest_file *files = NULL;
	struct cache_staged *staged = NULL;
	size_t n = 0, k = 0;
	struct xfer x;
	int r;

	if (!c || !cache_key_valid(key)) {
		set_reason(&reason, "'%s' is not a cache key (64 hex digits)", key ?: "");
		r = -EINVAL;
		goto finish;
	}
	r = base_normalize(base_url, &base, &reason);
	if (r < 0)
		goto finish;
	if (asprintf(&url, "%s/v1/%s/manifest", base, key) < 0) {
		r = -ENOMEM;
		goto finish;
	}

	r = xfer_init(&x, o);
	if (r < 0)
		goto finish;
	x.max = MANIFEST_MAX_SIZE;
	if (curl_easy_setopt(x.h, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_MAXREDIRS, 5L) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, write_mem) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x) != CURLE_OK)
		r = -EIO;
	else
		r = perform(&x, "GET", url, &reason);
	if (r >= 0 && r != 200) {
		r = http_error(r, "GET", url, &reason);
		if (r == -ENOENT)
			set_reason(&reason, "No cache entry '%s' on '%s'", key, base);
	}
	if (r >= 0)
		r = manifest_parse(x.buf ?: (char[]){""}, key, url, &files, &n, &reason);
	xfer_done(&x);
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
	manifest_free(files, n);
	if (r < 0 && ret_reason)
		*ret_reason = CACHE_TAKE_PTR(reason);
	return r;
}

/* PUT a file (fd >= 0) or a buffer. */
static int put(const char *url, int fd, const char *buf, uint64_t size,
	       const struct cache_remote_options *o, char **reason)
{
	struct xfer x;
	int r;

	r = xfer_init(&x, o);
	if (r < 0)
		return r;
	x.up_fd = fd;
	x.up_buf = buf;
	x.up_len = buf ? size : 0;
	if (curl_easy_setopt(x.h, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_READFUNCTION, read_upload) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_READDATA, &x) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t) size) !=
		    CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, write_mem) != CURLE_OK ||
	    curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x) != CURLE_OK) {
		xfer_done(&x);
		return -EIO;
	}
	x.max = MANIFEST_MAX_SIZE; /* the server's response body, discarded */
	r = perform(&x, "PUT", url, reason);
	if (r >= 0 && r != 200 && r != 201 && r != 204) {
		r = http_error(r, "PUT", url, reason);
		if (r == -ENOENT) {
			set_reason(
				reason,
				"PUT '%s' failed: HTTP 404 (does the server allow PUT?)",
				url);
			r = -EIO;
		}
	}
	xfer_done(&x);
	return r < 0 ? r : 0;
}

/* True if the remote already holds an object of this size (its content is verified by
 * whoever pulls it). */
static bool remote_has(const char *url, uint64_t size,
		       const struct cache_remote_options *o)
{
	struct xfer x;
	curl_off_t len = -1;
	int r;

	if (xfer_init(&x, o) < 0)
		return false;
	if (curl_easy_setopt(x.h, CURLOPT_NOBODY, 1L) != CURLE_OK) {
		xfer_done(&x);
		return false;
	}
	r = perform(&x, "HEAD", url, NULL);
	if (r == 200)
		(void) curl_easy_getinfo(x.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	xfer_done(&x);
	return r == 200 && len >= 0 && (uint64_t) len == size;
}

int cache_remote_push(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cache_free_ char *base = NULL, *url = NULL, *reason = NULL, *manifest = NULL;
	struct cache_entry *e = NULL;
	sqlite3_stmt *st = NULL;
	size_t mlen = 0;
	FILE *m = NULL;
	int r, rc;

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
	if (r < 0) {
		if (r == -ENOENT)
			set_reason(&reason, "Cache entry '%s' is not in the local cache",
				   key);
		goto finish;
	}
	m = open_memstream(&manifest, &mlen);
	if (!m) {
		r = -ENOMEM;
		goto finish;
	}
	fprintf(m, MANIFEST_MAGIC "\nkey %s\n", key);

	rc = sqlite3_prepare_v2(
		c->db,
		"SELECT name, sha256, size FROM entry_files WHERE key = ? "
		"ORDER BY name",
		-1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = cache_sqlite_error(rc);
		goto finish;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *) sqlite3_column_text(st, 0);
		const char *sha = (const char *) sqlite3_column_text(st, 1);
		uint64_t size = (uint64_t) sqlite3_column_int64(st, 2);
		_cache_free_ char *obj_url = NULL, *rel = NULL;
		_cache_close_ int fd = -EBADF;

		fprintf(m, "file %s %" PRIu64 " %s\n", sha, size, name);
		r = cache_object_path(sha, &rel);
		if (r < 0)
			goto finish;
		if (asprintf(&obj_url, "%s/v1/objects/%s", base, sha) < 0) {
			r = -ENOMEM;
			goto finish;
		}
		if (remote_has(obj_url, size, o))
			continue;
		fd = openat(c->dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			r = -errno;
			set_reason(&reason, "Object '%s' vanished from the local cache",
				   sha);
			goto finish;
		}
		r = put(obj_url, fd, NULL, size, o, &reason);
		if (r < 0)
			goto finish;
	}
	if (rc != SQLITE_DONE) {
		r = cache_sqlite_error(rc);
		goto finish;
	}
	if (fclose(m) != 0) {
		m = NULL;
		r = -ENOMEM;
		goto finish;
	}
	m = NULL;

	/* Last: only now may readers see the entry. */
	if (asprintf(&url, "%s/v1/%s/manifest", base, key) < 0) {
		r = -ENOMEM;
		goto finish;
	}
	r = put(url, -EBADF, manifest, mlen, o, &reason);
finish:
	if (m)
		fclose(m);
	if (st)
		sqlite3_finalize(st);
	cache_entry_free(e);
	if (r < 0 && ret_reason)
		*ret_reason = CACHE_TAKE_PTR(reason);
	return r;
}
