/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "shared/macro.h"

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE 65 /* with NUL */

struct sha256_ctx;

int sha256_new(struct sha256_ctx **ret);
void sha256_update(struct sha256_ctx *c, const void *data, size_t size);
/* Feed a string and its terminating NUL, so that ("ab","c") and ("a","bc") differ. */
void sha256_update_str(struct sha256_ctx *c, const char *s);
/* Feed everything from fd's current position to EOF; *ret_size (may be NULL) gets the
 * number of bytes fed. */
int sha256_update_fd(struct sha256_ctx *c, int fd, uint64_t *ret_size);
/* Finish and free the context. */
void sha256_finish(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE]);
struct sha256_ctx *sha256_free(struct sha256_ctx *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct sha256_ctx *, sha256_free);

void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]);
void sha256_buf_hex(const void *data, size_t size, char out[SHA256_HEX_SIZE]);
/* Hash everything from the current position to EOF; *ret_size (may be NULL) gets the number
 * of bytes hashed. */
int sha256_fd_hex_full(int fd, char out[SHA256_HEX_SIZE], uint64_t *ret_size);
static inline int sha256_fd_hex(int fd, char out[SHA256_HEX_SIZE])
{
	return sha256_fd_hex_full(fd, out, NULL);
}
int sha256_file_hex_at(int dir_fd, const char *path, char out[SHA256_HEX_SIZE]);
/* 64 hex digits, either case (as people write them in recipes). */
bool sha256_hex_valid(const char *s);
/* 64 lowercase hex digits: the one spelling used in file names and keys. */
bool sha256_hex_canonical(const char *s);
