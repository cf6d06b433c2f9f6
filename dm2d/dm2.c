/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2: the command line. See dm2(1). */
#include <getopt.h>
#include <limits.h>
#include <unistd.h>

#include "cli/cli.h"
#include "shared/log.h"
#include "shared/util.h"

static int verb_help(int argc, char *argv[], struct cli *cli);

/*
 * dm2 is built twice from this file. The front end ("dm2", DM2_FRONTEND) runs the read-only
 * verbs itself and links nothing but the state db code, so "dm2 status" answers in a few ms
 * instead of spending them loading libcurl, libarchive, OpenSSL and their dependencies; every
 * other verb is handed to the full engine ("dm2-engine") with execv(). ENGINE() marks those.
 */
#ifdef DM2_FRONTEND
#define ENGINE(fn) NULL
#else
#define ENGINE(fn) fn
#endif

static const struct verb verbs[] = {
	{ "help", verb_help, "help [COMMAND]" },
	{ "install", ENGINE(verb_install),
	  "install NAME... {-k KVER | --all-kernels} [--no-depmod] [--force]" },
	{ "uninstall", ENGINE(verb_uninstall), "uninstall NAME -k KVER" },
	{ "depmod", ENGINE(verb_depmod), "depmod -k KVER" },
	{ "status", verb_status, "status [NAME] [-k KVER] [--json]" },
	{ "log", verb_log, "log NAME -k KVER" },
	{ "fetch", ENGINE(verb_fetch), "fetch NAME [--version V]" },
	{ "trigger", ENGINE(verb_trigger), "trigger [KVER] [--wait [--timeout SEC]]" },
	{ "recipe", ENGINE(verb_recipe), "recipe lint FILE... | list [--json] | show NAME [--json]" },
	{ "kernel", ENGINE(verb_kernel), "kernel list [--json]" },
	{ "build", ENGINE(verb_build), "build NAME -k KVER [--version V] [--json]" },
	{ "sign", ENGINE(verb_sign), "sign FILE.ko [--key K --cert C] [--hash H] [-k KVER] [-o OUT]" },
	{ "verify", ENGINE(verb_verify), "verify FILE.ko[.xz|.zst|.gz] [--cert CERT]" },
	{ "key", ENGINE(verb_key),
	  "key generate [--force] | show [--json] | status [--json] | adopt-dkms [--force]" },
	{ "cache", ENGINE(verb_cache),
	  "cache stat [--json] | gc [--max-size SIZE] | push|pull [--remote URL] KEY..." },
	{ "dkms", ENGINE(verb_dkms),
	  "dkms import DIR [-k KVER] [--arch ARCH] [--json] | list [--json] | status "
	  "[-k KVER] [--json] | takeover [NAME...] [-k KVER] [--dry-run]" },
};

static int verb_help(int argc, char *argv[], struct cli *cli)
{
	/* dm2 help VERB: that verb's usage, as dm2 VERB --help. */
	if (argc >= 2 && !cli_is_help(argv[1])) {
		for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
			if (streq(argv[1], verbs[i].name)) {
				printf("Usage: dm2 %s\n", verbs[i].synopsis);
				return EXIT_OK;
			}
		log_error("Unknown command '%s'; see 'dm2 --help'.", argv[1]);
		return EXIT_USAGE;
	}
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

#ifdef DM2_FRONTEND
/* Hand the whole original command line to the engine. Never returns on success. */
static int exec_engine(char *argv[])
{
	char self[PATH_MAX], path[PATH_MAX + 16];
	const char *e = getenv("DM2_ENGINE");
	ssize_t n;

	if (!e) {
		/* Next to us in the build tree, else where "cmake --install" put it. */
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n > 0) {
			self[n] = '\0';
			char *slash = strrchr(self, '/');
			if (slash) {
				*slash = '\0';
				snprintf(path, sizeof(path), "%s/dm2-engine", self);
				if (access(path, X_OK) >= 0)
					e = path;
			}
		}
	}
	if (!e)
		e = DM2_LIBEXECDIR "/dm2-engine";
	execv(e, argv);
	log_error_errno(errno, "Failed to run the dm2 engine '%s': %m", e);
	return EXIT_FAILURE_GENERIC;
}
#endif

int main(int argc, char *argv[])
{
	struct cli cli = { .tty = isatty(STDOUT_FILENO) };
	int r;

	log_set_program("dm2");
#ifdef DM2_FRONTEND
	/* parse_global() rewrites argv; the engine needs it as it was. */
	_cleanup_strv_free_ char **original = calloc(argc + 1, sizeof(char *));
	if (!original)
		return log_oom(), EXIT_FAILURE_GENERIC;
	for (int i = 0; i < argc; i++)
		if (strv_extend(&original, argv[i]) < 0)
			return log_oom(), EXIT_FAILURE_GENERIC;
#endif
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

	const struct verb *verb = NULL;
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[1], verbs[i].name))
			verb = &verbs[i];
	if (!verb) {
		log_error("Unknown command '%s'; see 'dm2 --help'.", argv[1]);
		r = EXIT_USAGE;
		goto finish;
	}
#ifdef DM2_FRONTEND
	if (!verb->fn) {
		r = exec_engine(original);
		goto finish;
	}
#endif
	optind = 0; /* verbs use getopt_long() afresh */
	r = verb->fn(argc - 1, argv + 1, &cli);
	if (r < 0) {
		/* Verbs return exit codes; a negative errno here is a bug, but still an error. */
		log_debug("Verb '%s' returned %d.", verb->name, r);
		r = cli_exit_code_from_errno(r);
	}
finish:
	context_free(cli.ctx);
	strv_free(cli.recipe_dirs);
	return r;
}
