/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <openssl/evp.h>

#include "shared/hash.h"

struct sha256_ctx {
	EVP_MD_CTX *md;
};

int sha256_new(struct sha256_ctx **ret)
{
	struct sha256_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->md = EVP_MD_CTX_new();
	if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		sha256_free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t size)
{
	(void) EVP_DigestUpdate(c->md, data, size);
}

void sha256_update_str(struct sha256_ctx *c, const char *s)
{
	s = s ?: "";
	sha256_update(c, s, strlen(s) + 1);
}

void sha256_finish(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE])
{
	unsigned int n = SHA256_DIGEST_SIZE;

	(void) EVP_DigestFinal_ex(c->md, out, &n);
	sha256_free(c);
}

struct sha256_ctx *sha256_free(struct sha256_ctx *c)
{
	if (!c)
		return NULL;
	EVP_MD_CTX_free(c->md);
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
	unsigned int n = sizeof(d);

	(void) EVP_Digest(data, size, d, &n, EVP_sha256(), NULL);
	sha256_to_hex(d, out);
}

int sha256_update_fd(struct sha256_ctx *c, int fd, uint64_t *ret_size)
{
	uint8_t buf[65536];
	uint64_t size = 0;

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
		size += (uint64_t) k;
	}
	if (ret_size)
		*ret_size = size;
	return 0;
}

int sha256_fd_hex_full(int fd, char out[SHA256_HEX_SIZE], uint64_t *ret_size)
{
	_cleanup_(sha256_freep) struct sha256_ctx *c = NULL;
	uint8_t d[SHA256_DIGEST_SIZE];
	int r;

	r = sha256_new(&c);
	if (r < 0)
		return r;
	r = sha256_update_fd(c, fd, ret_size);
	if (r < 0)
		return r;
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

bool sha256_hex_canonical(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}
