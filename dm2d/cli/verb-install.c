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
#include "pipeline/dkms-takeover.h"
#include "pipeline/job.h"
#include "core/kernels.h"
#include "core/lock.h"
#include "core/recover.h"
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

/* What a dm2 killed with -9 left (rows in a running state, work directories) is cleaned up
 * by whoever comes next, dm2d or this command, so status does not say "building" for a
 * build that no longer runs. A dm2 that dm2d runs (DM2_NO_FORWARD) leaves it to dm2d. */
static void recover_leftovers(struct dm2_context *ctx, struct db *d)
{
	struct db_job *stale = NULL;
	size_t n = 0, was_running = 0;
	unsigned dirs = 0;
	int r;

	if (getenv("DM2_NO_FORWARD"))
		return;
	r = recover_stale_jobs(ctx, d, &stale, &n);
	if (r < 0)
		log_warning_errno(r, "Failed to look for interrupted jobs, ignoring: %m");
	for (size_t i = 0; i < n; i++)
		was_running += stale[i].state != JOB_STATE_QUEUED;
	if (was_running > 0)
		log_info("%zu interrupted job(s) went back to the queue.", was_running);
	db_jobs_free(stale, n);
	r = recover_work_dirs(ctx, &dirs);
	if (r < 0)
		log_warning_errno(r, "Failed to remove leftover work directories, ignoring: %m");
}

