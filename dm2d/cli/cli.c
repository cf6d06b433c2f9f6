/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "shared/log.h"
#include "shared/util.h"

int cli_context(struct cli *cli, struct dm2_context **ret)
{
	int r;

	if (!cli->ctx) {
		/* A mistyped --recipes would otherwise just hide every recipe in it. */
		STRV_FOREACH(d, cli->recipe_dirs)
		{
			struct stat st;

			if (stat(*d, &st) < 0)
				return log_error_errno(
					errno, "Recipe directory '%s' (--recipes): %m",
					*d);
			if (!S_ISDIR(st.st_mode))
				return log_error_errno(
					ENOTDIR, "Recipe directory '%s' (--recipes): %m",
					*d);
		}
		r = context_new(cli->root, &cli->ctx);
		if (r < 0)
			return r;
		STRV_FOREACH(d, cli->recipe_dirs)
		{
			r = strv_extend(&cli->ctx->recipe_dirs, *d);
			if (r < 0)
				return log_oom();
		}
	}
	*ret = cli->ctx;
	return 0;
}

int cli_exit_code_from_errno(int r)
{
	switch (-r) {
	case 0:
		return EXIT_OK;
	case ENOENT:
	case ENOTDIR:
	case ESRCH:
		return EXIT_NOT_FOUND;
	case EPERM:
	case EACCES:
		return EXIT_PERMISSION;
	case EBADMSG:
	case EINVAL:
	case EISDIR:
		return EXIT_BAD_INPUT;
	case EBUSY:
	case EAGAIN:
	case ETIMEDOUT:
		return EXIT_BUSY;
	default:
		return EXIT_FAILURE_GENERIC;
	}
}

bool cli_is_help(const char *arg)
{
	return arg && (streq(arg, "--help") || streq(arg, "-h"));
}

int cli_usage_error(const char *usage, const char *format, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, format);
	n = vasprintf(&msg, format, ap);
	va_end(ap);
	if (n < 0)
		return log_oom(), EXIT_USAGE;
	log_error("%s; usage: %s", msg, usage);
	return EXIT_USAGE;
}

int cli_getopt(int argc, char *argv[], const char *shortopts,
	       const struct option *longopts, const char *usage, int min_args,
	       int max_args, int *ret_exit)
{
	static const struct option none[] = {{}};
	_cleanup_free_ char *opts = NULL;
	const char *arg;
	int c;

	/* A leading ':' makes getopt_long() tell a missing argument (':') from an unknown
	 * option ('?'); opterr = 0 keeps its own multi-format messages off stderr. */
	opts = strjoin(":", shortopts);
	if (!opts) {
		*ret_exit = EXIT_FAILURE_GENERIC;
		return log_oom(), -1;
	}
	opterr = 0;
	/* Without a table "--foo" would be parsed as the short options '-', 'f', 'o'. */
	c = getopt_long(argc, argv, opts, longopts ?: none, NULL);
	if (c == -1) {
		c = cli_check_args(argc, argv, min_args, max_args, usage);
		*ret_exit = c == EXIT_OK ? -1 : c;
		return -1;
	}
	if (c != '?' && c != ':')
		return c;

	/* The offending word: a long option is argv[optind - 1] whole (drop any
	 * "=value"); a short one may sit inside a cluster like "-xk", so name it by
	 * optopt. */
	arg = optind > 0 && optind <= argc ? argv[optind - 1] : NULL;
	if (arg && startswith(arg, "--")) {
		_cleanup_free_ char *name = strndup(arg, strcspn(arg, "="));

		if (!name) {
			*ret_exit = EXIT_FAILURE_GENERIC;
			return log_oom(), -1;
		}
		if (c == '?' && streq(name, "--help")) {
			printf("Usage: %s\n", usage);
			*ret_exit = EXIT_OK;
		} else if (c == ':')
			*ret_exit = cli_usage_error(
				usage, "Option '%s' needs an argument", name);
		else if (strchr(arg, '='))
			*ret_exit = cli_usage_error(usage,
						    "Unknown option '%s' or it takes no "
						    "value",
						    name);
		else
			*ret_exit = cli_usage_error(usage, "Unknown option '%s'", name);
		return -1;
	}
	if (c == '?' && optopt == 'h') {
		printf("Usage: %s\n", usage);
		*ret_exit = EXIT_OK;
	} else if (c == ':')
		*ret_exit =
			cli_usage_error(usage, "Option '-%c' needs an argument", optopt);
	else if (optopt > 0x20 && optopt < 0x7f)
		*ret_exit = cli_usage_error(usage, "Unknown option '-%c'", optopt);
	else
		*ret_exit = cli_usage_error(usage, "Unknown option '%s'", strna(arg));
	return -1;
}

int cli_check_args(int argc, char *argv[], int min, int max, const char *usage)
{
	int n = argc - optind;

	if (n < min)
		return cli_usage_error(usage, "Missing argument");
	if (max >= 0 && n > max)
		return cli_usage_error(usage, "Unexpected argument '%s'",
				       argv[optind + max]);
	return EXIT_OK;
}

int cli_dispatch(int argc, char *argv[], struct cli *cli, const struct cli_subverb *table,
		 size_t n, const char *default_name, const char *usage)
{
	const char *name = argc >= 2 ? argv[1] : default_name;

	if (!name)
		return cli_usage_error(usage, "Missing command for 'dm2 %s'", argv[0]);
	if (cli_is_help(name)) {
		printf("Usage: %s\n", usage);
		return EXIT_OK;
	}
	for (size_t i = 0; i < n; i++)
		if (streq(table[i].name, name)) {
			optind = 0; /* the subcommand parses with getopt_long() afresh */
			return argc >= 2 ? table[i].fn(argc - 1, argv + 1, cli)
					 : table[i].fn(argc, argv, cli);
		}
	return cli_usage_error(usage, "Unknown command 'dm2 %s %s'", argv[0], name);
}

void cli_json_string(FILE *f, const char *s)
{
	json_write_string(f, s);
}
