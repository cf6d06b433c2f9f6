/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 build NAME -k KVER: compile a recipe for a kernel without signing or installing it.
 */
#include <getopt.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "control/control.h"
#include "core/kernels.h"
#include "pipeline/builder.h"
#include "pipeline/job.h"
#include "recipe/recipe-set.h"
#include "shared/fs-util.h"
#include "shared/jobserver.h"
#include "shared/log.h"
#include "shared/util.h"

#define BUILD_USAGE "dm2 build NAME {-k KVER | --all-kernels} [--version V] [--json]"

static void print_result(struct cli *cli, const char *name, const char *version,
			 const char *kver, const struct kbw_build_result *res,
			 const char *log)
{
	if (cli->json) {
		/* "version" is the format's, as in every --json document; the source's is
		 * "source", as in build --all-kernels. */
		printf("{\"version\": 1, \"recipe\": ");
		cli_json_string(stdout, name);
		printf(", \"source\": ");
		cli_json_string(stdout, version);
		printf(", \"kernel\": ");
		cli_json_string(stdout, kver);
		printf(", \"succeeded\": %s, \"reason\": ",
		       kbw_build_succeeded(res) ? "true" : "false");
		cli_json_string(stdout, res->reason);
		printf(", \"build_uid\": %u, \"network_isolated\": %s, \"modules\": [",
		       (unsigned) res->build_uid,
		       res->network_isolated ? "true" : "false");
		STRV_FOREACH(m, res->modules)
		{
			if (m != res->modules)
				fputs(", ", stdout);
			cli_json_string(stdout, *m);
		}
		printf("], \"symvers\": ");
		cli_json_string(stdout, res->symvers);
		printf(", \"log\": ");
		cli_json_string(stdout, log);
		printf("}\n");
		return;
	}
	if (!kbw_build_succeeded(res))
		return;
	printf("Built '%s' %s for %s:\n", name, strna(version), kver);
	STRV_FOREACH(m, res->modules)
	printf("  %s\n", *m);
	printf("Log: %s\n", log);
}

/* What the pipeline says that is not in the result line it logs itself. */
static int build_outcome(struct cli *cli, const char *name, const char *kver,
			 const struct job_result *res)
{
	switch (res->state) {
	case JOB_STATE_WAITING:
		log_error("Kernel %s is waiting for its build tree: %s", kver,
			  strna(res->reason));
		break;
	case JOB_STATE_SKIPPED:
		log_error("Skipping '%s' for %s: %s", name, kver, strna(res->reason));
		break;
	case JOB_STATE_QUEUED:
	case JOB_STATE_FETCHING:
	case JOB_STATE_BUILDING:
	case JOB_STATE_SIGNING:
	case JOB_STATE_INSTALLING:
	case JOB_STATE_INSTALLED:
	case JOB_STATE_FAILED:
	case JOB_STATE_BUILT:
	case _JOB_STATE_MAX:
	case _JOB_STATE_INVALID:
		break;
	}
	/* Printed once the build ran, also when it failed. */
	if (res->build)
		print_result(cli, name, res->version, kver, res->build, res->log_path);
	return exit_code_from_job(res->state, res->stage, res->error);
}

struct build_args {
	const char *name, *kver, *version;
	bool all;
};

/* Returns -1 to go on, else the exit code. */
static int build_parse(int argc, char *argv[], struct build_args *a)
{
	static const struct option options[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"version", required_argument, NULL, 'V'},
		{"all-kernels", no_argument, NULL, 'A'},
		{},
	};
	int c, ret;

	while ((c = cli_getopt(argc, argv, "k:", options, BUILD_USAGE, 1, 1, &ret)) >= 0)
		switch (c) {
		case 'k':
			a->kver = optarg;
			break;
		case 'V':
			a->version = optarg;
			break;
		case 'A':
			a->all = true;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;
	if (a->all && a->kver)
		return cli_usage_error(BUILD_USAGE,
				       "-k and --all-kernels exclude each other");
	if (!a->all && !a->kver)
		return cli_usage_error(BUILD_USAGE, "Missing -k KVER or --all-kernels");
	a->name = argv[optind];
	return -1;
}

int verb_build(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_(job_result_done) struct job_result res = {};
	struct build_args a = {};
	struct kbw_kernel *k = NULL;
	const char *kver, *version, *name;
	struct dm2_context *ctx;
	struct recipe *rcp;
	int r, ret;

	ret = build_parse(argc, argv, &a);
	if (ret >= 0)
		return ret;
	name = a.name;
	kver = a.kver;
	version = a.version;
	if (a.all) {
		ret = cli_find_recipe(cli, name, &set, &rcp);
		if (ret != EXIT_OK)
			return ret;
		return build_all_kernels(cli, set, rcp->name, version);
	}

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	/* A running dm2d builds it in one of its Jobs= slots and passes on our output and
	 * exit code; its children set DM2_NO_FORWARD. */
	r = control_try_forward_build(ctx, name, kver, version, cli->json, &ret);
	if (r >= 0)
		return ret;
	if (r != -ENOENT) {
		log_error_errno(r, "Talking to dm2d about '%s' failed: %m", name);
		return EXIT_FAILURE_GENERIC;
	}

	/* The messages and exit codes of an unknown recipe or kernel are the CLI's. */
	ret = cli_find_recipe(cli, name, &set, &rcp);
	if (ret != EXIT_OK)
		return ret;
	ret = cli_find_kernel(cli, kver, &k);
	kbw_kernel_unref(k);
	if (ret != EXIT_OK)
		return ret;

	/* The install pipeline, stopping after the build. */
	struct job_options o = {
		.build_only = true,
		.progress = cli->tty && !cli->json && cli->verbosity >= 0,
		.version = version,
		.recipes = set,
	};
	r = job_run(ctx, NULL, name, kver, &o, &res);
	if (job_interrupted()) {
		/* Die of the signal as the caller asked (dm2d: the client went away). */
		(void) signal(job_interrupted(), SIG_DFL);
		(void) raise(job_interrupted());
	}
	if (r < 0)
		return cli_exit_code_from_errno(r);
	return build_outcome(cli, name, kver, &res);
}
