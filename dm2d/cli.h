/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "context.h"
#include "exit-codes.h"
#include "shared/macro.h"

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
