/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OpenSSL's plain SHA256_* functions, not EVP: EVP_sha256() initializes OpenSSL 3's
 * provider machinery (configuration, algorithm tables), which costs the daemon about 1.7
 * MiB of resident memory for the rest of its life; these touch only the digest code. They
 * are marked deprecated in OpenSSL 3 but produce the same digests.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <fcntl.h>
#include <openssl/sha.h>

#include "hash.h"

struct sha256_ctx {
	SHA256_CTX sha;
};

int sha256_new(struct sha256_ctx **ret)
{
	struct sha256_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	if (SHA256_Init(&c->sha) != 1) {
		sha256_free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t size)
{
	(void) SHA256_Update(&c->sha, data, size);
}

void sha256_update_str(struct sha256_ctx *c, const char *s)
{
	s = s ?: "";
	sha256_update(c, s, strlen(s) + 1);
}

void sha256_finish(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE])
{
	(void) SHA256_Final(out, &c->sha);
	sha256_free(c);
}

struct sha256_ctx *sha256_free(struct sha256_ctx *c)
{
	if (!c)
		return NULL;
	free(c);
	return NULL;
}

void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++) {
		out[i * 2] = hex[digest[i] >> 4];
		out[i * 2 + 1] = hex[digest[i] & 15];
	}
	out[SHA256_HEX_SIZE - 1] = '\0';
}

void sha256_buf_hex(const void *data, size_t size, char out[SHA256_HEX_SIZE])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	SHA256_CTX sha;

	(void) SHA256_Init(&sha);
	(void) SHA256_Update(&sha, data, size);
	(void) SHA256_Final(d, &sha);
	sha256_to_hex(d, out);
}

int sha256_fd_hex(int fd, char out[SHA256_HEX_SIZE])
{
	_cleanup_(sha256_freep) struct sha256_ctx *c = NULL;
	uint8_t d[SHA256_DIGEST_SIZE], buf[65536];
	int r;

	r = sha256_new(&c);
	if (r < 0)
		return r;
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		sha256_update(c, buf, (size_t) k);
	}
	sha256_finish(TAKE_PTR(c), d);
	sha256_to_hex(d, out);
	return 0;
}

int sha256_file_hex_at(int dir_fd, const char *path, char out[SHA256_HEX_SIZE])
{
	_cleanup_close_ int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	return sha256_fd_hex(fd, out);
}

bool sha256_hex_valid(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64;
}
