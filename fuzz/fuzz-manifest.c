/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The remote cache's manifest parser (cache/remote.c): any bytes as the body of a GET of
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
	struct cache_manifest_file *files = NULL;
	char *text, *reason = NULL;
	size_t n = 0;
	int r;

	if (size > 1024 * 1024)
		return -1;
	text = fuzz_strndup(data,
			    size); /* as write_mem() hands it over: NUL-terminated */
	r = cache_manifest_parse(text, KEY, "http://127.0.0.1/v1/" KEY "/manifest",
				 &files, &n, &reason);
	if (r >= 0) {
		if (n == 0 || reason)
			abort();
		for (size_t i = 0; i < n; i++)
			if (!sha256_hex_valid(files[i].sha256) ||
			    !cache_name_valid(files[i].name))
				abort();
	} else if (r != -ENOMEM && !reason)
		abort(); /* a refused manifest always says why */
	cache_manifest_free(files, n);
	free(reason);
	free(text);
	return 0;
}
