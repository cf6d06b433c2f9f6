/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Compressed modules (.ko.xz, .ko.zst, .ko.gz): any bytes through each of dm2's
 * decompressors (pipeline/compress.c, as dm2 verify uses them), the output compressed and
 * decompressed again (it must come back equal) and its signature trailer parsed. What
 * modinfo makes of a module's bytes is fuzz-modinfo's.
 */
#include <stdlib.h>

#include "fuzz-util.h"
#include "pipeline/compress.h"
#include "pipeline/sign.h"
#include "shared/util.h"

static const enum kbw_compression formats[] = {
	KBW_COMPRESSION_GZIP,
	KBW_COMPRESSION_XZ,
	KBW_COMPRESSION_ZSTD,
};

static void round_trip(enum kbw_compression c, const uint8_t *data, size_t size)
{
	_cleanup_free_ void *plain = NULL, *packed = NULL, *again = NULL;
	struct module_signature_info info = {};
	size_t n, packed_n, again_n;

	if (module_decompress(c, data, size, &plain, &n) < 0)
		return;
	if (module_verify(plain, n, NULL, &info) >= 0)
		module_signature_info_done(&info);
	if (module_compress(c, plain, n, &packed, &packed_n) < 0 ||
	    module_decompress(c, packed, packed_n, &again, &again_n) < 0 ||
	    again_n != n || (n > 0 && memcmp(plain, again, n) != 0))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1024 * 1024)
		return -1;
	for (size_t i = 0; i < ELEMENTSOF(formats); i++)
		round_trip(formats[i], data, size);

	return 0;
}
