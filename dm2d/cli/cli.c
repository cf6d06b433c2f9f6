/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/secureboot.h"
#include "shared/fs-util.h"
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

bool cli_help_requested(int argc, char *argv[], const struct cli_subverb_usage *table,
			size_t n, const char *verb_usage)
{
	const char *usage = verb_usage;
	bool help = false;

	for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
		if (cli_is_help(argv[i])) {
			help = true;
			break;
		}
	if (!help)
		return false;
	for (size_t i = 0; argc >= 2 && i < n; i++)
		if (streq(table[i].name, argv[1]))
			usage = table[i].usage;
	printf("Usage: %s\n", usage);
	return true;
}

void cli_json_string(FILE *f, const char *s)
{
	json_write_string(f, s);
}

int cli_cert_path(struct cli *cli, char **ret)
{
	struct dm2_context *ctx;
	const char *v;
	char *p;
	int r;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return r;
	v = ctx->config ? (ctx->config->sign_cert ?: ctx->config->sign_key) : NULL;
	if (!isempty(v) && strchr(v, ':') && v[0] != '/')
		p = strdup(v); /* a provider URI (pkcs11:...) */
	else if (!isempty(v)) {
		while (*v == '/')
			v++;
		p = context_path(ctx, v);
	} else
		p = context_path(ctx, DM2_KEY_DIR "/signing_key.x509");
	if (!p)
		return log_oom();
	*ret = p;
	return 0;
}

int cli_secureboot(struct cli *cli, struct secureboot_state *ret, char **ret_cert)
{
	_cleanup_free_ char *cert = NULL, *text = NULL;
	_cleanup_free_ void *der = NULL;
	struct dm2_context *ctx;
	size_t size = 0, der_size = 0;
	bool configured;
	int r;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return r;
	r = cli_cert_path(cli, &cert);
	if (r < 0)
		return r;
	configured = ctx->config && (ctx->config->sign_cert || ctx->config->sign_key);
	r = read_full_file_at(AT_FDCWD, cert, 1 << 20, &text, &size);
	if (r >= 0 && cert_to_der(text, size, &der, &der_size) == -ENOMEM)
		return log_oom();
	r = secureboot_probe(ctx->root_fd, der, der_size, ret);
	if (r < 0)
		return log_oom();
	/* A configured certificate we cannot read (a token, a PEM bundle) is not "none". */
	if (!der && configured)
		ret->mok = MOK_UNKNOWN;
	*ret_cert = TAKE_PTR(cert);
	return 0;
}

static const char *secure_boot_word(const struct secureboot_state *s)
{
	return s->secure_boot > 0 ? "on" : s->secure_boot == 0 ? "off" : "unknown";
}

void cli_secureboot_line(FILE *f, const struct secureboot_state *s, const char *cert)
{
	fprintf(f, "Secure Boot: %s; ", secure_boot_word(s));
	switch (s->mok) {
	case MOK_ENROLLED:
		fputs("dm2's certificate is enrolled.\n", f);
		break;
	case MOK_PENDING:
		fputs("dm2's certificate is waiting to be enrolled: confirm it in MokManager at "
		      "the next boot.\n", f);
		break;
	case MOK_NOT_ENROLLED:
		fprintf(f, "dm2's certificate is not enrolled: mokutil --import %s\n", cert);
		break;
	case MOK_NO_CERTIFICATE:
		fputs("dm2 has no signing certificate yet (dm2 key generate).\n", f);
		break;
	case MOK_UNKNOWN:
	case _MOK_STATE_MAX:
	case _MOK_STATE_INVALID:
		fputs("enrolment of dm2's certificate unknown.\n", f);
		break;
	}
}

void cli_secureboot_json(FILE *f, const struct secureboot_state *s, const char *cert)
{
	_cleanup_free_ char *cmd = NULL;

	if (s->mok == MOK_NOT_ENROLLED)
		cmd = strjoin("mokutil --import ", cert);
	fprintf(f, "\"secure_boot\":{\"efi\":%s,\"enabled\":%s,\"mok\":",
		s->efi ? "true" : "false",
		s->secure_boot > 0 ? "true" : s->secure_boot == 0 ? "false" : "null");
	json_write_string(f, mok_state_to_string(s->mok));
	fputs(",\"certificate\":", f);
	json_write_string(f, cert);
	fputs(",\"enroll_command\":", f);
	json_write_string(f, cmd);
	fputc('}', f);
}
