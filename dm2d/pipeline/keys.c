/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pipeline/keys.h"
#include "pipeline/sign.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

#define KEY_BITS 2048
#define KEY_DAYS 36500 /* 100 years: a MOK is enrolled once and should never expire */

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_EXTENSION *, X509_EXTENSION_free);

/* A configured path is always under the root, even when written as an absolute path. */
static int resolve_configured(struct dm2_context *ctx, const char *v, char **ret)
{
	char *p;

	if (sign_key_is_uri(v))
		p = strdup(v);
	else {
		while (*v == '/')
			v++;
		if (isempty(v))
			return -EINVAL;
		p = context_path(ctx, v);
	}
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

/* Open (creating if needed) the key directory: mode 0700, so the build user cannot even
 * see the file names; then lock it, so two jobs never generate two different keys. */
static int key_dir_open_locked(struct dm2_context *ctx, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	int r;

	r = mkdir_p_at(ctx->root_fd, DM2_STATE_DIR, 0755);
	if (r < 0)
		return r;
	if (mkdirat(ctx->root_fd, DM2_KEY_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(ctx->root_fd, DM2_KEY_DIR,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
		return -errno;
	if (flock(fd, LOCK_EX) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static bool exists_at(int dir_fd, const char *name)
{
	return faccessat(dir_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) >= 0;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	_cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
	X509V3_CTX v;

	X509V3_set_ctx(&v, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &v, nid, value);
	if (!ext || !X509_add_ext(x, ext, -1))
		return -EIO;
	return 0;
}

static int generate_pair(EVP_PKEY **ret_pkey, X509 **ret_cert)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	unsigned char serial[16];
	char host[HOST_NAME_MAX + 1] = "localhost", cn[HOST_NAME_MAX + 64];
	X509_NAME *name;
	int r;

	pkey = EVP_RSA_gen(KEY_BITS);
	if (!pkey)
		return -EIO;
	x = X509_new();
	if (!x)
		return -ENOMEM;
	if (!X509_set_version(x, X509_VERSION_3))
		return -EIO;

	/* Random positive serial: it is the key id modinfo shows, keep it unique per
	 * host. */
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		return -EIO;
	serial[0] = (serial[0] & 0x7f) | 0x40;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		return -EIO;

	if (!X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), KEY_DAYS, 0, NULL))
		return -EIO;

	(void) gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(cn, sizeof(cn), "%s dm2 module signing key", host);
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
					(const unsigned char *) cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, pkey))
		return -EIO;

	/* As the kernel's own default_x509.genkey and Ubuntu's MOK: codeSigning for
	 * kernels that check EKU, and the module-signing-only OID so shim never trusts it
	 * for boot images. */
	r = add_ext(x, NID_basic_constraints, "critical,CA:FALSE");
	if (r >= 0)
		r = add_ext(x, NID_key_usage, "critical,digitalSignature");
	if (r >= 0)
		r = add_ext(x, NID_ext_key_usage, "codeSigning,1.3.6.1.4.1.2312.16.1.2");
	if (r >= 0)
		r = add_ext(x, NID_subject_key_identifier, "hash");
	if (r >= 0)
		r = add_ext(x, NID_authority_key_identifier, "keyid:always");
	if (r < 0)
		return r;

	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		return -EIO;

	*ret_pkey = TAKE_PTR(pkey);
	*ret_cert = TAKE_PTR(x);
	return 0;
}

/* Key first, certificate last: a certificate present means the pair is complete. */
static int write_pair(int dir_fd, const void *key_pem, size_t key_len,
		      const void *cert_der, size_t cert_len)
{
	int r;

	r = write_file_atomic_at(dir_fd, "signing_key.pem", key_pem, key_len, 0600);
	if (r < 0)
		return r;
	return write_file_atomic_at(dir_fd, "signing_key.x509", cert_der, cert_len, 0644);
}

static int generate_locked(struct dm2_context *ctx, int dir_fd)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;
	_cleanup_(BIO_free_allp) BIO *b = NULL;
	unsigned char *der = NULL;
	char *pem;
	long pem_len;
	int der_len, r;

	r = generate_pair(&pkey, &cert);
	if (r < 0) {
		ERR_clear_error();
		return r;
	}
	b = BIO_new(BIO_s_mem());
	if (!b)
		return -ENOMEM;
	if (PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL) != 1)
		return -EIO;
	pem_len = BIO_get_mem_data(b, &pem);
	if (pem_len <= 0)
		return -EIO;
	der_len = i2d_X509(cert, &der);
	if (der_len <= 0)
		return -EIO;
	r = write_pair(dir_fd, pem, (size_t) pem_len, der, (size_t) der_len);
	OPENSSL_free(der);
	if (r < 0)
		return r;
	log_info("Generated a new module signing key in '%s/%s'.",
		 streq(ctx->root, "/") ? "" : ctx->root, DM2_KEY_DIR);
	return 0;
}

int keys_generate(struct dm2_context *ctx, bool replace)
{
	_cleanup_close_ int dir_fd = -EBADF;
	int r;

	r = key_dir_open_locked(ctx, &dir_fd);
	if (r < 0)
		return r;
	if (!replace && (exists_at(dir_fd, "signing_key.pem") ||
			 exists_at(dir_fd, "signing_key.x509")))
		return -EEXIST;
	return generate_locked(ctx, dir_fd);
}

