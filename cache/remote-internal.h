/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * How bytes move between the local cache and a remote one. remote.c decides what to ask
 * for and what to accept (nothing from a remote is trusted); a transport only moves
 * opaque bytes and says in one line why it could not:
 *   remote-http.c  http:// https://           BASE/v1/<key>/manifest, BASE/v1/objects/<sha>
 *   remote-oci.c   oci:// oci+http://         an OCI registry (Distribution v2 API)
 * Every operation returns 0 (or a count) or a negative errno; on failure it sets *reason
 * (when reason is not NULL and *reason is still NULL) to a line naming the URL in its
 * redacted form (shared/url.h), never a credential.
 */

#include <stdarg.h>

#include "cache-internal.h"
#include "shared/curl-util.h"

#define REMOTE_MANIFEST_MAX_SIZE (1024U * 1024U)

/* An object a manifest references. */
struct remote_object {
	char sha256[SHA256_HEX_SIZE];
	uint64_t size;
};

struct remote;

struct remote_ops {
	const char *name; /* "http", "oci" */
	/* Parse r->url into r->data. */
	int (*open)(struct remote *r, char **reason);
	void (*close)(struct remote *r);
	/* The manifest bytes for key, NUL-terminated, at most REMOTE_MANIFEST_MAX_SIZE;
	 * -ENOENT if the remote has none. */
	int (*get_manifest)(struct remote *r, const char *key, char **ret, size_t *ret_len,
			    char **reason);
	/* Publish the manifest of key; objects are every object it references, all uploaded
	 * before (a store that collects garbage keeps what a manifest references). */
	int (*put_manifest)(struct remote *r, const char *key, const char *buf, size_t len,
			    const struct remote_object *objects, size_t n_objects,
			    char **reason);
	/* 1 if the remote holds sha256 with this size, 0 if not (or it cannot tell). */
	int (*has_object)(struct remote *r, const char *sha256, uint64_t size);
	/* Write the object's content to fd; -ENOENT if absent, -EFBIG as soon as more than
	 * limit bytes arrive. The content is not checked here: the caller hashes it. */
	int (*get_object)(struct remote *r, const char *sha256, int fd, uint64_t limit,
			  char **reason);
	/* Where the manifest of key (sha256 NULL) or the object sha256 is, for messages:
	 * malloc()ed, redacted, NULL on ENOMEM. */
	char *(*where)(struct remote *r, const char *key, const char *sha256);
	/* Upload size bytes read from fd as the object sha256. */
	int (*put_object)(struct remote *r, const char *sha256, int fd, uint64_t size,
			  char **reason);
};

extern const struct remote_ops remote_http_ops;
extern const struct remote_ops remote_oci_ops;

struct remote {
	const struct remote_ops *ops;
	const struct cache_remote_options *options;
	char *url;   /* as configured, trailing '/' removed; may carry credentials */
	char *shown; /* url_redact(url): the only form of it a message may use */
	/* From the options' files, read once: */
	struct curl_slist *headers; /* HeaderFile= */
	char *bearer;		    /* BearerTokenFile= */
	void *data;		    /* the transport's own */
};

/* Pick the transport by the URL's scheme and set it up. */
int remote_open(const char *url, const struct cache_remote_options *o, struct remote **ret,
		char **reason);
struct remote *remote_close(struct remote *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct remote *, remote_close);

/* Set *reason, unless reason is NULL or a reason is already there (the first cause wins);
 * cache-internal.h's, by the transports' name for it. */
#define set_reason cache_set_reason

/*
 * One HTTP request of a transport, with the remote's TLS, timeouts and credentials.
 * The body sent comes from up_fd or up_buf; the body received goes to down_fd (at most
 * limit bytes, else -EFBIG; only a 2xx answer's body, an error page is dropped) or into
 * reply->body (at most limit bytes; 0: discarded).
 */
