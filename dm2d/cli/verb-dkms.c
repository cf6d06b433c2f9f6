/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 dkms import|list|status|takeover: see dm2(1). */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/kernels.h"
#include "pipeline/dkms-takeover.h"
#include "recipe/dkms-recipe.h"
#include "recipe/dkms-run.h"
#include "recipe/dkms.h"
#include "pipeline/keys.h"
#include "shared/fs-util.h"
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

static void json_strv(FILE *f, char *const *l)
{
	bool first = true;

	fputc('[', f);
	STRV_FOREACH(s, l) {
		if (!first)
			fputs(", ", f);
		cli_json_string(f, *s);
		first = false;
	}
	fputc(']', f);
}

/* "NAME[i]": "value", for every directive bash left set (dm2_* are the runner's). */
static void json_var(const char *name, size_t index, const char *value, void *userdata)
{
	bool *first = userdata;
	_cleanup_free_ char *key = NULL;

	if (startswith(name, "dm2_"))
		return;
	key = strdup_printf("%s[%zu]", name, index);
	fputs(*first ? "" : ", ", stdout);
	cli_json_string(stdout, key);
	fputs(": ", stdout);
	cli_json_string(stdout, value);
	*first = false;
}

/* userdata: the FILE to write to, NULL for stdout. */
static void text_var(const char *name, size_t index, const char *value, void *userdata)
{
	_cleanup_free_ char *v = strdup(value);

	if (startswith(name, "dm2_") || !v)
		return;
	for (char *p = v; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	fprintf(userdata ?: stdout, "    %s[%zu]=%s\n", name, index, v);
}

static void print_json(const struct dkms_conf *c, bool applies, const char *reason)
{
	FILE *f = stdout;

	/* "version" is the format's, as in every --json document; the package's is
	 * "package_version". */
	fputs("{\"version\": 1, \"name\": ", f);
	cli_json_string(f, c->name);
	fputs(", \"package_version\": ", f);
	cli_json_string(f, c->version);
	fputs(", \"path\": ", f);
	cli_json_string(f, c->dir);
	fputs(", \"kernel\": ", f);
	cli_json_string(f, c->kernel_release);
	fputs(", \"arch\": ", f);
	cli_json_string(f, c->arch);
	fprintf(f, ", \"autoinstall\": %s, \"install_dir\": ",
		c->autoinstall ? "true" : "false");
	cli_json_string(f, DKMS_INSTALL_DIR);
	fputs(", \"modules\": [", f);
	for (size_t i = 0; i < c->n_modules; i++) {
		const struct dkms_module *m = &c->modules[i];

		fputs(i > 0 ? ", {\"name\": " : "{\"name\": ", f);
		cli_json_string(f, m->built_name);
		fputs(", \"built_location\": ", f);
		cli_json_string(f, m->built_location);
		fputs(", \"dest_name\": ", f);
		cli_json_string(f, m->dest_name);
		fputs(", \"dest_module_location\": ", f);
		cli_json_string(f, m->dest_location);
		fprintf(f, ", \"strip\": %s}", m->strip ? "true" : "false");
	}
	fputs("], \"make\": ", f);
	cli_json_string(f, c->make);
	fputs(", \"make_command\": ", f);
	cli_json_string(f, c->make_command);
	fputs(", \"clean\": ", f);
	cli_json_string(f, c->clean);
	fputs(", \"patches\": [", f);
	for (size_t i = 0; i < c->n_patches; i++) {
		fputs(i > 0 ? ", {\"file\": " : "{\"file\": ", f);
		cli_json_string(f, c->patches[i].file);
		fputs(", \"match\": ", f);
		cli_json_string(f, c->patches[i].match);
		fputc('}', f);
	}
	fputs("], \"build_exclusive_kernel\": ", f);
	cli_json_string(f, c->exclusive_kernel);
	fputs(", \"build_exclusive_kernel_min\": ", f);
	cli_json_string(f, c->exclusive_kernel_min);
	fputs(", \"build_exclusive_kernel_max\": ", f);
	cli_json_string(f, c->exclusive_kernel_max);
	fputs(", \"build_exclusive_arch\": ", f);
	cli_json_string(f, c->exclusive_arch);
	fputs(", \"build_exclusive_config\": ", f);
	json_strv(f, c->exclusive_config);
	fputs(", \"build_depends\": ", f);
	json_strv(f, c->build_depends);
	fputs(", \"pre_build\": ", f);
	cli_json_string(f, c->pre_build);
	fputs(", \"post_build\": ", f);
	cli_json_string(f, c->post_build);
	fputs(", \"variables\": {", f);
	dkms_vars_foreach(c->vars, json_var, &(bool){true});
	fputs("}", f);
	fputs(", \"scripts_not_run\": ", f);
	json_strv(f, c->scripts);
	fputs(", \"overrides\": ", f);
	json_strv(f, c->overrides);
	fprintf(f, ", \"applies\": %s, \"skip_reason\": ", applies ? "true" : "false");
	cli_json_string(f, reason);
	fputs("}\n", f);
}

static void print_text(const struct dkms_conf *c, bool applies, const char *reason)
{
	printf("%s %s (DKMS package)\n", c->name, c->version);
	printf("  Source:        %s\n", c->dir);
	printf("  Kernel:        %s\n",
	       c->kernel_release
		       ?: "any (kernel-independent view; -k KVER evaluates for one)");
	printf("  Arch:          %s\n", strna(c->arch));
	printf("  License:       judged from each built module's modinfo after the build\n");
	printf("  Autoinstall:   %s\n", c->autoinstall ? "yes" : "no");
	STRV_FOREACH(o, c->overrides)
		printf("  Overridden by: %s\n", *o);
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
	if (c->pre_build)
		printf("  PRE_BUILD:     %s (run in the build sandbox, in the build dir, "
		       "before make)\n",
		       c->pre_build);
	if (c->post_build)
		printf("  POST_BUILD:    %s (run in the build sandbox, in the build dir, "
		       "after make)\n",
		       c->post_build);
	STRV_FOREACH(s, c->scripts)
		printf("  Not run:       %s (DKMS runs it as root; dm2 runs no package "
		       "script as root)\n",
		       *s);
	printf("  Variables (as bash left them%s%s):\n", c->kernel_release ? " for " : "",
	       strempty(c->kernel_release));
	dkms_vars_foreach(c->vars, text_var, NULL);
	if (c->kernel_release)
		printf("  Applies:       %s%s\n",
		       applies ? "yes" : "no: ", applies ? "" : reason);
}

/* The kernel -k names, when it is installed, and its build tree as $kernel_source_dir
 * (else where it would be). */
static int import_kernel(struct dm2_context *ctx, const char *kver, struct kbw_kernel **ret,
			 char **ret_ksrc)
{
	_cleanup_free_ char *rel = NULL;
	struct kbw_kernel *k = NULL;

	*ret = NULL;
	*ret_ksrc = NULL;
	if (!kver)
		return 0;
	if (kernel_find(ctx, kver, &k) >= 0 && kbw_kernel_build_dir(k)) {
		*ret_ksrc = strdup(kbw_kernel_build_dir(k));
		*ret = k;
		return *ret_ksrc ? 0 : -ENOMEM;
	}
	kbw_kernel_unref(k);
	rel = strjoin(DM2_MODULES_DIR "/", kver, "/build");
	*ret_ksrc = rel ? context_path(ctx, rel) : NULL;
	return *ret_ksrc ? 0 : -ENOMEM;
}

/*
 * dkms.conf failed the checks: show what bash left anyway, so the packager sees how far
 * it got (the problems themselves went to stderr, one line each).
 */
static void print_partial(const struct dkms_load_params *p, FILE *f)
{
	_cleanup_(dkms_eval_result_done) struct dkms_eval_result ev = {};
	_cleanup_free_ char *path = path_join(p->dir, "dkms.conf"), *text = NULL,
			    *reason = NULL, *ksrc = NULL;
	size_t size;

	/* As dkms_conf_load_with() does without a kernel: $kernel_source_dir is that of
	 * no release. */
	ksrc = p->kernel_build_dir
		       ? strdup(p->kernel_build_dir)
		       : strjoin("/lib/modules/", strempty(p->kernel_release), "/build");
	if (!path || !ksrc ||
	    read_full_file_at(AT_FDCWD, path, RECIPE_MAX_SIZE, &text, &size) < 0)
		return;
	if (dkms_evaluate(&(struct dkms_eval_input){.ctx = p->ctx,
						    .dir = p->dir,
						    .conf_text = text,
						    .conf_size = size,
						    .kernel_release = p->kernel_release,
						    .arch = p->arch,
						    .kernel_source_dir = ksrc,
						    .kernel = p->kernel,
						    .overrides_dir = p->overrides_dir,
						    .fresh = true},
			  &ev, &reason) < 0) {
		fprintf(f, "%s: bash could not evaluate it: %s\n", path, strna(reason));
		return;
	}
	fprintf(f, "%s is not a valid DKMS package (see above); bash left%s%s:\n", path,
		p->kernel_release ? " for " : "", strempty(p->kernel_release));
	dkms_vars_foreach(ev.vars, text_var, f);
}

#define IMPORT_USAGE "dm2 dkms import DIR [-k KVER] [--arch ARCH] [--recipe] [--json]"

struct import_args {
	const char *kver, *arch, *path;
	bool as_recipe;
};

static int import_parse_args(int argc, char *argv[], struct import_args *a)
{
	static const struct option options[] = {{"kernel", required_argument, NULL, 'k'},
						{"arch", required_argument, NULL, 'a'},
						{"recipe", no_argument, NULL, 'R'},
						{}};
	int opt;

	while ((opt = getopt_long(argc, argv, "k:a:", options, NULL)) >= 0)
		switch (opt) {
		case 'k':
			a->kver = optarg;
			break;
		case 'R':
			a->as_recipe = true;
			break;
		case 'a':
			a->arch = optarg;
			break;
		default:
			return -EINVAL;
		}
	if (optind + 1 != argc) {
		log_error("Usage: " IMPORT_USAGE);
		return -EINVAL;
	}
	a->path = argv[optind];
	return 0;
}

static int dkms_import(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_(recipe_unrefp) struct recipe *rcp = NULL;
	_cleanup_free_ char *dir = NULL, *ksrc = NULL, *reason = NULL, *etc_dkms = NULL;
	struct import_args a = {};
	struct kbw_kernel *k = NULL;
	const char *kver, *arch;
	struct dm2_context *ctx;
	bool applies = true, as_recipe;
	int r;

	if (import_parse_args(argc, argv, &a) < 0)
		return EXIT_USAGE;
	kver = a.kver;
	arch = a.arch;
	as_recipe = a.as_recipe;
	dir = realpath(a.path, NULL);
	if (!dir) {
		log_error("Cannot find '%s': %m", a.path);
		return EXIT_NOT_FOUND;
	}
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = import_kernel(ctx, kver, &k, &ksrc);
	if (r < 0)
		return log_oom(), EXIT_FAILURE_GENERIC;
	if (k && !arch)
		arch = kbw_kernel_arch(k);
	etc_dkms = context_path(ctx, DM2_DKMS_ETC_DIR);
	if (!etc_dkms)
		return log_oom(), EXIT_FAILURE_GENERIC;

	/* Evaluated afresh: a packager sees what bash says now. */
	struct dkms_load_params params = {.ctx = ctx,
					  .dir = dir,
					  .kernel_release = kver,
					  .arch = arch,
					  .kernel_build_dir = ksrc,
					  .kernel = k,
					  .overrides_dir = etc_dkms,
					  .fresh = true};
	r = dkms_conf_load_with(&params, diag_stderr, NULL, &c);
	if (r == -EBADMSG && !cli->json)
		/* --recipe's stdout is a recipe file: the rest goes with the errors. */
		print_partial(&params, as_recipe ? stderr : stdout);
	if (r >= 0 && (kver || as_recipe))
		r = dkms_conf_to_recipe(c, &rcp);
	if (r >= 0 && kver)
		applies = dkms_applies(rcp, kver, k ? kbw_kernel_version(k) : NULL,
				       arch ?: c->arch, &reason);
	kbw_kernel_unref(k);
	if (r == -EBADMSG)
		return EXIT_BAD_INPUT;
	if (r == -ENOENT)
		return EXIT_NOT_FOUND;
	if (r < 0) {
		log_error_errno(r, "Failed to read '%s/dkms.conf': %m", dir);
		return cli_exit_code_from_errno(r);
	}

	if (as_recipe)
		return dkms_recipe_write(c, rcp, stdout) < 0 ? EXIT_FAILURE_GENERIC
							     : EXIT_OK;
	if (cli->json)
		print_json(c, applies, reason);
	else
		print_text(c, applies, strna(reason));
	return EXIT_OK;
}

static int dkms_list(int argc, char *argv[], struct cli *cli)
{
	_cleanup_strv_free_ char **dirs = NULL;
	_cleanup_free_ char *etc_dkms = NULL;
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
	etc_dkms = context_path(ctx, DM2_DKMS_ETC_DIR);
	if (!etc_dkms)
		return log_oom(), EXIT_FAILURE_GENERIC;
	r = dkms_scan(ctx->root_fd, ctx->root, &dirs);
	if (r < 0) {
		log_error_errno(r, "Failed to list '%s/" DM2_USR_SRC_DIR "': %m",
				ctx->root);
		return cli_exit_code_from_errno(r);
	}

	if (cli->json)
		fputs("{\"version\": 1, \"packages\": [", stdout);
	else if (dirs)
		printf("%-24s %-16s %-11s %s\n", "NAME", "VERSION", "AUTOINSTALL",
		       "STATUS");
	STRV_FOREACH(d, dirs) {
		_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
		_cleanup_free_ char *error = NULL;
		const char *slash = strrchr(*d, '/');

		r = dkms_conf_load(ctx, *d, NULL, NULL, NULL, etc_dkms, diag_first, &error, &c);
		if (r == -ENOMEM)
			return log_oom(), EXIT_FAILURE_GENERIC;
		if (r < 0 && !error &&
		    asprintf(&error, "%s/dkms.conf: %s", *d, strerror(-r)) < 0)
			error = NULL;

		if (cli->json) {
			fputs(first ? "\n {\"path\": " : ",\n {\"path\": ", stdout);
			cli_json_string(stdout, *d);
			fputs(", \"name\": ", stdout);
			cli_json_string(stdout, c ? c->name : NULL);
			fputs(", \"version\": ", stdout);
			cli_json_string(stdout, c ? c->version : NULL);
			printf(", \"autoinstall\": %s, \"valid\": %s, \"error\": ",
			       c && c->autoinstall ? "true" : "false",
			       c ? "true" : "false");
			cli_json_string(stdout, c ? NULL : strna(error));
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
		fputs(dirs ? "\n]}\n" : "]}\n", stdout);
	else if (!dirs)
		printf("No dkms.conf packages in '%s/" DM2_USR_SRC_DIR "'.\n",
		       streq(ctx->root, "/") ? "" : ctx->root);
	return EXIT_OK;
}

static int dkms_status(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{}
	};
	struct dkms_installed *l = NULL;
	struct dm2_context *ctx;
	const char *kver = NULL;
	size_t n = 0;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "k:", options, NULL)) >= 0)
		switch (opt) {
		case 'k':
			kver = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	if (optind != argc) {
		log_error("Usage: dm2 dkms status [-k KVER] [--json]");
		return EXIT_USAGE;
	}
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = dkms_installed_modules(ctx, kver, &l, &n);
	if (r < 0) {
		log_error_errno(r, "Failed to find the modules DKMS installed: %m");
		return cli_exit_code_from_errno(r);
	}
	if (cli->json) {
		fputs("{\"version\":1,\"modules\":[", stdout);
		for (size_t i = 0; i < n; i++) {
			fputs(i > 0 ? ",{\"module\":" : "{\"module\":", stdout);
			cli_json_string(stdout, l[i].module);
			fputs(",\"version\":", stdout);
			cli_json_string(stdout, l[i].version);
			fputs(",\"kernel\":", stdout);
			cli_json_string(stdout, l[i].kernel);
			fputs(",\"arch\":", stdout);
			cli_json_string(stdout, l[i].arch);
			fputs(",\"path\":", stdout);
			cli_json_string(stdout, l[i].path);
			printf(",\"dm2_managed\":%s}", l[i].dm2_managed ? "true" : "false");
		}
		fputs("]}\n", stdout);
	} else if (n == 0)
		printf("DKMS has installed no modules%s%s.\n", kver ? " for " : "",
		       strempty(kver));
	else {
		printf("%-20s %-12s %-24s %-7s %s\n", "MODULE", "VERSION", "KERNEL", "DM2",
		       "PATH");
		for (size_t i = 0; i < n; i++)
			printf("%-20s %-12s %-24s %-7s %s\n",
			       l[i].module ?: "(unknown)", l[i].version ?: "-", l[i].kernel,
			       l[i].dm2_managed ? "also" : "no",
			       l[i].path ?: "(installed per DKMS, file missing)");
	}
	dkms_installed_free(l, n);
	return EXIT_OK;
}

