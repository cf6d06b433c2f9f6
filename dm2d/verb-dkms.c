/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 dkms import|list: see dm2(1). */
#include <getopt.h>
#include <limits.h>

#include "cli.h"
#include "dkms.h"
#include "shared/log.h"
#include "shared/util.h"

static void diag_stderr(const char *file, unsigned line, const char *message,
			void *userdata)
{
	if (line > 0)
		fprintf(stderr, "%s:%u: %s\n", file, line, message);
	else
		fprintf(stderr, "%s: %s\n", file, message);
}

/* For list: keep the first error, drop warnings. */
static void diag_first(const char *file, unsigned line, const char *message,
		       void *userdata)
{
	char **first = userdata;

	if (*first || startswith(message, "warning: "))
		return;
	if (line > 0) {
		if (asprintf(first, "%s:%u: %s", file, line, message) < 0)
			*first = NULL;
	} else if (asprintf(first, "%s: %s", file, message) < 0)
		*first = NULL;
}

static void json_string(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
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

static void json_strv(FILE *f, char *const *l)
{
	bool first = true;

	fputc('[', f);
	STRV_FOREACH(s, l) {
		if (!first)
			fputs(", ", f);
		json_string(f, *s);
		first = false;
	}
	fputc(']', f);
}

static void print_json(const struct dkms_conf *c, bool applies, const char *reason)
{
	FILE *f = stdout;

	fputs("{\"name\": ", f);
	json_string(f, c->name);
	fputs(", \"version\": ", f);
	json_string(f, c->version);
	fputs(", \"path\": ", f);
	json_string(f, c->dir);
	fputs(", \"kernel\": ", f);
	json_string(f, c->kernel_release);
	fputs(", \"license\": ", f);
	json_string(f, c->license);
	fprintf(f, ", \"autoinstall\": %s, \"install_dir\": ",
		c->autoinstall ? "true" : "false");
	json_string(f, DKMS_INSTALL_DIR);
	fputs(", \"modules\": [", f);
	for (size_t i = 0; i < c->n_modules; i++) {
		const struct dkms_module *m = &c->modules[i];

		fputs(i > 0 ? ", {\"name\": " : "{\"name\": ", f);
		json_string(f, m->built_name);
		fputs(", \"built_location\": ", f);
		json_string(f, m->built_location);
		fputs(", \"dest_name\": ", f);
		json_string(f, m->dest_name);
		fputs(", \"dest_module_location\": ", f);
		json_string(f, m->dest_location);
		fprintf(f, ", \"strip\": %s}", m->strip ? "true" : "false");
	}
	fputs("], \"make\": ", f);
	json_string(f, c->make);
	fputs(", \"make_command\": ", f);
	json_string(f, c->make_command);
	fputs(", \"clean\": ", f);
	json_string(f, c->clean);
	fputs(", \"patches\": [", f);
	for (size_t i = 0; i < c->n_patches; i++) {
		fputs(i > 0 ? ", {\"file\": " : "{\"file\": ", f);
		json_string(f, c->patches[i].file);
		fputs(", \"match\": ", f);
		json_string(f, c->patches[i].match);
		fputc('}', f);
	}
	fputs("], \"build_exclusive_kernel\": ", f);
	json_string(f, c->exclusive_kernel);
	fputs(", \"build_exclusive_kernel_min\": ", f);
	json_string(f, c->exclusive_kernel_min);
	fputs(", \"build_exclusive_kernel_max\": ", f);
	json_string(f, c->exclusive_kernel_max);
	fputs(", \"build_exclusive_arch\": ", f);
	json_string(f, c->exclusive_arch);
	fputs(", \"build_exclusive_config\": ", f);
	json_strv(f, c->exclusive_config);
	fputs(", \"build_depends\": ", f);
	json_strv(f, c->build_depends);
	fputs(", \"scripts_not_run\": ", f);
	json_strv(f, c->scripts);
	fprintf(f, ", \"applies\": %s, \"skip_reason\": ", applies ? "true" : "false");
	json_string(f, reason);
	fputs("}\n", f);
}

static void print_text(const struct dkms_conf *c, bool applies, const char *reason)
{
	printf("%s %s (DKMS package)\n", c->name, c->version);
	printf("  Source:        %s\n", c->dir);
	printf("  Kernel:        %s\n",
	       c->kernel_release
		       ?: "any (kernel-independent view; -k KVER evaluates for one)");
	printf("  License:       %s\n",
	       c->license ?: "unknown (no MODULE_LICENSE found)");
	printf("  Autoinstall:   %s\n", c->autoinstall ? "yes" : "no");
	for (size_t i = 0; i < c->n_modules; i++) {
		const struct dkms_module *m = &c->modules[i];

		printf("  Module:        %s%s%s.ko -> %s/%s.ko%s", m->built_location,
		       *m->built_location ? "/" : "", m->built_name, DKMS_INSTALL_DIR,
		       m->dest_name, m->strip ? " (stripped)" : "");
		if (m->dest_location)
			printf(" [dkms.conf asks for %s]", m->dest_location);
		putchar('\n');
	}
	if (c->make_command)
		printf("  Make:          %s\n", c->make_command);
	else
		printf("  Make:          kbuild (%s)\n",
		       c->make ? "the MAKE command is DKMS' default call" : "default");
	if (c->clean)
		printf("  Clean:         %s (not needed: every build starts from a fresh "
		       "copy)\n",
		       c->clean);
	for (size_t i = 0; i < c->n_patches; i++) {
		printf("  Patch:         patches/%s", c->patches[i].file);
		if (c->patches[i].match)
			printf(" (for kernels matching '%s')", c->patches[i].match);
		putchar('\n');
	}
	if (c->exclusive_kernel)
		printf("  Only kernels:  matching '%s'\n", c->exclusive_kernel);
	if (c->exclusive_kernel_min)
		printf("  Only kernels:  >= %s\n", c->exclusive_kernel_min);
	if (c->exclusive_kernel_max)
		printf("  Only kernels:  <= %s%s\n", c->exclusive_kernel_max,
		       c->obsolete_by && streq(c->obsolete_by, c->exclusive_kernel_max)
			       ? " (OBSOLETE_BY)"
			       : "");
	if (c->exclusive_arch)
		printf("  Only arch:     matching '%s'\n", c->exclusive_arch);
	STRV_FOREACH(s, c->exclusive_config)
		printf("  Needs config:  %s\n", *s);
	STRV_FOREACH(s, c->build_depends)
		printf("  Build after:   %s\n", *s);
	STRV_FOREACH(s, c->scripts)
		printf("  Not run:       %s\n", *s);
	if (c->kernel_release)
		printf("  Applies:       %s%s\n",
		       applies ? "yes" : "no: ", applies ? "" : reason);
}

static int dkms_import(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "arch", required_argument, NULL, 'a' },
		{}
	};
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_(recipe_unrefp) struct recipe *rcp = NULL;
	_cleanup_free_ char *dir = NULL, *ksrc = NULL, *reason = NULL, *rel = NULL;
	const char *kver = NULL, *arch = NULL;
	struct dm2_context *ctx;
	bool applies = true;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "k:a:", options, NULL)) >= 0)
		switch (opt) {
		case 'k':
			kver = optarg;
			break;
		case 'a':
			arch = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	if (optind + 1 != argc) {
		log_error("Usage: dm2 dkms import DIR [-k KVER] [--arch ARCH] [--json]");
		return EXIT_USAGE;
	}
	dir = realpath(argv[optind], NULL);
	if (!dir) {
		log_error("Cannot find '%s': %m", argv[optind]);
		return EXIT_NOT_FOUND;
	}
	if (kver) {
		r = cli_context(cli, &ctx);
		if (r < 0)
			return cli_exit_code_from_errno(r);
		rel = strjoin(DM2_MODULES_DIR "/", kver, "/build");
		ksrc = rel ? context_path(ctx, rel) : NULL;
		if (!ksrc)
			return log_oom(), EXIT_FAILURE_GENERIC;
	}

	r = dkms_conf_load(dir, kver, arch, ksrc, diag_stderr, NULL, &c);
	if (r == -EBADMSG)
		return EXIT_BAD_INPUT;
	if (r == -ENOENT)
		return EXIT_NOT_FOUND;
	if (r < 0) {
		log_error_errno(r, "Failed to read '%s/dkms.conf': %m", dir);
		return cli_exit_code_from_errno(r);
	}
	r = dkms_conf_to_recipe(c, &rcp);
	if (r < 0) {
		log_error_errno(r, "Failed to convert '%s' into a recipe: %m", c->path);
		return r == -EINVAL ? EXIT_BAD_INPUT : cli_exit_code_from_errno(r);
	}
	if (kver)
		applies = dkms_applies(rcp, kver, NULL, arch, &reason);

	if (cli->json)
		print_json(c, applies, reason);
	else
		print_text(c, applies, strna(reason));
	return EXIT_OK;
}

