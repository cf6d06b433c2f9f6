/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * dm2 build cache: build keys, a content-addressed local store of unsigned artifacts
 * indexed in SQLite with LRU gc, and a remote cache on any HTTP(S) server that supports
 * GET and PUT.
 *
 * A library: it never prints and never exits. Every function returns 0 (or a count) on
 * success and a negative errno on failure; output parameters are written only on success.
 * Objects are not thread-safe: use one struct cache per thread.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bump when the way dm2 builds or stores artifacts changes, so old entries stop matching.
 */
#define CACHE_FORMAT_VERSION 1U

#define CACHE_KEY_SIZE 65 /* 64 lowercase hex digits + NUL */

/* An entry's file NAME.ko.signed is NAME.ko as its builder signed it (stripped, signature
 * appended): what RemoteSigning=builder clients install. */
#define CACHE_SIGNED_SUFFIX ".signed"

/* The name under which an entry's Module.symvers is stored (dependants need it). */
#define CACHE_SYMVERS_NAME "Module.symvers"

struct cache_key_input {
	const char *recipe_name;
	const char *source_id; /* content id of the chosen source (sha256 or git tree id),
				* including its patches */
	const char
		*build_rules; /* canonical text of the rest the build uses: the
				* source version, [Build], [Install] */
	const char *kernel_identity; /* libkbuild-wrap's kernel identity */
	const char *arch;
	unsigned format_version; /* CACHE_FORMAT_VERSION */
};

/* sha256 over the inputs in the order above, each length-prefixed. All strings required
 * (-EINVAL when NULL). */
int cache_key_compute(const struct cache_key_input *in, char ret[CACHE_KEY_SIZE]);
/* True if s is a well-formed key (64 lowercase hex digits). */
bool cache_key_valid(const char *s);

struct cache;

/* Open (creating as needed, mode 0755 dirs) the store in artifacts_dir and its index at
 * index_db_path (usually artifacts_dir/index.db). */
int cache_open(const char *artifacts_dir, const char *index_db_path, struct cache **ret);
/* The index was not readable (not a database, corrupt, truncated): cache_open() moved it
 * to index.db.broken and started an empty one, so everything builds again once. */
bool cache_index_was_reset(const struct cache *c);
struct cache *cache_close(struct cache *c); /* NULL-safe; returns NULL */

struct cache_entry {
	char *key;
	char **files;  /* absolute paths of the objects in the store, NULL-terminated,
			* read-only:  copy them, never modify or link them */
	char **names;  /* file names as stored ("foo.ko"), parallel to files */
	char *symvers; /* absolute path of the stored Module.symvers, or NULL */
	uint64_t size; /* sum of the file sizes, symvers included */
	uint64_t created, last_used; /* usec since the epoch */
};
struct cache_entry *cache_entry_free(struct cache_entry *e); /* NULL-safe; returns NULL */

/* -ENOENT on a miss. Verifies the sha256 of every object first: a corrupted or missing
 * object drops the entry (and the bad object) and returns -ENOENT, so the caller
 * rebuilds. Updates last_used. */
int cache_lookup(struct cache *c, const char *key, struct cache_entry **ret);

/* Store the files paths[i] under names[i] (plain relative names, no "..", no newline;
 * unique) and, if symvers_path is not NULL, that file as CACHE_SYMVERS_NAME. Each content
 * is kept once. Idempotent: storing an existing key replaces its file list. */
int cache_store(struct cache *c, const char *key, char **paths, char **names,
		const char *symvers_path);

/* Remove one entry (objects no longer referenced go too). -ENOENT if absent. */
int cache_remove(struct cache *c, const char *key);

/* All keys in the index, least recently used first. */
int cache_list(struct cache *c, char ***ret_keys);

/* Evict least-recently-used entries until the objects total at most max_size bytes;
 * removes objects no longer referenced, stray objects and stale temporary files. Returns
 * the number of entries evicted; *ret_freed (may be NULL) the bytes freed. */
int cache_gc(struct cache *c, uint64_t max_size, uint64_t *ret_freed);

struct cache_stats {
	uint64_t entries;
	uint64_t objects; /* distinct contents */
	uint64_t bytes;	  /* sum of the distinct objects' sizes */
	uint64_t oldest_used,
		newest_used; /* usec since the epoch of last_used; 0 if empty */
};
int cache_stat(struct cache *c, struct cache_stats *ret);

/*
 * Trust. A manifest (remote.c, trust.c) names the entry's build key, origin and files and
 * ends in a "signature" line: a detached CMS signature (DER, base64) over every byte
 * before it, by the pushing builder's key, its signer named by issuer and serial. A puller
 * accepts it only if one of its trusted certificates made the signature.
 */
struct cache_trust;
int cache_trust_new(struct cache_trust **ret);
struct cache_trust *cache_trust_free(struct cache_trust *t); /* NULL-safe */
/* Trust every certificate of a PEM file. -EBADMSG (and *reason) if it holds none. */
int cache_trust_add_file(struct cache_trust *t, const char *path, char **reason);
size_t cache_trust_count(const struct cache_trust *t);

/* Signs data (the manifest) for push: a detached CMS SignedData in DER, no certificates,
 * signer by issuer and serial; *ret_der malloc()ed. pipeline/sign.c's sign_data() is one. */
typedef int (*cache_sign_fn)(const void *data, size_t len, void **ret_der, size_t *ret_len,
			     void *userdata);

