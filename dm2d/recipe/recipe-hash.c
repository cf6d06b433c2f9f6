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

/* One line per fact, each "key=value" with the value's bytes as they are: the values
 * are single-line (the parser refuses none of them, but the ini reader splits lines). */
static int rules_line(FILE *f, const char *key, const char *value)
{
	return fprintf(f, "%s=%s\n", key, strempty(value)) < 0 ? -EIO : 0;
}

static void rules_words(FILE *f, const char *key, char **words)
{
	STRV_FOREACH(w, words)
	(void) rules_line(f, key, *w);
}

int recipe_build_rules(const struct recipe *r, const struct recipe_source *s, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;
	int k = 0;

	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	(void) rules_line(f, "version", s ? s->version : NULL);
	(void) rules_line(f, "subdir", r->subdir);
	for (size_t i = 0; i < r->n_modules; i++) {
		const struct recipe_module *m = &r->modules[i];

		fprintf(f, "module=%s@%s%s -> %s/%s\n", m->name,
			strempty(m->built_location), m->strip ? ",strip" : "",
			strempty(m->dest_dir), m->dest_name ?: m->name);
	}
	rules_words(f, "make_var", r->make_vars);
	rules_words(f, "require_config", r->require_config);
	rules_words(f, "arch", r->arches);
	rules_words(f, "needs", r->needs);
	(void) rules_line(f, "command", r->make_command);
	(void) rules_line(f, "pre_build", r->dkms_pre_build);
	(void) rules_line(f, "post_build", r->dkms_post_build);
	(void) rules_line(f, "install_dir", r->install_dir);
	if (r->origin == RECIPE_ORIGIN_DKMS)
		k = rules_line(f, "content", r->content_hash);
	if (ferror(f) && k >= 0)
		k = -EIO;
	if (fclose(f) != 0 && k >= 0)
		k = -ENOMEM;
	if (k < 0)
		return k;
	*ret = TAKE_PTR(buf);
	return 0;
}
