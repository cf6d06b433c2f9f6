/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm2 status and dm2 log: the read-only verbs. They read only the state db and the log files,
 * and this file must not pull in the engine (recipes, kbuild, curl, libarchive, OpenSSL): the
 * dm2 front end links just these so that "dm2 status" starts and answers in a few ms.
 */
#include <fcntl.h>
#include <getopt.h>

#include "cli.h"
#include "db.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"
#include "status.h"

/* Returns 0 to go on, 1000 after --help, or an exit code. */
static int parse_log_args(int argc, char *argv[], const char **ret_kver, int *ret_ind)
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
			printf("Usage: dm2 log NAME -k KVER\n");
			return 1000;
		default:
			return EXIT_USAGE;
		}
	*ret_kver = kver;
	*ret_ind = optind;
	return 0;
}

int verb_status(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	_cleanup_(db_closep) struct db *d = NULL;
	struct status_row *rows = NULL;
	struct dm2_context *ctx;
	const char *kver = NULL, *name = NULL;
	bool json = cli->json;
	size_t n = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0)
		switch (c) {
		case 'k':
			kver = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("Usage: dm2 status [NAME] [-k KVER] [--json]\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	if (optind + 1 < argc) {
		log_error("Usage: dm2 status [NAME] [-k KVER] [--json]");
		return EXIT_USAGE;
	}
	if (optind < argc)
		name = argv[optind];

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);

	r = db_open(ctx, false, &d);
	if (r == -EPROTO) {
		log_error("'%s/%s' was written by a newer dm2.", ctx->root, DM2_STATE_DB);
		return EXIT_FAILURE_GENERIC;
	}
	if (r < 0 && r != -ENOENT) {
		log_error_errno(r, "Failed to open the state db '%s/%s': %m", ctx->root,
				DM2_STATE_DB);
		return cli_exit_code_from_errno(r);
	}
	if (d) {
		r = status_collect(d, name, kver, &rows, &n);
		if (r < 0) {
			log_error_errno(r, "Failed to read the state db: %m");
			return cli_exit_code_from_errno(r);
		}
	}

	if (json)
		status_print_json(stdout, rows, n);
	else if (n > 0)
		status_print_table(stdout, rows, n);
	else if (cli->verbosity >= 0)
		printf("No modules%s%s%s%s.\n", name ? " named '" : "", strempty(name),
		       name ? "'" : "", kver ? " for this kernel" : "");
	status_rows_free(rows, n);
	if (n == 0 && name)
		return EXIT_NOT_FOUND;
	return EXIT_OK;
}

int verb_log(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(db_closep) struct db *d = NULL;
	_cleanup_free_ char *rel = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct db_job cur = {};
	struct dm2_context *ctx;
	const char *kver, *name;
	int r, ind;

	r = parse_log_args(argc, argv, &kver, &ind);
	if (r != 0)
		return r == 1000 ? EXIT_OK : r;
	if (ind + 1 != argc || !kver) {
		log_error("Usage: dm2 log NAME -k KVER");
		return EXIT_USAGE;
	}
	name = argv[ind];
	if (!path_is_safe_relative(name) || strchr(name, '/') ||
	    !path_is_safe_relative(kver) || strchr(kver, '/')) {
		log_error("Invalid recipe or kernel name '%s' / '%s'.", name, kver);
		return EXIT_USAGE;
	}
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);

	rel = strjoin(DM2_LOG_DIR "/", name, "/", kver, "/build.log");
	if (!rel)
		return log_oom(), EXIT_FAILURE_GENERIC;
	fd = openat(ctx->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		bool cached = false;

		if (db_open(ctx, false, &d) >= 0 &&
		    db_job_current(d, name, kver, &cur) >= 0) {
			cached = cur.from_cache;
			db_job_done(&cur);
		}
		if (cached)
			log_error("No build log for '%s' on '%s': it was installed from "
				  "the build "
				  "cache, without compiling here.",
				  name, kver);
		else
			log_error("No build log for '%s' on '%s' ('%s/%s').", name, kver,
				  streq(ctx->root, "/") ? "" : ctx->root, rel);
		return EXIT_NOT_FOUND;
	}
	for (;;) {
		char buf[65536];
		ssize_t k = read(fd, buf, sizeof(buf));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			log_error_errno(errno, "Failed to read '%s': %m", rel);
			return EXIT_FAILURE_GENERIC;
		}
		if (k == 0)
			break;
		if (fwrite(buf, 1, k, stdout) != (size_t) k)
			return EXIT_FAILURE_GENERIC;
	}
	return EXIT_OK;
}
