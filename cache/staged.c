/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Files on their way into the store: staged in dir/tmp, then committed by cache_commit(). */
#include "cache-internal.h"

int cache_stage_fd(struct cache *c, int src_fd, const char *name, struct cache_staged *ret)
{
	_cleanup_free_ char *n = NULL, *tmp = NULL;
	int r;

	n = strdup(name);
	if (!n)
		return -ENOMEM;
	r = cas_tmp_copy(c->tmp_fd, src_fd, &tmp, ret->sha256, &ret->size);
	if (r < 0)
		return r;
	ret->name = TAKE_PTR(n);
	ret->tmp = TAKE_PTR(tmp);
	return 0;
}

void cache_staged_done(struct cache *c, struct cache_staged *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i].tmp)
			(void) unlinkat(c->tmp_fd, s[i].tmp, 0);
		s[i].tmp = mfree(s[i].tmp);
		s[i].name = mfree(s[i].name);
	}
}

bool cache_name_valid(const char *name)
{
	const char *p = name;

	if (!name || !*name || *name == '/' || strlen(name) > 255)
		return false;
	for (const char *q = name; *q; q++)
		if ((unsigned char) *q < 0x20 || *q == 0x7f)
			return false;
	/* Every component must be non-empty and neither "." nor "..". */
	while (*p) {
		size_t l = strcspn(p, "/");

		if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += l;
		if (*p == '/')
			p++;
		if (*p == '\0' && p[-1] == '/')
			return false;
	}
	return true;
}

int cache_object_full_path(struct cache *c, const char *sha256, char **ret)
{
	_cleanup_free_ char *rel = NULL;
	char *p;
	int r;

	r = cas_object_path(&c->objects, sha256, &rel);
	if (r < 0)
		return r;
	p = strjoin(c->dir, "/" CACHE_OBJECTS_DIR "/", rel);
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}
