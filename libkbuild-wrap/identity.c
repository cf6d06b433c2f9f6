/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel identity: a sha256 over .config, Module.symvers, the release and the compiler.
 * It lives apart from probe.c, and is computed only on the first kbw_kernel_identity()
 * call, so that a program that only probes kernels (dm2d) neither links nor loads OpenSSL.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>

#include "kbw-internal.h"
#include "shared/hash.h"

/* label, the size, then the content: streamed, Module.symvers is a few MiB. */
static int hash_file(struct sha256_ctx *s, const char *label, const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	uint64_t done;
	size_t n;
	int r;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	n = (size_t) st.st_size;
	sha256_update_str(s, label);
	sha256_update(s, &n, sizeof(n));
	r = sha256_update_fd(s, fd, &done);
	if (r < 0)
		return r;
	/* Rewritten while we read: the identity would describe neither version. */
	return done == n ? 0 : -EBUSY;
}

static int compute_identity(const struct kbw_kernel *k, char **ret)
{
	_cleanup_(sha256_freep) struct sha256_ctx *s = NULL;
	_cleanup_free_ char *config = strdup_printf("%s/.config", k->build_dir);
	_cleanup_free_ char *symvers = strdup_printf("%s/Module.symvers", k->build_dir);
	uint8_t digest[SHA256_DIGEST_SIZE];
	char hex[SHA256_HEX_SIZE];
	int r;

	if (!config || !symvers)
		return -ENOMEM;
	r = sha256_new(&s);
	if (r < 0)
		return r;
	r = hash_file(s, "config", config);
	if (r >= 0)
		r = hash_file(s, "symvers", symvers);
	if (r < 0)
		return r;
	/* Each string with its NUL, as since the first release: identities must not change. */
	sha256_update_str(s, "release");
	sha256_update_str(s, k->release);
	sha256_update_str(s, "cc");
	sha256_update_str(s, k->cc_version_text);
	sha256_finish(TAKE_PTR(s), digest);
	sha256_to_hex(digest, hex);
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
