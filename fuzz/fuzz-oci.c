/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the OCI transport (cache/remote-oci.c) parses from a registry it does not control:
 * any bytes as an image manifest or a token server's JSON answer, and as a WWW-Authenticate
 * header. The first byte picks the parser; the rest is the input.
 */
#include <stdlib.h>

#include "fuzz-util.h"
#include "remote-internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static void json(const uint8_t *data, size_t size)
{
	static const char *const token[] = {"token", NULL};
	struct remote_object o;
	char *v = NULL;
	int r;

	r = oci_json_string((const char *) data, size, token, &v);
	if (r >= 0 && (!v || memchr(data, '\0', size)))
		abort(); /* a document with a NUL is never JSON */
	free(v);
	r = oci_manifest_config((const char *) data, size, &o);
	if (r >= 0 && !sha256_hex_canonical(o.sha256))
		abort();
}

static void challenge(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *text = fuzz_strndup(data, size);
	struct oci_challenge c;

	if (oci_challenge_parse(text, &c) < 0)
		return;
	if (c.bearer && (!c.realm || (!startswith(c.realm, "https://") &&
				      !startswith(c.realm, "http://"))))
		abort(); /* we only ever go to an http(s) realm */
	oci_challenge_done(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 1024 * 1024)
		return -1;
	if (data[0] & 1)
		challenge(data + 1, size - 1);
	else
		json(data + 1, size - 1);
	return 0;
}
