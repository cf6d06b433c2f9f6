/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "shared/macro.h"

/*
 * Module signatures, byte-compatible with the kernel's scripts/sign-file (default mode):
 * the module, a detached DER CMS SignedData (no certificates, no signed attributes,
 * signer by issuer and serial, CMS_BINARY), the 12-byte struct module_signature (id_type
 * 2, big-endian sig_len) and the 28-byte marker "~Module signature appended~\n".
 * In-process, OpenSSL 3.
 */

#define MODULE_SIG_MAGIC "~Module signature appended~\n"
#define MODULE_SIG_MAGIC_LEN 28
#define MODULE_SIG_INFO_LEN 12

struct sign_key;

/* key: a PEM/DER private key file, or an OpenSSL store URI ("pkcs11:...", "file:..."),
 * loaded with OSSL_STORE_open(); a PIN or passphrase comes from $KBUILD_SIGN_PIN.
 * cert_path: an X.509 certificate file (DER or PEM) or store URI; NULL takes the
 * certificate from the key's store. Fails with -EKEYREJECTED when the key does not belong
 * to the certificate, -ENOENT when a file is missing, -EBADMSG when it cannot be parsed.
 */
int sign_key_load(const char *key, const char *cert_path, struct sign_key **ret);
struct sign_key *sign_key_free(struct sign_key *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct sign_key *, sign_key_free);
/* The commonName of the certificate's issuer, as modinfo shows it as "signer". */
const char *sign_key_signer(const struct sign_key *k);
/* The certificate serial as "AA:BB:...", as modinfo shows it as "sig_key". */
const char *sign_key_id(const struct sign_key *k);

/* True if s looks like "scheme:..." (an OpenSSL store URI) rather than a file name. */
bool sign_key_is_uri(const char *s);
/* The private key as unencrypted PKCS#8 PEM and the certificate as DER, both malloc()ed
 * (for adopting a key pair). */
int sign_key_export(const struct sign_key *k, char **ret_key_pem, size_t *ret_key_len,
		    void **ret_cert_der, size_t *ret_cert_len);
/* Load a certificate (DER, PEM or store URI) and return it as DER. */
int sign_cert_load_der(const char *cert_path, void **ret_der, size_t *ret_len);

/* True for "sha256", "sha384", "sha512" (the hashes dm2 signs with; sha1 is refused). */
bool sign_hash_supported(const char *hash);

/* Bytes as upper-case hex pairs joined by ':' ("0A:1B"), as modinfo shows key ids and
 * openssl serials; NULL on allocation failure. */
char *sign_hex_colon(const unsigned char *p, size_t n);

/* Length of the module without any appended signature (the whole length if unsigned). */
size_t module_unsigned_length(const void *mod, size_t len);

/* A detached CMS SignedData (DER) over data, exactly as module_sign() makes it: no
 * certificates, no attributes, signer by issuer and serial. *ret_der is malloc()ed. */
int sign_data(const struct sign_key *k, const char *hash, const void *data, size_t len,
	      void **ret_der, size_t *ret_len);
/* Sign mod (an old signature is stripped first, never stacked). hash: "sha256", "sha384"
 * or "sha512" (-EOPNOTSUPP otherwise). *ret is malloc()ed. */
int module_sign(const struct sign_key *k, const char *hash, const void *mod, size_t len,
		void **ret, size_t *ret_len);
/* Sign the file in and write the result atomically to out (which may equal in); the mode
 * of in is kept. */
int module_sign_file(const struct sign_key *k, const char *hash, const char *in,
		     const char *out);

struct module_signature_info {
	char *signer; /* issuer CN */
	char *key_id; /* serial, "AA:BB:..." */
	char *hash;   /* "sha256", ... */
};

/* Parse the signature trailer and, if cert_path is given, check the CMS signature over
 * the module bytes against that certificate. Errors: -ENODATA unsigned (no marker),
 * -EBADMSG malformed or truncated trailer/blob, -EKEYREJECTED signature does not verify
 * with cert (tampered module or another key), -ENOENT/-EBADMSG for an unreadable
 * certificate. */
int module_verify(const void *mod, size_t len, const char *cert_path,
		  struct module_signature_info *ret);
void module_signature_info_done(struct module_signature_info *i);
