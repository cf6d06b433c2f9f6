/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A content-addressed store: a directory of files, each named by the sha256 of its content,
 * either flat (<sha256>: the downloads) or fanned out (<sha256[0:2]>/<sha256>: the build
 * cache's objects, which are many).
 *
 * New content is written to a temporary file on the same file system (cas_tmp_new(), or the
 * caller's own, like a download's .part file that must survive for a resume), then sealed
 * (hashed from its start and fsynced) and committed (renamed to its sha256, the directory
 * fsynced). A reader never sees a partial or unsynced file under a content name.
 *
 * It lives in dm2d/shared because its two users sit where nothing else is common to both:
 * the pipeline's fetch.c and the cache library, which may include dm2d/shared only. It is a
 * file of its own so that programs that never hash (dm2d) do not pull in OpenSSL.
 */

#include <stdint.h>

#include "shared/hash.h"
#include "shared/macro.h"

#define CAS_SIZE_ANY UINT64_MAX
/* Temporaries made by cas_tmp_new() are named "<prefix><random>": gc may sweep old ones. */
#define CAS_TMP_PREFIX ".tmp-"

struct cas {
	int dir_fd;
	bool fanout;
};

/* Open (creating it and its parents, 0755) the store directory path below dir_fd. */
int cas_open_at(struct cas *s, int dir_fd, const char *path, bool fanout);
void cas_close(struct cas *s);

/* The object's path relative to the store directory; -EINVAL unless sha256 is 64 lowercase
 * hex digits (nothing else may become a path in the store). */
int cas_object_path(const struct cas *s, const char *sha256, char **ret);
/* 0 if the object is there with this content (and this size, unless CAS_SIZE_ANY), -ENOENT
 * if it is missing, -EBADMSG if it is not what its name says. */
int cas_verify(const struct cas *s, const char *sha256, uint64_t size);

/* A new, empty temporary file CAS_TMP_PREFIX<random> in tmp_dir_fd, open for reading and
 * writing. tmp_dir_fd must be on the store's file system. */
int cas_tmp_new(int tmp_dir_fd, int *ret_fd, char **ret_name);
/* Copy src_fd from its position to EOF into a new temporary and seal it. Nothing is left
 * behind on failure. */
int cas_tmp_copy(int tmp_dir_fd, int src_fd, char **ret_name, char ret_sha256[SHA256_HEX_SIZE],
		 uint64_t *ret_size);
/* Hash what fd holds, from its start, and fsync it: the name and size it will be stored
 * under. *ret_size may be NULL. */
int cas_seal(int fd, char ret_sha256[SHA256_HEX_SIZE], uint64_t *ret_size);
/* Make the sealed temporary tmp (relative to tmp_dir_fd) the object sha256 of that size.
 * If an intact object is there already, it stays and the temporary is removed; a damaged
 * one is replaced. Either way tmp is gone on success. */
int cas_commit(const struct cas *s, int tmp_dir_fd, const char *tmp, const char *sha256,
	       uint64_t size);
