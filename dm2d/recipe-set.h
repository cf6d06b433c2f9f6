/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "context.h"
#include "recipe.h"
#include "shared/macro.h"

/*
 * All recipes visible to dm2, by name. Search order (the first file defining a name
 * wins): ctx->recipe_dirs (--recipes, origin "extra"), ROOT/etc/dm2/recipes.d ("admin"),
 * ROOT/usr/share/dm2/recipes ("vendor"). Only files named *.recipe are read, in name
 * order within a directory; missing directories are fine.
 */
struct recipe_set {
	struct recipe **recipes; /* sorted by name */
	size_t n;
};

/* Invalid recipe files are reported through diag (see recipe_load()) and skipped; a name
 * defined again later in the search order is reported as shadowed at debug level. Fails
 * only on allocation or unreadable directories (not on bad recipes). */
int recipe_set_load(struct dm2_context *ctx, recipe_diag_fn diag, void *userdata,
		    struct recipe_set **ret);
int recipe_set_new(struct recipe_set **ret);
struct recipe *recipe_set_find(const struct recipe_set *s, const char *name);
/* Takes a new reference on r. -EEXIST if a recipe of that name is already in the set
 * (the existing one is kept: earlier sources win). */
int recipe_set_add(struct recipe_set *s, struct recipe *r);
struct recipe_set *recipe_set_free(struct recipe_set *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct recipe_set *, recipe_set_free);
