/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "libkbuild-wrap.h"
#include "shared/macro.h"

/*
 * Module compression as the kernel's modules_install does it, applied after signing:
 * xz with CRC32 check and a 1 MiB LZMA2 dictionary (preset 6), zstd level 3 without long
 * windows, gzip with a plain 10-byte header (no name, mtime 0). *ret is malloc()ed.
 * KBW_COMPRESSION_NONE copies.
 */
int module_compress(enum kbw_compression c, const void *in, size_t len, void **ret,
		    size_t *ret_len);
/* Decompress; -EBADMSG for corrupt input, -EFBIG above 1 GiB of output. */
int module_decompress(enum kbw_compression c, const void *in, size_t len, void **ret,
		      size_t *ret_len);
/* Compression named by a file name's suffix (.gz/.xz/.zst; anything else: NONE). */
enum kbw_compression compression_from_filename(const char *path);
