/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <assert.h>
#include <fcntl.h>

#include "recipe/dkms.h"
#include "recipe/recipe-set.h"
#include "shared/deb-version.h"
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

/* dkms.conf problems go to the caller's diag; warnings (scripts dm2 does not run, ...)
 * would repeat on every listing, so they are only logged. */
struct dkms_diag {
	recipe_diag_fn diag;
	void *userdata;
	bool log_errors; /* no diag: log problems as errors (one recipe was asked for) */
};

static void dkms_diag_filter(const char *file, unsigned line, const char *message,
			     void *userdata)
{
	const struct dkms_diag *d = userdata;

	if (!startswith(message, "warning: ") && !d->diag && d->log_errors) {
		log_error("%s:%u: %s", file, line, message);
		return;
	}
	if (startswith(message, "warning: ") || !d->diag) {
		log_debug("%s:%u: %s", file, line, message);
		return;
	}
	d->diag(file, line, message, d->userdata);
}

static void set_replace(struct recipe_set *s, struct recipe *r)
{
	bool found;
	size_t i = set_bisect(s, r->name, &found);

	assert(found);
	recipe_unref(s->recipes[i]);
	s->recipes[i] = recipe_ref(r);
}

static int load_dkms(struct dm2_context *ctx, struct recipe_set *s, recipe_diag_fn diag,
		     void *userdata)
{
	_cleanup_strv_free_ char **dirs = NULL;
	_cleanup_free_ char *etc_dkms = context_path(ctx, DM2_DKMS_ETC_DIR);
	struct dkms_diag dd = { diag, userdata, false };
	int r;

	if (!etc_dkms)
		return -ENOMEM;
	r = dkms_scan(ctx->root_fd, ctx->root, &dirs);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		/* Recipes stay usable when usr/src cannot be read. */
		_cleanup_free_ char *dir = context_path(ctx, DM2_USR_SRC_DIR);
		_cleanup_free_ char *msg = NULL;

		if (diag && dir &&
		    asprintf(&msg, "cannot list DKMS packages: %s", strerror(-r)) >= 0)
			diag(dir, 0, msg, userdata);
		return 0;
	}
	STRV_FOREACH(d, dirs)
	{
		_cleanup_(recipe_unrefp) struct recipe *rcp = NULL;
		struct recipe *old;
		int k;

		k = dkms_recipe_load(&(struct dkms_load_params){.ctx = ctx,
								 .dir = *d,
								 .overrides_dir = etc_dkms},
				     dkms_diag_filter, &dd, &rcp);
		if (k == -ENOMEM)
			return k;
		if (k < 0) {
			_cleanup_free_ char *path = path_join(*d, "dkms.conf");
			_cleanup_free_ char *msg = NULL;

			if (k != -EBADMSG && diag && path &&
			    asprintf(&msg, "cannot read dkms.conf: %s", strerror(-k)) >= 0)
				diag(path, 0, msg, userdata);
			continue;
		}
		old = recipe_set_find(s, rcp->name);
		if (old && old->origin == RECIPE_ORIGIN_DKMS &&
		    deb_version_compare(recipe_latest_version(rcp),
				    recipe_latest_version(old)) > 0) {
			log_debug("DKMS package '%s' in '%s' replaces the older '%s'.",
				  rcp->name, *d, old->dir);
			set_replace(s, rcp);
			continue;
		}
		if (old) {
			log_debug("DKMS package '%s' in '%s' is shadowed by '%s', ignoring.",
				  rcp->name, *d, old->path);
			continue;
		}
		k = recipe_set_add(s, rcp);
		if (k < 0)
			return k;
	}
	return 0;
}

int recipe_for_kernel(struct dm2_context *ctx, const struct recipe *r,
		      const struct kbw_kernel *k, recipe_diag_fn diag, void *userdata,
		      struct recipe **ret)
{
	_cleanup_free_ char *owned = NULL, *etc_dkms = NULL;
	struct dkms_diag dd = { diag, userdata, true };
	const char *build;

	if (r->origin != RECIPE_ORIGIN_DKMS) {
		/* Recipes are immutable: sharing the reference is safe. */
		*ret = recipe_ref((struct recipe *) r);
		return 0;
	}
	build = kbw_kernel_build_dir(k);
	if (!build) {
		/* Incomplete kernel: evaluate anyway, with where the tree will be. */
		_cleanup_free_ char *rel =
			strjoin(DM2_MODULES_DIR "/", kbw_kernel_release(k), "/build");

		owned = rel ? context_path(ctx, rel) : NULL;
		if (!owned)
			return -ENOMEM;
		build = owned;
	}
	etc_dkms = context_path(ctx, DM2_DKMS_ETC_DIR);
	if (!etc_dkms)
		return -ENOMEM;
	return dkms_recipe_load(&(struct dkms_load_params){.ctx = ctx,
							    .dir = r->dir,
							    .kernel_release = kbw_kernel_release(k),
							    .arch = kbw_kernel_arch(k),
							    .kernel_build_dir = build,
							    .kernel = k,
							    .overrides_dir = etc_dkms},
				dkms_diag_filter, &dd, ret);
}

bool recipe_autoinstall(const struct recipe *r)
{
	return r->origin != RECIPE_ORIGIN_DKMS || r->autoinstall;
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
	r = load_dkms(ctx, s, diag, userdata);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}
