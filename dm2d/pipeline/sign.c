/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <openssl/x509.h>

#include "pipeline/sign.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/* The kernel's struct module_signature (include/linux/module_signature.h). */
struct module_signature {
	uint8_t algo;	    /* 0 for PKCS#7 */
	uint8_t hash;	    /* 0 for PKCS#7 */
	uint8_t id_type;    /* PKEY_ID_PKCS7 */
	uint8_t signer_len; /* 0 for PKCS#7 */
	uint8_t key_id_len; /* 0 for PKCS#7 */
	uint8_t pad[3];
	uint32_t sig_len; /* big-endian */
};
_Static_assert(sizeof(struct module_signature) == MODULE_SIG_INFO_LEN,
	       "module_signature size");

#define PKEY_ID_PKCS7 2
#define MODULE_SIG_TRAILER_LEN (MODULE_SIG_INFO_LEN + MODULE_SIG_MAGIC_LEN)

struct sign_key {
	EVP_PKEY *pkey;
	X509 *cert;
	char *signer;
	char *key_id;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);
DEFINE_TRIVIAL_CLEANUP_FUNC(CMS_ContentInfo *, CMS_ContentInfo_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_STORE_CTX *, OSSL_STORE_close);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_STORE_INFO *, OSSL_STORE_INFO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(UI_METHOD *, UI_destroy_method);
static inline void openssl_freep(void *p)
{
	OPENSSL_free(*(void **) p);
}
#define _cleanup_openssl_free_ _cleanup_(openssl_freep)

/* malloc()ed copy of n bytes, so callers free() what we hand out, never OPENSSL_free().
 */
static void *memdup_malloc(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	if (q && n)
		memcpy(q, p, n);
	return q;
}

static inline void sk_X509_freep(STACK_OF(X509) * *s)
{
	if (*s)
		sk_X509_free(*s);
}

bool sign_hash_supported(const char *hash)
{
	return hash &&
	       (streq(hash, "sha256") || streq(hash, "sha384") || streq(hash, "sha512"));
}

/* "scheme:..." with an RFC 3986 scheme: an OpenSSL store URI rather than a file name. */
bool sign_key_is_uri(const char *s)
{
	size_t n = strspn(
		s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");

	return n > 1 && s[n] == ':' &&
	       ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'));
}

/* PINs and passphrases come from the environment, like sign-file, never from argv. */
static int pin_cb(char *buf, int size, int rwflag, void *userdata)
{
	const char *pin = getenv("KBUILD_SIGN_PIN");
	size_t n;

	if (!pin || size <= 0)
		return -1;
	n = strlen(pin);
	if (n >= (size_t) size)
		return -1;
	memcpy(buf, pin, n + 1);
	return (int) n;
}

static void drain_openssl_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_debug("%s: %s", what, buf);
	}
}

/* Load a private key and/or certificate from an OSSL_STORE URI or a plain file name. */
static int store_load(const char *uri, EVP_PKEY **ret_pkey, X509 **ret_cert)
{
	_cleanup_(UI_destroy_methodp) UI_METHOD *ui = NULL;
	_cleanup_(OSSL_STORE_closep) OSSL_STORE_CTX *store = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;

	if (!sign_key_is_uri(uri) && access(uri, R_OK) < 0)
		return -errno;

	ui = UI_UTIL_wrap_read_pem_callback(pin_cb, 0);
	if (!ui)
		return -ENOMEM;
	store = OSSL_STORE_open(uri, ui, NULL, NULL, NULL);
	if (!store) {
		drain_openssl_errors(uri);
		return -EBADMSG;
	}
	while ((ret_pkey && !pkey) || (ret_cert && !cert)) {
		_cleanup_(OSSL_STORE_INFO_freep) OSSL_STORE_INFO *info = NULL;

		if (OSSL_STORE_eof(store))
			break;
		info = OSSL_STORE_load(store);
		if (!info) {
			if (OSSL_STORE_error(store))
				break;
			continue;
		}
		switch (OSSL_STORE_INFO_get_type(info)) {
		case OSSL_STORE_INFO_PKEY:
			if (ret_pkey && !pkey)
				pkey = OSSL_STORE_INFO_get1_PKEY(info);
			break;
		case OSSL_STORE_INFO_CERT:
			if (ret_cert && !cert)
				cert = OSSL_STORE_INFO_get1_CERT(info);
			break;
		default:
			break;
		}
	}
	drain_openssl_errors(uri);
	if ((ret_pkey && !pkey) || (ret_cert && !cert))
		return -EBADMSG;
	if (ret_pkey)
		*ret_pkey = TAKE_PTR(pkey);
	if (ret_cert)
		*ret_cert = TAKE_PTR(cert);
	return 0;
}

