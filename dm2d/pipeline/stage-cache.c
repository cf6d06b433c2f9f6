/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The build cache stages, and the one place that knows its policy: a build is looked up
 * under its build key in the local cache, then (Remote=) pulled from the remote cache;
 * a new build is stored locally, then (Push=yes) pushed. The cache is an optimisation:
 * any failure of it is a warning, and the job builds (or goes on) without it.
 */
#include <unistd.h>

#include "pipeline/job-internal.h"
#include "pipeline/remote-options.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

#define CACHE_OPEN_TIMEOUT_USEC (30 * 1000000ULL)

static void cache_entry_freep(struct cache_entry **e)
{
	cache_entry_free(*e);
}

/* Canonical text of everything in the recipe that changes the build output (patches are
 * part of the source id already). */
static char *build_rules_text(const struct recipe *r)
{
	_cleanup_free_ char *vars = strv_join(r->make_vars, "\n");
	_cleanup_free_ char *mods = NULL;

	for (size_t i = 0; i < r->n_modules; i++) {
		char *n = strjoin(strempty(mods), r->modules[i].name, "@",
				  strempty(r->modules[i].built_location),
				  r->modules[i].strip ? ",strip\n" : "\n");
		if (!n)
			return NULL;
		free(mods);
		mods = n;
	}
	return strjoin("subdir=", strempty(r->subdir), "\nmodules=", strempty(mods),
		       "make_vars=", strempty(vars),
		       "\ncommand=", strempty(r->make_command),
		       "\ncontent=", strempty(r->content_hash), "\n");
}

static int build_key(struct job *j)
{
	_cleanup_free_ char *rules = build_rules_text(j->recipe);

	if (!rules)
		return -ENOMEM;
	return cache_key_compute(
		&(struct cache_key_input){
			.recipe_name = j->recipe->name,
			.source_id = j->content_id,
			.build_rules = rules,
			.kernel_identity = kbw_kernel_identity(j->kernel),
			.arch = kbw_kernel_arch(j->kernel),
			.format_version = CACHE_FORMAT_VERSION,
		},
		j->key);
}

static int open_cache(struct dm2_context *ctx, struct cache **ret)
{
	_cleanup_free_ char *dir = context_path(ctx, DM2_ARTIFACT_DIR);
	_cleanup_free_ char *index = NULL;

	if (!dir)
		return -ENOMEM;
	index = path_join(dir, "index.db");
	if (!index)
		return -ENOMEM;
	/* Two jobs starting together on a fresh cache: SQLite refuses the second one's
	 * switch of the new index to WAL with SQLITE_BUSY at once (no busy handler runs
	 * for it), so cache_open() fails with -EBUSY although waiting a moment is all it
	 * takes. */
	for (uint64_t deadline = now_mono_usec() + CACHE_OPEN_TIMEOUT_USEC;;) {
		int r = cache_open(dir, index, ret);

		if (r >= 0 && cache_index_was_reset(*ret))
			log_warning("The build cache index '%s' was damaged: moved it to "
				    "'%s.broken' and started an empty one.",
				    index, index);
		if (r != -EBUSY || now_mono_usec() >= deadline)
			return r;
		(void) usleep(10000 + (unsigned) (now_mono_usec() % 20000));
	}
}

/* The remote cache of dm2d.conf (NULL: none, or out of memory), and how to talk to it;
 * the paths of its files, resolved under the root, in *paths. */
static const char *remote(const struct job *j, struct cache_remote_options *ret,
			  struct remote_paths *paths)
{
	if (remote_options_from_config(j->ctx, paths, ret) < 0)
		return NULL;
	return j->ctx->config->remote_cache;
}

/* Local, then remote. -ENOENT: in neither. */
static int cache_find(struct job *j, struct cache_entry **ret)
{
	_cleanup_(remote_paths_done) struct remote_paths paths = {};
	_cleanup_free_ char *why = NULL;
	struct cache_remote_options ro;
	const char *url;
	int r;

	r = cache_lookup(j->cache, j->key, ret);
	if (r != -ENOENT || !j->ctx->config->remote_cache)
		return r;
	url = remote(j, &ro, &paths);
	if (!url)
		return -ENOMEM;
	r = cache_remote_pull(j->cache, url, j->key, &ro, &why);
	if (r >= 0)
		return cache_lookup(j->cache, j->key, ret);
	if (r != -ENOENT)
		log_warning("Remote cache: %s, ignoring.", strna(why));
	return -ENOENT;
}

/* Local, then remote with Push=yes. */
static void cache_keep(struct job *j, char **paths, char **names, const char *symvers)
{
	_cleanup_(remote_paths_done) struct remote_paths rp = {};
	_cleanup_free_ char *why = NULL;
	struct cache_remote_options ro;
	/* NULL when out of memory: no push, the local store still happens */
	const char *url = remote(j, &ro, &rp);
	int r;

	r = cache_store(j->cache, j->key, paths, names, symvers);
	if (r < 0) {
		log_warning_errno(r,
				  "Failed to store '%s' in the build cache, ignoring: %m",
				  j->key);
		return;
	}
	if (url && j->ctx->config->remote_push &&
	    cache_remote_push(j->cache, url, j->key, &ro, &why) < 0)
		log_warning("Pushing '%s' to the remote cache failed: %s, ignoring.",
			    j->key, strna(why));
}

int stage_cache_lookup(struct job *j)
{
	_cleanup_(cache_entry_freep) struct cache_entry *e = NULL;
	int r;

	r = build_key(j);
	if (r < 0)
		return log_error_errno(r, "Failed to compute the build key of '%s': %m",
				       j->name);
	r = open_cache(j->ctx, &j->cache);
	if (r < 0) {
		_cleanup_free_ char *dir = context_path(j->ctx, DM2_ARTIFACT_DIR);

		return job_failf(j, r, "cannot open the build cache in '%s': %m", strna(dir));
	}
	if (!j->o->force) {
		r = cache_find(j, &e);
		if (r < 0 && r != -ENOENT)
			log_warning_errno(r, "Cache lookup of '%s' failed, building: %m",
					  j->key);
	}
	j->from_cache = e != NULL;
	r = job_record_build(j, j->key, NULL);
	if (r < 0 || !e)
		return r;
	r = job_modules_set(j, e->files, e->names);
	if (r < 0)
		return r;
	job_progress(j, "found in the build cache");
	return 0;
}

int stage_cache_store(struct job *j)
{
	_cleanup_strv_free_ char **names = NULL;

	for (size_t i = 0; i < j->n_modules; i++)
		if (strv_extend(&names, j->modules[i].name) < 0)
			return log_oom();
	cache_keep(j, j->build->modules, names, j->build->symvers);
	return 0;
}