/* One package x kernel DKMS has installed. */
struct takeover_item {
	const char *module, *version, *kernel, *arch;
	char **paths;
};

static int collect_items(struct dkms_installed *l, size_t n, char **names,
			 struct takeover_item **ret, size_t *ret_n)
{
	struct takeover_item *items = NULL, *ni;
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		struct takeover_item *it = NULL;

		/* Files no DKMS package claims are not DKMS' to hand over. */
		if (!l[i].module || !l[i].arch)
			continue;
		if (names && !strv_contains(names, l[i].module))
			continue;
		for (size_t j = 0; j < m; j++)
			if (streq(items[j].module, l[i].module) &&
			    streq(items[j].kernel, l[i].kernel))
				it = &items[j];
		if (!it) {
			ni = reallocarray(items, m + 1, sizeof(*items));
			if (!ni)
				goto oom;
			items = ni;
			it = &items[m++];
			*it = (struct takeover_item) { l[i].module, l[i].version,
						       l[i].kernel, l[i].arch, NULL };
		}
		if (l[i].path && strv_extend(&it->paths, l[i].path) < 0)
			goto oom;
	}
	*ret = items;
	*ret_n = m;
	return 0;
oom:
	for (size_t j = 0; j < m; j++)
		strv_free(items[j].paths);
	free(items);
	return -ENOMEM;
}

