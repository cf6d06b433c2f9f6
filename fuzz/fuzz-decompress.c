/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Compressed modules (.ko.xz, .ko.zst, .ko.gz): any bytes through each of dm2's
 * decompressors (pipeline/compress.c, as dm2 verify uses them), the output compressed and
 * decompressed again (it must come back equal) and its signature trailer parsed; and the
 * bytes as a module file named by their magic, read by libkbuild-wrap's modinfo (libkmod
 * decompresses and parses the ELF).
 */
#include <stdlib.h>

#include "fuzz-util.h"
#include "libkbuild-wrap.h"
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

/* The suffix the kernel's modules_install would give these bytes. */
static const char *suffix_of(const uint8_t *d, size_t n)
{
	if (n >= 6 && memcmp(d,
			     "\xfd"
			     "7zXZ\0",
			     6) == 0)
		return kbw_compression_suffix(KBW_COMPRESSION_XZ);
	if (n >= 4 && memcmp(d, "\x28\xb5\x2f\xfd", 4) == 0)
		return kbw_compression_suffix(KBW_COMPRESSION_ZSTD);
	if (n >= 2 && memcmp(d, "\x1f\x8b", 2) == 0)
		return kbw_compression_suffix(KBW_COMPRESSION_GZIP);
	return kbw_compression_suffix(KBW_COMPRESSION_NONE);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *name = NULL, *path = NULL, *vermagic = NULL;

	if (size > 1024 * 1024)
		return -1;
	for (size_t i = 0; i < ELEMENTSOF(formats); i++)
		round_trip(formats[i], data, size);

	name = strjoin("fuzz.ko", suffix_of(data, size));
	if (!name)
		abort();
	path = fuzz_path(name);
	fuzz_write_file(path, data, size);
	if (compression_from_filename(path) == _KBW_COMPRESSION_INVALID)
		abort();
	(void) kbw_module_vermagic(path, &vermagic);
	(void) unlink(path);
	return 0;
}
