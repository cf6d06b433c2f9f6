/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sha256 of a recipe's files, apart from recipe.c so that dm2d does not link OpenSSL. */
#include <fcntl.h>
#include <lzma.h>

#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"

int recipe_content_hash(struct recipe *r, const char **ret)
{
	_cleanup_(sha256_freep) struct sha256_ctx *h = NULL;
	_cleanup_free_ char *text = NULL;
	uint8_t digest[SHA256_DIGEST_SIZE];
	char hex[SHA256_HEX_SIZE];
	uint64_t crc;
	size_t size;
	int k;

	if (r->content_hash) {
		*ret = r->content_hash;
		return 0;
	}
	/* Read again rather than kept from loading: a daemon holding every recipe should not
	 * hold every file's text. The CRC tells a file edited (or gone) since. */
	k = read_full_file_at(AT_FDCWD, r->path, RECIPE_MAX_SIZE, &text, &size);
	if (k < 0)
		return k;
	k = sha256_new(&h);
	if (k < 0)
		return k;
	crc = lzma_crc64((const uint8_t *) text, size, 0);
	sha256_update(h, text, size);
	STRV_FOREACH(p, r->content_more) {
		_cleanup_free_ char *more = NULL;
		const char *slash = strrchr(*p, '/');

		k = read_full_file_at(AT_FDCWD, *p, RECIPE_MAX_SIZE, &more, &size);
		if (k == -ENOENT)
			return -ESTALE;
		if (k < 0)
			return k;
		crc = recipe_crc_more(crc, *p, more, size);
		sha256_update_str(h, slash ? slash + 1 : *p);
		sha256_update(h, more, size);
	}
	if (crc != r->content_crc)
		return -ESTALE;
	sha256_finish(TAKE_PTR(h), digest);
	sha256_to_hex(digest, hex);
	r->content_hash = strdup(hex);
	if (!r->content_hash)
		return -ENOMEM;
	*ret = r->content_hash;
	return 0;
}