char *sign_hex_colon(const unsigned char *p, size_t n)
{
	char *s = malloc(n ? n * 3 : 1);

	if (!s)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(s + i * 3, 4, "%02X%s", p[i], i + 1 < n ? ":" : "");
	return s;
}

static char *serial_to_string(const ASN1_INTEGER *serial)
{
	_cleanup_free_ unsigned char *der = NULL;
	BIGNUM *bn;
	int n;

	bn = ASN1_INTEGER_to_BN(serial, NULL);
	if (!bn)
		return NULL;
	n = BN_num_bytes(bn);
	der = malloc(n > 0 ? (size_t) n : 1);
	if (!der) {
		BN_free(bn);
		return NULL;
	}
	BN_bn2bin(bn, der);
	BN_free(bn);
	return sign_hex_colon(der, (size_t) n);
}

static char *name_cn(const X509_NAME *name)
{
	char buf[256];

	if (!name ||
	    X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof(buf)) < 0)
		return NULL;
	return strdup(buf);
}

int sign_key_load(const char *key, const char *cert_path, struct sign_key **ret)
{
	_cleanup_(sign_key_freep) struct sign_key *k = NULL;
	int r;

	if (isempty(key))
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;

	if (cert_path) {
		r = store_load(key, &k->pkey, NULL);
		if (r < 0)
			return r;
		r = store_load(cert_path, NULL, &k->cert);
	} else
		r = store_load(key, &k->pkey, &k->cert);
	if (r < 0)
		return r;

	if (X509_check_private_key(k->cert, k->pkey) != 1) {
		drain_openssl_errors("X509_check_private_key");
		return -EKEYREJECTED;
	}
	k->signer = name_cn(X509_get_issuer_name(k->cert));
	k->key_id = serial_to_string(X509_get0_serialNumber(k->cert));
	if (!k->signer)
		k->signer = strdup("");
	if (!k->signer || !k->key_id)
		return -ENOMEM;

	*ret = TAKE_PTR(k);
	return 0;
}

struct sign_key *sign_key_free(struct sign_key *k)
{
	if (!k)
		return NULL;
	EVP_PKEY_free(k->pkey);
	X509_free(k->cert);
	free(k->signer);
	free(k->key_id);
	return mfree(k);
}