/* Where an entry came from, signed into its manifest; every field required, one line of
 * printable text each. */
struct cache_entry_info {
	const char *recipe, *version, *source_id;
	const char *kernel_release, *kernel_identity, *arch;
};
/* Record (replace) the origin of key; push refuses an entry without one. */
int cache_info_set(struct cache *c, const char *key, const struct cache_entry_info *info);
/* The origin of key as malloc()ed strings (free with cache_entry_info_done()); -ENOENT. */
int cache_info_get(struct cache *c, const char *key, struct cache_entry_info *ret);
void cache_entry_info_done(struct cache_entry_info *i);

/* Why a remote (or imported) entry was refused; each is counted in the index. */
enum cache_refusal {
	CACHE_REFUSAL_UNSIGNED,
	CACHE_REFUSAL_UNKNOWN_SIGNER,
	CACHE_REFUSAL_BAD_SIGNATURE,
	CACHE_REFUSAL_REPLAY,	/* signed, but for another key or kernel */
	CACHE_REFUSAL_MALFORMED,
	CACHE_REFUSAL_OBJECT_MISMATCH, /* an object's sha256 or size is not the manifest's */
	CACHE_REFUSAL_TRUNCATED,       /* an object shorter than the manifest says */
	CACHE_REFUSAL_MODULE_SIGNATURE, /* RemoteSigning=builder: no trusted module signature */
	_CACHE_REFUSAL_MAX,
	_CACHE_REFUSAL_INVALID = -EINVAL,
};
const char *cache_refusal_to_string(int i); /* "unsigned", "unknown-signer", ... */
int cache_refusal_from_string(const char *s);
/* Count a refusal decided by the caller (best effort). */
void cache_refusal_note(struct cache *c, enum cache_refusal why);
/* How many entries were refused for each reason, since the index was created. */
int cache_refusals(struct cache *c, uint64_t ret[_CACHE_REFUSAL_MAX]);

/*
 * Remote cache. base_url is one of
 *   http://HOST/PATH, https://...  any server with GET and PUT:
 *                                  BASE/v1/<key>/manifest (text, see remote.c) and
 *                                  BASE/v1/objects/<sha256>
 *   oci://HOST[:PORT]/REPO         an OCI registry over https (oci+http:// for plain http):
 *                                  objects and manifest are blobs, one image manifest per
 *                                  key tagged "dm2-<key>" (see remote-oci.c)
 * Push writes the objects first and the manifest last, so a reader never sees a manifest
 * whose objects are missing. Pull verifies every object's size and sha256 before it
 * enters the local store.
 */
struct cache_remote_options {
	const char *ca_file; /* extra CA bundle for https, or NULL: system default */
	uint64_t connect_timeout_usec; /* 0: 10 s */
	uint64_t
		stall_timeout_usec; /* abort when under 1 byte/s for this long; 0: 30 s */
	uint64_t max_object_size;   /* 0: 1 GiB */
	/* Authentication (paths, or NULL); libcurl sends credentials only to the URL's own
	 * host. Credentials may also be in the URL; no message ever shows them. */
	const char *netrc_file;	       /* user and password per host, netrc(5) */
	const char *bearer_token_file; /* first line: a token for "Authorization: Bearer" */
	const char *header_file;       /* "Name: value" lines sent with every request */
	const char *client_cert;       /* TLS client certificate (PEM) */
	const char *client_key;	       /* its key (PEM); NULL: in client_cert */

	/* Trust (see "Trust" above). Pull accepts only a manifest signed by one of trust's
	 * certificates (NULL trusts nobody: every pull is refused); when expect_identity is
	 * set, also only one naming that kernel identity. Push signs with sign(). */
	const struct cache_trust *trust;
	const char *expect_identity;
	cache_sign_fn sign; /* NULL: push refuses, nothing unsigned is published */
	void *sign_userdata;
};

/* -ENOENT if the remote has no such key; -EKEYREJECTED for a manifest not signed by a
 * trusted key, or signed for another key or kernel; -EBADMSG for a tampered or malformed
 * object or manifest (each refusal counted, see cache_refusals()); -EIO/-ECONNREFUSED/-ETIMEDOUT/... for transfer errors. On failure, if
 * ret_reason is not NULL, *ret_reason gets a one-line explanation naming the URL (caller
 * frees). */
int cache_remote_pull(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason);
/* -ENOENT if the key is not in the local cache (or its objects are corrupt). */
int cache_remote_push(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason);

/*
 * Offline: the entries keys as one tar archive laid out like a remote (v1/<key>/manifest
 * signed with o->sign, v1/objects/<sha256>), written to fd. Import reads such an archive
 * from fd (file names it in messages) and accepts each manifest like cache_remote_pull()
 * (o->trust, o->expect_identity) and each object like a download; fn (may be NULL) hears
 * of every entry (key, 0 or the refusal's negative errno, one-line reason) and of every
 * member it skipped (key NULL). Returns the number of entries imported; < 0 (and
 * *ret_reason) if the archive could not be read to its end, after importing what came
 * before.
 */
int cache_export(struct cache *c, int fd, char *const *keys,
		 const struct cache_remote_options *o, char **ret_reason);
typedef void (*cache_import_fn)(const char *key, int r, const char *reason, void *userdata);
int cache_import(struct cache *c, int fd, const char *file,
		 const struct cache_remote_options *o, cache_import_fn fn, void *userdata,
		 char **ret_reason);
