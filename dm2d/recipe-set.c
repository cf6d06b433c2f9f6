/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>

#include "recipe-set.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

int recipe_set_new(struct recipe_set **ret)
{
	struct recipe_set *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

struct recipe_set *recipe_set_free(struct recipe_set *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		recipe_unref(s->recipes[i]);
	free(s->recipes);
	return mfree(s);
}

/* Index of name, or of where it would be inserted (with *found false). */
static size_t set_bisect(const struct recipe_set *s, const char *name, bool *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->recipes[mid]->name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

struct recipe *recipe_set_find(const struct recipe_set *s, const char *name)
{
	bool found;
	size_t i;

	if (!s || !name)
		return NULL;
	i = set_bisect(s, name, &found);
	return found ? s->recipes[i] : NULL;
}

int recipe_set_add(struct recipe_set *s, struct recipe *r)
{
	struct recipe **n;
	bool found;
	size_t i;

	if (!r->name)
		return -EINVAL;
	i = set_bisect(s, r->name, &found);
	if (found)
		return -EEXIST;
	n = reallocarray(s->recipes, s->n + 1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->recipes = n;
	memmove(&n[i + 1], &n[i], (s->n - i) * sizeof(*n));
	n[i] = recipe_ref(r);
	s->n++;
	return 0;
}

static int filter_recipe(const struct dirent *de)
{
	return de->d_name[0] != '.' && endswith(de->d_name, ".recipe") != NULL;
}

static int load_dir(struct recipe_set *s, const char *dir, enum recipe_origin origin,
		    recipe_diag_fn diag, void *userdata)
{
	struct dirent **list = NULL;
	int n, r = 0;

	n = scandir(dir, &list, filter_recipe, alphasort);
	if (n < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		_cleanup_(recipe_unrefp) struct recipe *rcp = NULL;
		_cleanup_free_ char *path = path_join(dir, list[i]->d_name);
		int k;

		if (!path) {
			r = -ENOMEM;
			break;
		}
		k = recipe_load(path, origin, diag, userdata, &rcp);
		if (k == -ENOMEM) {
			r = k;
			break;
		}
		if (k < 0) {
			if (k != -EBADMSG && diag) {
				_cleanup_free_ char *msg = NULL;

				if (asprintf(&msg, "cannot read recipe: %s",
					     strerror(-k)) >= 0)
					diag(path, 0, msg, userdata);
			}
			continue;
		}
		k = recipe_set_add(s, rcp);
		if (k == -EEXIST) {
			log_debug("Recipe '%s' in '%s' is shadowed by '%s', ignoring.",
				  rcp->name, path, recipe_set_find(s, rcp->name)->path);
			continue;
		}
		if (k < 0) {
			r = k;
			break;
		}
	}
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return r;
}

int recipe_set_load(struct dm2_context *ctx, recipe_diag_fn diag, void *userdata,
		    struct recipe_set **ret)
{
	_cleanup_(recipe_set_freep) struct recipe_set *s = NULL;
	static const struct {
		const char *dir;
		enum recipe_origin origin;
	} std[] = {
		{DM2_ADMIN_RECIPE_DIR, RECIPE_ORIGIN_ADMIN},
		{DM2_VENDOR_RECIPE_DIR, RECIPE_ORIGIN_VENDOR},
	};
	int r;

	r = recipe_set_new(&s);
	if (r < 0)
		return r;
	STRV_FOREACH(d, ctx->recipe_dirs)
	{
		r = load_dir(s, *d, RECIPE_ORIGIN_EXTRA, diag, userdata);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ELEMENTSOF(std); i++) {
		_cleanup_free_ char *dir = context_path(ctx, std[i].dir);

		if (!dir)
			return -ENOMEM;
		r = load_dir(s, dir, std[i].origin, diag, userdata);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}
