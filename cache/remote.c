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

#define MANIFEST_MAGIC "dm2-cache-manifest 2"
#define MANIFEST_MAX_SIZE (1024U * 1024U)
#define MANIFEST_MAX_FILES 10000U

/* remote.c's name for it */
#define set_reason cache_set_reason

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

void cache_manifest_done(struct cache_manifest *m)
{
	for (size_t i = 0; i < m->n_files; i++)
		free(m->files[i].name);
	free(m->files);
	free(m->key);
	free(m->recipe);
	free(m->version);
	free(m->source_id);
	free(m->kernel_release);
	free(m->kernel_identity);
	free(m->arch);
	*m = (struct cache_manifest){};
}

static bool field_value_valid(const char *v)
{
	if (!v || !*v || strlen(v) > 4096)
		return false;
	for (; *v; v++)
		if ((unsigned char) *v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

/* "file <sha256> <size> <name>": 0 parsed, -EBADMSG not one, -ENOMEM. */
static int parse_file_line(const char *l, struct cache_manifest *m)
{
	struct cache_manifest_file *f;
	char *end, *name;

	if (strlen(l) <= 5 + 64 + 1 || l[5 + 64] != ' ' || m->n_files >= MANIFEST_MAX_FILES)
		return -EBADMSG;
	f = realloc(m->files, (m->n_files + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	m->files = f;
	f = &m->files[m->n_files];
	*f = (struct cache_manifest_file){};
	memcpy(f->sha256, l + 5, 64);
	f->sha256[64] = '\0';
	errno = 0;
	f->size = strtoull(l + 5 + 65, &end, 10);
	if (!sha256_hex_canonical(f->sha256) || errno != 0 || end == l + 5 + 65 ||
	    *end != ' ' || !cache_name_valid(end + 1))
		return -EBADMSG;
	for (size_t i = 0; i < m->n_files; i++)
		if (streq(m->files[i].name, end + 1))
			return -EBADMSG;
	name = strdup(end + 1);
	if (!name)
		return -ENOMEM;
	f->name = name;
	m->n_files++;
	return 0;
}

/* One header line: 1 if it was one, 0 if not, -EBADMSG repeated or bad, -ENOMEM. */
static int parse_field_line(const char *l, struct cache_manifest *m)
{
	const struct {
		const char *name;
		char **value;
	} fields[] = {
		{"key", &m->key},	       {"recipe", &m->recipe},
		{"version", &m->version},      {"source", &m->source_id},
		{"kernel", &m->kernel_release}, {"identity", &m->kernel_identity},
		{"arch", &m->arch},
	};

	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		const char *v = startswith(l, fields[i].name);

		if (!v || *v != ' ')
			continue;
		if (*fields[i].value || !field_value_valid(v + 1) || m->n_files > 0)
			return -EBADMSG;
		*fields[i].value = strdup(v + 1);
		return *fields[i].value ? 1 : -ENOMEM;
	}
	return 0;
}

int cache_manifest_parse(char *text, const char *url, struct cache_manifest *ret,
			 char **reason)
{
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	unsigned line = 0;
	char *save = NULL;
	int r;

	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		line++;
		if (line == 1)
			r = streq(l, MANIFEST_MAGIC) ? 1 : -EBADMSG;
		else if (startswith(l, "file "))
			r = parse_file_line(l, &m);
		else
			r = parse_field_line(l, &m) ?: -EBADMSG;
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			cache_set_reason(reason, "Manifest '%s' line %u is malformed, refusing it",
					 url, line);
			return -EBADMSG;
		}
	}
	if (!m.key || !cache_key_valid(m.key) || !m.recipe || !m.version || !m.source_id ||
	    !m.kernel_release || !m.kernel_identity || !m.arch || m.n_files == 0) {
		cache_set_reason(reason,
				 "Manifest '%s' lacks its key, origin or files, refusing it",
				 url);
		return -EBADMSG;
	}
	*ret = m;
	m = (struct cache_manifest){};
	return 0;
}

int cache_manifest_format_header(FILE *f, const char *key, const struct cache_entry_info *i)
{
	const char *values[] = {key,		   i->recipe,	       i->version, i->source_id,
				i->kernel_release, i->kernel_identity, i->arch};
	const char *names[] = {"key", "recipe", "version", "source", "kernel", "identity", "arch"};

	fputs(MANIFEST_MAGIC "\n", f);
	for (size_t k = 0; k < ELEMENTSOF(values); k++) {
		if (!field_value_valid(values[k]))
			return -EINVAL;
		fprintf(f, "%s %s\n", names[k], values[k]);
	}
	return 0;
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
			   enum cache_refusal *ret_why, char **reason)
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
		*ret_why = CACHE_REFUSAL_OBJECT_MISMATCH;
		set_reason(reason, "Object '%s' is larger than the manifest says, refusing it",
			   url);
		r = -EBADMSG;
	} else if (r >= 0 && r != 200) {
		r = http_error(r, "GET", url, reason);
		if (r == -ENOENT)
			set_reason(reason, "Object '%s' listed in the manifest is missing", url);
	} else if (r >= 0)
		r = cas_seal(fd, hex, &size);
	if (r >= 0)
		r = cache_object_check(f, hex, size, url, ret_why, reason);
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

