/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Build keys: what makes two builds interchangeable. */
#include <stdint.h>

#include "cache-internal.h"

/* Length-prefixed so that no two different input tuples feed the same byte stream. */
static int hash_field(struct cache_hash *h, const char *s)
{
	uint64_t len = strlen(s);
	uint8_t le[8];

	for (unsigned i = 0; i < 8; i++)
		le[i] = (uint8_t) (len >> (8 * i));
	if (cache_hash_update(h, le, sizeof(le)) < 0)
		return -EIO;
	return cache_hash_update(h, s, len);
}

int cache_key_compute(const struct cache_key_input *in, char ret[CACHE_KEY_SIZE])
{
	cache_cleanup_(cache_hash_freep) struct cache_hash *h = NULL;
	const char *fields[5];
	char version[32], hex[CACHE_HEX_SIZE];
	int r;

	if (!in || !in->recipe_name || !in->source_id || !in->build_rules ||
	    !in->kernel_identity || !in->arch)
		return -EINVAL;
	fields[0] = in->recipe_name;
	fields[1] = in->source_id;
	fields[2] = in->build_rules;
	fields[3] = in->kernel_identity;
	fields[4] = in->arch;

	r = cache_hash_new(&h);
	if (r < 0)
		return r;
	r = hash_field(h, "dm2-build-key");
	for (size_t i = 0; r >= 0 && i < 5; i++)
		r = hash_field(h, fields[i]);
	if (r < 0)
		return r;
	snprintf(version, sizeof(version), "%u", in->format_version);
	r = hash_field(h, version);
	if (r < 0)
		return r;
	r = cache_hash_final_hex(h, hex);
	if (r < 0)
		return r;
	memcpy(ret, hex, CACHE_KEY_SIZE);
	return 0;
}

bool cache_key_valid(const char *s)
{
	return cache_sha256_valid(s);
}
