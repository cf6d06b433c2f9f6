/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transports' common HTTP request (one libcurl client, shared/curl-util.h), and the
 * plain HTTP(S) transport on any server with GET and PUT (e.g. nginx with WebDAV):
 *   BASE/v1/<key>/manifest     the manifest bytes
 *   BASE/v1/objects/<sha256>   each object's content
 */
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "remote-internal.h"
#include "shared/fs-util.h"
#include "shared/url.h"

/* ---- one request ---- */

struct xfer {
	struct http_request req;
	const struct remote_request *q;
	struct remote_reply *reply;
	bool too_big;
	uint64_t up_off;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	struct remote_reply *y = x->reply;
	size_t n = size * nmemb;
	char *m;

	if (x->q->down_fd >= 0) {
		long status = 0;

		(void) curl_easy_getinfo(x->req.easy, CURLINFO_RESPONSE_CODE, &status);
		if (status < 200 || status > 299)
			return n; /* an error page, or a redirect's body */
		if (y->written + n > x->q->limit) {
			x->too_big = true;
			return 0;
		}
		if (loop_write(x->q->down_fd, p, n) < 0)
			return 0;
		y->written += n;
		return n;
	}
	if (x->q->limit == 0)
		return n; /* discarded */
	if (y->len + n > x->q->limit) {
		x->too_big = true;
		return 0;
	}
	m = realloc(y->body, y->len + n + 1);
	if (!m)
		return 0;
	memcpy(m + y->len, p, n);
	y->len += n;
	m[y->len] = '\0';
	y->body = m;
	return n;
}

static size_t on_upload(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;

	if (x->q->up_buf) {
		n = (size_t) MIN((uint64_t) n, x->q->up_size - x->up_off);
		memcpy(p, x->q->up_buf + x->up_off, n);
		x->up_off += n;
		return n;
	}
	if (x->q->up_fd < 0)
		return 0;
	for (;;) {
		ssize_t k = read(x->q->up_fd, p, n);

		if (k >= 0)
			return (size_t) k;
		if (errno != EINTR)
			return CURL_READFUNC_ABORT;
	}
}

/* Keep the headers of the last response only (a redirect or "100 Continue" came first). */
static size_t on_header(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	struct remote_reply *y = x->reply;
	size_t n = size * nmemb, l = n;
	static const struct {
		const char *name;
		size_t offset;
	} wanted[] = {
		{"location:", offsetof(struct remote_reply, location)},
		{"www-authenticate:", offsetof(struct remote_reply, www_authenticate)},
		{"content-type:", offsetof(struct remote_reply, content_type)},
	};

	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		for (size_t i = 0; i < ELEMENTSOF(wanted); i++) {
			char **f = (char **) ((uint8_t *) y + wanted[i].offset);
			*f = mfree(*f);
		}
		return n;
	}
	while (l > 0 && (p[l - 1] == '\n' || p[l - 1] == '\r'))
		l--;
	for (size_t i = 0; i < ELEMENTSOF(wanted); i++) {
		size_t k = strlen(wanted[i].name);
		char **f = (char **) ((uint8_t *) y + wanted[i].offset);
		char *v;

		if (l < k || strncasecmp(p, wanted[i].name, k) != 0)
			continue;
		v = strndup(p + k, l - k);
		if (!v)
			return 0;
		free(*f);
		*f = strdup(strstrip(v));
		free(v);
		if (!*f)
			return 0;
	}
	return n;
}

void remote_reply_done(struct remote_reply *y)
{
	free(y->body);
	free(y->location);
	free(y->www_authenticate);
	free(y->content_type);
	*y = (struct remote_reply){.content_length = -1};
}

/* The remote's headers (r NULL: none), then the request's. */
static int request_headers(struct remote *r, const struct remote_request *q,
			   struct curl_slist **ret)
{
	struct curl_slist *l = NULL, *n;

