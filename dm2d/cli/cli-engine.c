/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The verb helpers that need the engine (recipes, kernels). Apart from cli.c so that the
 * small dm2 front end, which links cli.c, does not pull in the recipe and kbuild code. */
#include "cli/cli.h"
#include "core/kernels.h"
#include "recipe/recipe-set.h"
#include "shared/log.h"
#include "shared/util.h"

/* Report each invalid recipe file once, by its first problem; 'dm2 recipe lint' shows
 * all. */
static void diag_once(const char *file, unsigned line, const char *message,
		      void *userdata)
{
	char **last = userdata;

	if (*last && streq(*last, file))
		return;
	free(*last);
	*last = strdup(file);
	if (line > 0)
		log_warning("%s:%u: %s (recipe ignored; 'dm2 recipe lint' shows every "
			    "problem)",
			    file, line, message);
	else
		log_warning("%s: %s (recipe ignored)", file, message);
}

int cli_load_recipes(struct cli *cli, struct recipe_set **ret)
{
	_cleanup_free_ char *last = NULL;
	struct dm2_context *ctx;
	int r;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = recipe_set_load(ctx, diag_once, &last, ret);
	if (r < 0) {
		log_error_errno(r, "Failed to load recipes: %m");
		return cli_exit_code_from_errno(r);
	}
	return EXIT_OK;
}

int cli_find_recipe(struct cli *cli, const char *name, struct recipe_set **ret_set,
		    struct recipe **ret)
{
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	struct recipe *rcp;
	int r;

	r = cli_load_recipes(cli, &set);
	if (r != EXIT_OK)
		return r;
	rcp = recipe_set_find(set, name);
	if (!rcp) {
		log_error("No recipe '%s'; see 'dm2 recipe list'.", name);
		return EXIT_NOT_FOUND;
	}
	*ret_set = TAKE_PTR(set);
	*ret = rcp;
	return EXIT_OK;
}

int cli_find_kernel(struct cli *cli, const char *release, struct kbw_kernel **ret)
{
	struct dm2_context *ctx;
	int r;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = kernel_find(ctx, release, ret);
	if (r == -EINVAL) {
		log_error("Invalid kernel release '%s': not a directory name.", release);
		return EXIT_USAGE;
	}
	if (r == -ENOENT) {
		log_error("No kernel '%s' in '%s%slib/modules'.", release, ctx->root,
			  streq(ctx->root, "/") ? "" : "/");
		return EXIT_NOT_FOUND;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to probe kernel '%s': %m", release);
		return cli_exit_code_from_errno(r);
	}
	return EXIT_OK;
}
