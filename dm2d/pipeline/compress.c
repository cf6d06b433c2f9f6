/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "pipeline/compress.h"
#include "shared/util.h"

/* Decompressed modules are a few MiB; refuse anything absurd instead of filling memory.
 */
#define DECOMPRESS_MAX (1024ULL * 1024ULL * 1024ULL)

enum kbw_compression compression_from_filename(const char *path)
{
	if (endswith(path, ".gz"))
		return KBW_COMPRESSION_GZIP;
	if (endswith(path, ".xz"))
		return KBW_COMPRESSION_XZ;
	if (endswith(path, ".zst"))
		return KBW_COMPRESSION_ZSTD;
	return KBW_COMPRESSION_NONE;
}

static int copy_buffer(const void *in, size_t len, void **ret, size_t *ret_len)
{
	void *p = malloc(len ? len : 1);

	if (!p)
		return -ENOMEM;
	if (len)
		memcpy(p, in, len);
	*ret = p;
	*ret_len = len;
	return 0;
}

/* Grow *buf so that at least 'want' more bytes fit after *used. */
static int grow(uint8_t **buf, size_t *size, size_t used, size_t want)
{
	size_t n;
	uint8_t *p;

	if (*size - used >= want)
		return 0;
	if (*size >= DECOMPRESS_MAX)
		return -EFBIG;
	/* Never past the limit, so that it is the same for any input size and growth. */
	n = MIN(MAX(*size * 2, used + want), (size_t) DECOMPRESS_MAX);
	p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*size = n;
	return 0;
}

static int xz_compress(const void *in, size_t len, void **ret, size_t *ret_len)
{
	lzma_options_lzma opt;
	lzma_filter filters[2];
	_cleanup_free_ uint8_t *out = NULL;
	size_t out_size, pos = 0;

	/* As scripts/Makefile.modinst: xz --check=crc32 --lzma2=dict=1MiB (XZ Embedded in
	 * the kernel handles neither CRC64 nor larger dictionaries). */
	if (lzma_lzma_preset(&opt, LZMA_PRESET_DEFAULT))
		return -EINVAL;
	opt.dict_size = 1U << 20;
	filters[0] = (lzma_filter){.id = LZMA_FILTER_LZMA2, .options = &opt};
	filters[1] = (lzma_filter){.id = LZMA_VLI_UNKNOWN};

	out_size = lzma_stream_buffer_bound(len);
	if (out_size == 0)
		return -EFBIG;
	out = malloc(out_size);
	if (!out)
		return -ENOMEM;
	if (lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, NULL, in, len, out, &pos,
				      out_size) != LZMA_OK)
		return -EIO;
	*ret = TAKE_PTR(out);
	*ret_len = pos;
	return 0;
}

static int xz_decompress(const void *in, size_t len, void **ret, size_t *ret_len)
{
	lzma_stream s = LZMA_STREAM_INIT;
	_cleanup_free_ uint8_t *out = NULL;
	size_t size = 0, used = 0;
	lzma_ret lr;
	int r = 0;

	if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK)
		return -ENOMEM;
	s.next_in = in;
	s.avail_in = len;
	for (;;) {
		r = grow(&out, &size, used, MAX(len * 2, (size_t) 65536));
		if (r < 0)
			break;
		s.next_out = out + used;
		s.avail_out = size - used;
		lr = lzma_code(&s, LZMA_FINISH);
		used = size - s.avail_out;
		if (lr == LZMA_STREAM_END)
			break;
		if (lr != LZMA_OK) {
			r = lr == LZMA_MEM_ERROR ? -ENOMEM : -EBADMSG;
			break;
		}
		if (s.avail_in == 0 && s.avail_out > 0) {
			r = -EBADMSG; /* truncated */
			break;
		}
	}
	lzma_end(&s);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(out);
	*ret_len = used;
	return 0;
}

static int zstd_compress(const void *in, size_t len, void **ret, size_t *ret_len)
{
	_cleanup_free_ uint8_t *out = NULL;
	size_t bound = ZSTD_compressBound(len), n;

	out = malloc(bound);
	if (!out)
		return -ENOMEM;
	/* zstd's default level, no long-distance window: the kernel's decompressor has a
	 * bounded window. */
	n = ZSTD_compress(out, bound, in, len, 3);
	if (ZSTD_isError(n))
		return -EIO;
	*ret = TAKE_PTR(out);
	*ret_len = n;
	return 0;
}

