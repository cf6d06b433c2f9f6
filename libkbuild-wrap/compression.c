/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>

#include "libkbuild-wrap.h"
#include "kbw-internal.h"

static const char *const names[_KBW_COMPRESSION_MAX] = {
	[KBW_COMPRESSION_NONE] = "none",
	[KBW_COMPRESSION_GZIP] = "gzip",
	[KBW_COMPRESSION_XZ] = "xz",
	[KBW_COMPRESSION_ZSTD] = "zstd",
};

static const char *const suffixes[_KBW_COMPRESSION_MAX] = {
	[KBW_COMPRESSION_NONE] = "",
	[KBW_COMPRESSION_GZIP] = ".gz",
	[KBW_COMPRESSION_XZ] = ".xz",
	[KBW_COMPRESSION_ZSTD] = ".zst",
};

KBW_EXPORT const char *kbw_compression_to_string(enum kbw_compression c)
{
	if (c < 0 || c >= _KBW_COMPRESSION_MAX)
		return NULL;
	return names[c];
}

KBW_EXPORT const char *kbw_compression_suffix(enum kbw_compression c)
{
	if (c < 0 || c >= _KBW_COMPRESSION_MAX)
		return NULL;
	return suffixes[c];
}
