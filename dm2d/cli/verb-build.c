/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 build NAME -k KVER: compile a recipe for a kernel without signing or installing it.
 */
#include <fcntl.h>
#include <getopt.h>

#include "pipeline/builder.h"
#include "cli/cli.h"
#include "control/control.h"
#include "core/kernels.h"
#include "core/lock.h"
#include "pipeline/plan.h"
#include "recipe/recipe-set.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"
#include "pipeline/source.h"

#define BUILD_USAGE "dm2 build NAME -k KVER [--version V] [--json]"

static void print_result(struct cli *cli, const struct recipe *r, const char *version,
			 const char *kver, const struct kbw_build_result *res,
			 const char *log)
{
	if (cli->json) {
		printf("{\"recipe\": ");
		cli_json_string(stdout, r->name);
		printf(", \"version\": ");
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
	printf("Built '%s' %s for %s:\n", r->name, strna(version), kver);
	STRV_FOREACH(m, res->modules)
	printf("  %s\n", *m);
	printf("Log: %s\n", log);
}

int verb_build(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"version", required_argument, NULL, 'V'},
		{},
	};
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_free_ char *work_rel = NULL, *work_abs = NULL, *src_abs = NULL,
			    *build_abs = NULL, *log_rel = NULL, *log_abs = NULL,
			    *content_id = NULL, *reason = NULL, *lock_name = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	struct kbw_kernel *k = NULL;
	struct kbw_build_result *res = NULL;
	struct plan plan = {};
	const struct recipe_source *src;
	const char *kver = NULL, *version = NULL, *why = NULL, *name;
	struct dm2_context *ctx;
	struct recipe *rcp;
	int c, r, ret;

	while ((c = cli_getopt(argc, argv, "k:", options, BUILD_USAGE, 1, 1, &ret)) >= 0)
		switch (c) {
		case 'k':
			kver = optarg;
			break;
		case 'V':
			version = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;
	if (!kver)
		return cli_usage_error(BUILD_USAGE, "Missing -k KVER");
	name = argv[optind];

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

	ret = cli_find_recipe(cli, name, &set, &rcp);
	if (ret != EXIT_OK)
		return ret;
	ret = cli_find_kernel(cli, kver, &k);
	if (ret != EXIT_OK)
		return ret;
	if (!kbw_kernel_complete(k, &why)) {
		log_error("Kernel %s is waiting for its build tree: %s", kver,
			  strna(why));
		ret = EXIT_WAITING;
		goto finish;
	}

	r = plan_recipe(rcp, k, ctx->config->allow_non_gpl, &plan);
	if (r < 0) {
		log_error_errno(r, "Failed to plan '%s' for %s: %m", name, kver);
		ret = cli_exit_code_from_errno(r);
		goto finish;
	}
	if (!plan.applicable) {
		log_error("Skipping '%s' for %s: %s", name, kver,
			  strna(plan.skip_reason));
		ret = EXIT_SKIPPED;
		goto finish;
	}
	src = plan.source;
	if (version) {
		src = recipe_find_source(rcp, version);
		if (!src) {
			log_error("Recipe '%s' has no source version '%s'.", name,
				  version);
			ret = EXIT_NOT_FOUND;
			goto finish;
		}
	}

	/* One `dm2 build` of a recipe x kernel at a time: they share the work dir. */
	lock_name = strjoin("build-", kver, "@", name);
	work_rel = strjoin(DM2_WORK_DIR "/build-", name, "-", kver);
	log_rel = strjoin(DM2_LOG_DIR "/", name, "/", kver, "/build.log");
	if (!lock_name || !work_rel || !log_rel) {
		log_oom();
		ret = EXIT_FAILURE_GENERIC;
		goto finish;
	}
	r = lock_acquire(ctx, lock_name, lock_timeout_usec(LOCK_KERNEL_TIMEOUT_USEC),
			 &lock_fd);
	if (r < 0) {
		log_error_errno(r, "Another build of '%s' for %s is running: %m", name,
				kver);
		ret = cli_exit_code_from_errno(r);
		goto finish;
	}
	work_abs = context_path(ctx, work_rel);
	log_abs = context_path(ctx, log_rel);
	src_abs = work_abs ? path_join(work_abs, "src") : NULL;
	build_abs = work_abs ? path_join(work_abs, "build") : NULL;
	if (!work_abs || !log_abs || !src_abs || !build_abs) {
		log_oom();
		ret = EXIT_FAILURE_GENERIC;
		goto finish;
	}
	r = rm_rf_at(ctx->root_fd, work_rel);
	if (r >= 0)
		r = mkdir_p_at(ctx->root_fd, work_rel, 0755);
	if (r < 0) {
		log_error_errno(r, "Failed to create work directory '%s': %m", work_abs);
		ret = cli_exit_code_from_errno(r);
		goto finish;
	}

	if (cli->tty && !cli->json)
		printf("Building '%s' %s for %s...\n", name, strna(src->version), kver);
	r = source_prepare(ctx, rcp, src, kver, src_abs, &content_id, &reason);
	if (r < 0) {
		log_error("Failed to prepare the source of '%s' %s: %s", name,
			  strna(src->version), reason ?: strerror(-r));
		ret = source_error_to_exit_code(r);
		goto finish;
	}

	r = builder_build(ctx, rcp, k, src_abs, build_abs, log_abs, NULL, &res);
	if (r < 0) {
		log_error_errno(r, "Failed to run the build of '%s' for %s: %m", name,
				kver);
		ret = EXIT_BUILD_FAILED;
		goto finish;
	}
	print_result(cli, rcp, src->version, kver, res, log_abs);
	if (!kbw_build_succeeded(res)) {
		log_error("Building '%s' %s for %s failed: %s (log: %s)", name,
			  strna(src->version), kver, strna(res->reason), log_abs);
		ret = EXIT_BUILD_FAILED;
		goto finish;
	}
	ret = EXIT_OK;
finish:
	kbw_build_result_free(res);
	plan_done(&plan);
	kbw_kernel_unref(k);
	return ret;
}
