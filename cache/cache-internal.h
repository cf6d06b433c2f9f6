/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared between the cache library sources only. Helpers come from dm2d/shared, like
 * everywhere in dm2: the content-addressed object store (shared/cas.h), hashing, the SQLite
 * glue (shared/sqlite-util.h) and the libcurl client (shared/curl-util.h). */

#include <sqlite3.h>
#include <stdio.h>

#include "cache.h"
#include "shared/cas.h"
#include "shared/macro.h"
#include "shared/sqlite-util.h"
#include "shared/util.h"

#define CACHE_SCHEMA_VERSION 1
#define CACHE_OBJECTS_DIR "objects"
#define CACHE_TMP_DIR "tmp"

struct cache {
	char *dir; /* artifacts dir, absolute or as given */
	int dir_fd;
	struct cas objects; /* dir/objects/<ab>/<sha256> */
	int tmp_fd;	    /* dir/tmp: where objects are written before they are committed */
	sqlite3 *db;
	bool index_reset; /* cache_open() replaced a broken index */
};

/* A file copied (or downloaded) into dir/tmp, hashed, fsynced, ready to become an object.
 */
struct cache_staged {
	char *name; /* entry file name */
	char sha256[SHA256_HEX_SIZE];
	uint64_t size;
	char *tmp; /* name in dir/tmp, NULL once consumed */
};
void cache_staged_done(struct cache *c, struct cache_staged *s, size_t n);
/* Copy the fd's content to a temp file, hashing it. */
int cache_stage_fd(struct cache *c, int src_fd, const char *name, struct cache_staged *ret);
/* A name we accept for an entry file: a safe relative path without newline or control
 * chars. */
bool cache_name_valid(const char *name);
/* The absolute (or as given) path of an object, for callers: dir/objects/<ab>/<sha256>. */
int cache_object_full_path(struct cache *c, const char *sha256, char **ret);

/* Under one write transaction: put the staged files into the object store (verifying any
 * object that already exists) and record them as the entry for key. Consumes the temps.
 */
int cache_commit(struct cache *c, const char *key, struct cache_staged *s, size_t n);

/* 1 if some entry references the object sha256, else 0. */
int cache_sha_referenced(struct cache *c, const char *sha256);
/* Within a write transaction: delete an entry and the objects only it used (their sizes
 * added to *freed, which may be NULL). -ENOENT if there is no such entry. */
int cache_remove_entry_locked(struct cache *c, const char *key, uint64_t *freed);

/* The manifest of a remote entry (remote.c's format, trust.c's signature), parsed in
 * place; on -EBADMSG *reason says which line. Not static so that fuzz/fuzz-manifest.c can
 * reach it. */
struct cache_manifest_file {
	char sha256[SHA256_HEX_SIZE];
	uint64_t size;
	char *name;
};
struct cache_manifest {
	char *key, *recipe, *version, *source_id, *kernel_release, *kernel_identity, *arch;
	struct cache_manifest_file *files;
	size_t n_files;
};
/* The body, without its signature line. Every field and at least one file required. */
int cache_manifest_parse(char *text, const char *url, struct cache_manifest *ret,
			 char **reason);
void cache_manifest_done(struct cache_manifest *m);
/* The header lines of a manifest for key, up to its first "file" line. */
int cache_manifest_format_header(FILE *f, const char *key, const struct cache_entry_info *i);

/* The signed manifest of the local entry key (its recorded origin and files), and those
 * files in *ret_files. -ENOENT (with *reason) if it has no recorded origin, -ENOKEY if o
 * has no signer: nothing unsigned is published. */
int cache_manifest_build(struct cache *c, const char *key, const struct cache_remote_options *o,
			 char **ret_text, size_t *ret_len, struct cache_manifest *ret_files,
			 char **reason);
/* Store an accepted manifest's verified objects and its signed origin (pull, import). */
int cache_commit_accepted(struct cache *c, const struct cache_manifest *m,
			  struct cache_staged *staged, char **reason);
/* Append the signature line made by o->sign to the manifest text *text (*len bytes). */
int cache_manifest_sign(char **text, size_t *len, const struct cache_remote_options *o,
			char **reason);
/*
 * Whether a manifest may be believed: the signature line verifies against a trusted
 * certificate, the body parses, and it is the manifest of key (and of expect_identity
 * when set). text is modified. On refusal returns -EKEYREJECTED or -EBADMSG, *ret_why
 * the class and *reason one line naming url; on success *ret the parsed body.
 */
int cache_manifest_accept(char *text, size_t len, const char *key,
			  const struct cache_remote_options *o, const char *url,
			  struct cache_manifest *ret, enum cache_refusal *ret_why,
			  char **reason);
/* Whether a downloaded (or imported) object is what f says: size and sha256. */
int cache_object_check(const struct cache_manifest_file *f, const char *hex, uint64_t size,
		       const char *where, enum cache_refusal *ret_why, char **reason);

void cache_set_reason(char **reason, const char *fmt, ...) _printf_(2, 3);
