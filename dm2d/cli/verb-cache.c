/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 cache stat|gc|push|pull: see dm2(1), section "cache". */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>

#include "cache.h"
#include "cli/cli.h"
#include "pipeline/cache-policy.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/url.h"
#include "shared/util.h"

static inline void cache_closep_(struct cache **c)
{
	cache_close(*c);
}

static int open_cache(struct cli *cli, struct dm2_context **ret_ctx, struct cache **ret)
{
	_cleanup_free_ char *dir = NULL, *db = NULL;
	struct dm2_context *ctx;
	int r;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	dir = context_path(ctx, DM2_ARTIFACT_DIR);
	if (!dir)
		return log_oom(), EXIT_FAILURE_GENERIC;
	db = path_join(dir, "index.db");
	if (!db)
		return log_oom(), EXIT_FAILURE_GENERIC;
	r = cache_open(dir, db, ret);
	if (r < 0) {
		log_error_errno(r, "Failed to open the build cache '%s': %m", dir);
		return cli_exit_code_from_errno(r);
	}
	if (ret_ctx)
		*ret_ctx = ctx;
	return EXIT_OK;
}

#define CACHE_USAGE                                                                      \
	"dm2 cache {stat | gc [--max-size SIZE] | push|pull [--remote URL] KEY... | "        \
	"export [--recipe NAME] [--kernel KVER] FILE | import FILE}"
#define STAT_USAGE "dm2 cache stat [--json]"
#define GC_USAGE "dm2 cache gc [--max-size SIZE]"
#define PUSH_USAGE "dm2 cache push [--remote URL] [KEY...]"
#define PULL_USAGE "dm2 cache pull [--remote URL] KEY..."
#define EXPORT_USAGE "dm2 cache export [--recipe NAME] [--kernel KVER] FILE"
#define IMPORT_USAGE "dm2 cache import FILE"

static void format_bytes(char *buf, size_t n, uint64_t v)
{
	static const char units[] = "KMGT";
	double d = (double) v;
	int u = -1;

	while (d >= 1024.0 && u < 3) {
		d /= 1024.0;
		u++;
	}
	if (u < 0)
		snprintf(buf, n, "%" PRIu64 "B", v);
	else
		snprintf(buf, n, "%.1f%c", d, units[u]);
}

/* "Refused:    2 (unsigned 1, replay 1)": remote entries not believed, by reason. */
static void print_refusals(const uint64_t refused[_CACHE_REFUSAL_MAX])
{
	uint64_t total = 0;
	const char *sep = " (";

	for (int i = 0; i < _CACHE_REFUSAL_MAX; i++)
		total += refused[i];
	printf("Refused:    %" PRIu64, total);
	for (int i = 0; i < _CACHE_REFUSAL_MAX; i++)
		if (refused[i] > 0) {
			printf("%s%s %" PRIu64, sep, cache_refusal_to_string(i), refused[i]);
			sep = ", ";
		}
	printf("%s\n", total > 0 ? ")" : "");
}

