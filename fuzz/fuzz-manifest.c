/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The remote cache's manifest parser (cache/remote.c) and its acceptance (cache/trust.c:
 * the signature line, base64, CMS): any bytes as the body of a GET of
 * BASE/v1/KEY/manifest, which comes from a server dm2 does not control.
 */
#include <stdlib.h>

#include "cache-internal.h"
#include "fuzz-util.h"

#define KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cache_trust *trust;
	struct cache_manifest m = {};
	enum cache_refusal why = _CACHE_REFUSAL_INVALID;
	char *text, *reason = NULL;
	int r;

	if (!trust && cache_trust_new(&trust) < 0)
		abort();

	if (size > 1024 * 1024)
		return -1;
	text = fuzz_strndup(data,
			    size); /* as write_mem() hands it over: NUL-terminated */
	r = cache_manifest_parse(text, "http://127.0.0.1/v1/" KEY "/manifest", &m, &reason);
	if (r >= 0) {
		if (m.n_files == 0 || reason || !cache_key_valid(m.key))
			abort();
		for (size_t i = 0; i < m.n_files; i++)
			if (!sha256_hex_valid(m.files[i].sha256) ||
			    !cache_name_valid(m.files[i].name))
				abort();
	} else if (r != -ENOMEM && !reason)
		abort(); /* a refused manifest always says why */
	cache_manifest_done(&m);
	reason = mfree(reason);
	free(text);

	/* Nobody is trusted here, so acceptance must refuse, always with a reason. */
	text = fuzz_strndup(data, size);
	r = cache_manifest_accept(text, strlen(text), KEY,
				  &(struct cache_remote_options){.trust = trust}, "fuzz", &m,
				  &why, &reason);
	if (r >= 0 || (r != -ENOMEM && (!reason || why < 0 || why >= _CACHE_REFUSAL_MAX)))
		abort();
	free(reason);
	free(text);
	return 0;
}
