/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cli.h"
#include "shared/log.h"
#include "shared/util.h"

int cli_context(struct cli *cli, struct dm2_context **ret)
{
	int r;

	if (!cli->ctx) {
		r = context_new(cli->root, &cli->ctx);
		if (r < 0)
			return r;
		STRV_FOREACH(d, cli->recipe_dirs) {
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
	case ESRCH:
		return EXIT_NOT_FOUND;
	case EPERM:
	case EACCES:
		return EXIT_PERMISSION;
	case EBADMSG:
	case EINVAL:
		return EXIT_BAD_INPUT;
	case EBUSY:
	case EAGAIN:
	case ETIMEDOUT:
		return EXIT_BUSY;
	default:
		return EXIT_FAILURE_GENERIC;
	}
}