static int takeover_key(struct dm2_context *ctx, bool dry_run)
{
	_cleanup_free_ char *cert = context_path(ctx, DM2_DKMS_CERT_FILE);
	int r;

	if (!cert)
		return log_oom(), EXIT_FAILURE_GENERIC;
	if (dry_run) {
		if (access(cert, F_OK) == 0)
			printf("Would adopt DKMS' signing key '%s'.\n", cert);
		else
			printf("DKMS has no signing key ('%s'); dm2 would sign with its "
			       "own.\n",
			       cert);
		return EXIT_OK;
	}
	r = keys_adopt_dkms(ctx);
	if (r == -ENOENT) {
		printf("DKMS has no signing key ('%s'); dm2 signs with its own (enroll "
		       "it, see 'dm2 key show').\n",
		       cert);
		return EXIT_OK;
	}
	if (r == -EEXIST) {
		log_error("dm2 already has a signing key that differs from DKMS' '%s': "
			  "modules would be signed by a key that is not enrolled; run "
			  "'dm2 key adopt-dkms --force' first.",
			  cert);
		return EXIT_FAILURE_GENERIC;
	}
	if (r == -EKEYREJECTED) {
		log_error("DKMS' key does not match its certificate '%s'.", cert);
		return EXIT_BAD_INPUT;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to adopt DKMS' signing key '%s': %m", cert);
		return cli_exit_code_from_errno(r);
	}
	printf("Adopted DKMS' signing key '%s': nothing needs to be enrolled again.\n",
	       cert);
	return EXIT_OK;
}

