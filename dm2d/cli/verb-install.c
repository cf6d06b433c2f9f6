/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 install | uninstall | depmod | status | log. See dm2(1). */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>

#include "cli/cli.h"
#include "control/control.h"
#include "core/db.h"
#include "pipeline/install.h"
#include "pipeline/job.h"
#include "core/kernels.h"
#include "core/lock.h"
#include "recipe/recipe-set.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"
#include "cli/status.h"

static int need_root(struct dm2_context *ctx)
{
	/* Changing the machine's own modules needs root; a private --root tree does not.
	 */
	if (geteuid() != 0 && streq(ctx->root, "/")) {
		log_error("Only root may change installed modules.");
		return EXIT_PERMISSION;
	}
	return 0;
}

static int open_db_writable(struct dm2_context *ctx, struct db **ret)
{
	int r = db_open(ctx, true, ret);

	if (r == -EPROTO)
		log_error("'%s/%s' was written by a newer dm2.", ctx->root, DM2_STATE_DB);
	else if (r < 0)
		log_error_errno(r, "Failed to open the state db '%s/%s': %m", ctx->root,
				DM2_STATE_DB);
	return r;
}

static void on_recipe_diag(const char *file, unsigned line, const char *message, void *ud)
{
	log_warning("%s:%u: %s (recipe ignored)", file, line, message);
}

/* Parse -k KVER / --all-kernels for verbs that need one kernel. */
static int parse_kernel_only(int argc, char *argv[], const char *usage,
			     const char **ret_kver, int *ret_optind)
{
	static const struct option options[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *kver = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0)
		switch (c) {
		case 'k':
			kver = optarg;
			break;
		case 'h':
			printf("Usage: dm2 %s\n", usage);
			return 1000; /* --help shown */
		default:
			return EXIT_USAGE;
		}
	*ret_kver = kver;
	*ret_optind = optind;
	return 0;
}

static int depmod_locked(struct dm2_context *ctx, const char *kver, char **ret_reason)
{
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = lock_kernel(ctx, kver, lock_timeout_usec(LOCK_KERNEL_TIMEOUT_USEC), &fd);
	if (r < 0)
		return r;
	return install_depmod(ctx, kver, ret_reason);
}