int sign_key_export(const struct sign_key *k, char **ret_key_pem, size_t *ret_key_len,
		    void **ret_cert_der, size_t *ret_cert_len)
{
	_cleanup_(BIO_free_allp) BIO *b = NULL;
	_cleanup_free_ char *pem = NULL;
	_cleanup_free_ void *cert_der = NULL;
	_cleanup_openssl_free_ unsigned char *der = NULL;
	char *p;
	long n;
	int der_len;

	b = BIO_new(BIO_s_mem());
	if (!b)
		return -ENOMEM;
	if (PEM_write_bio_PrivateKey(b, k->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		drain_openssl_errors("PEM_write_bio_PrivateKey");
		return -EIO;
	}
	n = BIO_get_mem_data(b, &p);
	if (n <= 0)
		return -EIO;
	pem = malloc((size_t) n + 1);
	if (!pem)
		return -ENOMEM;
	memcpy(pem, p, (size_t) n);
	pem[n] = '\0';
	der_len = i2d_X509(k->cert, &der);
	if (der_len <= 0)
		return -EIO;
	cert_der = memdup_malloc(der, (size_t) der_len);
	if (!cert_der)
		return -ENOMEM;

	*ret_key_pem = TAKE_PTR(pem);
	*ret_key_len = (size_t) n;
	*ret_cert_der = TAKE_PTR(cert_der);
	*ret_cert_len = (size_t) der_len;
	return 0;
}

int sign_cert_load_der(const char *cert_path, void **ret_der, size_t *ret_len)
{
	_cleanup_(X509_freep) X509 *cert = NULL;
	_cleanup_openssl_free_ unsigned char *der = NULL;
	void *copy;
	int r, n;

	r = store_load(cert_path, NULL, &cert);
	if (r < 0)
		return r;
	n = i2d_X509(cert, &der);
	if (n <= 0)
		return -EIO;
	copy = memdup_malloc(der, (size_t) n);
	if (!copy)
		return -ENOMEM;
	*ret_der = copy;
	*ret_len = (size_t) n;
	return 0;
}

const char *sign_key_signer(const struct sign_key *k)
{
	return k->signer;
}

const char *sign_key_id(const struct sign_key *k)
{
	return k->key_id;
}

/* Find the trailer; returns 0 and the length of the module proper, -ENODATA if there is
 * no marker, -EBADMSG if the trailer is inconsistent (as the kernel's mod_check_sig()).
 */
static int parse_trailer(const uint8_t *p, size_t len, size_t *ret_mod_len,
			 size_t *ret_sig_len)
{
	struct module_signature ms;
	size_t sig_len;

	if (len < MODULE_SIG_MAGIC_LEN ||
	    memcmp(p + len - MODULE_SIG_MAGIC_LEN, MODULE_SIG_MAGIC,
		   MODULE_SIG_MAGIC_LEN) != 0)
		return -ENODATA;
	if (len < MODULE_SIG_TRAILER_LEN)
		return -EBADMSG;
	memcpy(&ms, p + len - MODULE_SIG_TRAILER_LEN, sizeof(ms));
	if (ms.id_type != PKEY_ID_PKCS7)
		return -EBADMSG;
	if (ms.algo || ms.hash || ms.signer_len || ms.key_id_len || ms.pad[0] ||
	    ms.pad[1] || ms.pad[2])
		return -EBADMSG;
	sig_len = ntohl(ms.sig_len);
	if (sig_len == 0 || sig_len > len - MODULE_SIG_TRAILER_LEN)
		return -EBADMSG;
	*ret_mod_len = len - MODULE_SIG_TRAILER_LEN - sig_len;
	*ret_sig_len = sig_len;
	return 0;
}

size_t module_unsigned_length(const void *mod, size_t len)
{
	size_t mod_len, sig_len;

	if (parse_trailer(mod, len, &mod_len, &sig_len) < 0)
		return len;
	return mod_len;
}

int sign_data(const struct sign_key *k, const char *hash, const void *data, size_t len,
	      void **ret_der, size_t *ret_len)
{
	_cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
	_cleanup_(BIO_free_allp) BIO *in = NULL;
	_cleanup_openssl_free_ unsigned char *der = NULL;
	const EVP_MD *md;
	void *copy;
	int der_len;

	assert(k);
	if (!sign_hash_supported(hash))
		return -EOPNOTSUPP;
	md = EVP_get_digestbyname(hash);
	if (!md)
		return -EOPNOTSUPP;
	if (len > INT_MAX)
		return -EFBIG;
	in = BIO_new_mem_buf(data, (int) len);
	if (!in)
		return -ENOMEM;

	/* The same calls and flags as scripts/sign-file, so the DER is byte-identical. */
	cms = CMS_sign(NULL, NULL, NULL, NULL,
		       CMS_NOCERTS | CMS_PARTIAL | CMS_BINARY | CMS_DETACHED |
			       CMS_STREAM);
	if (!cms)
		goto fail;
	if (!CMS_add1_signer(cms, k->cert, k->pkey, md,
			     CMS_NOCERTS | CMS_BINARY | CMS_NOSMIMECAP | CMS_NOATTR))
		goto fail;
	if (CMS_final(cms, in, NULL, CMS_NOCERTS | CMS_BINARY) != 1)
		goto fail;
	der_len = i2d_CMS_ContentInfo(cms, &der);
	if (der_len <= 0)
		goto fail;
	copy = memdup_malloc(der, (size_t) der_len);
	if (!copy)
		return -ENOMEM;
	*ret_der = copy;
	*ret_len = (size_t) der_len;
	return 0;

fail:
	drain_openssl_errors("CMS signing");
	return -EKEYREJECTED;
}

int module_sign(const struct sign_key *k, const char *hash, const void *mod, size_t len,
		void **ret, size_t *ret_len)
{
	_cleanup_free_ void *der = NULL;
	_cleanup_free_ uint8_t *out = NULL;
	struct module_signature ms = {.id_type = PKEY_ID_PKCS7};
	size_t mod_len, der_len = 0, out_len;
	int r;

	/* Re-signing replaces: the signature always covers the module without any old
	 * one. */
	mod_len = module_unsigned_length(mod, len);
	r = sign_data(k, hash, mod, mod_len, &der, &der_len);
	if (r < 0)
		return r;

	ms.sig_len = htonl((uint32_t) der_len);
	out_len = mod_len + der_len + MODULE_SIG_TRAILER_LEN;
	out = malloc(out_len);
	if (!out)
		return -ENOMEM;
	memcpy(out, mod, mod_len);
	memcpy(out + mod_len, der, der_len);
	memcpy(out + mod_len + der_len, &ms, sizeof(ms));
	memcpy(out + mod_len + der_len + sizeof(ms), MODULE_SIG_MAGIC,
	       MODULE_SIG_MAGIC_LEN);

	*ret = TAKE_PTR(out);
	*ret_len = out_len;
	return 0;
}

int module_sign_file(const struct sign_key *k, const char *hash, const char *in,
		     const char *out)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_free_ void *signed_data = NULL;
	size_t size, signed_size;
	struct stat st;
	int r;

	if (stat(in, &st) < 0)
		return -errno;
	r = read_full_file_at(AT_FDCWD, in, 1024U * 1024U * 1024U, &data, &size);
	if (r < 0)
		return r;
	r = module_sign(k, hash, data, size, &signed_data, &signed_size);
	if (r < 0)
		return r;
	return write_file_atomic_at(AT_FDCWD, out, signed_data, signed_size,
				    st.st_mode & 07777);
}