/* DKMS' hooks run first on a kernel upgrade: left on, they build what dm2 took over. */
static int takeover_autoinstall_off(struct dm2_context *ctx, const struct recipe_set *set,
				    int ret)
{
	_cleanup_strv_free_ char **unbuilt = NULL;
	_cleanup_free_ char *list = NULL;
	int r;

	r = dkms_disable_autoinstall(ctx, set, &unbuilt);
	if (r < 0) {
		log_error_errno(r, "Failed to create '/%s/no-autoinstall'; create it, or DKMS "
			       "builds these packages again on the next kernel: %m",
			       DM2_DKMS_ETC_DIR);
		return ret == EXIT_OK ? cli_exit_code_from_errno(r) : ret;
	}
	if (r > 0)
		printf("DKMS' autoinstall is off now ('/%s/no-autoinstall'): dm2 builds DKMS' "
		       "packages for new kernels; delete that file to give them back to DKMS.\n",
		       DM2_DKMS_ETC_DIR);
	list = strv_join(unbuilt, "', '");
	if (unbuilt && list)
		printf("Warning: dm2 builds no recipe for the DKMS packages '%s': neither does "
		       "DKMS now on new kernels.\n", list);
	return ret;
}

static int takeover_run(struct dm2_context *ctx, struct cli *cli,
			struct takeover_item *items, size_t n, bool dry_run)
{
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_(db_closep) struct db *d = NULL;
	int ret = EXIT_OK, r;
	bool any = false;