	for (const struct curl_slist *h = r ? r->headers : NULL; h; h = h->next) {
		n = curl_slist_append(l, h->data);
		if (!n)
			goto oom;
		l = n;
	}
	for (const char *const *h = q->headers; h && *h; h++) {
		n = curl_slist_append(l, *h);
		if (!n)
			goto oom;
		l = n;
	}
	*ret = l;
	return 0;
oom:
	curl_slist_free_all(l);
	return -ENOMEM;
}

static int request_setup(struct xfer *x, const struct remote_request *q)
{
	CURL *e = x->req.easy;
	bool up = streq(q->method, "PUT") || streq(q->method, "POST");

	if (curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, x) != CURLE_OK)
		return -EIO;
	if (streq(q->method, "HEAD") && curl_easy_setopt(e, CURLOPT_NOBODY, 1L) != CURLE_OK)
		return -EIO;
	if (up && (curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload) != CURLE_OK ||
		   curl_easy_setopt(e, CURLOPT_READDATA, x) != CURLE_OK))
		return -EIO;
	if (streq(q->method, "PUT") &&
	    (curl_easy_setopt(e, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
	     curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t) q->up_size) !=
		     CURLE_OK))
		return -EIO;
	if (streq(q->method, "POST") &&
	    (curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	     curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) q->up_size) !=
		     CURLE_OK))
		return -EIO;
	if (q->user &&
	    (curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC) != CURLE_OK ||
	     curl_easy_setopt(e, CURLOPT_USERNAME, q->user) != CURLE_OK ||
	     curl_easy_setopt(e, CURLOPT_PASSWORD, q->password ?: "") != CURLE_OK))
		return -EIO;
	return 0;
}