int verb_install(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"all-kernels", no_argument, NULL, 'a'},
		{"no-depmod", no_argument, NULL, 'N'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_(db_closep) struct db *d = NULL;
	_cleanup_strv_free_ char **kvers = NULL;
	struct dm2_context *ctx;
	struct job_options o = {};
	bool all = false, no_depmod = false;
	int c, r, exit_code = EXIT_OK;

	while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0)
		switch (c) {
		case 'k':
			if (strv_extend(&kvers, optarg) < 0)
				return log_oom(), EXIT_FAILURE_GENERIC;
			break;
		case 'a':
			all = true;
			break;
		case 'N':
			no_depmod = true;
			break;
		case 'f':
			o.force = true;
			break;
		case 'h':
			printf("Usage: dm2 install NAME... {-k KVER | --all-kernels} "
			       "[--no-depmod] "
			       "[--force]\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	if (optind >= argc) {
		log_error("'dm2 install' needs at least one recipe name.");
		return EXIT_USAGE;
	}
	if (!kvers == !all) {
		log_error("'dm2 install' needs either -k KVER or --all-kernels.");
		return EXIT_USAGE;
	}

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = need_root(ctx);
	if (r != 0)
		return r;

	if (all) {
		struct kbw_kernel **ks = NULL;
		size_t n = 0;

		r = kernels_list(ctx, &ks, &n);
		if (r < 0) {
			log_error_errno(r,
					"Failed to list kernels in '%s/lib/modules': %m",
					ctx->root);
			return cli_exit_code_from_errno(r);
		}
		for (size_t i = 0; i < n && r >= 0; i++)
			r = strv_extend(&kvers, kbw_kernel_release(ks[i]));
		kernels_free(ks, n);
		if (r < 0)
			return log_oom(), EXIT_FAILURE_GENERIC;
		if (!kvers) {
			log_error("No kernels in '%s/lib/modules'.", ctx->root);
			return EXIT_NOT_FOUND;
		}
	}

	/* A running dm2d does the work (it owns the queue, and its jobs for the same recipe x
	 * kernel would otherwise wait for our locks); its children set DM2_NO_FORWARD. The
	 * daemon has no --force, so a forced install always runs here. */
	if (!o.force) {
		_cleanup_strv_free_ char **names = NULL;
		int forwarded = 0;

		for (int i = optind; i < argc; i++)
			if (strv_extend(&names, argv[i]) < 0)
				return log_oom(), EXIT_FAILURE_GENERIC;
		STRV_FOREACH(k, kvers)
		{
			int code;

			r = control_try_forward(ctx, names, *k, 0, &code);
			if (r == -ENOENT && forwarded == 0)
				break; /* no daemon: run the engine ourselves */
			if (r < 0) {
				log_error_errno(r, "Talking to dm2d about '%s' failed: %m", *k);
				code = EXIT_FAILURE_GENERIC;
			}
			forwarded++;
			if (code != EXIT_OK && exit_code == EXIT_OK)
				exit_code = code;
		}
		if (forwarded > 0)
			return exit_code;
	}

	r = recipe_set_load(ctx, on_recipe_diag, NULL, &set);
	if (r < 0) {
		log_error_errno(r, "Failed to load recipes: %m");
		return cli_exit_code_from_errno(r);
	}
	/* An unknown recipe fails in job_run(), which also closes a job queued for it. */

	r = open_db_writable(ctx, &d);
	if (r < 0)
		return cli_exit_code_from_errno(r);

	/* depmod runs once per kernel after the whole batch, not once per module. */
	o.no_depmod = true;
	o.progress = cli->tty && cli->verbosity >= 0;
	o.recipes = set;

	STRV_FOREACH(k, kvers)
	{
		_cleanup_free_ int64_t *installed = NULL;
		_cleanup_free_ char *reason = NULL;
		size_t n_installed = 0;

		for (int i = optind; i < argc; i++) {
			struct job_result res = {};

			r = job_run(ctx, d, argv[i], *k, &o, &res);
			if (job_interrupted()) {
				/* The build was killed; die of the signal as the caller asked
				 * (dm2d puts the job back in its queue). */
				int sig = job_interrupted();

				job_result_done(&res);
				db_close(TAKE_PTR(d));
				(void) signal(sig, SIG_DFL);
				(void) raise(sig);
				return EXIT_FAILURE_GENERIC;
			}
			if (r < 0) {
				if (exit_code == EXIT_OK)
					exit_code = cli_exit_code_from_errno(r);
				continue;
			}
			if (res.state == JOB_STATE_INSTALLED) {
				int64_t *ni =
					realloc(installed,
						(n_installed + 1) * sizeof(*installed));
				if (!ni) {
					job_result_done(&res);
					return log_oom(), EXIT_FAILURE_GENERIC;
				}
				installed = ni;
				installed[n_installed++] = res.id;
				if (!o.progress && cli->verbosity >= 0)
					printf("%s %s for %s: installed (%s%s%s)\n",
					       argv[i], strna(res.version), *k,
					       res.from_cache ? "from cache" : "built",
					       res.signer ? ", signed by " : ", unsigned",
					       strempty(res.signer));
			} else if (exit_code == EXIT_OK)
				exit_code = res.exit_code;
			job_result_done(&res);
		}

		if (no_depmod || n_installed == 0)
			continue;
		r = depmod_locked(ctx, *k, &reason);
		if (r < 0) {
			_cleanup_free_ char *msg = NULL;

			if (r == -EBUSY)
				msg = strdup(
					"depmod: timed out waiting for the kernel lock");
			else
				msg = strjoin("depmod failed: ",
					      reason ?: "cannot run depmod");
			log_error("%s: %s", *k, strna(msg));
			for (size_t i = 0; i < n_installed; i++)
				(void) db_job_set_state(d, installed[i], JOB_STATE_FAILED,
							"installing", strna(msg), NULL);
			if (exit_code == EXIT_OK)
				exit_code = r == -EBUSY ? EXIT_BUSY : EXIT_INSTALL_FAILED;
		}
	}
	return exit_code;
}

