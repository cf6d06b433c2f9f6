/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 fetch NAME [--version V]: download and verify a source without building. See
 * dm2(1). */
#include <fcntl.h>
#include <getopt.h>

#include "cli/cli.h"
#include "pipeline/fetch.h"
#include "pipeline/gittree.h"
#include "recipe/recipe-set.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/url.h"
#include "shared/util.h"
#include "pipeline/source.h"
#include "pipeline/unpack.h"

#define FETCH_USAGE "dm2 fetch NAME [--version V] [--json]"

/* Unpack into a scratch directory to prove the archive is sound and matches GitTree=. */
static int check_archive(struct dm2_context *ctx, const struct recipe_source *s,
			 const char *archive, char **reason)
{
	_cleanup_free_ char *tmp = NULL, *tmp_abs = NULL, *dest = NULL, *name = NULL;
	_cleanup_close_ int fd = -EBADF, work_fd = -EBADF;
	char tree[41];
	int r;

	r = mkdir_p_at(ctx->root_fd, DM2_WORK_DIR, 0755);
	if (r < 0)
		return r;
	work_fd = openat(ctx->root_fd, DM2_WORK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (work_fd < 0)
		return -errno;
	r = mkdtemp_at(work_fd, "fetch-", &tmp);
	if (r < 0)
		return r;
	tmp_abs = path_join(DM2_WORK_DIR, tmp);
	if (!tmp_abs)
		return -ENOMEM;
	dest = context_path(ctx, tmp_abs);
	name = source_display_name(s->urls[0]);
	if (!dest || !name) {
		r = -ENOMEM;
		goto finish;
	}
	free(tmp_abs);
	tmp_abs = path_join(dest, "src");
	if (!tmp_abs) {
		r = -ENOMEM;
		goto finish;
	}

	fd = open(archive, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		goto finish;
	}
	r = unpack_archive_fd(ctx, fd, name, s->sha256, tmp_abs, reason);
	if (r < 0)
		goto finish;
	if (s->git_tree) {
		r = gittree_hash_dir(AT_FDCWD, tmp_abs, tree);
		if (r < 0)
			goto finish;
		if (!streq(tree, s->git_tree)) {
			if (asprintf(reason,
				     "'%s': GitTree mismatch: expected %s, got %s", name,
				     s->git_tree, tree) < 0)
				*reason = NULL;
			r = -EUCLEAN;
		}
	}
finish:
	(void) rm_rf_at(work_fd, tmp);
	return r;
}

/* A Path= source: checked against GitTree= in place. Returns an exit code. */
static int fetch_path_source(const struct recipe *rcp, const struct recipe_source *s,
			     char **ret)
{
	char tree[41];
	int r;

	r = gittree_hash_dir(AT_FDCWD, s->path, tree);
	if (r < 0) {
		log_error_errno(r, "Path '%s' of '%s': %m", s->path, rcp->name);
		return exit_code_from_source_error(r == -ENOENT ? r : -EBADMSG);
	}
	if (s->git_tree && !streq(tree, s->git_tree)) {
		log_error("Path '%s': GitTree mismatch: expected %s, got %s", s->path,
			  s->git_tree, tree);
		return EXIT_FETCH_FAILED;
	}
	*ret = strdup(s->path);
	return EXIT_OK;
}

/* A URL= source: downloaded (or found in the download cache) and unpacked once to check
 * it. Returns an exit code. */
static int fetch_url_source(struct dm2_context *ctx, const struct recipe *rcp,
			    const struct recipe_source *s, const char *version,
			    char **ret)
{
	_cleanup_free_ char *path = NULL, *reason = NULL;
	int r;

	if (strv_length(s->urls) == 0) {
		log_error("Recipe '%s' version '%s' has no URL= or Path=.", rcp->name,
			  version);
		return EXIT_BAD_INPUT;
	}
	r = fetch_url_full(ctx, s->urls, s->sha256, &path, &reason);
	if (r < 0) {
		if (reason)
			log_error("%s", reason);
		else {
			_cleanup_free_ char *shown = url_redact(s->urls[0]);

			log_error_errno(r, "Failed to download '%s': %m", strna(shown));
		}
		return EXIT_FETCH_FAILED;
	}
	r = check_archive(ctx, s, path, &reason);
	if (r < 0) {
		if (reason)
			log_error("%s", reason);
		else
			log_error_errno(r, "Failed to check '%s': %m", path);
		return exit_code_from_source_error(r);
	}
	if (!s->sha256 && !s->git_tree)
		log_warning("Recipe '%s' version '%s' has neither SHA256= nor "
			    "GitTree=: "
			    "content not verified.",
			    rcp->name, version);
	*ret = TAKE_PTR(path);
	return EXIT_OK;
}

int verb_fetch(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{"version", required_argument, NULL, 'V'},
		{},
	};
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	_cleanup_free_ char *path = NULL;
	const struct recipe_source *s = NULL;
	const char *version = NULL;
	struct dm2_context *ctx;
	struct recipe *rcp;
	int c, ret;

	while ((c = cli_getopt(argc, argv, "", options, FETCH_USAGE, 1, 1, &ret)) >= 0)
		switch (c) {
		case 'V':
			version = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;

	ret = cli_find_recipe(cli, argv[optind], &set, &rcp);
	if (ret != EXIT_OK)
		return ret;
	ctx = cli->ctx;
	if (!version)
		version = recipe_latest_version(rcp);
	if (version)
		s = recipe_find_source(rcp, version);
	if (!s) {
		log_error("Recipe '%s' has no source version '%s'.", rcp->name,
			  strna(version));
		return EXIT_NOT_FOUND;
	}

	if (s->path)
		ret = fetch_path_source(rcp, s, &path);
	else
		ret = fetch_url_source(ctx, rcp, s, version, &path);
	if (ret != EXIT_OK)
		return ret;
	if (!path)
		return log_oom(), EXIT_FAILURE_GENERIC;

	if (cli->json) {
		printf("{\"version\":1,\"recipe\":");
		cli_json_string(stdout, rcp->name);
		printf(",\"source\":");
		cli_json_string(stdout, version);
		printf(",\"path\":");
		cli_json_string(stdout, path);
		printf("}\n");
	} else
		printf("%s\n", path);
	return EXIT_OK;
}