static int cache_stat_verb(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(cache_closep_) struct cache *c = NULL;
	_cleanup_free_ char *dir = NULL;
	struct dm2_context *ctx;
	struct cache_stats s;
	uint64_t refused[_CACHE_REFUSAL_MAX];
	char b1[32], b2[32], t1[32], t2[32];
	int r, ret;

	while (cli_getopt(argc, argv, "", NULL, STAT_USAGE, 0, 0, &ret) >= 0)
		return EXIT_USAGE; /* there are no options but --help */
	if (ret >= 0)
		return ret;
	r = open_cache(cli, &ctx, &c);
	if (r != EXIT_OK)
		return r;
	r = cache_stat(c, &s);
	if (r >= 0)
		r = cache_refusals(c, refused);
	if (r < 0) {
		log_error_errno(r, "Failed to read the build cache index: %m");
		return cli_exit_code_from_errno(r);
	}
	dir = context_path(ctx, DM2_ARTIFACT_DIR);
	if (!dir)
		return log_oom(), EXIT_FAILURE_GENERIC;
	if (cli->json) {
		printf("{\"version\":1,\"path\":");
		cli_json_string(stdout, dir);
		printf(",\"entries\":%" PRIu64 ",\"objects\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"max_size\":%" PRIu64
		       ",\"oldest_used_usec\":%" PRIu64 ",\"newest_used_usec\":%" PRIu64
		       ",\"refused\":{",
		       s.entries, s.objects, s.bytes, ctx->config->cache_max_size,
		       s.oldest_used, s.newest_used);
		for (int i = 0; i < _CACHE_REFUSAL_MAX; i++)
			printf("%s\"%s\":%" PRIu64, i ? "," : "", cache_refusal_to_string(i),
			       refused[i]);
		printf("}}\n");
		return EXIT_OK;
	}
	format_bytes(b1, sizeof(b1), s.bytes);
	format_bytes(b2, sizeof(b2), ctx->config->cache_max_size);
	printf("Path:       %s\n"
	       "Entries:    %" PRIu64 "\n"
	       "Objects:    %" PRIu64 "\n"
	       "Size:       %s (%" PRIu64 " bytes), limit %s\n",
	       dir, s.entries, s.objects, b1, s.bytes, b2);
	if (s.entries > 0)
		printf("Oldest use: %s\n"
		       "Newest use: %s\n",
		       format_timestamp(t1, sizeof(t1), s.oldest_used),
		       format_timestamp(t2, sizeof(t2), s.newest_used));
	print_refusals(refused);
	return EXIT_OK;
}

