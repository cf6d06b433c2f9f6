/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The remote cache in an OCI registry (the Distribution v2 API of Docker Hub, Harbor, Quay,
 * GHCR and Debian's docker-registry). oci://HOST[:PORT]/REPO speaks https, oci+http://
 * plain http (a test registry on 127.0.0.1):
 *   every object             a blob, sha256:<its sha256>
 *   the dm2 manifest of KEY  a blob too, the config of
 *   HOST/v2/REPO/manifests/dm2-KEY   an OCI image manifest whose layers are the objects,
 *                                    so the registry's garbage collection keeps them.
 * Blobs go up as POST /blobs/uploads/ then PUT ?digest= (monolithic). Credentials: the
 * URL's user:password or NetrcFile= as basic auth, BearerTokenFile= as a token, and the
 * token flow: a 401 with "WWW-Authenticate: Bearer realm=...,service=...,scope=..." sends
 * us (with the basic credentials) to the realm for a token, and the request is retried
 * once with it.
 */
#include <inttypes.h>
#include <unistd.h>

#include "remote-internal.h"
#include "shared/hash.h"
#include "shared/url.h"

#define OCI_IMAGE_MANIFEST_MAX (4U << 20)
#define OCI_TOKEN_MAX (64U * 1024U)

struct oci {
	bool plain;   /* oci+http:// */
	char *origin; /* "https://HOST[:PORT]/": a URL under it is the registry's own */
	char *base;   /* origin + "v2/" + REPO */
	char *repo;
	char *user, *password; /* from the URL, decoded */
	char *token;	       /* from the token flow */
	bool push;	       /* the scope we ask for includes push */
};

static void oci_close(struct remote *r)
{
	struct oci *o = r->data;

	if (!o)
		return;
	free(o->origin);
	free(o->base);
	free(o->repo);
	free(o->user);
	free(o->password);
	free(o->token);
	free(o);
	r->data = NULL;
}

/* Host, port and credentials of "SCHEME://AUTHORITY/", decoded by libcurl's URL parser. */
static int oci_authority(struct oci *o, const char *authority, char **reason,
			 const char *shown)
{
	_cleanup_free_ char *url = strdup_printf("%s://%s/", o->plain ? "http" : "https",
						 authority);
	char *host = NULL, *port = NULL, *user = NULL, *password = NULL;
	CURLU *u = curl_url();
	int r = 0;

	if (!u || !url) {
		curl_url_cleanup(u);
		return -ENOMEM;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		set_reason(reason, "Remote cache URL '%s' names no valid registry host", shown);
		r = -EINVAL;
	}
	if (r >= 0) {
		(void) curl_url_get(u, CURLUPART_PORT, &port, 0);
		(void) curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
		(void) curl_url_get(u, CURLUPART_PASSWORD, &password, CURLU_URLDECODE);
		o->origin = strdup_printf("%s://%s%s%s/", o->plain ? "http" : "https", host,
					  port ? ":" : "", port ?: "");
		o->user = user ? strdup(user) : NULL;
		o->password = password ? strdup(password) : NULL;
		if (!o->origin || (user && !o->user) || (password && !o->password))
			r = -ENOMEM;
	}
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_free(password);
	curl_url_cleanup(u);
	return r;
}

static int oci_open(struct remote *r, char **reason)
{
	_cleanup_free_ char *authority = NULL;
	const char *rest, *slash;
	struct oci *o;
	int k;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	r->data = o;
	rest = startswith(r->url, "oci+http://");
	o->plain = rest;
	rest = rest ?: startswith(r->url, "oci://");
	slash = rest ? strchr(rest, '/') : NULL;
	if (!slash || slash == rest || strpbrk(rest, "?#")) {
		set_reason(reason, "Remote cache URL '%s' is not oci://HOST[:PORT]/REPOSITORY",
			   r->shown);
		return -EINVAL;
	}
	if (!oci_repository_valid(slash + 1)) {
		set_reason(reason,
			   "Repository '%s' of '%s' is not a valid name (lowercase letters, "
			   "digits, '.', '_', '-', components separated by '/')",
			   slash + 1, r->shown);
		return -EINVAL;
	}
	authority = strndup(rest, (size_t) (slash - rest));
	o->repo = strdup(slash + 1);
	if (!authority || !o->repo)
		return -ENOMEM;
	k = oci_authority(o, authority, reason, r->shown);
	if (k < 0)
		return k;
	o->base = strjoin(o->origin, "v2/", o->repo);
	return o->base ? 0 : -ENOMEM;
}

/* A token from the realm of a Bearer challenge, with our basic credentials. */
static int oci_token(struct remote *r, const struct oci_challenge *c, char **reason)
{
	static const char *const token_path[] = {"token", NULL}, *const access_path[] = {
		"access_token", NULL};
	struct oci *o = r->data;
	_cleanup_free_ char *scope = NULL, *url = NULL, *shown = NULL, *token = NULL;
	struct remote_request q;
	struct remote_reply y;
	char *service, *sc;
	int k;

	if (!o->plain && !startswith(c->realm, "https://")) {
		shown = url_redact(c->realm);
		set_reason(reason, "Registry '%s' sends us to '%s' for a token, not https; refusing",
			   r->shown, strna(shown));
		return -EPERM;
	}
	scope = c->scope ? strdup(c->scope)
			 : strdup_printf("repository:%s:%s", o->repo, o->push ? "pull,push" : "pull");
	service = curl_easy_escape(NULL, c->service ?: "", 0);
	sc = scope ? curl_easy_escape(NULL, scope, 0) : NULL;
	if (service && sc)
		url = strdup_printf("%s%cservice=%s&scope=%s", c->realm,
				    strchr(c->realm, '?') ? '&' : '?', service, sc);
	curl_free(service);
	curl_free(sc);
	shown = url ? url_redact(url) : NULL;
	if (!shown)
		return -ENOMEM;
	q = REMOTE_REQUEST_INIT("GET", url);
	q.foreign = true;
	q.user = o->user;
	q.password = o->password;
	q.limit = OCI_TOKEN_MAX;
	k = remote_request(r, &q, &y, reason);
	if (k < 0)
		return k;
	if (y.status != 200)
		k = remote_http_error(y.status, "GET", shown, reason);
	if (k == -ENOENT)
		set_reason(reason, "GET '%s' failed: HTTP %ld", shown, y.status);
	if (k >= 0) {
		k = oci_json_string(strempty(y.body), y.len, token_path, &token);
		if (k == -ENOENT)
			k = oci_json_string(strempty(y.body), y.len, access_path, &token);
		if (k >= 0 && (!*token || strpbrk(token, " \t\r\n")))
			k = -EBADMSG;
		if (k < 0)
			set_reason(reason, "Token server '%s' gave no usable token", shown);
	}
	remote_reply_done(&y);
	if (k < 0)
		return k;
	free(o->token);
	o->token = TAKE_PTR(token);
	return 0;
}

/* A request with the registry's credentials: our token once we have one, else the remote's
 * (BearerTokenFile=), else basic; a 401 carrying a Bearer challenge fetches a token and
 * tries once more. The reply of any status is the caller's to judge. */
static int oci_call(struct remote *r, struct remote_request *q, struct remote_reply *y,
		    char **reason)
{
	struct oci *o = r->data;
	bool own = startswith(q->url, o->origin);

	for (int attempt = 0;; attempt++) {
		struct oci_challenge c;
		int k;

		q->foreign = !own;
		q->bearer = own ? o->token : NULL;
		q->user = own && !o->token && !r->bearer ? o->user : NULL;
		q->password = q->user ? o->password : NULL;
		k = remote_request(r, q, y, reason);
		if (k < 0 || y->status != 401 || attempt > 0 || !own || !y->www_authenticate)
			return k;
		if (oci_challenge_parse(y->www_authenticate, &c) < 0)
			return 0;
		if (!c.bearer) {
			oci_challenge_done(&c);
			return 0;
		}
		remote_reply_done(y);
		k = oci_token(r, &c, reason);
		oci_challenge_done(&c);
		if (k < 0)
			return k;
		if (q->up_fd >= 0 && lseek(q->up_fd, 0, SEEK_SET) < 0)
			return -errno;
	}
}

/* Run q; 0 if the status is want, else the error as remote_http_error() says (-ENOENT
 * without a reason: the caller names what is missing). */
static int oci_expect(struct remote *r, struct remote_request *q, long want,
		      struct remote_reply *y, char **reason)
{
	_cleanup_free_ char *shown = url_redact(q->url);
	int k;

	if (!shown)
		return -ENOMEM;
	k = oci_call(r, q, y, reason);
	if (k < 0)
		return k;
	if (y->status == want)
		return 0;
	k = remote_http_error(y->status, q->method, shown, reason);
	remote_reply_done(y);
	return k;
}

static int oci_has_object(struct remote *r, const char *sha256, uint64_t size)
{
	struct oci *o = r->data;
	_cleanup_free_ char *url = strdup_printf("%s/blobs/sha256:%s", o->base, sha256);
	struct remote_request q = REMOTE_REQUEST_INIT("HEAD", url);
	struct remote_reply y;
	bool there;

	if (!url || oci_call(r, &q, &y, NULL) < 0)
		return 0;
	there = y.status == 200 && y.content_length >= 0 &&
		(uint64_t) y.content_length == size;
	remote_reply_done(&y);
	return there;
}

static int oci_get_object(struct remote *r, const char *sha256, int fd, uint64_t limit,
			  char **reason)
{
	struct oci *o = r->data;
	_cleanup_free_ char *url = strdup_printf("%s/blobs/sha256:%s", o->base, sha256);
	struct remote_request q = REMOTE_REQUEST_INIT("GET", url);
	struct remote_reply y;
	int k;

	if (!url)
		return -ENOMEM;
	q.follow = true; /* to the registry's storage; libcurl keeps credentials at home */
	q.down_fd = fd;
	q.limit = limit;
	k = oci_expect(r, &q, 200, &y, reason);
	if (k == -ENOENT)
		set_reason(reason, "Object '%s' listed in the manifest is missing from '%s'",
			   sha256, r->shown);
	if (k >= 0)
		remote_reply_done(&y);
	return k;
}

/* Where the upload goes: the Location of the POST (maybe relative), with ?digest=. */
static int upload_url(const char *post_url, const char *location, const char *sha256,
		      char **ret)
{
	_cleanup_free_ char *digest = strdup_printf("digest=sha256:%s", sha256);
	CURLU *u = curl_url();
	char *s = NULL;
	int k = 0;

	if (!u || !digest) {
		curl_url_cleanup(u);
		return -ENOMEM;
	}
	if (curl_url_set(u, CURLUPART_URL, post_url, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_QUERY, digest, CURLU_APPENDQUERY | CURLU_URLENCODE) !=
		    CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
		k = -EBADMSG;
	if (k >= 0) {
		*ret = strdup(s);
		k = *ret ? 0 : -ENOMEM;
	}
	curl_free(s);
	curl_url_cleanup(u);
	return k;
}

/* Upload a blob from fd or buf: POST for an upload URL, then PUT it all there. */
static int oci_upload(struct remote *r, const char *sha256, int fd, const char *buf,
		      uint64_t size, char **reason)
{
	static const char *const octets[] = {"Content-Type: application/octet-stream", NULL};
	struct oci *o = r->data;
	_cleanup_free_ char *post = strdup_printf("%s/blobs/uploads/", o->base), *put = NULL;
	_cleanup_free_ char *shown = NULL;
	struct remote_request q = REMOTE_REQUEST_INIT("POST", post);
	struct remote_reply y;
	int k;

	if (!post)
		return -ENOMEM;
	o->push = true;
	k = oci_expect(r, &q, 202, &y, reason);
	if (k == -ENOENT)
		goto not_found;
	if (k < 0)
		return k;
	k = y.location ? upload_url(post, y.location, sha256, &put) : -EBADMSG;
	remote_reply_done(&y);
	if (k < 0) {
		shown = url_redact(post);
		set_reason(reason, "POST '%s' gave no usable upload location", strna(shown));
		return k == -ENOMEM ? k : -EIO;
	}
	q = REMOTE_REQUEST_INIT("PUT", put);
	q.headers = octets;
	q.up_fd = fd;
	q.up_buf = buf;
	q.up_size = size;
	k = oci_expect(r, &q, 201, &y, reason);
	if (k == -ENOENT)
		goto not_found;
	if (k >= 0)
		remote_reply_done(&y);
	return k;
not_found:
	shown = url_redact(q.url);
	set_reason(reason, "%s '%s' failed: HTTP 404", q.method, strna(shown));
	return -EIO;
}

static int oci_put_object(struct remote *r, const char *sha256, int fd, uint64_t size,
			  char **reason)
{
	return oci_upload(r, sha256, fd, NULL, size, reason);
}

static int oci_put_manifest(struct remote *r, const char *key, const char *buf, size_t len,
			    const struct remote_object *objects, size_t n_objects,
			    char **reason)
{
	static const char *const type[] = {"Content-Type: " OCI_MEDIA_MANIFEST, NULL};
	struct oci *o = r->data;
	_cleanup_free_ char *image = NULL, *url = NULL;
	struct remote_object config = {.size = len};
	char tag[OCI_TAG_SIZE];
	struct remote_request q;
	struct remote_reply y;
	size_t image_len = 0;
	int k;

	k = oci_tag_from_key(key, tag);
	if (k < 0)
		return k;
	sha256_buf_hex(buf, len, config.sha256);
	o->push = true;
	if (!oci_has_object(r, config.sha256, len)) {
		k = oci_upload(r, config.sha256, -EBADF, buf, len, reason);
		if (k < 0)
			return k;
	}
	k = oci_manifest_build(key, &config, objects, n_objects, &image, &image_len);
	if (k < 0)
		return k;
	url = strdup_printf("%s/manifests/%s", o->base, tag);
	if (!url)
		return -ENOMEM;
	/* Last: only now can a client find the entry. */
	q = REMOTE_REQUEST_INIT("PUT", url);
	q.headers = type;
	q.up_buf = image;
	q.up_size = image_len;
	k = oci_expect(r, &q, 201, &y, reason);
	if (k == -ENOENT) {
		set_reason(reason, "PUT of the image manifest of '%s' on '%s' failed: HTTP 404",
			   key, r->shown);
		return -EIO;
	}
	if (k >= 0)
		remote_reply_done(&y);
	return k;
}

/* The image manifest tagged for key: the sha256 of its config, the dm2 manifest blob. */
static int oci_image_config(struct remote *r, const char *key, struct remote_object *ret,
			    char **reason)
{
	static const char *const accept[] = {"Accept: " OCI_MEDIA_MANIFEST, NULL};
	struct oci *o = r->data;
	_cleanup_free_ char *url = NULL, *shown = NULL;
	char tag[OCI_TAG_SIZE];
	struct remote_request q;
	struct remote_reply y;
	int k;

	k = oci_tag_from_key(key, tag);
	if (k < 0)
		return k;
	url = strdup_printf("%s/manifests/%s", o->base, tag);
	shown = url ? url_redact(url) : NULL;
	if (!shown)
		return -ENOMEM;
	q = REMOTE_REQUEST_INIT("GET", url);
	q.headers = accept;
	q.limit = OCI_IMAGE_MANIFEST_MAX;
	k = oci_call(r, &q, &y, reason);
	if (k < 0)
		return k;
	if (y.status != 200) {
		k = remote_http_error(y.status, "GET", shown, reason);
		if (k == -ENOENT)
			set_reason(reason, "No cache entry '%s' on '%s' (no tag '%s')", key,
				   r->shown, tag);
	} else {
		k = oci_manifest_config(strempty(y.body), y.len, ret);
		if (k < 0) {
			set_reason(reason,
				   "'%s' is not the image manifest of a dm2 cache entry, refusing it",
				   shown);
			k = -EBADMSG;
		}
	}
	remote_reply_done(&y);
	return k;
}

static int oci_get_manifest(struct remote *r, const char *key, char **ret, size_t *ret_len,
			    char **reason)
{
	struct oci *o = r->data;
	_cleanup_free_ char *url = NULL;
	struct remote_object config;
	struct remote_request q;
	struct remote_reply y;
	char hex[SHA256_HEX_SIZE];
	int k;

	k = oci_image_config(r, key, &config, reason);
	if (k < 0)
		return k;
	url = strdup_printf("%s/blobs/sha256:%s", o->base, config.sha256);
	if (!url)
		return -ENOMEM;
	q = REMOTE_REQUEST_INIT("GET", url);
	q.follow = true;
	q.limit = REMOTE_MANIFEST_MAX_SIZE;
	k = oci_expect(r, &q, 200, &y, reason);
	if (k == -ENOENT)
		set_reason(reason, "The manifest blob of '%s' is missing from '%s'", key,
			   r->shown);
	if (k < 0)
		return k;
	/* Content-addressed: what we got must be what the image manifest named. */
	sha256_buf_hex(strempty(y.body), y.len, hex);
	if (!streq(hex, config.sha256)) {
		remote_reply_done(&y);
		set_reason(reason,
			   "The manifest blob of '%s' on '%s' does not match its digest, refusing it",
			   key, r->shown);
		return -EBADMSG;
	}
	*ret = y.body ? TAKE_PTR(y.body) : strdup("");
	*ret_len = y.len;
	remote_reply_done(&y);
	return *ret ? 0 : -ENOMEM;
}

/* The registry's own notation: REPO:TAG for the manifest, REPO@DIGEST for a blob. */
static char *oci_where(struct remote *r, const char *key, const char *sha256)
{
	return sha256 ? strdup_printf("%s@sha256:%s", r->shown, sha256)
		      : strdup_printf("%s:dm2-%s", r->shown, key);
}

const struct remote_ops remote_oci_ops = {
	.name = "oci",
	.open = oci_open,
	.close = oci_close,
	.get_manifest = oci_get_manifest,
	.put_manifest = oci_put_manifest,
	.has_object = oci_has_object,
	.get_object = oci_get_object,
	.put_object = oci_put_object,
	.where = oci_where,
};
