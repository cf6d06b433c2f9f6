/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Module signatures (pipeline/sign.c): any bytes as a .ko that may carry a signature
 * trailer. The trailer is parsed, the CMS blob verified against fuzz/sign-cert.der (the
 * certificate the signed seeds were made with), and the input signed with a key made at
 * start, which must then verify and strip back to the same module length.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz-util.h"
#include "pipeline/sign.h"
#include "shared/util.h"

#define SEED_CERT DM2_CMAKE_SOURCE_DIR "/fuzz/sign-cert.der"

static struct sign_key *key;
static char *own_cert;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	_cleanup_free_ char *pem = fuzz_path("key.pem"), *cmd = NULL;

	fuzz_quiet_log();
	own_cert = fuzz_path("cert.der");
	/* P-256: signing every input must stay cheap. */
	if (asprintf(&cmd,
		     "openssl req -new -x509 -nodes -days 3650 -subj '/CN=dm2 fuzz' "
		     "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout '%s' "
		     "-outform DER -out '%s' >/dev/null 2>&1",
		     pem, own_cert) < 0 ||
	    system(cmd) != 0 || sign_key_load(pem, own_cert, &key) < 0) {
		fprintf(stderr, "fuzz-sign: cannot make a signing key with openssl\n");
		abort();
	}
	return 0;
}

static void verify(const uint8_t *data, size_t size, const char *cert)
{
	struct module_signature_info info = {};

	if (module_verify(data, size, cert, &info) >= 0 &&
	    (!info.signer || !info.key_id || !info.hash))
		abort();
	module_signature_info_done(&info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ void *signed_mod = NULL;
	struct module_signature_info info = {};
	size_t n = module_unsigned_length(data, size), signed_size;

	if (size > 4 * 1024 * 1024)
		return -1;
	if (n > size)
		abort();
	verify(data, size, NULL);
	verify(data, size, SEED_CERT);

	/* Re-signing replaces any signature: the result verifies with our certificate and
	 * covers exactly the module without the old trailer. Loading the certificate for
	 * every input made the target 1.6 times slower: the full check runs for one
	 * in 16. */
	if (module_sign(key, "sha256", data, size, &signed_mod, &signed_size) < 0)
		abort();
	if (module_verify(signed_mod, signed_size, size % 16 == 0 ? own_cert : NULL,
			  &info) < 0 ||
	    module_unsigned_length(signed_mod, signed_size) != n ||
	    (n > 0 && memcmp(signed_mod, data, n) != 0))
		abort();
	module_signature_info_done(&info);
	return 0;
}