int verb_uninstall(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(db_closep) struct db *d = NULL;
	_cleanup_strv_free_ char **kept = NULL;
	_cleanup_free_ char *reason = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	struct db_installed_file *files = NULL;
	struct db_job cur = {};
	struct dm2_context *ctx;
	const char *kver, *name;
	size_t n_files = 0;
	int r, ind;
	bool known;

	r = parse_kernel_only(argc, argv, "uninstall NAME -k KVER", &kver, &ind);
	if (r != 0)
		return r == 1000 ? EXIT_OK : r;
	if (ind + 1 != argc || !kver) {
		log_error("Usage: dm2 uninstall NAME -k KVER");
		return EXIT_USAGE;
	}
	name = argv[ind];

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = need_root(ctx);
	if (r != 0)
		return r;
	r = open_db_writable(ctx, &d);
	if (r < 0)
		return cli_exit_code_from_errno(r);

	r = db_installed_list(d, kver, name, &files, &n_files);
	if (r < 0)
		return log_error_errno(r, "Failed to read the state db: %m"),
		       EXIT_FAILURE_GENERIC;
	db_installed_files_free(files, n_files);
	known = db_job_current(d, name, kver, &cur) >= 0;
	db_job_done(&cur);
	if (n_files == 0 && !known) {
		log_error("'%s' is not installed for '%s'.", name, kver);
		return EXIT_NOT_FOUND;
	}

	r = lock_kernel(ctx, kver, lock_timeout_usec(LOCK_KERNEL_TIMEOUT_USEC), &lock_fd);
	if (r < 0) {
		log_error_errno(r, "Failed to lock kernel '%s': %m", kver);
		return EXIT_BUSY;
	}
	r = install_remove(ctx, d, name, kver, &kept);
	if (r < 0) {
		log_error_errno(r, "Failed to uninstall '%s' from '%s': %m", name, kver);
		return EXIT_INSTALL_FAILED;
	}
	STRV_FOREACH(p, kept)
	log_warning("'%s/%s' was changed after dm2 installed it; left in place.",
		    streq(ctx->root, "/") ? "" : ctx->root, *p);
	if (n_files > 0) {
		r = install_depmod(ctx, kver, &reason);
		if (r == -ENOENT)
			log_notice("'%s/lib/modules/%s' is gone; depmod not run.",
				   ctx->root, kver);
		else if (r < 0) {
			log_error("depmod for '%s' failed: %s", kver,
				  reason ?: "cannot run depmod");
			return EXIT_INSTALL_FAILED;
		}
	}
	if (cli->verbosity >= 0)
		printf("%s: uninstalled from %s\n", name, kver);
	return EXIT_OK;
}

int verb_depmod(int argc, char *argv[], struct cli *cli)
{
	_cleanup_free_ char *reason = NULL;
	struct dm2_context *ctx;
	const char *kver;
	int r, ind;

	r = parse_kernel_only(argc, argv, "depmod -k KVER", &kver, &ind);
	if (r != 0)
		return r == 1000 ? EXIT_OK : r;
	if (ind != argc || !kver) {
		log_error("Usage: dm2 depmod -k KVER");
		return EXIT_USAGE;
	}
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = need_root(ctx);
	if (r != 0)
		return r;
	r = depmod_locked(ctx, kver, &reason);
	if (r == -ENOENT) {
		log_error("No kernel directory '%s/lib/modules/%s'.", ctx->root, kver);
		return EXIT_NOT_FOUND;
	}
	if (r == -EBUSY) {
		log_error("Timed out waiting for the lock of kernel '%s'.", kver);
		return EXIT_BUSY;
	}
	if (r < 0) {
		log_error("depmod for '%s' failed: %s", kver,
			  reason ?: "cannot run depmod");
		return EXIT_INSTALL_FAILED;
	}
	return EXIT_OK;
}