int keys_ensure(struct dm2_context *ctx, char **ret_key, char **ret_cert)
{
	_cleanup_free_ char *key = NULL, *cert = NULL;
	_cleanup_close_ int dir_fd = -EBADF;
	bool have_key, have_cert;
	int r;

	if (ctx->config && !isempty(ctx->config->sign_key)) {
		r = resolve_configured(ctx, ctx->config->sign_key, &key);
		if (r < 0)
			return r;
		/* Without Certificate= the certificate is looked for in the key's file or
		 * store (the kernel's own signing_key.pem holds both). */
		if (!isempty(ctx->config->sign_cert)) {
			r = resolve_configured(ctx, ctx->config->sign_cert, &cert);
			if (r < 0)
				return r;
		}
		*ret_key = TAKE_PTR(key);
		*ret_cert = TAKE_PTR(cert);
		return 0;
	}

	r = key_dir_open_locked(ctx, &dir_fd);
	if (r < 0)
		return r;
	have_key = exists_at(dir_fd, "signing_key.pem");
	have_cert = exists_at(dir_fd, "signing_key.x509");
	if (have_key != have_cert)
		/* Half a pair: never silently replace a key someone may have enrolled. */
		return log_debug_errno(ENOENT, "Only one of '%s' and '%s' exists.",
				       DM2_KEY_FILE, DM2_CERT_FILE);
	if (!have_key) {
		r = generate_locked(ctx, dir_fd);
		if (r < 0)
			return r;
	}

	key = context_path(ctx, DM2_KEY_FILE);
	cert = context_path(ctx, DM2_CERT_FILE);
	if (!key || !cert)
		return -ENOMEM;
	*ret_key = TAKE_PTR(key);
	*ret_cert = TAKE_PTR(cert);
	return 0;
}

int keys_adopt_dkms(struct dm2_context *ctx)
{
	_cleanup_(sign_key_freep) struct sign_key *k = NULL;
	_cleanup_free_ char *key_path = NULL, *cert_path = NULL, *pem = NULL, *old = NULL;
	_cleanup_free_ void *der = NULL;
	_cleanup_close_ int dir_fd = -EBADF;
	size_t pem_len, der_len, old_len;
	int r;

	if (!exists_at(ctx->root_fd, DM2_DKMS_KEY_FILE) ||
	    !exists_at(ctx->root_fd, DM2_DKMS_CERT_FILE))
		return -ENOENT;
	key_path = context_path(ctx, DM2_DKMS_KEY_FILE);
	cert_path = context_path(ctx, DM2_DKMS_CERT_FILE);
	if (!key_path || !cert_path)
		return -ENOMEM;

	/* Loading checks that the key belongs to the certificate. */
	r = sign_key_load(key_path, cert_path, &k);
	if (r < 0)
		return r;
	r = sign_key_export(k, &pem, &pem_len, &der, &der_len);
	if (r < 0)
		return r;

	r = key_dir_open_locked(ctx, &dir_fd);
	if (r < 0)
		return r;
	r = read_full_file_at(dir_fd, "signing_key.x509", 0, &old, &old_len);
	if (r >= 0) {
		if (old_len == der_len && memcmp(old, der, der_len) == 0 &&
		    exists_at(dir_fd, "signing_key.pem"))
			return 0; /* adopted before */
		return -EEXIST;
	}
	if (r != -ENOENT)
		return r;
	if (exists_at(dir_fd, "signing_key.pem"))
		return -EEXIST;
	return write_pair(dir_fd, pem, pem_len, der, der_len);
}

static char *format_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	char buf[64];

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return NULL;
	if (strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		return NULL;
	return strdup(buf);
}

static char *format_name(const X509_NAME *n)
{
	_cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());
	char *p, *s;
	long len;

	if (!b ||
	    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
		return NULL;
	len = BIO_get_mem_data(b, &p);
	if (len < 0)
		return NULL;
	s = strndup(p, (size_t) len);
	return s;
}

int key_info_from_cert(const char *cert_path, struct key_info *ret)
{
	_cleanup_(key_info_done) struct key_info info = {};
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	_cleanup_free_ void *der = NULL;
	_cleanup_free_ unsigned char *serial = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	const unsigned char *p;
	const char *type;
	EVP_PKEY *pub;
	size_t der_len;
	int r, n;

	r = sign_cert_load_der(cert_path, &der, &der_len);
	if (r < 0)
		return r;
	p = der;
	x = d2i_X509(NULL, &p, (long) der_len);
	if (!x)
		return -EBADMSG;

	info.subject = format_name(X509_get_subject_name(x));
	info.issuer = format_name(X509_get_issuer_name(x));
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	if (!bn)
		return -EBADMSG;
	n = BN_num_bytes(bn);
	serial = malloc(n > 0 ? (size_t) n : 1);
	if (!serial)
		return -ENOMEM;
	BN_bn2bin(bn, serial);
	info.serial = sign_hex_colon(serial, (size_t) n);
	if (X509_digest(x, EVP_sha256(), md, &md_len) != 1)
		return -EIO;
	info.fingerprint = sign_hex_colon(md, md_len);
	info.not_before = format_asn1_time(X509_get0_notBefore(x));
	info.not_after = format_asn1_time(X509_get0_notAfter(x));
	pub = X509_get0_pubkey(x);
	info.bits = pub ? (unsigned) EVP_PKEY_get_bits(pub) : 0;
	type = pub ? EVP_PKEY_get0_type_name(pub) : NULL;
	info.key_type = strdup(type ?: "unknown");
	if (!info.subject || !info.issuer || !info.serial || !info.fingerprint ||
	    !info.not_before || !info.not_after || !info.key_type)
		return -ENOMEM;

	*ret = info;
	info = (struct key_info){};
	return 0;
}

void key_info_done(struct key_info *i)
{
	if (!i)
		return;
	i->subject = mfree(i->subject);
	i->issuer = mfree(i->issuer);
	i->serial = mfree(i->serial);
	i->fingerprint = mfree(i->fingerprint);
	i->not_before = mfree(i->not_before);
	i->not_after = mfree(i->not_after);
	i->key_type = mfree(i->key_type);
}