/* GET BASE/v1/<key>/manifest and accept it (trust.c) or say why not. */
static int get_manifest(const char *base, const char *key,
			const struct cache_remote_options *o, struct cache_manifest *ret,
			enum cache_refusal *ret_why, char **reason)
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
		r = cache_manifest_accept(x.buf ?: (char[]){""}, x.len, key, o, url, ret,
					  ret_why, reason);
	xfer_done(&x);
	return r;
}

int cache_remote_pull(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cleanup_free_ char *base = NULL, *reason = NULL;
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	enum cache_refusal why = _CACHE_REFUSAL_INVALID;
	struct cache_staged *staged = NULL;
	size_t k = 0;
	int r;

	if (!c || !cache_key_valid(key)) {
		set_reason(&reason, "'%s' is not a cache key (64 hex digits)", key ?: "");
		r = -EINVAL;
		goto finish;
	}
	r = base_normalize(base_url, &base, &reason);
	if (r >= 0)
		r = get_manifest(base, key, o, &m, &why, &reason);
	if (r < 0)
		goto finish;

	staged = calloc(m.n_files, sizeof(*staged));
	if (!staged) {
		r = -ENOMEM;
		goto finish;
	}
	for (k = 0; k < m.n_files; k++) {
		r = download_object(c, base, &m.files[k], o, &staged[k], &why, &reason);
		if (r < 0)
			goto finish;
	}
	r = cache_commit_accepted(c, &m, staged, &reason);
finish:
	if (staged)
		cache_staged_done(c, staged, k);
	free(staged);
	if (r < 0 && why != _CACHE_REFUSAL_INVALID)
		cache_refusal_note(c, why);
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

/* One file of the entry: its object uploaded unless already there. */
static int push_object(struct cache *c, const char *base, const struct cache_manifest_file *f,
		       const struct cache_remote_options *o, char **reason)
{
	_cleanup_free_ char *obj_url = NULL, *rel = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = cas_object_path(&c->objects, f->sha256, &rel);
	if (r < 0)
		return r;
	obj_url = strdup_printf("%s/v1/objects/%s", base, f->sha256);
	if (!obj_url)
		return -ENOMEM;
	if (remote_has(obj_url, f->size, o))
		return 0;
	fd = openat(c->objects.dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		set_reason(reason, "Object '%s' vanished from the local cache", f->sha256);
		return r;
	}
	return put(obj_url, fd, NULL, f->size, o, reason);
}

int cache_remote_push(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cleanup_free_ char *base = NULL, *url = NULL, *reason = NULL, *manifest = NULL;
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
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
		r = cache_manifest_build(c, key, o, &manifest, &len, &m, &reason);
	for (size_t i = 0; r >= 0 && i < m.n_files; i++)
		r = push_object(c, base, &m.files[i], o, &reason);
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
