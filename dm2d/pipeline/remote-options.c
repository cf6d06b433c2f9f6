/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "core/config.h"
#include "pipeline/remote-options.h"
#include "shared/util.h"

static int resolve(const struct dm2_context *ctx, const char *rel, char **ret)
{
	*ret = NULL;
	if (!rel)
		return 0;
	*ret = context_path(ctx, rel);
	return *ret ? 0 : -ENOMEM;
}

int remote_options_from_config(const struct dm2_context *ctx, struct remote_paths *p,
			       struct cache_remote_options *ret)
{
	const struct dm2_config *cfg = ctx->config;

	*p = (struct remote_paths){};
	if (resolve(ctx, cfg->remote_ca_file ?: cfg->ca_file, &p->ca_file) < 0 ||
	    resolve(ctx, cfg->remote_netrc_file, &p->netrc_file) < 0 ||
	    resolve(ctx, cfg->remote_token_file, &p->token_file) < 0 ||
	    resolve(ctx, cfg->remote_header_file, &p->header_file) < 0 ||
	    resolve(ctx, cfg->remote_client_cert, &p->client_cert) < 0 ||
	    resolve(ctx, cfg->remote_client_key, &p->client_key) < 0) {
		remote_paths_done(p);
		return -ENOMEM;
	}
	*ret = (struct cache_remote_options){
		.ca_file = p->ca_file,
		.connect_timeout_usec = cfg->connect_timeout_usec,
		.stall_timeout_usec = cfg->stall_timeout_usec,
		.netrc_file = p->netrc_file,
		.bearer_token_file = p->token_file,
		.header_file = p->header_file,
		.client_cert = p->client_cert,
		.client_key = p->client_key,
	};
	return 0;
}

void remote_paths_done(struct remote_paths *p)
{
	free(p->ca_file);
	free(p->netrc_file);
	free(p->token_file);
	free(p->header_file);
	free(p->client_cert);
	free(p->client_key);
	*p = (struct remote_paths){};
}
