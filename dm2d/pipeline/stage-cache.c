/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The build cache stages, and the one place that knows its policy: a build is looked up
 * under its build key in the local cache, then (Remote=) pulled from the remote cache;
 * a new build is stored locally, then (Push=yes) pushed. The cache is an optimisation:
 * any failure of it is a warning, and the job builds (or goes on) without it.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/cache-policy.h"
#include "pipeline/job-internal.h"
#include "pipeline/sign.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

#define CACHE_OPEN_TIMEOUT_USEC (30 * 1000000ULL)

static void cache_entry_freep(struct cache_entry **e)
{
	cache_entry_free(*e);
}

static int build_key(struct job *j)
{
	_cleanup_free_ char *rules = NULL;
	int r;

	/* What this kernel's build uses, not the whole recipe file (recipe.h). */
	r = recipe_build_rules(j->recipe, j->source, &rules);
	if (r < 0)
		return r;
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

/* The trusted policy of dm2d.conf for the remote cache; NULL when there is none or it
 * cannot be loaded (then logged: the job goes on without the remote). */
static const char *remote(const struct job *j, bool push, struct cache_policy *ret)
{
	const struct dm2_config *cfg = j->ctx->config;
	_cleanup_free_ char *why = NULL;
	int r;

	if (!cfg->remote_cache || (push && !cfg->remote_push))
		return NULL;
	r = cache_policy_load(j->ctx, push, ret, &why);
	if (r < 0) {
		log_warning_errno(r, "Remote cache: %s, not using it: %m", strna(why));
		return NULL;
	}
	return cfg->remote_cache;
}

/* Local, then remote: an entry only if a trusted key signed it for this very key and
 * kernel. -ENOENT: in neither, or refused (logged and counted); the job builds. */
static int cache_find(struct job *j, struct cache_entry **ret)
{
	_cleanup_(cache_policy_done) struct cache_policy p = {};
	_cleanup_free_ char *why = NULL;
	const char *url;
	int r;

	r = cache_lookup(j->cache, j->key, ret);
	if (r != -ENOENT)
		return r;
	url = remote(j, false, &p);
	if (!url)
		return -ENOENT;
	p.o.expect_identity = kbw_kernel_identity(j->kernel);
	r = cache_remote_pull(j->cache, url, j->key, &p.o, &why);
	if (r >= 0)
		return cache_lookup(j->cache, j->key, ret);
	if (r == -EKEYREJECTED || r == -EBADMSG) {
		log_warning("Remote cache: %s; building '%s' locally.", strna(why), j->name);
		log_notice("event: cache-refused, job=%s, key=%s", j->id_text, j->key);
	} else if (r != -ENOENT)
		log_warning("Remote cache: %s, ignoring.", strna(why));
	return -ENOENT;
}

/* Locally, with the origin that a push signs. */
static void cache_keep(struct job *j, char **paths, char **names, const char *symvers)
{
	int r;

	r = cache_store(j->cache, j->key, paths, names, symvers);
	if (r >= 0)
		r = cache_info_set(j->cache, j->key,
				   &(struct cache_entry_info){
					   .recipe = j->recipe->name,
					   .version = j->source->version,
					   .source_id = j->content_id,
					   .kernel_release = j->kver,
					   .kernel_identity = kbw_kernel_identity(j->kernel),
					   .arch = kbw_kernel_arch(j->kernel),
				   });
	if (r < 0)
		log_warning_errno(r, "Failed to store '%s' in the build cache, ignoring: %m",
				  j->key);
}

/* The builder's signature on one module: a trusted certificate made it. Returns the
 * signer (malloc()ed) or NULL with *why set. */
static char *verify_builder_module(const char *path, char *const *trusted, char **why)
{
	_cleanup_free_ char *data = NULL;
	size_t size = 0;
	int r;

	r = read_full_file_at(AT_FDCWD, path, 1024U * 1024U * 1024U, &data, &size);
	if (r < 0) {
		*why = strdup_printf("cannot read '%s': %s", path, strerror(-r));
		return NULL;
	}
	STRV_FOREACH(cert, trusted)
	{
		_cleanup_(module_signature_info_done) struct module_signature_info info = {};

		r = module_verify(data, size, *cert, &info);
		if (r >= 0)
			return TAKE_PTR(info.signer);
		if (r == -ENODATA)
			break;
	}
	*why = strdup(r == -ENODATA ? "it is not signed"
				    : "no trusted certificate made its signature");
	return NULL;
}

/* The modules of entry e for the job: the unsigned ones, or with RemoteSigning=builder the
 * builder's signed copies ("NAME.signed"), each verified. -EKEYREJECTED: refused, logged
 * and counted; the job builds. */
static int use_entry(struct job *j, const struct cache_entry *e)
{
	_cleanup_strv_free_ char **paths = NULL, **names = NULL, **trusted = NULL;
	_cleanup_(cache_policy_done) struct cache_policy p = {};
	bool builder = j->ctx->config->remote_signing_builder && j->ctx->config->sign;
	_cleanup_free_ char *why = NULL, *signer = NULL;

	if (builder && cache_policy_load(j->ctx, false, &p, &why) >= 0)
		trusted = TAKE_PTR(p.trusted_files);
	for (size_t i = 0; e->names[i]; i++) {
		_cleanup_free_ char *signed_name = NULL;
		const char *path = e->files[i];

		if (endswith(e->names[i], CACHE_SIGNED_SUFFIX))
			continue;
		if (builder) {
			signed_name = strjoin(e->names[i], CACHE_SIGNED_SUFFIX);
			if (!signed_name)
				return log_oom();
			path = NULL;
			for (size_t k = 0; e->names[k]; k++)
				if (streq(e->names[k], signed_name))
					path = e->files[k];
			signer = mfree(signer);
			signer = path ? verify_builder_module(path, trusted, &why)
				      : NULL;
			if (!path && !why)
				why = strdup("the entry holds no builder-signed copy");
			if (!signer) {
				log_warning("Remote cache: module '%s' of '%s' is refused with "
					    "RemoteSigning=builder: %s; building '%s' locally.",
					    e->names[i], j->key, strna(why), j->name);
				cache_refusal_note(j->cache, CACHE_REFUSAL_MODULE_SIGNATURE);
				return -EKEYREJECTED;
			}
		}
		if (strv_extend(&paths, path) < 0 || strv_extend(&names, e->names[i]) < 0)
			return log_oom();
	}
	if (signer && free_and_strdup(&j->signer, signer) < 0)
		return log_oom();
	j->builder_signed = builder;
	return job_modules_set(j, paths, names);
}

/* A reinstall from the cache compiles nothing, but the log of the build for this recipe and
 * kernel is still there: status and `dm2 log` keep naming it instead of null. */
static int job_keep_log(struct job *j)
{
	_cleanup_free_ char *rel = NULL;
	struct stat st;

	rel = strjoin(DM2_LOG_DIR "/", j->name, "/", j->kver, "/build.log");
	if (!rel)
		return log_oom();
	if (fstatat(j->ctx->root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return job_set_state(j, j->state, j->stage, NULL, j->log_path);
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
	if (e) {
		r = use_entry(j, e);
		if (r == -EKEYREJECTED)
			e = cache_entry_free(e);
		else if (r < 0)
			return r;
	}
	j->from_cache = e != NULL;
	r = job_record_build(j, j->key, NULL);
	if (r < 0 || !e)
		return r;
	job_progress(j, j->builder_signed ? "found in the build cache, signed by the builder"
					  : "found in the build cache");
	return job_keep_log(j);
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

bool job_strips(const struct job *j)
{
	/* Stripping would break the builder's signature; the builder stripped already. */
	return !j->builder_signed;
}

/* The signed modules as "NAME.signed" files of the entry, for RemoteSigning=builder
 * clients; written next to the build's own output. */
static int keep_signed(struct job *j)
{
	_cleanup_strv_free_ char **paths = NULL, **names = NULL;

	for (size_t i = 0; i < j->n_modules; i++) {
		_cleanup_free_ char *name = strjoin(j->modules[i].name, CACHE_SIGNED_SUFFIX);
		_cleanup_free_ char *path = name ? path_join(j->build_dir, name) : NULL;
		int r;

		if (!path)
			return -ENOMEM;
		r = write_file_atomic_at(AT_FDCWD, path, j->modules[i].data,
					 j->modules[i].size, 0644);
		if (r < 0)
			return r;
		if (strv_extend(&paths, j->build->modules[i]) < 0 ||
		    strv_extend(&names, j->modules[i].name) < 0 ||
		    strv_consume(&paths, TAKE_PTR(path)) < 0 ||
		    strv_consume(&names, TAKE_PTR(name)) < 0)
			return -ENOMEM;
	}
	cache_keep(j, paths, names, j->build->symvers);
	return 0;
}

int stage_cache_publish(struct job *j)
{
	_cleanup_(cache_policy_done) struct cache_policy p = {};
	_cleanup_free_ char *why = NULL;
	const char *url = remote(j, true, &p);
	int r;

	if (!url)
		return 0;
	if (job_signs(j)) {
		r = keep_signed(j);
		if (r < 0)
			log_warning_errno(r, "Failed to keep the signed modules of '%s' in the "
					     "build cache, ignoring: %m",
					  j->key);
	}
	if (cache_remote_push(j->cache, url, j->key, &p.o, &why) < 0)
		log_warning("Pushing '%s' to the remote cache failed: %s, ignoring.", j->key,
			    strna(why));
	return 0;
}