static int open_db_writable(struct dm2_context *ctx, struct db **ret)
{
	int r = db_open(ctx, true, ret);

	if (r == -EPROTO)
		log_error("'%s/%s' was written by a newer dm2.", ctx->root, DM2_STATE_DB);
	else if (r < 0)
		log_error_errno(r, "Failed to open the state db '%s/%s': %m", ctx->root,
				DM2_STATE_DB);
	if (r < 0)
		return r;
	recover_leftovers(ctx, *ret);
	return 0;
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

struct install_args {
	char **names;
	char **kvers;
	bool no_depmod;
	bool force;
};

static void install_args_done(struct install_args *a)
{
	strv_free(a->names);
	strv_free(a->kvers);
}

#define INSTALL_USAGE                                                                    \
	"dm2 install NAME... {-k KVER | --all-kernels} [--no-depmod] [--force]"

/* EXIT_OK to go on, or the exit code (usage printed, bad command line). *all: every
 * kernel, to be listed. */
static int install_parse(int argc, char *argv[], struct install_args *a, bool *all)
{
	static const struct option options[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"all-kernels", no_argument, NULL, 'a'},
		{"no-depmod", no_argument, NULL, 'N'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	int c;

	while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0)
		switch (c) {
		case 'k':
			if (strv_extend(&a->kvers, optarg) < 0)
				return log_oom(), EXIT_FAILURE_GENERIC;
			break;
		case 'a':
			*all = true;
			break;
		case 'N':
			a->no_depmod = true;
			break;
		case 'f':
			a->force = true;
			break;
		case 'h':
			printf("Usage: " INSTALL_USAGE "\n");
			return -1;
		default:
			return EXIT_USAGE;
		}
	if (optind >= argc) {
		log_error("'dm2 install' needs at least one recipe name.");
		return EXIT_USAGE;
	}
	if (!a->kvers == !*all) {
		log_error("'dm2 install' needs either -k KVER or --all-kernels.");
		return EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++)
		if (strv_extend(&a->names, argv[i]) < 0)
			return log_oom(), EXIT_FAILURE_GENERIC;
	return EXIT_OK;
}

static int all_kernels(struct dm2_context *ctx, char ***kvers)
{
	struct kbw_kernel **ks = NULL;
	size_t n = 0;
	int r;

	r = kernels_list(ctx, &ks, &n);
	if (r < 0) {
		log_error_errno(r, "Failed to list kernels in '%s/lib/modules': %m",
				ctx->root);
		return cli_exit_code_from_errno(r);
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		r = strv_extend(kvers, kbw_kernel_release(ks[i]));
	kernels_free(ks, n);
	if (r < 0)
		return log_oom(), EXIT_FAILURE_GENERIC;
	if (!*kvers) {
		log_error("No kernels in '%s/lib/modules'.", ctx->root);
		return EXIT_NOT_FOUND;
	}
	return EXIT_OK;
}

/* A running dm2d does the work (it owns the queue, and its jobs for the same recipe x
 * kernel would otherwise wait for our locks); its children set DM2_NO_FORWARD. Returns
 * -1 when there is no daemon: run the engine here. */
static int install_forward(struct dm2_context *ctx, const struct install_args *a)
{
	int exit_code = EXIT_OK, forwarded = 0;

	STRV_FOREACH(k, a->kvers)
	{
		int code, r;

		r = control_try_forward(ctx, a->names, *k, 0, &code);
		if (r == -ENOENT && forwarded == 0)
			return -1;
		if (r < 0) {
			log_error_errno(r, "Talking to dm2d about '%s' failed: %m", *k);
			code = EXIT_FAILURE_GENERIC;
		}
		forwarded++;
		exit_code = exit_code_merge(exit_code, code);
	}
	return exit_code;
}

/* Every recipe for one kernel, then its one depmod. Returns the exit code of the worst
 * outcome (exit_code_merge()), or -1 when a signal interrupted a build. */
static int install_kernel(struct cli *cli, struct dm2_context *ctx, struct db *d,
			  const struct install_args *a, struct job_options *o,
			  const char *kver)
{
	_cleanup_(job_batch_done) struct job_batch batch = {};
	int exit_code = EXIT_OK, r;

	o->batch = &batch;
	STRV_FOREACH(name, a->names)
	{
		struct job_result res = {};
		int code;

		r = job_run(ctx, d, *name, kver, o, &res);
		if (job_interrupted()) {
			job_result_done(&res);
			return -1;
		}
		code = r < 0 ? cli_exit_code_from_errno(r)
			     : exit_code_from_job(res.state, res.stage, res.error);
		/* With the batch, installed means installing until depmod below. */
		if (r >= 0 && res.state == JOB_STATE_INSTALLING) {
			code = EXIT_OK;
			if (!o->progress && cli->verbosity >= 0)
				printf("%s %s for %s: installed (%s%s%s)\n", *name,
				       strna(res.version), kver,
				       res.from_cache ? "from cache" : "built",
				       res.signer ? ", signed by " : ", unsigned",
				       strempty(res.signer));
		}
		exit_code = exit_code_merge(exit_code, code);
		job_result_done(&res);
	}
	o->batch = NULL;
	r = job_batch_finish(ctx, d, kver, &batch, !a->no_depmod);
	if (r < 0)
		exit_code = exit_code_merge(
			exit_code,
			exit_code_from_job(JOB_STATE_FAILED, JOB_STATE_INSTALLING, r));
	return exit_code;
}

int verb_install(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(install_args_done) struct install_args a = {};
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_(db_closep) struct db *d = NULL;
	struct dm2_context *ctx;
	int exit_code = EXIT_OK, r;
	bool all = false;

	r = install_parse(argc, argv, &a, &all);
	if (r != EXIT_OK)
		return r < 0 ? EXIT_OK : r;
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = need_root(ctx);
	if (r != 0)
		return r;
	if (all) {
		r = all_kernels(ctx, &a.kvers);
		if (r != EXIT_OK)
			return r;
	}
	/* The daemon has no --force, so a forced install always runs here. */
	if (!a.force) {
		r = install_forward(ctx, &a);
		if (r >= 0)
			return r;
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

	struct job_options o = {
		.force = a.force,
		.progress = cli->tty && cli->verbosity >= 0,
		.recipes = set,
		/* A file DKMS installed is named as such, with the way out. */
		.explain_conflict = dkms_explain_conflict,
	};
	STRV_FOREACH(k, a.kvers)
	{
		int code = install_kernel(cli, ctx, d, &a, &o, *k);

		if (code < 0) {
			/* The build was killed: die of the signal as the caller asked
			 * (dm2d puts the job back in its queue). */
			int sig = job_interrupted();

			db_close(TAKE_PTR(d));
			(void) signal(sig, SIG_DFL);
			(void) raise(sig);
			return EXIT_FAILURE_GENERIC;
		}
		exit_code = exit_code_merge(exit_code, code);
	}
	return exit_code;
}

int verb_uninstall(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(db_closep) struct db *d = NULL;
	_cleanup_strv_free_ char **kept = NULL;
	_cleanup_free_ char *reason = NULL;
	_cleanup_close_ int lock_fd = -EBADF, job_fd = -EBADF;
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

	/* A job of this recipe for this kernel may be running (dm2d's, another dm2's): its
	 * row is what install_remove() forgets, so wait for it as job_lock() does, or it
	 * would fail at the end for a row that is gone. */
	r = lock_job(ctx, name, kver,
		     lock_timeout_usec(ctx->config->build_timeout_usec + LOCK_KERNEL_TIMEOUT_USEC),
		     &job_fd);
	if (r < 0) {
		log_error_errno(r, "Another dm2 is working on '%s' for '%s': %m", name, kver);
		return EXIT_BUSY;
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
