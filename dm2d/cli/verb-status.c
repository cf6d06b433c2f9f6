/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm2 status and dm2 log: the read-only verbs. They read only the state db and the log files,
 * and this file must not pull in the engine (recipes, kbuild, curl, libarchive, OpenSSL): the
 * dm2 front end links just these so that "dm2 status" starts and answers in a few ms.
 */
#include <fcntl.h>
#include <getopt.h>

#include "cli/cli.h"
#include "core/db.h"
#include "core/secureboot.h"
#include "core/manifest.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"
#include "cli/status.h"

#define STATUS_USAGE "dm2 status [NAME] [-k KVER] [--json]"
#define LOG_USAGE "dm2 log NAME -k KVER"

/* A reader never repairs the state db (it may not, and it must not race the writer that
 * does): it says what is wrong and who fixes it. 0: nothing to say (no db, no installs). */
/* Builds dm2d runs at once (Jobs=, else the CPUs): the time left is spread over them. */
static unsigned status_slots(struct dm2_context *ctx)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (ctx && ctx->config && ctx->config->jobs > 0)
		return ctx->config->jobs;
	return cpus > 0 ? (unsigned) cpus : 1;
}

static int status_db_unusable(struct dm2_context *ctx, int error)
{
	_cleanup_free_ char *path = context_path(ctx, DM2_STATE_DB);
	unsigned n = 0;

	if (!path)
		return log_oom(), EXIT_FAILURE_GENERIC;
	if (error == -EBADMSG) {
		log_error_errno(error,
				"The state db '%s' is damaged (%m); dm2d or the next 'dm2 "
				"install' moves it aside and rebuilds it from the install "
				"manifests.",
				path);
		return EXIT_FAILURE_GENERIC;
	}
	if (manifest_count(ctx->root_fd, &n) < 0 || n == 0)
		return 0;
	log_error("The state db '%s' is missing or empty, but %u install manifest%s %s on "
		  "disk; dm2d or the next 'dm2 install' rebuilds it from them.",
		  path, n, n == 1 ? "" : "s", n == 1 ? "is" : "are");
	return EXIT_FAILURE_GENERIC;
}

/* The Secure Boot line of dm2 status (only on an EFI machine: elsewhere there is nothing to
 * enroll), or its JSON member; NULL when there is nothing to say. */
static char *status_secureboot(struct cli *cli, bool json)
{
	_cleanup_free_ char *cert = NULL;
	struct secureboot_state st;
	char *buf = NULL;
	size_t size = 0;
	FILE *f;

	if (cli_secureboot(cli, &st, &cert) < 0 || (!json && !st.efi))
		return NULL;
	f = open_memstream(&buf, &size);
	if (!f)
		return NULL;
	if (json)
		cli_secureboot_json(f, &st, cert);
	else
		cli_secureboot_line(f, &st, cert);
	if (fclose(f) != 0)
		return mfree(buf);
	return buf;
}

int verb_status(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},
		{},
	};
	_cleanup_(db_closep) struct db *d = NULL;
	struct status_row *rows = NULL;
	struct dm2_context *ctx;
	const char *kver = NULL, *name = NULL;
	bool json = cli->json;
	size_t n = 0;
	int c, r, ret;

	while ((c = cli_getopt(argc, argv, "k:", options, STATUS_USAGE, 0, 1, &ret)) >= 0)
		switch (c) {
		case 'k':
			kver = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;
	if (optind < argc)
		name = argv[optind];

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);

	r = db_open(ctx, false, &d);
	if (r == -EBADMSG || r == -ENOENT) {
		r = status_db_unusable(ctx, r);
		if (r != 0)
			return r;
	}
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

	r = 0;
	if (json) {
		_cleanup_free_ char *sb = status_secureboot(cli, true);

		status_print_json(stdout, d, rows, n, status_slots(ctx), sb);
	} else if (n > 0) {
		r = status_print_table(stdout, rows, n);
		if (r >= 0)
			r = status_print_progress(stdout, d, rows, n, status_slots(ctx));
	}
	else if (cli->verbosity >= 0) {
		_cleanup_free_ char *shown = name ? escape_terminal(name, "") : NULL;

		printf("No modules%s%s%s%s.\n", name ? " named '" : "", strempty(shown),
		       name ? "'" : "", kver ? " for this kernel" : "");
	}
	if (!json && cli->verbosity >= 0) {
		_cleanup_free_ char *sb = status_secureboot(cli, false);

		fputs(strempty(sb), stdout);
	}
	status_rows_free(rows, n);
	if (r < 0)
		return log_oom(), EXIT_FAILURE_GENERIC;
	if (n == 0 && name)
		return EXIT_NOT_FOUND;
	return EXIT_OK;
}

/* The build wrote its log: on a terminal each line is shown with its control characters
 * and invalid UTF-8 escaped (tabs stay). Into a pipe or file the bytes go as they are. */
static int print_log_escaped(int fd, const char *rel)
{
	_cleanup_free_ char *line = NULL;
	size_t size = 0;
	FILE *f = fdopen(fd, "r");
	int r = EXIT_OK;

	if (!f) {
		(void) close(fd);
		return log_oom(), EXIT_FAILURE_GENERIC;
	}
	errno = 0;
	for (ssize_t n; r == EXIT_OK && (n = getline(&line, &size, f)) >= 0;)
		/* A NUL ends escape_terminal()'s string, not the line. */
		for (const char *p = line; r == EXIT_OK && p < line + n;
		     p += strlen(p) + 1) {
			_cleanup_free_ char *shown = escape_terminal(p, "\t\n");

			if (!shown) {
				log_oom();
				r = EXIT_FAILURE_GENERIC;
				break;
			}
			fputs(shown, stdout);
			if (p + strlen(p) < line + n)
				fputs("\\x00", stdout);
		}
	if (r == EXIT_OK && ferror(f)) {
		log_error_errno(errno, "Failed to read '%s': %m", rel);
		r = EXIT_FAILURE_GENERIC;
	}
	fclose(f);
	return r;
}

int verb_log(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(db_closep) struct db *d = NULL;
	_cleanup_free_ char *rel = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct db_job cur = {};
	struct dm2_context *ctx;
	static const struct option options[] = {
		{"kernel", required_argument, NULL, 'k'},
		{},
	};
	const char *kver = NULL, *name;
	int c, r, ret;

	while ((c = cli_getopt(argc, argv, "k:", options, LOG_USAGE, 1, 1, &ret)) >= 0)
		switch (c) {
		case 'k':
			kver = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;
	if (!kver)
		return cli_usage_error(LOG_USAGE, "Missing -k KVER");
	name = argv[optind];
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
	if (cli->tty)
		return print_log_escaped(TAKE_FD(fd), rel);
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
