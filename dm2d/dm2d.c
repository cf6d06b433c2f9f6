/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2d: notices kernels and recipes, builds in the background. See dm2d(8). */
#include <getopt.h>
#include <unistd.h>

#include "core/context.h"
#include "control/exit-codes.h"
#include "daemon/manager.h"
#include "shared/log.h"
#include "shared/util.h"

static void help(void)
{
	printf("dm2d " DM2_VERSION " - keep out-of-tree kernel modules built for every kernel\n\n"
	       "Usage: dm2d [OPTIONS]\n\n"
	       "  --root DIR        work on DIR instead of /\n"
	       "  --recipes DIR     also read recipes from DIR (repeatable, searched first)\n"
	       "  --foreground      log plain lines to stderr, even under systemd\n"
	       "  --exit-when-idle  exit once every kernel's jobs reached a final state\n"
	       "  -v, --verbose     debug messages\n"
	       "  -h, --help        this help\n"
	       "      --version     print the version\n\n"
	       "See dm2d(8) and dm2d.conf(5).\n");
}

struct args {
	struct manager_options o;
	const char *root;
	char **recipe_dirs;
	bool foreground;
};

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char *argv[], struct args *a)
{
	enum { ARG_ROOT = 0x100, ARG_RECIPES, ARG_FOREGROUND, ARG_EXIT_WHEN_IDLE, ARG_VERSION };

	static const struct option options[] = {
		{ "root", required_argument, NULL, ARG_ROOT },
		{ "recipes", required_argument, NULL, ARG_RECIPES },
		{ "foreground", no_argument, NULL, ARG_FOREGROUND },
		{ "exit-when-idle", no_argument, NULL, ARG_EXIT_WHEN_IDLE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "vh", options, NULL)) >= 0)
		switch (c) {
		case ARG_ROOT:
			a->root = optarg;
			break;
		case ARG_RECIPES:
			if (strv_extend(&a->recipe_dirs, optarg) < 0)
				return log_oom(), EXIT_FAILURE_GENERIC;
			break;
		case ARG_FOREGROUND:
			a->foreground = true;
			break;
		case ARG_EXIT_WHEN_IDLE:
			a->o.exit_when_idle = true;
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case 'h':
			help();
			return EXIT_OK;
		case ARG_VERSION:
			printf("dm2d " DM2_VERSION "\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	if (optind < argc) {
		log_error("Unexpected argument '%s'; see 'dm2d --help'.", argv[optind]);
		return EXIT_USAGE;
	}
	return -1;
}

/* --recipes directories, absolute, searched first. */
static int add_recipe_dirs(struct dm2_context *ctx, char **dirs)
{
	STRV_FOREACH(d, dirs) {
		char *abs = realpath(*d, NULL);

		if (!abs) {
			log_error_errno(errno, "Recipe directory '%s' is not usable: %m", *d);
			return EXIT_NOT_FOUND;
		}
		if (strv_consume(&ctx->recipe_dirs, abs) < 0)
			return log_oom(), EXIT_FAILURE_GENERIC;
	}
	return -1;
}

int main(int argc, char *argv[])
{
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(manager_freep) struct manager *m = NULL;
	struct args a = {};
	int r;

	log_set_program("dm2d");
	r = parse_args(argc, argv, &a);
	if (r < 0) {
		if (a.foreground)
			log_set_target(LOG_TARGET_STDERR);
		else
			log_target_auto();
		r = context_new(a.root, &ctx);
		if (r < 0)
			r = r == -EINVAL ? EXIT_BAD_INPUT : EXIT_FAILURE_GENERIC;
		else
			r = add_recipe_dirs(ctx, a.recipe_dirs);
	}
	strv_free(a.recipe_dirs);
	if (r >= 0)
		return r;

	if (manager_new(ctx, &a.o, &m) < 0 || manager_startup(m) < 0)
		return EXIT_FAILURE_GENERIC;
	r = manager_run(m);
	if (r < 0) {
		log_error_errno(r, "Event loop failed: %m");
		return EXIT_FAILURE_GENERIC;
	}
	log_info("dm2d stopped.");
	return EXIT_OK;
}
