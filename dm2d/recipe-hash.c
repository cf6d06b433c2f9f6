/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sha256 of a recipe's file, apart from recipe.c so that dm2d does not link OpenSSL. */
#include <fcntl.h>
#include <lzma.h>

#include "recipe.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"

int recipe_content_hash(struct recipe *r, const char **ret)
{
	_cleanup_free_ char *text = NULL;
	char hex[SHA256_HEX_SIZE];
	size_t size;
	int k;

	if (!r->content_hash) {
		/* Read again rather than kept from loading: a daemon holding every recipe should
		 * not hold every file's text. The CRC tells a file edited since. */
		k = read_full_file_at(AT_FDCWD, r->path, RECIPE_MAX_SIZE, &text, &size);
		if (k < 0)
			return k;
		if (lzma_crc64((const uint8_t *) text, size, 0) != r->content_crc)
			return -ESTALE;
		sha256_buf_hex(text, size, hex);
		r->content_hash = strdup(hex);
		if (!r->content_hash)
			return -ENOMEM;
	}
	*ret = r->content_hash;
	return 0;
}
