/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The remote cache as dm2d.conf sets it up, shared by the cache stages and `dm2 cache`. */
#include <dirent.h>
#include <stdlib.h>

#include "pipeline/cache-policy.h"
#include "shared/fs-util.h"
#include "pipeline/keys.h"
#include "shared/util.h"

/* The manifest is signed like a module: the same key, code and hash (sha256). */
static int sign_manifest(const void *data, size_t len, void **ret_der, size_t *ret_len,
			 void *userdata)
{
	return sign_data(userdata, "sha256", data, len, ret_der, ret_len);
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Every *.pem of etc/dm2/trusted.d (sorted), then each TrustedKeys= file. */
static int trusted_files(struct dm2_context *ctx, char ***ret)
{
	_cleanup_free_ char *dir = context_path(ctx, DM2_TRUSTED_DIR);
	_cleanup_strv_free_ char **names = NULL, **files = NULL, **conf = NULL;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (!dir)
		return -ENOMEM;
	d = opendir(dir);
	if (!d && errno != ENOENT)
		return -errno;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && endswith(de->d_name, ".pem") &&
		    strv_extend(&names, de->d_name) < 0)
			r = -ENOMEM;
	if (d)
		closedir(d);
	if (r < 0)
		return r;
	if (names)
		qsort(names, strv_length(names), sizeof(char *), compare_strings);
	STRV_FOREACH(n, names)
	if (strv_consume(&files, path_join(dir, *n)) < 0)
		return -ENOMEM;
	r = strv_split(strempty(ctx->config->trusted_keys), " \t", &conf);
	if (r < 0)
		return r;
	STRV_FOREACH(f, conf)
	if (strv_consume(&files, context_path(ctx, *f)) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(files);
	return 0;
}

static int load_trust(struct dm2_context *ctx, struct cache_policy *p, char **reason)
{
	int r;

	r = trusted_files(ctx, &p->trusted_files);
	STRV_FOREACH(f, p->trusted_files)
	{
		if (r < 0)
			break;
		r = cache_trust_add_file(p->trust, *f, reason);
	}
	return r;
}

static int load_signer(struct dm2_context *ctx, struct sign_key **ret, char **reason)
{
	_cleanup_free_ char *key = NULL, *cert = NULL;
	int r;

	r = keys_ensure(ctx, &key, &cert);
	if (r >= 0)
		r = sign_key_load(key, cert, ret);
	if (r < 0 && reason && !*reason)
		*reason = strdup_printf("Cannot load the signing key '%s': %s", strna(key),
					strerror(-r));
	return r;
}

int cache_policy_load(struct dm2_context *ctx, bool with_signer, struct cache_policy *ret,
		      char **ret_reason)
{
	_cleanup_(cache_policy_done) struct cache_policy p = {};
	int r;

	/* Like downloads: the files dm2d.conf names live under --root. */
	r = remote_options_from_config(ctx, &p.paths, &p.o);
	if (r < 0)
		return r;
	r = cache_trust_new(&p.trust);
	if (r >= 0)
		r = load_trust(ctx, &p, ret_reason);
	if (r >= 0 && with_signer)
		r = load_signer(ctx, &p.key, ret_reason);
	if (r < 0)
		return r;
	p.o.trust = p.trust;
	p.o.sign = p.key ? sign_manifest : NULL;
	p.o.sign_userdata = p.key;
	*ret = p;
	p = (struct cache_policy){};
	return 0;
}

void cache_policy_done(struct cache_policy *p)
{
	remote_paths_done(&p->paths);
	p->trust = cache_trust_free(p->trust);
	p->trusted_files = strv_free(p->trusted_files);
	p->key = sign_key_free(p->key);
	p->o = (struct cache_remote_options){};
}
