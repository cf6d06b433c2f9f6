/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 recipe hash URL|ARCHIVE|DIR and dm2 recipe test NAME|FILE: the packager's tools to
 * write a recipe's checksums and to try it on every kernel. See dm2(1). */
#include <fcntl.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "pipeline/fetch.h"
#include "pipeline/gittree.h"
#include "pipeline/source.h"
#include "pipeline/unpack.h"
#include "recipe/recipe-set.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/util.h"

#define HASH_USAGE "dm2 recipe hash URL|ARCHIVE|DIR [--json]"
#define TEST_USAGE "dm2 recipe test NAME|FILE [--version V] [--json]"

static bool is_url(const char *s)
{
	return startswith(s, "https://") || startswith(s, "http://") ||
	       startswith(s, "file://");
}

/* The GitTree= of an archive: unpacked the way a build unpacks it, into a scratch
 * directory of the work dir that is removed again. */
static int archive_tree(struct dm2_context *ctx, const char *archive, const char *name,
			char tree[41], char **reason)
{
	_cleanup_free_ char *tmp = NULL, *rel = NULL, *dest = NULL;
	_cleanup_close_ int fd = -EBADF, work_fd = -EBADF;
	int r;

	r = mkdir_p_at(ctx->root_fd, DM2_WORK_DIR, 0755);
	if (r < 0)
		return r;
	work_fd = openat(ctx->root_fd, DM2_WORK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (work_fd < 0)
		return -errno;
	r = mkdtemp_at(work_fd, "hash-", &tmp);
	if (r < 0)
		return r;
	rel = strjoin(DM2_WORK_DIR "/", tmp, "/src");
	dest = rel ? context_path(ctx, rel) : NULL;
	fd = open(archive, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (!dest)
		r = -ENOMEM;
	else if (fd < 0)
		r = -errno;
	else
		r = unpack_archive_fd(ctx, fd, name, NULL, dest, reason);
	if (r >= 0)
		r = gittree_hash_dir(AT_FDCWD, dest, tree);
	(void) rm_rf_at(work_fd, tmp);
	return r;
}

static void print_hash(struct cli *cli, const char *what, const char *sha256,
		       const char *tree)
{
	if (cli->json) {
		printf("{\"version\":1,\"source\":");
		cli_json_string(stdout, what);
		printf(",\"sha256\":");
		cli_json_string(stdout, sha256);
		printf(",\"git_tree\":");
		cli_json_string(stdout, tree);
		printf("}\n");
		return;
	}
	if (sha256)
		printf("SHA256=%s\n", sha256);
	printf("GitTree=%s\n", tree);
}

/* A directory (a Path= source) has only a GitTree=. */
static int hash_dir(struct cli *cli, const char *dir)
{
	char tree[41];
	int r;

	r = gittree_hash_dir(AT_FDCWD, dir, tree);
	if (r < 0) {
		log_error_errno(r, "Cannot compute the git tree id of '%s': %s", dir,
				r == -EBADMSG
					? "it holds a file that is not a regular file, "
					  "directory or symlink"
					: strerror(-r));
		return cli_exit_code_from_errno(r);
	}
	print_hash(cli, dir, NULL, tree);
	return EXIT_OK;
}

int verb_recipe_hash(int argc, char *argv[], struct cli *cli)
{
	_cleanup_free_ char *path = NULL, *reason = NULL, *name = NULL;
	char sha256[SHA256_HEX_SIZE], tree[41];
	struct dm2_context *ctx;
	const char *what;
	struct stat st;
	int r, ret;

	while (cli_getopt(argc, argv, "", NULL, HASH_USAGE, 1, 1, &ret) >= 0)
		return EXIT_USAGE;
	if (ret >= 0)
		return ret;
	what = argv[optind];
	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);

	if (is_url(what)) {
		/* Through the download cache and mirrors, as a build would fetch it. */
		char *urls[] = {(char *) what, NULL};

		r = fetch_url_full(ctx, urls, NULL, &path, &reason);
		if (r < 0) {
			log_error("%s", reason ?: strerror(-r));
			return exit_code_from_source_error(r);
		}
	} else {
		if (stat(what, &st) < 0) {
			log_error_errno(errno, "Cannot read '%s': %m", what);
			return errno == ENOENT ? EXIT_NOT_FOUND : EXIT_BAD_INPUT;
		}
		if (S_ISDIR(st.st_mode))
			return hash_dir(cli, what);
		path = strdup(what);
		if (!path)
			return log_oom(), EXIT_FAILURE_GENERIC;
	}
	name = source_display_name(what);
	if (!name)
		return log_oom(), EXIT_FAILURE_GENERIC;
	r = sha256_file_hex_at(AT_FDCWD, path, sha256);
	if (r < 0) {
		log_error_errno(r, "Cannot read '%s': %m", path);
		return cli_exit_code_from_errno(r);
	}
	r = archive_tree(ctx, path, name, tree, &reason);
	if (r < 0) {
		log_error("'%s': %s", what, reason ?: strerror(-r));
		return exit_code_from_source_error(r);
	}
	print_hash(cli, what, sha256, tree);
	return EXIT_OK;
}

/* NAME, or a recipe file (a path: it has a '/' or ends in .recipe) that takes the place
 * of the recipe of its name in the set, so its Needs= still resolve. */
static int test_recipes(struct cli *cli, const char *arg, struct recipe_set **ret_set,
			const char **ret_name)
{
	_cleanup_(recipe_set_freep) struct recipe_set *all = NULL, *set = NULL;
	_cleanup_(recipe_unrefp) struct recipe *file = NULL;
	struct recipe *found;
	int r;

	if (!strchr(arg, '/') && !endswith(arg, ".recipe")) {
		r = cli_find_recipe(cli, arg, ret_set, &found);
		if (r == EXIT_OK)
			*ret_name = found->name;
		return r;
	}
	r = cli_load_recipes(cli, &all);
	if (r != EXIT_OK)
		return r;
	r = recipe_load(arg, RECIPE_ORIGIN_FILE, NULL, NULL, &file);
	if (r == -EBADMSG) {
		log_error("'%s' is not a valid recipe; 'dm2 recipe lint %s' shows why.",
			  arg, arg);
		return EXIT_BAD_INPUT;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read recipe '%s': %m", arg);
		return r == -ENOENT ? EXIT_NOT_FOUND : EXIT_BAD_INPUT;
	}
	r = recipe_set_new(&set);
	if (r >= 0)
		r = recipe_set_add(set, file);
	for (size_t i = 0; r >= 0 && i < all->n; i++) {
		r = recipe_set_add(set, all->recipes[i]);
		if (r == -EEXIST)
			r = 0;
	}
	if (r < 0)
		return log_oom(), EXIT_FAILURE_GENERIC;
	*ret_name = recipe_set_find(set, file->name)->name;
	*ret_set = TAKE_PTR(set);
	return EXIT_OK;
}

int verb_recipe_test(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{"version", required_argument, NULL, 'V'},
		{},
	};
	_cleanup_(recipe_set_freep) struct recipe_set *set = NULL;
	const char *version = NULL, *name = NULL;
	int c, ret;

	while ((c = cli_getopt(argc, argv, "", options, TEST_USAGE, 1, 1, &ret)) >= 0)
		switch (c) {
		case 'V':
			version = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;
	ret = test_recipes(cli, argv[optind], &set, &name);
	if (ret != EXIT_OK)
		return ret;
	return build_all_kernels(cli, set, name, version);
}