void module_signature_info_done(struct module_signature_info *i)
{
	if (!i)
		return;
	i->signer = mfree(i->signer);
	i->key_id = mfree(i->key_id);
	i->hash = mfree(i->hash);
}

/* Signer, key id and digest of the one signer the kernel accepts (no authenticated
 * attributes). */
static int signer_info(CMS_ContentInfo *cms, struct module_signature_info *info)
{
	STACK_OF(CMS_SignerInfo) * sis;
	CMS_SignerInfo *si;
	X509_ALGOR *digest = NULL;
	X509_NAME *issuer = NULL;
	ASN1_INTEGER *serial = NULL;
	ASN1_OCTET_STRING *keyid = NULL;
	const ASN1_OBJECT *obj;
	char buf[80];

	sis = CMS_get0_SignerInfos(cms);
	if (!sis || sk_CMS_SignerInfo_num(sis) != 1)
		return -EBADMSG;
	si = sk_CMS_SignerInfo_value(sis, 0);
	if (CMS_signed_get_attr_count(si) > 0)
		return -EBADMSG;
	if (CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &serial) != 1)
		return -EBADMSG;
	if (issuer && serial) {
		info->signer = name_cn(issuer);
		info->key_id = serial_to_string(serial);
	} else if (keyid) {
		info->signer = strdup("");
		info->key_id = sign_hex_colon(ASN1_STRING_get0_data(keyid),
					      (size_t) ASN1_STRING_length(keyid));
	}
	CMS_SignerInfo_get0_algs(si, NULL, NULL, &digest, NULL);
	if (!digest)
		return -EBADMSG;
	X509_ALGOR_get0(&obj, NULL, NULL, digest);
	if (OBJ_obj2txt(buf, sizeof(buf), obj, 0) <= 0)
		return -EBADMSG;
	info->hash = strdup(buf);
	if (!info->signer || !info->key_id || !info->hash)
		return -ENOMEM;
	return 0;
}

/* Only this certificate may have made the signature; no chain to check, the kernel
 * trusts keys, not chains. */
static int verify_with_cert(CMS_ContentInfo *cms, const void *mod, size_t mod_len,
			    const char *cert_path)
{
	_cleanup_(X509_freep) X509 *cert = NULL;
	_cleanup_(sk_X509_freep) STACK_OF(X509) *certs = NULL;
	_cleanup_(BIO_free_allp) BIO *data = NULL;
	int r;

	r = store_load(cert_path, NULL, &cert);
	if (r < 0)
		return r;
	certs = sk_X509_new_null();
	if (!certs || !sk_X509_push(certs, cert))
		return -ENOMEM;
	data = BIO_new_mem_buf(mod, (int) mod_len);
	if (!data)
		return -ENOMEM;
	if (CMS_verify(cms, certs, NULL, data, NULL,
		       CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
		drain_openssl_errors("CMS_verify");
		return -EKEYREJECTED;
	}
	return 0;
}

int module_verify(const void *mod, size_t len, const char *cert_path,
		  struct module_signature_info *ret)
{
	_cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
	_cleanup_(module_signature_info_done) struct module_signature_info info = {};
	const unsigned char *p;
	size_t mod_len, sig_len;
	int r;

	r = parse_trailer(mod, len, &mod_len, &sig_len);
	if (r < 0)
		return r;
	if (sig_len > LONG_MAX || mod_len > INT_MAX)
		return -EBADMSG;

	p = (const unsigned char *) mod + mod_len;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long) sig_len);
	if (!cms || p != (const unsigned char *) mod + mod_len + sig_len) {
		drain_openssl_errors("CMS parse");
		return -EBADMSG;
	}
	r = signer_info(cms, &info);
	if (r < 0)
		return r;
	if (cert_path) {
		r = verify_with_cert(cms, mod, mod_len, cert_path);
		if (r < 0)
			return r;
	}

	*ret = info;
	info = (struct module_signature_info){};
	return 0;
}