static int zstd_decompress(const void *in, size_t len, void **ret, size_t *ret_len)
{
	ZSTD_DStream *ds;
	ZSTD_inBuffer ib = {.src = in, .size = len};
	_cleanup_free_ uint8_t *out = NULL;
	size_t size = 0, used = 0, n = 1;
	int r = 0;

	ds = ZSTD_createDStream();
	if (!ds)
		return -ENOMEM;
	for (;;) {
		ZSTD_outBuffer ob;

		r = grow(&out, &size, used, MAX(len * 2, ZSTD_DStreamOutSize()));
		if (r < 0)
			break;
		ob = (ZSTD_outBuffer){.dst = out + used, .size = size - used};
		n = ZSTD_decompressStream(ds, &ob, &ib);
		used += ob.pos;
		if (ZSTD_isError(n)) {
			r = -EBADMSG;
			break;
		}
		if (n == 0 && ib.pos == ib.size)
			break;
		if (ib.pos == ib.size && ob.pos < ob.size) {
			r = -EBADMSG; /* truncated frame */
			break;
		}
	}
	ZSTD_freeDStream(ds);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(out);
	*ret_len = used;
	return 0;
}

static int gzip_compress(const void *in, size_t len, void **ret, size_t *ret_len)
{
	z_stream s = {};
	_cleanup_free_ uint8_t *out = NULL;
	uLong bound, n;
	int zr;

	if (len > UINT_MAX)
		return -EFBIG;
	/* windowBits 15 + 16: a gzip wrapper; without deflateSetHeader() zlib writes the
	 * plain 10-byte header (no name, mtime 0), which is what gzip -n does and all the
	 * kernel's decompressor can parse. */
	if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&s, (uLong) len);
	out = malloc(bound);
	if (!out) {
		deflateEnd(&s);
		return -ENOMEM;
	}
	s.next_in = (Bytef *) in;
	s.avail_in = (uInt) len;
	s.next_out = out;
	s.avail_out = (uInt) bound;
	zr = deflate(&s, Z_FINISH);
	n = s.total_out;
	deflateEnd(&s);
	if (zr != Z_STREAM_END)
		return -EIO;
	*ret = TAKE_PTR(out);
	*ret_len = n;
	return 0;
}

static int gzip_decompress(const void *in, size_t len, void **ret, size_t *ret_len)
{
	z_stream s = {};
	_cleanup_free_ uint8_t *out = NULL;
	size_t size = 0, used = 0;
	int zr, r = 0;

	if (len > UINT_MAX)
		return -EFBIG;
	if (inflateInit2(&s, 15 + 16) != Z_OK)
		return -ENOMEM;
	s.next_in = (Bytef *) in;
	s.avail_in = (uInt) len;
	for (;;) {
		r = grow(&out, &size, used, MAX(len * 3, (size_t) 65536));
		if (r < 0)
			break;
		s.next_out = out + used;
		s.avail_out = (uInt) MIN(size - used, (size_t) UINT_MAX);
		zr = inflate(&s, Z_NO_FLUSH);
		used = s.total_out;
		if (zr == Z_STREAM_END)
			break;
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			r = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
			break;
		}
		if (s.avail_in == 0 && s.avail_out > 0) {
			r = -EBADMSG; /* truncated */
			break;
		}
	}
	inflateEnd(&s);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(out);
	*ret_len = used;
	return 0;
}

int module_compress(enum kbw_compression c, const void *in, size_t len, void **ret,
		    size_t *ret_len)
{
	switch (c) {
	case KBW_COMPRESSION_NONE:
		return copy_buffer(in, len, ret, ret_len);
	case KBW_COMPRESSION_GZIP:
		return gzip_compress(in, len, ret, ret_len);
	case KBW_COMPRESSION_XZ:
		return xz_compress(in, len, ret, ret_len);
	case KBW_COMPRESSION_ZSTD:
		return zstd_compress(in, len, ret, ret_len);
	case _KBW_COMPRESSION_MAX:
	case _KBW_COMPRESSION_INVALID:
		break;
	}
	return -EINVAL;
}

int module_decompress(enum kbw_compression c, const void *in, size_t len, void **ret,
		      size_t *ret_len)
{
	switch (c) {
	case KBW_COMPRESSION_NONE:
		return copy_buffer(in, len, ret, ret_len);
	case KBW_COMPRESSION_GZIP:
		return gzip_decompress(in, len, ret, ret_len);
	case KBW_COMPRESSION_XZ:
		return xz_decompress(in, len, ret, ret_len);
	case KBW_COMPRESSION_ZSTD:
		return zstd_decompress(in, len, ret, ret_len);
	case _KBW_COMPRESSION_MAX:
	case _KBW_COMPRESSION_INVALID:
		break;
	}
	return -EINVAL;
}