struct remote_request {
	const char *method; /* "GET", "HEAD", "PUT", "POST" */
	const char *url;
	bool follow;		    /* follow redirects (GET of content) */
	const char *const *headers; /* NULL-terminated extra header lines, or NULL */
	const char *bearer;	    /* overrides the remote's token (OCI token flow) */
	/* Not the remote's own server (a registry's token endpoint): neither the token nor
	 * the headers of BearerTokenFile=/HeaderFile= go there. */
	bool foreign;
	const char *user, *password; /* basic credentials for this request */
	int up_fd;
	const char *up_buf;
	uint64_t up_size;
	int down_fd;
	uint64_t limit;
};
#define REMOTE_REQUEST_INIT(m, u) \
	((struct remote_request){.method = (m), .url = (u), .up_fd = -EBADF, .down_fd = -EBADF})

struct remote_reply {
	long status; /* HTTP status */
	char *body;  /* NUL-terminated */
	size_t len;
	uint64_t written;	/* bytes written to down_fd */
	int64_t content_length; /* of the response, -1 if not announced */
	char *location;		/* response headers we act on, or NULL */
	char *www_authenticate;
	char *content_type;
};
void remote_reply_done(struct remote_reply *reply);

/* The reply of any status in *reply (the caller judges it); a negative errno with a reason
 * when no reply came (connection refused, timeout, TLS, -EFBIG: body over the limit). */
int remote_request(struct remote *r, const struct remote_request *q,
		   struct remote_reply *reply, char **reason);
/* A status that is not success, as an errno with a reason naming method and URL: 404/410
 * -ENOENT (no reason: the caller says what is missing), 401/403 -EACCES, else -EIO. */
int remote_http_error(long status, const char *method, const char *shown_url,
		      char **reason);

/* ---- OCI registries (oci-parse.c: pure functions, for remote-oci.c and tests) ---- */

#define OCI_MEDIA_MANIFEST "application/vnd.oci.image.manifest.v1+json"
/* The config blob of our image manifests is the dm2 manifest; its layers are the objects. */
#define OCI_MEDIA_DM2_MANIFEST "application/vnd.dm2.cache.manifest.v1"
#define OCI_MEDIA_DM2_OBJECT "application/vnd.dm2.cache.object.v1"
#define OCI_TAG_SIZE (4 + CACHE_KEY_SIZE) /* "dm2-" key NUL */

/* The string at path (object keys, NULL-terminated) in a JSON document, which must be valid
 * as a whole (nesting bounded). -ENOENT if the path is absent, -EBADMSG if the text is not
 * JSON, a key on the path is given twice, or the value there is not a string. */
int oci_json_string(const char *text, size_t len, const char *const *path, char **ret);

/* A registry's WWW-Authenticate header. */
struct oci_challenge {
	bool bearer; /* false: Basic */
	char *realm, *service, *scope;
};
/* -EOPNOTSUPP for a scheme other than Bearer and Basic; -EBADMSG for a malformed header
 * or a Bearer challenge without an http(s) realm. */
int oci_challenge_parse(const char *header, struct oci_challenge *ret);
void oci_challenge_done(struct oci_challenge *c);

/* A repository name as Distribution accepts it ("dm2/cache"). */
bool oci_repository_valid(const char *repo);
/* The tag of a build key: "dm2-<key>". */
int oci_tag_from_key(const char *key, char ret[static OCI_TAG_SIZE]);
bool oci_tag_valid(const char *tag);

/* The image manifest of key: config the dm2 manifest blob, one layer per distinct object. */
int oci_manifest_build(const char *key, const struct remote_object *config,
		       const struct remote_object *layers, size_t n_layers, char **ret,
		       size_t *ret_len);
/* The config descriptor of an image manifest we pushed: its sha256 (ret->size is 0).
 * -EMEDIUMTYPE if the config is not a dm2 manifest, -EBADMSG if malformed. */
int oci_manifest_config(const char *text, size_t len, struct remote_object *ret);
