/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 kernel list: the kernels under ROOT/lib/modules and their build trees. See dm2(1).
 */
#include <getopt.h>

#include "cli/cli.h"
#include "core/kernels.h"
#include "shared/log.h"
#include "shared/util.h"

#define KERNEL_LIST_USAGE "dm2 kernel list [--json]"

static void print_json(struct kbw_kernel **ks, size_t n)
{
	fputs("{\"version\": 1, \"kernels\": [", stdout);
	for (size_t i = 0; i < n; i++) {
		const struct kbw_kernel *k = ks[i];
		const char *reason = NULL;
		bool complete = kbw_kernel_complete(k, &reason);

		fputs(i ? ",\n {" : "\n {", stdout);
		fputs("\"release\": ", stdout);
		cli_json_string(stdout, kbw_kernel_release(k));
		fputs(", \"version\": ", stdout);
		cli_json_string(stdout, kbw_kernel_version(k));
		fputs(", \"arch\": ", stdout);
		cli_json_string(stdout, kbw_kernel_arch(k));
		printf(", \"complete\": %s, \"state\": ", complete ? "true" : "false");
		cli_json_string(stdout, complete ? "complete" : "waiting");
		fputs(", \"reason\": ", stdout);
		cli_json_string(stdout, reason);
		fputs(", \"identity\": ", stdout);
		cli_json_string(stdout, kbw_kernel_identity(k));
		fputs(", \"sig_hash\": ", stdout);
		cli_json_string(stdout, kbw_kernel_sig_hash(k));
		fputs(", \"compression\": ", stdout);
		cli_json_string(stdout, kbw_kernel_build_dir(k)
						? kbw_compression_to_string(
							  kbw_kernel_compression(k))
						: NULL);
		fputs(", \"cc\": ", stdout);
		cli_json_string(stdout, kbw_kernel_cc(k));
		fputs(", \"vermagic\": ", stdout);
		cli_json_string(stdout, kbw_kernel_vermagic(k));
		fputs(", \"build_dir\": ", stdout);
		cli_json_string(stdout, kbw_kernel_build_dir(k));
		fputs("}", stdout);
	}
	fputs(n ? "\n]}\n" : "]}\n", stdout);
}

static void print_table(struct kbw_kernel **ks, size_t n)
{
	int w = (int) strlen("RELEASE");

	for (size_t i = 0; i < n; i++)
		w = MAX(w, (int) strlen(kbw_kernel_release(ks[i])));
	printf("%-*s  %-8s  %-12s  %-8s  %-11s  %s\n", w, "RELEASE", "ARCH", "IDENTITY",
	       "SIGNHASH", "COMPRESSION", "STATE");
	for (size_t i = 0; i < n; i++) {
		const struct kbw_kernel *k = ks[i];
		const char *reason = NULL, *id = kbw_kernel_identity(k);
		bool complete = kbw_kernel_complete(k, &reason);

		printf("%-*s  %-8s  %-12.12s  %-8s  %-11s  %s%s\n", w,
		       kbw_kernel_release(k), kbw_kernel_arch(k) ?: "-", id ?: "-",
		       kbw_kernel_sig_hash(k) ?: "-",
		       kbw_kernel_build_dir(k)
			       ? kbw_compression_to_string(kbw_kernel_compression(k))
			       : "-",
		       complete ? "complete" : "waiting: ",
		       complete ? "" : strna(reason));
	}
}

static int kernel_list(int argc, char *argv[], struct cli *cli)
{
	struct dm2_context *ctx;
	struct kbw_kernel **ks = NULL;
	size_t n = 0;
	int r, ret;

	/* --json is a global option: dm2.c takes it. */
	while (cli_getopt(argc, argv, "", NULL, KERNEL_LIST_USAGE, 0, 0, &ret) >= 0)
		return EXIT_USAGE;
	if (ret >= 0)
		return ret;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = kernels_list(ctx, &ks, &n);
	if (r < 0) {
		log_error_errno(r, "Failed to list kernels in '%s': %m", ctx->root);
		return cli_exit_code_from_errno(r);
	}
	if (cli->json)
		print_json(ks, n);
	else if (n == 0)
		log_notice("No kernels in '%s%slib/modules'.", ctx->root,
			   streq(ctx->root, "/") ? "" : "/");
	else
		print_table(ks, n);
	kernels_free(ks, n);
	return EXIT_OK;
}

int verb_kernel(int argc, char *argv[], struct cli *cli)
{
	static const struct cli_subverb subverbs[] = {
		{"list", kernel_list},
	};

	return cli_dispatch(argc, argv, cli, subverbs, ELEMENTSOF(subverbs), "list",
			    KERNEL_LIST_USAGE);
}
