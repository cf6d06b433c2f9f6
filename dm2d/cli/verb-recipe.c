/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 recipe lint|list|show: see dm2(1) and dm2-recipe(5). */
#include <getopt.h>

#include "cli/cli.h"
#include "recipe/recipe-lint.h"
#include "recipe/recipe-set.h"
#include "recipe/recipe.h"
#include "shared/deb-version.h"
#include "shared/log.h"
#include "shared/util.h"

#define RECIPE_USAGE                                                                     \
	"dm2 recipe {lint [--json] FILE... | list [--json] | show NAME [--json] | "        \
	"hash URL|ARCHIVE|DIR | test NAME|FILE}"
#define LINT_USAGE "dm2 recipe lint [--json] FILE..."
#define LIST_USAGE "dm2 recipe list [--json]"
#define SHOW_USAGE "dm2 recipe show NAME [--json]"

/* The subcommands have no options but --help (--json is global: dm2.c takes it). Returns
 * -1 to go on, else the exit code (EXIT_OK after --help). */
static int parse_args(int argc, char *argv[], int min, int max, const char *usage)
{
	int ret;

	while (cli_getopt(argc, argv, "", NULL, usage, min, max, &ret) >= 0)
		return EXIT_USAGE;
	return ret;
}

/* People read "FILE:LINE: message" (warnings say so); scripts read --json. */
static void lint_print(const struct lint_result *res, bool json)
{
	if (json) {
		printf("{\"version\":1,\"errors\":%zu,\"warnings\":%zu,\"diagnostics\":[",
		       res->n_errors, res->n_warnings);
		for (size_t i = 0; i < res->n; i++) {
			const struct lint_diag *d = &res->diags[i];

			printf("%s\n  {\"file\":", i ? "," : "");
			cli_json_string(stdout, d->file);
			printf(",\"line\":%u,\"column\":%u,\"severity\":\"%s\","
			       "\"message\":",
			       d->line, d->column, lint_severity_to_string(d->severity));
			cli_json_string(stdout, d->message);
			putchar('}');
		}
		printf("%s]}\n", res->n ? "\n" : "");
		return;
	}
	for (size_t i = 0; i < res->n; i++) {
		const struct lint_diag *d = &res->diags[i];
		const char *sev = d->severity == LINT_WARNING ? "warning: " : "";

		if (d->line > 0)
			fprintf(stderr, "%s:%u: %s%s\n", d->file, d->line, sev,
				d->message);
		else
			fprintf(stderr, "%s: %s%s\n", d->file, sev, d->message);
	}
}