	r = recipe_set_load(ctx, diag_stderr, NULL, &set);
	if (r < 0) {
		log_error_errno(r, "Failed to load recipes: %m");
		return cli_exit_code_from_errno(r);
	}
	if (!dry_run) {
		r = db_open(ctx, true, &d);
		if (r < 0) {
			log_error_errno(r, "Failed to open the state db: %m");
			return cli_exit_code_from_errno(r);
		}
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_(dkms_takeover_result_done) struct dkms_takeover_result res = {};
		_cleanup_free_ char *files = strv_join(items[i].paths, "', '");
		const struct takeover_item *it = &items[i];

		if (!recipe_set_find(set, it->module)) {
			printf("%s %s for %s: not taken over: no dkms.conf or recipe named "
			       "'%s' (is '/usr/src/%s-%s' gone?)\n",
			       it->module, it->version, it->kernel, it->module, it->module,
			       it->version);
			if (ret == EXIT_OK)
				ret = EXIT_NOT_FOUND;
			continue;
		}
		if (dry_run) {
			printf("%s %s for %s: would move '%s' aside, build and install with "
			       "dm2, then delete it and DKMS' link '%s/%s/kernel-%s-%s'\n",
			       it->module, it->version, it->kernel,
			       files ?: "(no file)", DM2_DKMS_TREE, it->module, it->kernel,
			       it->arch);
			continue;
		}
		r = dkms_takeover(ctx, d, set, it->module, it->kernel, it->arch, it->paths,
				  !cli->json && cli->verbosity >= 0, &res);
		if (r < 0)
			return EXIT_FAILURE_GENERIC;
		if (res.taken_over) {
			_cleanup_free_ char *inst = strv_join(res.installed, "', '");

			printf("%s %s for %s: taken over: dm2 installed '%s'; DKMS' copy "
			       "'%s' deleted and DKMS forgot the kernel\n",
			       it->module, it->version, it->kernel, strna(inst),
			       files ?: "(none)");
			any = true;
		} else {
			printf("%s %s for %s: not taken over: %s; %s\n", it->module,
			       it->version, it->kernel, strna(res.reason),
			       res.restored ? "DKMS' files are back in place"
					    : "DKMS' files could NOT all be restored");
			ret = exit_code_merge(
				ret, exit_code_from_job(res.state, res.stage, res.error));
		}
	}
	return any ? takeover_autoinstall_off(ctx, set, ret) : ret;
}

