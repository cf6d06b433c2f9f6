/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "core/context.h"
#include "shared/macro.h"

/* dm2's module signing key: ROOT/var/lib/dm2/keys/{signing_key.pem,signing_key.x509}. */
#define DM2_KEY_FILE DM2_KEY_DIR "/signing_key.pem"
#define DM2_CERT_FILE DM2_KEY_DIR "/signing_key.x509"
#define DM2_DKMS_KEY_FILE DM2_DKMS_TREE "/mok.key"
#define DM2_DKMS_CERT_FILE DM2_DKMS_TREE "/mok.pub"

/*
 * The key and certificate to sign with, for sign_key_load(): [Signing] Key=/Certificate=
 * from the configuration if set (paths are resolved under the root; store URIs such as
 * "pkcs11:..." are returned as they are), else dm2's own pair, generated on first use
 * (RSA-2048, self-signed X.509 v3 valid for 100 years, codeSigning + module-signing EKU;
 * key 0600 in a 0700 directory). Both strings are malloc()ed; *ret_cert may be NULL for a
 * URI key whose store holds the certificate.
 */
int keys_ensure(struct dm2_context *ctx, char **ret_key, char **ret_cert);
/* Generate dm2's own pair now. -EEXIST if one exists and replace is false. */
int keys_generate(struct dm2_context *ctx, bool replace);
/* Adopt DKMS' ROOT/var/lib/dkms/mok.key + mok.pub as dm2's own key (copied, after
 * checking the key matches the certificate) so nothing is enrolled again. -ENOENT if DKMS
 * has no key, -EKEYREJECTED if they do not match, -EEXIST if dm2 already has a different
 * key. Adopting the same key twice is fine. */
int keys_adopt_dkms(struct dm2_context *ctx);

struct key_info {
	char *subject; /* one line, "CN=..." */
	char *issuer;
	char *serial;	   /* "AA:BB:..." */
	char *fingerprint; /* SHA-256 of the DER certificate, "AA:BB:..." */
	char *not_before;  /* "YYYY-MM-DD HH:MM:SS UTC" */
	char *not_after;
	unsigned bits;
	char *key_type; /* "RSA", ... */
};
/* Describe a certificate file (DER or PEM). */
int key_info_from_cert(const char *cert_path, struct key_info *ret);
void key_info_done(struct key_info *i);
