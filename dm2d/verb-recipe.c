/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 recipe lint|list|show: see dm2(1) and dm2-recipe(5). */
#include <getopt.h>

#include "cli.h"
#include "recipe-set.h"
#include "recipe.h"
#include "shared/log.h"
#include "shared/util.h"

static void diag_stderr(const char *file, unsigned line, const char *message,
			void *userdata)
{
	unsigned *n = userdata;

	if (line > 0)
		fprintf(stderr, "%s:%u: %s\n", file, line, message);
	else
		fprintf(stderr, "%s: %s\n", file, message);
	if (n)
		(*n)++;
}

/* For list/show: one warning per invalid file, lint shows the rest. */
static void diag_warning(const char *file, unsigned line, const char *message,
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

static int recipe_lint(int argc, char *argv[], struct cli *cli)
{
	int ret = EXIT_OK;

	if (argc < 2) {
		log_error("Usage: dm2 recipe lint FILE...");
		return EXIT_USAGE;
	}
	for (int i = 1; i < argc; i++) {
		_cleanup_(recipe_unrefp) struct recipe *r = NULL;
		unsigned n = 0;
		int k;

		k = recipe_load(argv[i], RECIPE_ORIGIN_FILE, diag_stderr, &n, &r);
		if (k == -EBADMSG) {
			ret = EXIT_BAD_INPUT;
			continue;
		}
		if (k < 0) {
			fprintf(stderr, "%s: cannot read: %s\n", argv[i], strerror(-k));
			ret = EXIT_BAD_INPUT;
			continue;
		}
		log_debug("%s: ok", argv[i]);
	}
	return ret;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *) strempty(s); *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* Versions, newest first, separated by sep. */
static char *versions_text(const struct recipe *r, const char *sep)
{
	_cleanup_free_ const char **v = calloc(r->n_sources + 1, sizeof(char *));
	_cleanup_strv_free_ char **l = NULL;

	if (!v)
		return NULL;
	for (size_t i = 0; i < r->n_sources; i++) {
		size_t j = i;

		/* Insertion sort: a handful of sources at most. */
		while (j > 0 && version_compare(v[j - 1], r->sources[i].version) < 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = r->sources[i].version;
	}
	for (size_t i = 0; i < r->n_sources; i++)
		if (strv_extend(&l, v[i]) < 0)
			return NULL;
	return l ? strv_join(l, sep) : strdup("");
}

static int recipe_list(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_free_ char *last = NULL;
	struct dm2_context *ctx;
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--json"))
			cli->json = true;
		else {
			log_error("Usage: dm2 recipe list [--json]");
			return EXIT_USAGE;
		}
	}
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = recipe_set_load(ctx, diag_warning, &last, &set);
	if (r < 0) {
		log_error_errno(r, "Failed to load recipes: %m");
		return cli_exit_code_from_errno(r);
	}

	if (cli->json) {
		printf("[");
		for (size_t i = 0; i < set->n; i++) {
			const struct recipe *rc = set->recipes[i];
			_cleanup_free_ char *v = versions_text(rc, "\",\"");

			if (!v)
				return log_oom(), EXIT_FAILURE_GENERIC;
			printf("%s\n  {\"name\":", i ? "," : "");
			json_string(stdout, rc->name);
			printf(",\"versions\":[\"%s\"],\"origin\":", v);
			json_string(stdout, recipe_origin_to_string(rc->origin));
			printf(",\"file\":");
			json_string(stdout, rc->path);
			printf(",\"license\":");
			json_string(stdout, rc->license);
			printf(",\"description\":");
			json_string(stdout, rc->description);
			printf("}");
		}
		printf("%s]\n", set->n ? "\n" : "");
		return EXIT_OK;
	}

	if (set->n == 0) {
		if (cli->tty)
			printf("No recipes.\n");
		return EXIT_OK;
	}
	printf("%-24s %-16s %-7s %-40s %s\n", "NAME", "VERSIONS", "ORIGIN", "FILE",
	       "DESCRIPTION");
	for (size_t i = 0; i < set->n; i++) {
		const struct recipe *rc = set->recipes[i];
		_cleanup_free_ char *v = versions_text(rc, ",");

		if (!v)
			return log_oom(), EXIT_FAILURE_GENERIC;
		printf("%-24s %-16s %-7s %-40s %s\n", rc->name, v,
		       recipe_origin_to_string(rc->origin), rc->path,
		       strempty(rc->description));
	}
	return EXIT_OK;
}

static int recipe_show(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_free_ char *last = NULL;
	struct dm2_context *ctx;
	struct recipe *rc;
	int r;

	if (argc != 2) {
		log_error("Usage: dm2 recipe show NAME");
		return EXIT_USAGE;
	}
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = recipe_set_load(ctx, diag_warning, &last, &set);
	if (r < 0) {
		log_error_errno(r, "Failed to load recipes: %m");
		return cli_exit_code_from_errno(r);
	}
	rc = recipe_set_find(set, argv[1]);
	if (!rc) {
		log_error("No recipe named '%s'; see 'dm2 recipe list'.", argv[1]);
		return EXIT_NOT_FOUND;
	}
	printf("# %s (%s)\n", rc->path, recipe_origin_to_string(rc->origin));
	r = recipe_write(rc, stdout);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	return EXIT_OK;
}

int verb_recipe(int argc, char *argv[], struct cli *cli)
{
	if (argc < 2) {
		log_error("Usage: dm2 recipe lint FILE... | list [--json] | show NAME");
		return EXIT_USAGE;
	}
	if (streq(argv[1], "lint"))
		return recipe_lint(argc - 1, argv + 1, cli);
	if (streq(argv[1], "list"))
		return recipe_list(argc - 1, argv + 1, cli);
	if (streq(argv[1], "show"))
		return recipe_show(argc - 1, argv + 1, cli);
	log_error("Unknown recipe command '%s'; expected lint, list or show.", argv[1]);
	return EXIT_USAGE;
}
