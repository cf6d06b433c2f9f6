/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared between the cache library sources only. The library does not include dm2d/, so
 * it carries the few helpers it needs itself. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "cache.h"

#define CACHE_SCHEMA_VERSION 1
#define CACHE_OBJECTS_DIR "objects"
#define CACHE_TMP_DIR "tmp"
#define CACHE_HEX_SIZE 65
#define MAX_(a, b) ((a) > (b) ? (a) : (b))
#define MIN_(a, b) ((a) < (b) ? (a) : (b))

#define cache_cleanup_(f) __attribute__((__cleanup__(f)))
#define CACHE_TAKE_PTR(p)                                                                \
	({                                                                               \
		__typeof__(p) _ptr_ = (p);                                               \
		(p) = NULL;                                                              \
		_ptr_;                                                                   \
	})

static inline void cache_freep(void *p)
{
	free(*(void **) p);
}
#define _cache_free_ cache_cleanup_(cache_freep)

static inline void cache_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		(void) close(*fd);
		errno = saved;
	}
}
#define _cache_close_ cache_cleanup_(cache_closep)

static inline void cache_finalizep(sqlite3_stmt **s)
{
	if (*s)
		sqlite3_finalize(*s);
}
#define _cache_stmt_ cache_cleanup_(cache_finalizep)

char **cache_strv_free(char **l);
static inline void cache_strv_freep(char ***l)
{
	cache_strv_free(*l);
}
#define _cache_strv_ cache_cleanup_(cache_strv_freep)
size_t cache_strv_length(char *const *l);
int cache_strv_push(char ***l, char *v); /* takes v, also on failure */

struct cache {
	char *dir; /* artifacts dir, absolute or as given */
	int dir_fd;
	sqlite3 *db;
};

/* A file copied (or downloaded) into dir/tmp, hashed, fsynced, ready to become an object.
 */
struct cache_staged {
	char *name; /* entry file name */
	char sha256[CACHE_HEX_SIZE];
	uint64_t size;
	char *tmp; /* path relative to dir_fd, NULL once consumed */
};
void cache_staged_done(struct cache *c, struct cache_staged *s, size_t n);

/* sha256 streaming, OpenSSL EVP underneath. */
struct cache_hash;
int cache_hash_new(struct cache_hash **ret);
int cache_hash_update(struct cache_hash *h, const void *p, size_t n);
int cache_hash_final_hex(struct cache_hash *h, char ret[CACHE_HEX_SIZE]);
void cache_hash_free(struct cache_hash *h);
static inline void cache_hash_freep(struct cache_hash **h)
{
	cache_hash_free(*h);
}
/* Hash an fd from its current position to EOF. */
int cache_hash_fd(int fd, char ret[CACHE_HEX_SIZE], uint64_t *ret_size);
bool cache_sha256_valid(const char *s);

/* "objects/ab/abcdef..." */
int cache_object_path(const char *sha256, char **ret);
/* Absolute-or-as-given path for callers: dir + "/" + rel. */
int cache_full_path(struct cache *c, const char *rel, char **ret);
/* Create a new temp file under dir/tmp; returns its fd and relative path. */
int cache_tmp_open(struct cache *c, int *ret_fd, char **ret_rel);
/* Copy the fd's content to a temp file, hashing it. */
int cache_stage_fd(struct cache *c, int src_fd, const char *name,
		   struct cache_staged *ret);
/* A name we accept for an entry file: a safe relative path without newline or control
 * chars. */
bool cache_name_valid(const char *name);

uint64_t cache_now_usec(void);
int cache_sqlite_error(int rc);
int cache_exec(struct cache *c, const char *sql);
int cache_begin(struct cache *c); /* BEGIN IMMEDIATE */
int cache_commit_tx(struct cache *c);
void cache_rollback(struct cache *c);

/* Under one write transaction: put the staged files into the object store (verifying any
 * object that already exists) and record them as the entry for key. Consumes the temps.
 */
int cache_commit(struct cache *c, const char *key, struct cache_staged *s, size_t n);
