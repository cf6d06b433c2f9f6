/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel identity: a sha256 over .config, Module.symvers, the release and the compiler.
 * It lives apart from probe.c, and is computed only on the first kbw_kernel_identity()
 * call, so that a program that only probes kernels (dm2d) neither links nor loads OpenSSL.
 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <syslog.h>

#include "kbw-internal.h"

struct kbw_sha256 {
	EVP_MD_CTX *md;
};

static void kbw_sha256_free(struct kbw_sha256 *s);

static int kbw_sha256_new(struct kbw_sha256 **ret)
{
	struct kbw_sha256 *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->md = EVP_MD_CTX_new();
	if (!s->md || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
		kbw_sha256_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

static void kbw_sha256_update(struct kbw_sha256 *s, const void *p, size_t n)
{
	(void) EVP_DigestUpdate(s->md, p, n);
}

static void kbw_sha256_final_hex(struct kbw_sha256 *s, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	(void) EVP_DigestFinal_ex(s->md, d, &n);
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}

static void kbw_sha256_free(struct kbw_sha256 *s)
{
	if (!s)
		return;
	EVP_MD_CTX_free(s->md);
	free(s);
}

/* label, the size, then the content: streamed, Module.symvers is a few MiB. */
static int hash_file(struct kbw_sha256 *s, const char *label, const char *path)
{
	_kbw_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	char buf[65536];
	struct stat st;
	size_t n, done = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	n = (size_t) st.st_size;
	kbw_sha256_update(s, label, strlen(label) + 1);
	kbw_sha256_update(s, &n, sizeof(n));
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		kbw_sha256_update(s, buf, (size_t) k);
		done += (size_t) k;
	}
	/* Rewritten while we read: the identity would describe neither version. */
	return done == n ? 0 : -EBUSY;
}

static int compute_identity(const struct kbw_kernel *k, char **ret)
{
	struct kbw_sha256 *s = NULL;
	_kbw_cleanup_free_ char *config = kbw_asprintf("%s/.config", k->build_dir);
	_kbw_cleanup_free_ char *symvers =
		kbw_asprintf("%s/Module.symvers", k->build_dir);
	char hex[65];
	int r;

	if (!config || !symvers)
		return -ENOMEM;
	r = kbw_sha256_new(&s);
	if (r < 0)
		return r;
	r = hash_file(s, "config", config);
	if (r >= 0)
		r = hash_file(s, "symvers", symvers);
	if (r < 0) {
		kbw_sha256_free(s);
		return r;
	}
	kbw_sha256_update(s, "release", 8);
	kbw_sha256_update(s, k->release, strlen(k->release) + 1);
	kbw_sha256_update(s, "cc", 3);
	kbw_sha256_update(s, k->cc_version_text ?: "",
			  strlen(k->cc_version_text ?: "") + 1);
	kbw_sha256_final_hex(s, hex);
	kbw_sha256_free(s);
	*ret = strdup(hex);
	return *ret ? 0 : -ENOMEM;
}

KBW_EXPORT const char *kbw_kernel_identity(const struct kbw_kernel *k)
{
	/* A cache, not state: the object stays logically const. */
	struct kbw_kernel *m = (struct kbw_kernel *) k;
	int r;

	if (!k->complete)
		return NULL;
	if (k->identity)
		return k->identity;
	r = compute_identity(k, &m->identity);
	if (r < 0) {
		kbw_log(LOG_ERR, "Cannot compute the identity of kernel %s: %s",
			k->release, strerror(-r));
		return NULL;
	}
	return k->identity;
}
