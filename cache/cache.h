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

#include <stdbool.h>
#include <stdint.h>

/* Bump when the way dm2 builds or stores artifacts changes, so old entries stop matching.
 */
#define CACHE_FORMAT_VERSION 1U

#define CACHE_KEY_SIZE 65 /* 64 lowercase hex digits + NUL */

/* The name under which an entry's Module.symvers is stored (dependants need it). */
#define CACHE_SYMVERS_NAME "Module.symvers"

struct cache_key_input {
	const char *recipe_name;
	const char *source_id; /* content id of the chosen source (sha256 or git tree id),
				* including its patches */
	const char
		*build_rules; /* canonical text of subdir, modules, make vars, patches */
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
};

/* -ENOENT if the remote has no such key; -EBADMSG for a tampered or malformed object or
 * manifest; -EIO/-ECONNREFUSED/-ETIMEDOUT/... for transfer errors. On failure, if
 * ret_reason is not NULL, *ret_reason gets a one-line explanation naming the URL (caller
 * frees). */
int cache_remote_pull(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason);
/* -ENOENT if the key is not in the local cache (or its objects are corrupt). */
int cache_remote_push(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason);