static int request_run(struct xfer *x, const char *shown, char **reason)
{
	const struct remote_request *q = x->q;
	curl_off_t len = -1;
	CURLcode cc = CURLE_OK;
	int r;

	r = http_request_perform(&x->req, &cc);
	if (r < 0)
		return r;
	if (x->too_big) {
		set_reason(reason, "%s '%s' failed: response larger than expected", q->method,
			   shown);
		return -EFBIG;
	}
	if (cc != CURLE_OK) {
		/* libcurl's text may quote the URL it was given: show ours instead. */
		set_reason(reason, "%s '%s' failed: %s%s", q->method, shown,
			   cc == CURLE_OPERATION_TIMEDOUT ? "stalled or timed out: " : "",
			   strstr(http_request_error(&x->req, cc), "://")
				   ? curl_easy_strerror(cc)
				   : http_request_error(&x->req, cc));
		return http_curl_errno(cc);
	}
	x->reply->status = http_request_status(&x->req);
	(void) curl_easy_getinfo(x->req.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	x->reply->content_length = len;
	return 0;
}

int remote_request(struct remote *r, const struct remote_request *q,
		   struct remote_reply *reply, char **reason)
{
	const struct cache_remote_options *o = r->options;
	_cleanup_free_ char *shown = url_redact(q->url), *why = NULL;
	struct curl_slist *headers = NULL;
	struct http_options ho = {
		.protocols = "https,http",
		.follow_redirects = q->follow,
		.ca_file = o ? o->ca_file : NULL,
		.connect_timeout_usec = o ? o->connect_timeout_usec : 0,
		.stall_timeout_usec = o ? o->stall_timeout_usec : 0,
		.netrc_file = o ? o->netrc_file : NULL,
		.client_cert = o ? o->client_cert : NULL,
		.client_key = o ? o->client_key : NULL,
		.bearer_token = q->foreign ? NULL : q->bearer ?: r->bearer,
	};
	struct xfer x = {.q = q, .reply = reply};
	int k;

	*reply = (struct remote_reply){.content_length = -1};
	if (!shown)
		return -ENOMEM;
	k = request_headers(q->foreign ? NULL : r, q, &headers);
	if (k < 0)
		return k;
	ho.headers = headers;
	k = http_request_init(&x.req, q->url, &ho, &why);
	if (k < 0 && why)
		set_reason(reason, "%s", why);
	if (k >= 0)
		k = request_setup(&x, q);
	if (k >= 0)
		k = request_run(&x, shown, reason);
	http_request_done(&x.req);
	curl_slist_free_all(headers);
	if (k < 0)
		remote_reply_done(reply);
	return k;
}

int remote_http_error(long status, const char *method, const char *shown_url, char **reason)
{
	if (status == 404 || status == 410)
		return -ENOENT;
	if (status == 401 || status == 403) {
		set_reason(reason, "%s '%s' failed: HTTP %ld (permission denied)", method,
			   shown_url, status);
		return -EACCES;
	}
	set_reason(reason, "%s '%s' failed: HTTP %ld", method, shown_url, status);
	return -EIO;
}

/* ---- opening a remote ---- */

static int remote_load_auth(struct remote *r, char **reason)
{
	const struct cache_remote_options *o = r->options;
	int k;

	if (!o)
		return 0;
	if (o->header_file) {
		k = http_header_file_load(o->header_file, &r->headers, reason);
		if (k < 0)
			return k;
	}
	if (o->bearer_token_file) {
		k = http_token_file_load(o->bearer_token_file, &r->bearer, reason);
		if (k < 0)
			return k;
	}
	return 0;
}

int remote_open(const char *url, const struct cache_remote_options *o, struct remote **ret,
		char **reason)
{
	_cleanup_(remote_closep) struct remote *r = NULL;
	size_t l;
	int k;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->options = o;
	r->url = strdup(url ?: "");
	r->shown = url_redact(url);
	if (!r->url || !r->shown)
		return -ENOMEM;
	for (const char *p = r->url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f) {
			set_reason(reason, "Remote cache URL '%s' contains whitespace",
				   r->shown);
			return -EINVAL;
		}
	l = strlen(r->url);
	while (l > 0 && r->url[l - 1] == '/')
		r->url[--l] = '\0';
	if (startswith(r->url, "http://") || startswith(r->url, "https://"))
		r->ops = &remote_http_ops;
	else if (startswith(r->url, "oci://") || startswith(r->url, "oci+http://"))
		r->ops = &remote_oci_ops;
	else {
		set_reason(reason,
			   "Remote cache URL '%s' is not http:// or https:// (nor oci:// or oci+http://)",
			   r->shown);
		return -EINVAL;
	}
	k = remote_load_auth(r, reason);
	if (k >= 0 && r->ops->open)
		k = r->ops->open(r, reason);
	if (k < 0)
		return k;
	*ret = TAKE_PTR(r);
	return 0;
}

struct remote *remote_close(struct remote *r)
{
	if (!r)
		return NULL;
	if (r->ops && r->ops->close)
		r->ops->close(r);
	curl_slist_free_all(r->headers);
	free(r->bearer);
	free(r->url);
	free(r->shown);
	free(r);
	return NULL;
}

/* ---- the plain HTTP(S) layout ---- */

static int http_open(struct remote *r, char **reason)
{
	/* Paths are appended to the base: a query or fragment would swallow them. */
	if (strpbrk(r->url, "?#")) {
		set_reason(reason,
			   "Remote cache URL '%s' has a query or fragment; put a token in "
			   "BearerTokenFile= or HeaderFile= instead",
			   r->shown);
		return -EINVAL;
	}
	return 0;
}

/* GET url, redirects followed, into fd (or into y->body when fd < 0), at most limit bytes;
 * anything but 200 is an error with its reason (-ENOENT for 404 and 410: the caller
 * names what is missing). */
static int http_get(struct remote *r, const char *url, int fd, uint64_t limit,
		    struct remote_reply *y, char **reason)
{
	_cleanup_free_ char *shown = url_redact(url);
	struct remote_request q = REMOTE_REQUEST_INIT("GET", url);
	int k;

	if (!shown)
		return -ENOMEM;
	q.follow = true;
	q.down_fd = fd;
	q.limit = limit;
	k = remote_request(r, &q, y, reason);
	if (k < 0)
		return k;
	if (y->status != 200) {
		k = remote_http_error(y->status, "GET", shown, reason);
		remote_reply_done(y);
	}
	return k < 0 ? k : 0;
}

static int http_get_manifest(struct remote *r, const char *key, char **ret, size_t *ret_len,
			     char **reason)
{
	_cleanup_free_ char *url = strdup_printf("%s/v1/%s/manifest", r->url, key);
	struct remote_reply y;
	int k;

	if (!url)
		return -ENOMEM;
	k = http_get(r, url, -EBADF, REMOTE_MANIFEST_MAX_SIZE, &y, reason);
	if (k == -ENOENT)
		set_reason(reason, "No cache entry '%s' on '%s'", key, r->shown);
	if (k < 0)
		return k;
	*ret = y.body ? TAKE_PTR(y.body) : strdup("");
	*ret_len = y.len;
	remote_reply_done(&y);
	return *ret ? 0 : -ENOMEM;
}

static int http_put(struct remote *r, const char *url, int fd, const char *buf,
		    uint64_t size, char **reason)
{
	_cleanup_free_ char *shown = url_redact(url);
	struct remote_request q = REMOTE_REQUEST_INIT("PUT", url);
	struct remote_reply y;
	int k;

	if (!shown)
		return -ENOMEM;
	q.up_fd = fd;
	q.up_buf = buf;
	q.up_size = size;
	k = remote_request(r, &q, &y, reason);
	if (k < 0)
		return k;
	if (y.status != 200 && y.status != 201 && y.status != 204) {
		k = remote_http_error(y.status, "PUT", shown, reason);
		if (k == -ENOENT) {
			set_reason(reason, "PUT '%s' failed: HTTP 404 (does the server allow PUT?)",
				   shown);
			k = -EIO;
		}
	}
	remote_reply_done(&y);
	return k < 0 ? k : 0;
}

static int http_put_manifest(struct remote *r, const char *key, const char *buf, size_t len,
			     const struct remote_object *objects, size_t n_objects,
			     char **reason)
{
	_cleanup_free_ char *url = strdup_printf("%s/v1/%s/manifest", r->url, key);

	/* A WebDAV server collects no garbage: nothing to tell it about the objects. */
	(void) objects;
	(void) n_objects;
	return url ? http_put(r, url, -EBADF, buf, len, reason) : -ENOMEM;
}

static int http_has_object(struct remote *r, const char *sha256, uint64_t size)
{
	_cleanup_free_ char *url = strdup_printf("%s/v1/objects/%s", r->url, sha256);
	struct remote_request q = REMOTE_REQUEST_INIT("HEAD", url);
	struct remote_reply y;
	bool there;

	if (!url || remote_request(r, &q, &y, NULL) < 0)
		return 0;
	there = y.status == 200 && y.content_length >= 0 &&
		(uint64_t) y.content_length == size;
	remote_reply_done(&y);
	return there;
}

static int http_get_object(struct remote *r, const char *sha256, int fd, uint64_t limit,
			   char **reason)
{
	_cleanup_free_ char *url = strdup_printf("%s/v1/objects/%s", r->url, sha256);
	struct remote_reply y;
	int k;

	if (!url)
		return -ENOMEM;
	k = http_get(r, url, fd, limit, &y, reason);
	if (k == -ENOENT) {
		_cleanup_free_ char *shown = url_redact(url);

		set_reason(reason, "Object '%s' listed in the manifest is missing",
			   shown ?: sha256);
	}
	if (k < 0)
		return k;
	remote_reply_done(&y);
	return 0;
}

static int http_put_object(struct remote *r, const char *sha256, int fd, uint64_t size,
			   char **reason)
{
	_cleanup_free_ char *url = strdup_printf("%s/v1/objects/%s", r->url, sha256);

	return url ? http_put(r, url, fd, NULL, size, reason) : -ENOMEM;
}

static char *http_where(struct remote *r, const char *key, const char *sha256)
{
	return sha256 ? strdup_printf("%s/v1/objects/%s", r->shown, sha256)
		      : strdup_printf("%s/v1/%s/manifest", r->shown, key);
}

const struct remote_ops remote_http_ops = {
	.name = "http",
	.open = http_open,
	.get_manifest = http_get_manifest,
	.put_manifest = http_put_manifest,
	.has_object = http_has_object,
	.get_object = http_get_object,
	.put_object = http_put_object,
	.where = http_where,
};
