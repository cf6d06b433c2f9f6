/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Build keys: what makes two builds interchangeable. */
#include <stdint.h>

#include "cache-internal.h"
#include "shared/hash.h"

/* Length-prefixed so that no two different input tuples feed the same byte stream. */
static void hash_field(struct sha256_ctx *h, const char *s)
{
	uint64_t len = strlen(s);
	uint8_t le[8];

	for (unsigned i = 0; i < 8; i++)
		le[i] = (uint8_t) (len >> (8 * i));
	sha256_update(h, le, sizeof(le));
	sha256_update(h, s, len);
}

int cache_key_compute(const struct cache_key_input *in, char ret[CACHE_KEY_SIZE])
{
	_cleanup_(sha256_freep) struct sha256_ctx *h = NULL;
	uint8_t digest[SHA256_DIGEST_SIZE];
	char version[32];
	int r;

	if (!in || !in->recipe_name || !in->source_id || !in->build_rules ||
	    !in->kernel_identity || !in->arch)
		return -EINVAL;

	r = sha256_new(&h);
	if (r < 0)
		return r;
	hash_field(h, "dm2-build-key");
	hash_field(h, in->recipe_name);
	hash_field(h, in->source_id);
	hash_field(h, in->build_rules);
	hash_field(h, in->kernel_identity);
	hash_field(h, in->arch);
	snprintf(version, sizeof(version), "%u", in->format_version);
	hash_field(h, version);
	sha256_finish(TAKE_PTR(h), digest);
	sha256_to_hex(digest, ret);
	return 0;
}

bool cache_key_valid(const char *s)
{
	return sha256_hex_canonical(s);
}