static int cache_gc_verb(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{"max-size", required_argument, NULL, 'm'}, {}};
	_cleanup_(cache_closep_) struct cache *c = NULL;
	struct dm2_context *ctx;
	uint64_t max = UINT64_MAX, freed = 0;
	char b[32];
	int r, opt, ret;

	while ((opt = cli_getopt(argc, argv, "m:", options, GC_USAGE, 0, 0, &ret)) >= 0) {
		switch (opt) {
		case 'm':
			if (parse_size(optarg, &max) < 0) {
				log_error("Invalid size '%s' for --max-size (e.g. 500M, "
					  "2G).",
					  optarg);
				return EXIT_USAGE;
			}
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (ret >= 0)
		return ret;
	r = open_cache(cli, &ctx, &c);
	if (r != EXIT_OK)
		return r;
	if (max == UINT64_MAX)
		max = ctx->config->cache_max_size;
	r = cache_gc(c, max, &freed);
	if (r < 0) {
		log_error_errno(r, "Failed to garbage-collect the build cache: %m");
		return cli_exit_code_from_errno(r);
	}
	format_bytes(b, sizeof(b), freed);
	printf("Evicted %d entries, freed %s.\n", r, b);
	return EXIT_OK;
}

static int remote_exit_code(int r)
{
	switch (-r) {
	case ENOENT:
		return EXIT_NOT_FOUND;
	case EINVAL:
		return EXIT_BAD_INPUT;
	case EACCES:
	case EPERM:
		return EXIT_PERMISSION;
	case EKEYREJECTED:
		return EXIT_BAD_SIGNATURE;
	case ENOKEY:
		return EXIT_SIGN_FAILED;
	default:
		return EXIT_FETCH_FAILED;
	}
}

/* Where and how to reach the remote cache (--remote, else Remote=) and whom to trust. An
 * exit code. */
static int remote_options(struct dm2_context *ctx, const char **remote, bool push,
			  struct cache_policy *ret)
{
	_cleanup_free_ char *why = NULL;
	int r;

	if (!*remote)
		*remote = ctx->config->remote_cache;
	if (isempty(*remote)) {
		log_error("No remote cache: set Remote= in [Cache] of '%s' or pass "
			  "--remote URL.",
			  DM2_CONF_FILE);
		return EXIT_USAGE;
	}
	r = cache_policy_load(ctx, push, ret, &why);
	if (r < 0) {
		if (why)
			log_error("%s", why);
		else
			log_error_errno(r, "Failed to set up the remote cache: %m");
		return cli_exit_code_from_errno(r);
	}
	return EXIT_OK;
}

/* Push or pull each key; goes on after a failure, returns the first one's exit code. */
static int remote_transfer(struct cache *c, const char *remote, char **keys,
			   const struct cache_remote_options *o, bool push)
{
	int r, ret = EXIT_OK;

	STRV_FOREACH(k, keys)
	{
		_cleanup_free_ char *reason = NULL;

		r = push ? cache_remote_push(c, remote, *k, o, &reason)
			 : cache_remote_pull(c, remote, *k, o, &reason);
		if (r < 0) {
			if (reason)
				log_error("%s", reason);
			else {
				_cleanup_free_ char *shown = url_redact(remote);

				log_error_errno(r, "Failed to %s '%s' %s '%s': %m",
						push ? "push" : "pull", *k,
						push ? "to" : "from", strna(shown));
			}
			if (ret == EXIT_OK)
				ret = remote_exit_code(r);
			continue;
		}
		printf("%s %s\n", push ? "pushed" : "pulled", *k);
	}
	return ret;
}

static int cache_remote_verb(int argc, char *argv[], struct cli *cli, bool push)
{
	static const struct option options[] = {{"remote", required_argument, NULL, 'r'},
						{}};
	_cleanup_(cache_closep_) struct cache *c = NULL;
	_cleanup_(cache_policy_done) struct cache_policy p = {};
	_cleanup_strv_free_ char **keys = NULL;
	const char *usage = push ? PUSH_USAGE : PULL_USAGE;
	const char *remote = NULL;
	struct dm2_context *ctx;
	int r, opt, ret;

	while ((opt = cli_getopt(argc, argv, "r:", options, usage, push ? 0 : 1, -1,
				 &ret)) >= 0) {
		switch (opt) {
		case 'r':
			remote = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (ret >= 0)
		return ret;
	for (int i = optind; i < argc; i++)
		if (!cache_key_valid(argv[i])) {
			log_error("'%s' is not a cache key (64 lowercase hex digits).",
				  argv[i]);
			return EXIT_USAGE;
		}
	r = open_cache(cli, &ctx, &c);
	if (r != EXIT_OK)
		return r;
	r = remote_options(ctx, &remote, push, &p);
	if (r != EXIT_OK)
		return r;

	if (optind < argc) {
		for (int i = optind; i < argc; i++)
			if (strv_extend(&keys, argv[i]) < 0)
				return log_oom(), EXIT_FAILURE_GENERIC;
	} else {
		r = cache_list(c, &keys);
		if (r < 0) {
			log_error_errno(r, "Failed to list the build cache: %m");
			return cli_exit_code_from_errno(r);
		}
	}

	return remote_transfer(c, remote, keys, &p.o, push);
}

static int cache_push_verb(int argc, char *argv[], struct cli *cli)
{
	return cache_remote_verb(argc, argv, cli, true);
}

static int cache_pull_verb(int argc, char *argv[], struct cli *cli)
{
	return cache_remote_verb(argc, argv, cli, false);
}

/* The local entries built from recipe and for kernel (either may be NULL: any). */
static int select_keys(struct cache *c, const char *recipe, const char *kernel,
		       char ***ret)
{
	_cleanup_strv_free_ char **all = NULL, **keys = NULL;
	int r;

	r = cache_list(c, &all);
	if (r < 0)
		return r;
	STRV_FOREACH(k, all)
	{
		_cleanup_(cache_entry_info_done) struct cache_entry_info i = {};

		r = cache_info_get(c, *k, &i);
		if (r == -ENOENT) {
			log_notice("Cache entry '%s' has no recorded origin, not exporting it.",
				   *k);
			continue;
		}
		if (r < 0)
			return r;
		if ((recipe && !streq(recipe, i.recipe)) ||
		    (kernel && !streq(kernel, i.kernel_release)))
			continue;
		if (strv_extend(&keys, *k) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(keys);
	return 0;
}

static int export_to(struct cache *c, const char *file, char **keys,
		     const struct cache_policy *p)
{
	_cleanup_free_ char *reason = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0) {
		log_error_errno(errno, "Cannot create '%s': %m", file);
		return cli_exit_code_from_errno(-errno);
	}
	r = cache_export(c, fd, keys, &p->o, &reason);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		(void) unlink(file);
		if (reason)
			log_error("%s", reason);
		else
			log_error_errno(r, "Failed to write '%s': %m", file);
		return remote_exit_code(r);
	}
	STRV_FOREACH(k, keys)
		printf("exported %s\n", *k);
	return EXIT_OK;
}

static int cache_export_verb(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {{"recipe", required_argument, NULL, 'r'},
						{"kernel", required_argument, NULL, 'k'},
						{}};
	_cleanup_(cache_closep_) struct cache *c = NULL;
	_cleanup_(cache_policy_done) struct cache_policy p = {};
	_cleanup_strv_free_ char **keys = NULL;
	_cleanup_free_ char *why = NULL;
	const char *recipe = NULL, *kernel = NULL;
	struct dm2_context *ctx;
	int r, opt, ret;

	while ((opt = cli_getopt(argc, argv, "r:k:", options, EXPORT_USAGE, 1, 1, &ret)) >= 0)
		switch (opt) {
		case 'r':
			recipe = optarg;
			break;
		case 'k':
			kernel = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;
	r = open_cache(cli, &ctx, &c);
	if (r != EXIT_OK)
		return r;
	r = select_keys(c, recipe, kernel, &keys);
	if (r < 0) {
		log_error_errno(r, "Failed to list the build cache: %m");
		return cli_exit_code_from_errno(r);
	}
	if (!keys) {
		log_error("No cache entry with a recorded origin matches%s%s%s%s.",
			  recipe ? " recipe " : "", strempty(recipe), kernel ? " kernel " : "",
			  strempty(kernel));
		return EXIT_NOT_FOUND;
	}
	r = cache_policy_load(ctx, true, &p, &why);
	if (r < 0) {
		log_error("%s", why ?: strerror(-r));
		return cli_exit_code_from_errno(r);
	}
	return export_to(c, argv[optind], keys, &p);
}

struct import_result {
	int exit_code;
};

static void on_imported(const char *key, int r, const char *reason, void *userdata)
{
	struct import_result *res = userdata;

	if (r >= 0) {
		printf("imported %s\n", key);
		return;
	}
	log_error("%s", reason ?: strerror(-r));
	if (key && res->exit_code == EXIT_OK)
		res->exit_code = remote_exit_code(r);
}

static int cache_import_verb(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(cache_closep_) struct cache *c = NULL;
	_cleanup_(cache_policy_done) struct cache_policy p = {};
	_cleanup_free_ char *why = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct import_result res = {EXIT_OK};
	struct dm2_context *ctx;
	int r, ret;

	while (cli_getopt(argc, argv, "", NULL, IMPORT_USAGE, 1, 1, &ret) >= 0)
		return EXIT_USAGE;
	if (ret >= 0)
		return ret;
	fd = open(argv[optind], O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		log_error_errno(errno, "Cannot open '%s': %m", argv[optind]);
		return cli_exit_code_from_errno(-errno);
	}
	r = open_cache(cli, &ctx, &c);
	if (r != EXIT_OK)
		return r;
	r = cache_policy_load(ctx, false, &p, &why);
	if (r >= 0)
		r = cache_import(c, fd, argv[optind], &p.o, on_imported, &res, &why);
	if (r < 0) {
		log_error("%s", why ?: strerror(-r));
		return r == -EBADMSG ? EXIT_BAD_INPUT : cli_exit_code_from_errno(r);
	}
	if (r == 0 && res.exit_code == EXIT_OK) {
		log_error("Archive '%s' holds no cache entry.", argv[optind]);
		return EXIT_BAD_INPUT;
	}
	return res.exit_code;
}

int verb_cache(int argc, char *argv[], struct cli *cli)
{
	static const struct cli_subverb subverbs[] = {
		{"stat", cache_stat_verb},
		{"gc", cache_gc_verb},
		{"push", cache_push_verb},
		{"pull", cache_pull_verb},
		{"export", cache_export_verb},
		{"import", cache_import_verb},
	};

	return cli_dispatch(argc, argv, cli, subverbs, ELEMENTSOF(subverbs), NULL,
			    CACHE_USAGE);
}
