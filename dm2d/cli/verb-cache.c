/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 cache stat|gc|push|pull: see dm2(1), section "cache". */
#include <getopt.h>
#include <inttypes.h>

#include "cache.h"
#include "cli/cli.h"
#include "pipeline/remote-options.h"
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
	"dm2 cache {stat | gc [--max-size SIZE] | push|pull [--remote URL] KEY...}"
#define STAT_USAGE "dm2 cache stat [--json]"
#define GC_USAGE "dm2 cache gc [--max-size SIZE]"
#define PUSH_USAGE "dm2 cache push [--remote URL] [KEY...]"
#define PULL_USAGE "dm2 cache pull [--remote URL] KEY..."

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

static int cache_stat_verb(int argc, char *argv[], struct cli *cli)
{
	_cleanup_(cache_closep_) struct cache *c = NULL;
	_cleanup_free_ char *dir = NULL;
	struct dm2_context *ctx;
	struct cache_stats s;
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
	if (r < 0) {
		log_error_errno(r, "Failed to read the build cache index: %m");
		return cli_exit_code_from_errno(r);
	}
	dir = context_path(ctx, DM2_ARTIFACT_DIR);
	if (!dir)
		return log_oom(), EXIT_FAILURE_GENERIC;
	if (cli->json) {
		printf("{\"path\":");
		cli_json_string(stdout, dir);
		printf(",\"entries\":%" PRIu64 ",\"objects\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"max_size\":%" PRIu64
		       ",\"oldest_used_usec\":%" PRIu64 ",\"newest_used_usec\":%" PRIu64
		       "}\n",
		       s.entries, s.objects, s.bytes, ctx->config->cache_max_size,
		       s.oldest_used, s.newest_used);
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
	default:
		return EXIT_FETCH_FAILED;
	}
}

/* Where and how to reach the remote cache: --remote, else Remote=. An exit code. */
static int remote_options(struct dm2_context *ctx, const char **remote,
			  struct remote_paths *paths, struct cache_remote_options *o)
{
	if (!*remote)
		*remote = ctx->config->remote_cache;
	if (isempty(*remote)) {
		log_error("No remote cache: set Remote= in [Cache] of '%s' or pass "
			  "--remote URL.",
			  DM2_CONF_FILE);
		return EXIT_USAGE;
	}
	/* Like downloads: the files dm2d.conf names live under --root. */
	if (remote_options_from_config(ctx, paths, o) < 0)
		return log_oom(), EXIT_FAILURE_GENERIC;
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
	_cleanup_strv_free_ char **keys = NULL;
	_cleanup_(remote_paths_done) struct remote_paths paths = {};
	const char *usage = push ? PUSH_USAGE : PULL_USAGE;
	const char *remote = NULL;
	struct dm2_context *ctx;
	struct cache_remote_options o = {};
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
	r = remote_options(ctx, &remote, &paths, &o);
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

	return remote_transfer(c, remote, keys, &o, push);
}

static int cache_push_verb(int argc, char *argv[], struct cli *cli)
{
	return cache_remote_verb(argc, argv, cli, true);
}

static int cache_pull_verb(int argc, char *argv[], struct cli *cli)
{
	return cache_remote_verb(argc, argv, cli, false);
}

int verb_cache(int argc, char *argv[], struct cli *cli)
{
	static const struct cli_subverb subverbs[] = {
		{"stat", cache_stat_verb},
		{"gc", cache_gc_verb},
		{"push", cache_push_verb},
		{"pull", cache_pull_verb},
	};

	return cli_dispatch(argc, argv, cli, subverbs, ELEMENTSOF(subverbs), NULL,
			    CACHE_USAGE);
}