static int dkms_takeover_verb(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "dry-run", no_argument, NULL, 'n' },
		{}
	};
	_cleanup_strv_free_ char **names = NULL;
	struct takeover_item *items = NULL;
	struct dkms_installed *l = NULL;
	struct dm2_context *ctx;
	const char *kver = NULL;
	bool dry_run = false;
	size_t n = 0, m = 0;
	int opt, r, ret;

	while ((opt = getopt_long(argc, argv, "k:n", options, NULL)) >= 0)
		switch (opt) {
		case 'k':
			kver = optarg;
			break;
		case 'n':
			dry_run = true;
			break;
		default:
			return EXIT_USAGE;
		}
	for (int i = optind; i < argc; i++)
		if (strv_extend(&names, argv[i]) < 0)
			return log_oom(), EXIT_FAILURE_GENERIC;
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	if (!dry_run && geteuid() != 0) {
		log_error("Only root may take over DKMS' modules.");
		return EXIT_PERMISSION;
	}
	r = dkms_installed_modules(ctx, kver, &l, &n);
	if (r < 0) {
		log_error_errno(r, "Failed to find the modules DKMS installed: %m");
		return cli_exit_code_from_errno(r);
	}
	r = collect_items(l, n, names, &items, &m);
	if (r < 0) {
		dkms_installed_free(l, n);
		return log_oom(), EXIT_FAILURE_GENERIC;
	}
	ret = EXIT_OK;
	STRV_FOREACH(name, names) {
		bool found = false;

		for (size_t i = 0; i < m; i++)
			found = found || streq(items[i].module, *name);
		if (!found) {
			log_error("DKMS has not installed '%s'%s%s; see 'dm2 dkms status'.",
				  *name, kver ? " for " : "", strempty(kver));
			ret = EXIT_NOT_FOUND;
		}
	}
	if (ret == EXIT_OK && m == 0)
		printf("Nothing to take over: DKMS has installed no modules%s%s.\n",
		       kver ? " for " : "", strempty(kver));
	else if (ret == EXIT_OK) {
		ret = takeover_key(ctx, dry_run);
		if (ret == EXIT_OK)
			ret = takeover_run(ctx, cli, items, m, dry_run);
	}
	for (size_t i = 0; i < m; i++)
		strv_free(items[i].paths);
	free(items);
	dkms_installed_free(l, n);
	return ret;
}

