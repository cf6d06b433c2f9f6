/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "control/exit-codes.h"
#include "shared/macro.h"

#include <getopt.h>
#include <stdio.h>

struct kbw_kernel;
struct recipe;
struct recipe_set;

/*
 * What every dm2 verb gets. Global options (--root, --recipes, --json, -v, -q) may stand
 * anywhere on the command line; they are removed before the verb parses its own options with
 * getopt_long(), so argv[0] is the verb name.
 */
struct cli {
	const char *root;    /* --root DIR, or NULL */
	char **recipe_dirs;  /* --recipes DIR (repeatable) */
	bool json;           /* --json */
	int verbosity;       /* -v: 1, -q: -1 */
	bool tty;            /* stdout is a terminal */
	struct dm2_context *ctx; /* opened on first use by cli_context() */
};

/* Open the root and its configuration on first use; logs why if that fails. */
int cli_context(struct cli *cli, struct dm2_context **ret);

/* Map a negative errno from the engine to an exit code, for errors not classified otherwise. */
int cli_exit_code_from_errno(int r);

/*
 * Helpers shared by the verbs. Each logs exactly one line on failure and returns a dm2
 * exit code (EXIT_OK on success). "usage" is the verb's one-line synopsis, e.g.
 * "dm2 build NAME -k KVER [--version V]"; --help prints it on stdout.
 */

/* Is arg "--help" or "-h"? */
bool cli_is_help(const char *arg);

/* Log "MESSAGE; usage: USAGE" and return EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *format, ...) _printf_(2, 3);

/*
 * getopt_long() with one-line messages of dm2's own. Returns the next option, or -1 when
 * the verb must stop parsing: then *ret_exit is -1 (options done and between min_args
 * and max_args (-1: no limit) arguments left at argv[optind]: go on), EXIT_OK (--help or
 * -h: usage printed) or EXIT_USAGE (unknown option, missing option argument, too few or
 * too many arguments: logged). longopts may be NULL.
 */
int cli_getopt(int argc, char *argv[], const char *shortopts,
	       const struct option *longopts, const char *usage, int min_args,
	       int max_args, int *ret_exit);

/* Are there between min and max (-1: no limit) arguments at argv[optind]? */
int cli_check_args(int argc, char *argv[], int min, int max, const char *usage);

/* Subcommands ("dm2 recipe list"): argv[1] picks one, called with argv + 1. Without a
 * subcommand, default_name is run (NULL: usage error). --help/-h print usage. */
struct cli_subverb {
	const char *name;
	int (*fn)(int argc, char *argv[], struct cli *cli);
};
int cli_dispatch(int argc, char *argv[], struct cli *cli, const struct cli_subverb *table,
		 size_t n, const char *default_name, const char *usage);

/*
 * For verbs whose subcommands parse their own options: when argv (the verb at argv[0], the
 * subcommand at argv[1]) holds --help or -h before any "--", print the usage of the
 * subcommand (table), or verb_usage when argv[1] is none of them or is the --help itself,
 * on stdout and return true.
 */
struct cli_subverb_usage {
	const char *name, *usage;
};
bool cli_help_requested(int argc, char *argv[], const struct cli_subverb_usage *table,
			size_t n, const char *verb_usage);

/* The path of dm2's signing certificate: [Signing] Certificate= (or Key=) beneath the
 * root, else the generated one. */
int cli_cert_path(struct cli *cli, char **ret);

/* Secure Boot and MOK state for dm2's certificate (core/secureboot.h); logs on failure. */
struct secureboot_state;
int cli_secureboot(struct cli *cli, struct secureboot_state *ret, char **ret_cert);
/* One line for dm2 status ("Secure Boot: on; dm2's certificate is enrolled."). */
void cli_secureboot_line(FILE *f, const struct secureboot_state *s, const char *cert);
/* "secure_boot":{...} for a JSON object (the comma before it is the caller's). */
void cli_secureboot_json(FILE *f, const struct secureboot_state *s, const char *cert);

/* cli-engine.c (dm2-engine only): all recipes; an invalid recipe file is reported once
 * (its first problem) and skipped. */
int cli_load_recipes(struct cli *cli, struct recipe_set **ret);
/* ...and the one named name: EXIT_NOT_FOUND when there is none. *ret_set owns *ret. */
int cli_find_recipe(struct cli *cli, const char *name, struct recipe_set **ret_set,
		    struct recipe **ret);
/* The kernel ROOT/lib/modules/release: EXIT_USAGE for a release that is no plain
 * directory name, EXIT_NOT_FOUND when it is not installed. */
int cli_find_kernel(struct cli *cli, const char *release, struct kbw_kernel **ret);

/* s as a JSON string (NULL: null). */
void cli_json_string(FILE *f, const char *s);

typedef int (*verb_fn)(int argc, char *argv[], struct cli *cli);

struct verb {
	const char *name;
	verb_fn fn;
	const char *synopsis; /* for dm2 --help */
};

/* Verbs, one file each (verb-*.c). Add new ones to the table in dm2.c. */
int verb_recipe(int argc, char *argv[], struct cli *cli);
int verb_kernel(int argc, char *argv[], struct cli *cli);
int verb_build(int argc, char *argv[], struct cli *cli);
/* build-kernels.c: a test build of recipe name (in set) for every kernel, in parallel,
 * nothing installed or recorded; prints the table (or --json). Returns an exit code. */
int build_all_kernels(struct cli *cli, const struct recipe_set *set, const char *name,
		      const char *version);
/* verb-recipe-test.c: dm2 recipe hash, dm2 recipe test. */
int verb_recipe_hash(int argc, char *argv[], struct cli *cli);
int verb_recipe_test(int argc, char *argv[], struct cli *cli);
int verb_sign(int argc, char *argv[], struct cli *cli);
int verb_verify(int argc, char *argv[], struct cli *cli);
int verb_key(int argc, char *argv[], struct cli *cli);
int verb_cache(int argc, char *argv[], struct cli *cli);
int verb_fetch(int argc, char *argv[], struct cli *cli);
int verb_trigger(int argc, char *argv[], struct cli *cli);
int verb_install(int argc, char *argv[], struct cli *cli);
int verb_uninstall(int argc, char *argv[], struct cli *cli);
int verb_depmod(int argc, char *argv[], struct cli *cli);
int verb_status(int argc, char *argv[], struct cli *cli);
int verb_log(int argc, char *argv[], struct cli *cli);
int verb_dkms(int argc, char *argv[], struct cli *cli);
