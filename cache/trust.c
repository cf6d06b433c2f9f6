/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may publish into the cache. A manifest's last line is
 *   "signature " base64(DER CMS SignedData, detached, over every byte before this line)
 * made by the pushing builder's key, with no certificates in it: the signer is named by
 * issuer and serial, and only a certificate the puller already trusts may have made it
 * (no chains: like the kernel, dm2 trusts keys, not CAs). A manifest is believed only if
 * that signature verifies and the signed body is the one for the key (and kernel) asked
 * for; a valid signature over another entry's manifest is a replay and refused too.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cache-internal.h"
#include "shared/fs-util.h"

#define SIGNATURE_PREFIX "signature "
#define TRUST_MAX_CERTS 1000U

struct cache_trust {
	STACK_OF(X509) * certs;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);
DEFINE_TRIVIAL_CLEANUP_FUNC(CMS_ContentInfo *, CMS_ContentInfo_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
static inline void sk_X509_freep(STACK_OF(X509) * *s)
{
	if (*s)
		sk_X509_free(*s);
}

void cache_set_reason(char **reason, const char *fmt, ...)
{
	va_list ap;

	if (!reason || *reason)
		return;
	va_start(ap, fmt);
	if (vasprintf(reason, fmt, ap) < 0)
		*reason = NULL;
	va_end(ap);
}

int cache_trust_new(struct cache_trust **ret)
{
	struct cache_trust *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->certs = sk_X509_new_null();
	if (!t->certs) {
		free(t);
		return -ENOMEM;
	}
	*ret = t;
	return 0;
}

struct cache_trust *cache_trust_free(struct cache_trust *t)
{
	if (!t)
		return NULL;
	sk_X509_pop_free(t->certs, X509_free);
	return mfree(t);
}

size_t cache_trust_count(const struct cache_trust *t)
{
	return t ? (size_t) sk_X509_num(t->certs) : 0;
}

int cache_trust_add_file(struct cache_trust *t, const char *path, char **reason)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_(BIO_free_allp) BIO *b = NULL;
	size_t len = 0;
	unsigned n = 0;
	int r;

	r = read_full_file_at(AT_FDCWD, path, 1024U * 1024U, &text, &len);
	if (r < 0) {
		cache_set_reason(reason, "Cannot read trusted certificate file '%s': %s", path,
				 strerror(-r));
		return r;
	}
	b = BIO_new_mem_buf(text, (int) len);
	if (!b)
		return -ENOMEM;
	for (;;) {
		X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

		if (!x)
			break;
		if (cache_trust_count(t) >= TRUST_MAX_CERTS || !sk_X509_push(t->certs, x)) {
			X509_free(x);
			return -ENOMEM;
		}
		n++;
	}
	ERR_clear_error(); /* the end of the file reads as an error */
	if (n == 0) {
		cache_set_reason(reason, "Trusted certificate file '%s' holds no PEM certificate",
				 path);
		return -EBADMSG;
	}
	return 0;
}

int cache_manifest_sign(char **text, size_t *len, const struct cache_remote_options *o,
			char **reason)
{
	_cleanup_free_ void *der = NULL;
	_cleanup_free_ char *b64 = NULL;
	size_t der_len = 0;
	char *m;
	int r, n;

	if (!o || !o->sign) {
		cache_set_reason(reason, "No signing key: refusing to publish an unsigned entry");
		return -ENOKEY;
	}
	r = o->sign(*text, *len, &der, &der_len, o->sign_userdata);
	if (r < 0) {
		cache_set_reason(reason, "Signing the manifest failed: %s", strerror(-r));
		return r;
	}
	if (der_len == 0 || der_len > INT_MAX / 2)
		return -EBADMSG;
	b64 = malloc((der_len + 2) / 3 * 4 + 1);
	if (!b64)
		return -ENOMEM;
	n = EVP_EncodeBlock((unsigned char *) b64, der, (int) der_len);
	m = realloc(*text, *len + strlen(SIGNATURE_PREFIX) + (size_t) n + 2);
	if (!m)
		return -ENOMEM;
	*text = m;
	*len += (size_t) snprintf(m + *len, strlen(SIGNATURE_PREFIX) + (size_t) n + 2,
				  SIGNATURE_PREFIX "%s\n", b64);
	return 0;
}

