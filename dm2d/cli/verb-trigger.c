/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 trigger [KVER] [--wait [--timeout S]]: ask the running dm2d to look at a kernel now. */
#include <getopt.h>

#include "cli/cli.h"
#include "control/control.h"
#include "shared/log.h"
#include "shared/util.h"

/* Send TRIGGER to dm2d and relay its answer. Returns an exit code. */
static int trigger_send(struct cli *cli, const char *kver, bool wait, uint64_t timeout)
{
	struct dm2_context *ctx;
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *req = NULL, *sock = NULL;
	int r;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	/* Kernel hooks rely on a bound wait: HookTimeoutSec= unless told otherwise. */
	if (wait && timeout == 0)
		timeout = (ctx->config->hook_timeout_usec + 999999) / 1000000;
	sock = context_path(ctx, DM2_CONTROL_SOCKET);
	if (!sock)
		return log_oom(), EXIT_FAILURE_GENERIC;

	r = control_connect(ctx, &fd);
	if (r == -EACCES || r == -EPERM) {
		log_error("Cannot reach '%s': permission denied.", sock);
		return EXIT_PERMISSION;
	}
	if (r < 0) {
		log_error_errno(r, "dm2d is not running (no daemon at '%s'): %m", sock);
		return EXIT_NOT_FOUND;
	}
	if (asprintf(&req, "TRIGGER %s %i %llu", kver ?: "*", wait, (unsigned long long) timeout) < 0)
		return log_oom(), EXIT_FAILURE_GENERIC;

	/* The daemon enforces the timeout and answers DONE 12; our own deadline only guards
	 * against a daemon that stops answering. */
	r = control_request(fd, req, timeout > 0 ? (timeout + 5) * 1000000ULL : 0, cli->json);
	if (r < 0) {
		log_error_errno(r, "Lost the connection to dm2d at '%s': %m", sock);
		return EXIT_FAILURE_GENERIC;
	}
	return r;
}

int verb_trigger(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *kver = NULL;
	uint64_t timeout = 0;
	bool wait = false;
	int c;

	while ((c = getopt_long(argc, argv, "wt:k:h", options, NULL)) >= 0)
		switch (c) {
		case 'w':
			wait = true;
			break;
		case 't':
			if (safe_atou64(optarg, &timeout) < 0) {
				log_error("Invalid timeout '%s': expected seconds.", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'k':
			kver = optarg;
			break;
		case 'h':
			printf("Usage: dm2 trigger [KVER] [--wait [--timeout SEC]]\n\n"
			       "Ask dm2d to probe KVER (or every kernel) now, queue what is missing and retry\n"
			       "failed jobs. With --wait, wait until that kernel's jobs are final and exit\n"
			       "0 (installed or skipped), 5 (one failed), 9 (tree incomplete) or 12 (timeout).\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	if (optind < argc)
		kver = argv[optind++];
	if (optind < argc) {
		log_error("Unexpected argument '%s'.", argv[optind]);
		return EXIT_USAGE;
	}
	if (kver && (strchr(kver, '/') || strchr(kver, ' ') || streq(kver, "..") || isempty(kver))) {
		log_error("Invalid kernel release '%s'.", kver);
		return EXIT_USAGE;
	}
	if (timeout > 0 && !wait) {
		log_error("--timeout only makes sense with --wait.");
		return EXIT_USAGE;
	}

	return trigger_send(cli, kver, wait, timeout);
}