static int recipe_lint(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(lint_result_done) struct lint_result res = {};
	int ret;

	ret = parse_args(argc, argv, 1, -1, LINT_USAGE);
	if (ret >= 0)
		return ret;
	ret = EXIT_OK;
	for (int i = optind; i < argc; i++) {
		int k = recipe_lint_file(argv[i], &res);

		if (k == -ENOMEM)
			return log_oom(), EXIT_FAILURE_GENERIC;
		if (k < 0) {
			fprintf(stderr, "%s: cannot read: %s\n", argv[i], strerror(-k));
			if (ret == EXIT_OK)
				ret = k == -ENOENT ? EXIT_NOT_FOUND : EXIT_BAD_INPUT;
		}
	}
	lint_print(&res, cli->json);
	/* Warnings are advice: only errors fail. */
	if (ret == EXIT_OK && res.n_errors > 0)
		ret = EXIT_BAD_INPUT;
	return ret;
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
		while (j > 0 && deb_version_compare(v[j - 1], r->sources[i].version) < 0) {
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

/* Columns as wide as their widest cell, two spaces apart (as dm2 status). */
static int print_list_table(const struct recipe_set *set)
{
	_cleanup_strv_free_ char **versions = NULL;
	int w_name = 4, w_ver = 8, w_origin = 6, w_file = 4;

	for (size_t i = 0; i < set->n; i++) {
		const struct recipe *rc = set->recipes[i];
		char *v = versions_text(rc, ",");

		if (!v || strv_consume(&versions, v) < 0)
			return log_oom(), EXIT_FAILURE_GENERIC;
		w_name = MAX(w_name, (int) strlen(rc->name));
		w_ver = MAX(w_ver, (int) strlen(v));
		w_origin =
			MAX(w_origin, (int) strlen(recipe_origin_to_string(rc->origin)));
		w_file = MAX(w_file, (int) strlen(rc->path));
	}
	printf("%-*s  %-*s  %-*s  %-*s  %s\n", w_name, "NAME", w_ver, "VERSIONS",
	       w_origin, "ORIGIN", w_file, "FILE", "DESCRIPTION");
	for (size_t i = 0; i < set->n; i++) {
		const struct recipe *rc = set->recipes[i];

		/* No padding after the last cell that has text. */
		printf("%-*s  %-*s  %-*s  %-*s%s%s\n", w_name, rc->name, w_ver,
		       versions[i], w_origin, recipe_origin_to_string(rc->origin),
		       rc->description ? w_file : 0, rc->path,
		       rc->description ? "  " : "", strempty(rc->description));
	}
	return EXIT_OK;
}

/* One recipe as a JSON object without its closing brace (show adds to it). */
static int recipe_json(const struct recipe *rc)
{
	_cleanup_free_ char *v = versions_text(rc, "\n");
	_cleanup_strv_free_ char **vl = NULL;

	if (!v || strv_split(v, "\n", &vl) < 0)
		return log_oom(), EXIT_FAILURE_GENERIC;
	printf("{\"name\":");
	cli_json_string(stdout, strempty(rc->name));
	printf(",\"versions\":[");
	STRV_FOREACH(x, vl)
	{
		if (x != vl)
			putchar(',');
		cli_json_string(stdout, *x); /* a Version= may hold '"' */
	}
	printf("],\"origin\":");
	cli_json_string(stdout, strempty(recipe_origin_to_string(rc->origin)));
	printf(",\"file\":");
	cli_json_string(stdout, strempty(rc->path));
	printf(",\"license\":");
	cli_json_string(stdout, strempty(rc->license));
	printf(",\"description\":");
	cli_json_string(stdout, strempty(rc->description));
	return EXIT_OK;
}

static int recipe_list(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	int r;

	r = parse_args(argc, argv, 0, 0, LIST_USAGE);
	if (r >= 0)
		return r;
	r = cli_load_recipes(cli, &set);
	if (r != EXIT_OK)
		return r;

	if (cli->json) {
		printf("{\"version\":1,\"recipes\":[");
		for (size_t i = 0; i < set->n; i++) {
			printf("%s\n  ", i ? "," : "");
			r = recipe_json(set->recipes[i]);
			if (r != EXIT_OK)
				return r;
			printf("}");
		}
		printf("%s]}\n", set->n ? "\n" : "");
		return EXIT_OK;
	}

	if (set->n == 0) {
		if (cli->tty)
			printf("No recipes.\n");
		return EXIT_OK;
	}
	return print_list_table(set);
}

/* The summary of recipe list, and the recipe as dm2 reads it ("text"). */
static int recipe_show_json(const struct recipe *rc)
{
	_cleanup_free_ char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	int r;

	if (!f)
		return log_oom(), EXIT_FAILURE_GENERIC;
	r = recipe_write(rc, f);
	if (fclose(f) != 0 && r >= 0)
		r = -ENOMEM;
	if (r < 0)
		return cli_exit_code_from_errno(r);
	printf("{\"version\":1,\"recipe\":");
	r = recipe_json(rc);
	if (r != EXIT_OK)
		return r;
	printf(",\"text\":");
	cli_json_string(stdout, text);
	printf("}}\n");
	return EXIT_OK;
}

static int recipe_show(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	struct recipe *rc;
	int r;

	r = parse_args(argc, argv, 1, 1, SHOW_USAGE);
	if (r >= 0)
		return r;
	r = cli_find_recipe(cli, argv[optind], &set, &rc);
	if (r != EXIT_OK)
		return r;
	if (cli->json)
		return recipe_show_json(rc);
	printf("# %s (%s)\n", rc->path, recipe_origin_to_string(rc->origin));
	r = recipe_write(rc, stdout);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	return EXIT_OK;
}

int verb_recipe(int argc, char *argv[], struct cli *cli)
{
	static const struct cli_subverb subverbs[] = {
		{"lint", recipe_lint},
		{"list", recipe_list},
		{"show", recipe_show},
		{"hash", verb_recipe_hash},
		{"test", verb_recipe_test},
	};

	return cli_dispatch(argc, argv, cli, subverbs, ELEMENTSOF(subverbs), NULL,
			    RECIPE_USAGE);
}
