/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "libkbuild-wrap.h"
#include "recipe/recipe.h"
#include "shared/macro.h"

/*
 * All recipes visible to dm2, by name. Search order (the first file defining a name
 * wins): ctx->recipe_dirs (--recipes, origin "extra"), ROOT/etc/dm2/recipes.d ("admin"),
 * ROOT/usr/share/dm2/recipes ("vendor"). Only files named *.recipe are read, in name
 * order within a directory; missing directories are fine.
 *
 * Then every ROOT/usr/src/NAME-VERSION/dkms.conf (symlinked package directories are
 * followed) is added as a kernel-independent recipe of origin "dkms" (see dkms.h). A dm2
 * recipe of the same name wins over a dkms.conf; between two dkms.conf of the same
 * PACKAGE_NAME the newest PACKAGE_VERSION wins. Invalid dkms.conf files are reported
 * through diag and skipped; their "warning: " notes are only logged at debug level.
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

/*
 * The recipe to build r with for kernel k. For origin dkms the dkms.conf is evaluated
 * again for that kernel (kernel release as $kernelver, kbw_kernel_arch(), the kernel's
 * build directory as $kernel_source_dir) so MAKE_MATCH, PATCH_MATCH and variables in MAKE
 * are right; problems go to diag (without one: logged as errors), -EBADMSG. Every other
 * recipe is returned as is: *ret is a new reference either way.
 */
int recipe_for_kernel(struct dm2_context *ctx, const struct recipe *r,
		      const struct kbw_kernel *k, recipe_diag_fn diag, void *userdata,
		      struct recipe **ret);

/* Is r built automatically for a new kernel (daemon)? dm2 recipes always are; a dkms.conf
 * only with AUTOINSTALL=yes. Explicit requests (dm2 install) build any recipe. */
bool recipe_autoinstall(const struct recipe *r);