/* Split off the last line, which must be the signature, and decode it. -ENODATA: none. */
static int split_signature(char *text, size_t len, size_t *ret_body_len, void **ret_der,
			   size_t *ret_der_len)
{
	_cleanup_free_ unsigned char *der = NULL;
	char *line, *b64;
	size_t b64_len, pad = 0;
	int n;

	if (len == 0 || text[len - 1] != '\n' || strlen(text) != len)
		return -ENODATA;
	text[len - 1] = '\0';
	line = strrchr(text, '\n');
	line = line ? line + 1 : text;
	b64 = startswith(line, SIGNATURE_PREFIX);
	if (!b64)
		return -ENODATA;
	b64_len = strlen(b64);
	if (b64_len == 0 || b64_len % 4 != 0 || b64_len > INT_MAX ||
	    strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
		    b64_len)
		return -EBADMSG;
	while (pad < 2 && b64[b64_len - 1 - pad] == '=')
		pad++;
	der = malloc(b64_len / 4 * 3);
	if (!der)
		return -ENOMEM;
	n = EVP_DecodeBlock(der, (unsigned char *) b64, (int) b64_len);
	if (n < 0 || (size_t) n < pad)
		return -EBADMSG;
	*line = '\0'; /* the body ends at the newline before the signature line */
	*ret_body_len = (size_t) (line - text);
	*ret_der = TAKE_PTR(der);
	*ret_der_len = (size_t) n - pad;
	return 0;
}

/* "CN=... serial AA:BB" of the signer of si, for messages. */
static char *signer_text(CMS_SignerInfo *si)
{
	ASN1_OCTET_STRING *keyid = NULL;
	X509_NAME *issuer = NULL;
	ASN1_INTEGER *serial = NULL;
	char cn[128] = "?";
	BIGNUM *bn;
	char *hex, *s;

	if (CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &serial) != 1 || !serial)
		return strdup("a signer named by key id");
	if (issuer)
		(void) X509_NAME_get_text_by_NID(issuer, NID_commonName, cn, sizeof(cn));
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	BN_free(bn);
	s = strdup_printf("'%s' (serial %s)", cn, hex ?: "?");
	OPENSSL_free(hex);
	return s;
}

/* The signature's one signer must be a trusted certificate and must have signed body. */
static int verify_signature(const struct cache_trust *t, const void *der, size_t der_len,
			    const char *body, size_t body_len, const char *url,
			    enum cache_refusal *ret_why, char **reason)
{
	_cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
	_cleanup_(sk_X509_freep) STACK_OF(X509) *one = NULL;
	_cleanup_(BIO_free_allp) BIO *data = NULL;
	_cleanup_free_ char *who = NULL;
	STACK_OF(CMS_SignerInfo) * sis;
	const unsigned char *p = der;
	X509 *cert = NULL;