static int dkms_list(int argc, char *argv[], struct cli *cli)
{
	_cleanup_strv_free_ char **dirs = NULL;
	struct dm2_context *ctx;
	bool first = true;
	int r;

	if (argc > 1) {
		log_error("Usage: dm2 dkms list [--json]");
		return EXIT_USAGE;
	}
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = dkms_scan(ctx->root_fd, ctx->root, &dirs);
	if (r < 0) {
		log_error_errno(r, "Failed to list '%s/" DM2_USR_SRC_DIR "': %m",
				ctx->root);
		return cli_exit_code_from_errno(r);
	}

	if (cli->json)
		fputs("[", stdout);
	else if (dirs)
		printf("%-24s %-16s %-11s %s\n", "NAME", "VERSION", "AUTOINSTALL",
		       "STATUS");
	STRV_FOREACH(d, dirs) {
		_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
		_cleanup_free_ char *error = NULL;
		const char *slash = strrchr(*d, '/');

		r = dkms_conf_load(*d, NULL, NULL, NULL, diag_first, &error, &c);
		if (r == -ENOMEM)
			return log_oom(), EXIT_FAILURE_GENERIC;
		if (r < 0 && !error &&
		    asprintf(&error, "%s/dkms.conf: %s", *d, strerror(-r)) < 0)
			error = NULL;

		if (cli->json) {
			fputs(first ? "\n {\"path\": " : ",\n {\"path\": ", stdout);
			json_string(stdout, *d);
			fputs(", \"name\": ", stdout);
			json_string(stdout, c ? c->name : NULL);
			fputs(", \"version\": ", stdout);
			json_string(stdout, c ? c->version : NULL);
			printf(", \"autoinstall\": %s, \"valid\": %s, \"error\": ",
			       c && c->autoinstall ? "true" : "false",
			       c ? "true" : "false");
			json_string(stdout, c ? NULL : strna(error));
			fputs("}", stdout);
		} else
			printf("%-24s %-16s %-11s %s%s\n",
			       c ? c->name : (slash ? slash + 1 : *d),
			       c ? c->version : "-",
			       c ? (c->autoinstall ? "yes" : "no") : "-",
			       c ? "ok" : "invalid: ", c ? "" : strna(error));
		first = false;
	}
	if (cli->json)
		fputs(dirs ? "\n]\n" : "]\n", stdout);
	else if (!dirs)
		printf("No dkms.conf packages in '%s/" DM2_USR_SRC_DIR "'.\n",
		       streq(ctx->root, "/") ? "" : ctx->root);
	return EXIT_OK;
}

int verb_dkms(int argc, char *argv[], struct cli *cli)
{
	if (argc < 2) {
		log_error("Usage: dm2 dkms import DIR [-k KVER] | dm2 dkms list");
		return EXIT_USAGE;
	}
	optind = 0;
	if (streq(argv[1], "import"))
		return dkms_import(argc - 1, argv + 1, cli);
	if (streq(argv[1], "list"))
		return dkms_list(argc - 1, argv + 1, cli);
	log_error("Unknown command 'dkms %s'; see 'dm2 --help'.", argv[1]);
	return EXIT_USAGE;
}