#define DKMS_USAGE                                                                       \
	"dm2 dkms {import DIR [-k KVER] [--arch ARCH] [--json] | list [--json] | "       \
	"status [-k KVER] [--json] | takeover [NAME...] [-k KVER] [--dry-run]}"

/* --help anywhere after a subcommand prints its own usage on stdout. */
static const struct cli_subverb_usage dkms_usages[] = {
	{ "import", "dm2 dkms import DIR [-k KVER] [--arch ARCH] [--json]" },
	{ "list", "dm2 dkms list [--json]" },
	{ "status", "dm2 dkms status [-k KVER] [--json]" },
	{ "takeover", "dm2 dkms takeover [NAME...] [-k KVER] [--dry-run]" },
};

int verb_dkms(int argc, char *argv[], struct cli *cli)
{
	if (argc < 2)
		return cli_usage_error(DKMS_USAGE, "Missing command for 'dm2 dkms'");
	if (cli_help_requested(argc, argv, dkms_usages, ELEMENTSOF(dkms_usages), DKMS_USAGE))
		return EXIT_OK;
	optind = 0;
	if (streq(argv[1], "import"))
		return dkms_import(argc - 1, argv + 1, cli);
	if (streq(argv[1], "list"))
		return dkms_list(argc - 1, argv + 1, cli);
	if (streq(argv[1], "status"))
		return dkms_status(argc - 1, argv + 1, cli);
	if (streq(argv[1], "takeover"))
		return dkms_takeover_verb(argc - 1, argv + 1, cli);
	log_error("Unknown command 'dkms %s'; see 'dm2 --help'.", argv[1]);
	return EXIT_USAGE;
}
