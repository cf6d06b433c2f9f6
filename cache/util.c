/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers of the cache library: hashing, temp files, names, SQLite glue. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/evp.h>

#include "cache-internal.h"

char **cache_strv_free(char **l)
{
	if (!l)
		return NULL;
	for (char **p = l; *p; p++)
		free(*p);
	free(l);
	return NULL;
}

size_t cache_strv_length(char *const *l)
{
	size_t n = 0;

	while (l && l[n])
		n++;
	return n;
}

int cache_strv_push(char ***l, char *v)
{
	size_t n = cache_strv_length(*l);
	char **m;

	if (!v)
		return -ENOMEM;
	m = realloc(*l, (n + 2) * sizeof(char *));
	if (!m) {
		free(v);
		return -ENOMEM;
	}
	m[n] = v;
	m[n + 1] = NULL;
	*l = m;
	return 0;
}

struct cache_hash {
	EVP_MD_CTX *ctx;
};

int cache_hash_new(struct cache_hash **ret)
{
	struct cache_hash *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		cache_hash_free(h);
		return -ENOMEM;
	}
	*ret = h;
	return 0;
}

int cache_hash_update(struct cache_hash *h, const void *p, size_t n)
{
	return EVP_DigestUpdate(h->ctx, p, n) == 1 ? 0 : -EIO;
}

int cache_hash_final_hex(struct cache_hash *h, char ret[CACHE_HEX_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != 32)
		return -EIO;
	for (unsigned i = 0; i < len; i++) {
		ret[2 * i] = hex[md[i] >> 4];
		ret[2 * i + 1] = hex[md[i] & 15];
	}
	ret[64] = '\0';
	return 0;
}

void cache_hash_free(struct cache_hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int cache_hash_fd(int fd, char ret[CACHE_HEX_SIZE], uint64_t *ret_size)
{
	cache_cleanup_(cache_hash_freep) struct cache_hash *h = NULL;
	char buf[65536];
	uint64_t size = 0;
	int r;

	r = cache_hash_new(&h);
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
		r = cache_hash_update(h, buf, k);
		if (r < 0)
			return r;
		size += k;
	}
	r = cache_hash_final_hex(h, ret);
	if (r < 0)
		return r;
	if (ret_size)
		*ret_size = size;
	return 0;
}

bool cache_sha256_valid(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

int cache_object_path(const char *sha256, char **ret)
{
	char *p;

	if (!cache_sha256_valid(sha256))
		return -EINVAL;
	if (asprintf(&p, CACHE_OBJECTS_DIR "/%.2s/%s", sha256, sha256) < 0)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int cache_full_path(struct cache *c, const char *rel, char **ret)
{
	char *p;

	if (asprintf(&p, "%s/%s", c->dir, rel) < 0)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int cache_tmp_open(struct cache *c, int *ret_fd, char **ret_rel)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";

	for (unsigned attempt = 0; attempt < 100; attempt++) {
		char rel[64], rnd[17];
		uint64_t seed = cache_now_usec() ^ ((uint64_t) getpid() << 32) ^ attempt;
		int fd;

		for (unsigned i = 0; i < 16; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			rnd[i] = chars[(seed >> 33) % (sizeof(chars) - 1)];
		}
		rnd[16] = '\0';
		snprintf(rel, sizeof(rel), CACHE_TMP_DIR "/.tmp-%s", rnd);
		fd = openat(c->dir_fd, rel,
			    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			return -errno;
		}
		*ret_rel = strdup(rel);
		if (!*ret_rel) {
			(void) unlinkat(c->dir_fd, rel, 0);
			close(fd);
			return -ENOMEM;
		}
		*ret_fd = fd;
		return 0;
	}
	return -EEXIST;
}

int cache_stage_fd(struct cache *c, int src_fd, const char *name,
		   struct cache_staged *ret)
{
	cache_cleanup_(cache_hash_freep) struct cache_hash *h = NULL;
	_cache_close_ int fd = -EBADF;
	_cache_free_ char *rel = NULL, *n = NULL;
	char buf[65536];
	uint64_t size = 0;
	int r;

	n = strdup(name);
	if (!n)
		return -ENOMEM;
	r = cache_hash_new(&h);
	if (r < 0)
		return r;
	r = cache_tmp_open(c, &fd, &rel);
	if (r < 0)
		return r;
	for (;;) {
		ssize_t k = read(src_fd, buf, sizeof(buf)), w = 0;

		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		if (k == 0)
			break;
		while (w < k) {
			ssize_t x = write(fd, buf + w, k - w);

			if (x < 0) {
				if (errno == EINTR)
					continue;
				r = -errno;
				goto fail;
			}
			w += x;
		}
		r = cache_hash_update(h, buf, k);
		if (r < 0)
			goto fail;
		size += k;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	r = cache_hash_final_hex(h, ret->sha256);
	if (r < 0)
		goto fail;
	ret->size = size;
	ret->name = CACHE_TAKE_PTR(n);
	ret->tmp = CACHE_TAKE_PTR(rel);
	return 0;
fail:
	(void) unlinkat(c->dir_fd, rel, 0);
	return r;
}

void cache_staged_done(struct cache *c, struct cache_staged *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i].tmp)
			(void) unlinkat(c->dir_fd, s[i].tmp, 0);
		free(s[i].tmp);
		free(s[i].name);
		s[i].tmp = s[i].name = NULL;
	}
}

bool cache_name_valid(const char *name)
{
	const char *p = name;

	if (!name || !*name || *name == '/' || strlen(name) > 255)
		return false;
	for (const char *q = name; *q; q++)
		if ((unsigned char) *q < 0x20 || *q == 0x7f)
			return false;
	/* Every component must be non-empty and neither "." nor "..". */
	while (*p) {
		size_t l = strcspn(p, "/");

		if (l == 0 || (l == 1 && p[0] == '.') ||
		    (l == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += l;
		if (*p == '/')
			p++;
		if (*p == '\0' && p[-1] == '/')
			return false;
	}
	return true;
}

uint64_t cache_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

int cache_sqlite_error(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

int cache_exec(struct cache *c, const char *sql)
{
	return cache_sqlite_error(sqlite3_exec(c->db, sql, NULL, NULL, NULL));
}

int cache_begin(struct cache *c)
{
	return cache_exec(c, "BEGIN IMMEDIATE");
}

int cache_commit_tx(struct cache *c)
{
	return cache_exec(c, "COMMIT");
}

void cache_rollback(struct cache *c)
{
	if (!sqlite3_get_autocommit(c->db))
		(void) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}
