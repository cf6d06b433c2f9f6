/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2: the command line. See dm2(1). */
#include <getopt.h>
#include <unistd.h>

#include "cli.h"
#include "shared/log.h"
#include "shared/util.h"

static int verb_help(int argc, char *argv[], struct cli *cli);

static const struct verb verbs[] = {
	{ "help", verb_help, "help" },
	{ "install", verb_install,
	  "install NAME... {-k KVER | --all-kernels} [--no-depmod] [--force]" },
	{ "uninstall", verb_uninstall, "uninstall NAME -k KVER" },
	{ "depmod", verb_depmod, "depmod -k KVER" },
	{ "status", verb_status, "status [NAME] [-k KVER] [--json]" },
	{ "log", verb_log, "log NAME -k KVER" },
	{ "fetch", verb_fetch, "fetch NAME [--version V]" },
	{ "trigger", verb_trigger, "trigger [KVER] [--wait [--timeout SEC]]" },
	{ "recipe", verb_recipe, "recipe lint FILE... | list [--json] | show NAME" },
	{ "kernel", verb_kernel, "kernel list [--json]" },
	{ "build", verb_build, "build NAME -k KVER [--version V] [--json]" },
	{ "sign", verb_sign, "sign FILE.ko [--key K --cert C] [--hash H] [-k KVER] [-o OUT]" },
	{ "verify", verb_verify, "verify FILE.ko[.xz|.zst|.gz] [--cert CERT]" },
	{ "key", verb_key, "key generate [--force] | show | adopt-dkms [--force]" },
	{ "cache", verb_cache,
	  "cache stat | gc [--max-size SIZE] | push|pull [--remote URL] KEY..." },
	{ "dkms", verb_dkms,
	  "dkms import DIR [-k KVER] [--arch ARCH] [--json] | list [--json] | status "
	  "[-k KVER] [--json] | takeover [NAME...] [-k KVER] [--dry-run]" },
};

static int verb_help(int argc, char *argv[], struct cli *cli)
{
	printf("dm2 " DM2_VERSION " - build, sign and install out-of-tree kernel modules\n\n"
	       "Usage: dm2 [--root DIR] [--recipes DIR] [--json] [-v|-q] COMMAND ...\n\n"
	       "Commands:\n");
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		printf("  dm2 %s\n", verbs[i].synopsis);
	printf("\nSee dm2(1) for details and exit codes.\n");
	return EXIT_OK;
}

/* Take the global options out of argv wherever they are; return the new argc. */
static int parse_global(int argc, char *argv[], struct cli *cli)
{
	int n = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;

		if (streq(a, "--")) {
			/* Everything after belongs to the verb. */
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		if ((v = startswith(a, "--root="))) {
			cli->root = v;
			continue;
		}
		if (streq(a, "--root") || streq(a, "--recipes")) {
			if (i + 1 >= argc) {
				log_error("Option '%s' needs an argument.", a);
				return -EINVAL;
			}
			if (streq(a, "--root"))
				cli->root = argv[++i];
			else if (strv_extend(&cli->recipe_dirs, argv[++i]) < 0)
				return log_oom();
			continue;
		}
		if ((v = startswith(a, "--recipes="))) {
			if (strv_extend(&cli->recipe_dirs, v) < 0)
				return log_oom();
			continue;
		}
		if (streq(a, "--json")) {
			cli->json = true;
			continue;
		}
		if (streq(a, "-v") || streq(a, "--verbose")) {
			cli->verbosity = 1;
			continue;
		}
		if (streq(a, "-q") || streq(a, "--quiet")) {
			cli->verbosity = -1;
			continue;
		}
		argv[n++] = argv[i];
	}
	argv[n] = NULL;
	return n;
}

int main(int argc, char *argv[])
{
	struct cli cli = { .tty = isatty(STDOUT_FILENO) };
	int r;

	log_set_program("dm2");
	r = parse_global(argc, argv, &cli);
	if (r < 0)
		return EXIT_USAGE;
	argc = r;
	if (cli.verbosity > 0)
		log_set_max_level(LOG_DEBUG);
	else if (cli.verbosity < 0)
		log_set_max_level(LOG_WARNING);

	if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
		r = verb_help(0, NULL, &cli);
		goto finish;
	}
	if (streq(argv[1], "--version")) {
		printf("dm2 " DM2_VERSION "\n");
		r = EXIT_OK;
		goto finish;
	}

	r = -1;
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[1], verbs[i].name)) {
			optind = 0; /* verbs use getopt_long() afresh */
			r = verbs[i].fn(argc - 1, argv + 1, &cli);
			break;
		}
	if (r < 0) {
		log_error("Unknown command '%s'; see 'dm2 --help'.", argv[1]);
		r = EXIT_USAGE;
	}
finish:
	context_free(cli.ctx);
	strv_free(cli.recipe_dirs);
	return r;
}