	cms = d2i_CMS_ContentInfo(NULL, &p, (long) der_len);
	sis = cms ? CMS_get0_SignerInfos(cms) : NULL;
	if (!cms || p != (const unsigned char *) der + der_len || !sis ||
	    sk_CMS_SignerInfo_num(sis) != 1) {
		ERR_clear_error();
		*ret_why = CACHE_REFUSAL_BAD_SIGNATURE;
		cache_set_reason(reason, "Manifest '%s' has a malformed signature, refusing it",
				 url);
		return -EKEYREJECTED;
	}
	for (int i = 0; t && i < sk_X509_num(t->certs) && !cert; i++)
		if (CMS_SignerInfo_cert_cmp(sk_CMS_SignerInfo_value(sis, 0),
					    sk_X509_value(t->certs, i)) == 0)
			cert = sk_X509_value(t->certs, i);
	who = signer_text(sk_CMS_SignerInfo_value(sis, 0));
	if (!cert) {
		*ret_why = CACHE_REFUSAL_UNKNOWN_SIGNER;
		cache_set_reason(reason,
				 "Manifest '%s' is signed by %s, which is not a trusted key; "
				 "refusing it",
				 url, strna(who));
		return -EKEYREJECTED;
	}
	one = sk_X509_new_null();
	data = BIO_new_mem_buf(body, (int) body_len);
	if (!one || !data || !sk_X509_push(one, cert))
		return -ENOMEM;
	if (CMS_verify(cms, one, NULL, data, NULL,
		       CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
		ERR_clear_error();
		*ret_why = CACHE_REFUSAL_BAD_SIGNATURE;
		cache_set_reason(reason,
				 "Manifest '%s' does not match its signature by %s (altered "
				 "after signing); refusing it",
				 url, strna(who));
		return -EKEYREJECTED;
	}
	return 0;
}

/* A valid signature over some entry's manifest proves nothing about this key. */
static int check_replay(const struct cache_manifest *m, const char *key,
			const char *identity, const char *url, enum cache_refusal *ret_why,
			char **reason)
{
	if (!streq(m->key, key)) {
		*ret_why = CACHE_REFUSAL_REPLAY;
		cache_set_reason(reason,
				 "Manifest '%s' is signed for key %s, not %s (replayed); "
				 "refusing it",
				 url, m->key, key);
		return -EKEYREJECTED;
	}
	if (identity && !streq(m->kernel_identity, identity)) {
		*ret_why = CACHE_REFUSAL_REPLAY;
		cache_set_reason(reason,
				 "Manifest '%s' is for kernel '%s' with identity %s, not this "
				 "kernel's %s (replayed); refusing it",
				 url, m->kernel_release, m->kernel_identity, identity);
		return -EKEYREJECTED;
	}
	return 0;
}

int cache_manifest_accept(char *text, size_t len, const char *key,
			  const struct cache_remote_options *o, const char *url,
			  struct cache_manifest *ret, enum cache_refusal *ret_why,
			  char **reason)
{
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	_cleanup_free_ void *der = NULL;
	size_t body_len = 0, der_len = 0;
	int r;

	r = split_signature(text, len, &body_len, &der, &der_len);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		*ret_why = r == -ENODATA ? CACHE_REFUSAL_UNSIGNED : CACHE_REFUSAL_BAD_SIGNATURE;
		cache_set_reason(reason,
				 r == -ENODATA ? "Manifest '%s' is not signed, refusing it"
					       : "Manifest '%s' has a malformed signature line, "
						 "refusing it",
				 url);
		return -EKEYREJECTED;
	}
	r = verify_signature(o ? o->trust : NULL, der, der_len, text, body_len, url, ret_why,
			     reason);
	if (r < 0)
		return r;
	r = cache_manifest_parse(text, url, &m, reason);
	if (r == -EBADMSG)
		*ret_why = CACHE_REFUSAL_MALFORMED;
	if (r >= 0)
		r = check_replay(&m, key, o ? o->expect_identity : NULL, url, ret_why, reason);
	if (r < 0)
		return r;
	*ret = m;
	m = (struct cache_manifest){};
	return 0;
}

int cache_object_check(const struct cache_manifest_file *f, const char *hex, uint64_t size,
		       const char *where, enum cache_refusal *ret_why, char **reason)
{
	if (size < f->size) {
		*ret_why = CACHE_REFUSAL_TRUNCATED;
		cache_set_reason(reason,
				 "Object '%s' is truncated: %" PRIu64 " of %" PRIu64
				 " bytes; refusing it",
				 where, size, f->size);
		return -EBADMSG;
	}
	if (size != f->size || !streq(hex, f->sha256)) {
		*ret_why = CACHE_REFUSAL_OBJECT_MISMATCH;
		cache_set_reason(reason,
				 "Object '%s' has sha256 %s and %" PRIu64 " bytes, expected %" PRIu64
				 " bytes; refusing the tampered object",
				 where, hex, size, f->size);
		return -EBADMSG;
	}
	return 0;
}
