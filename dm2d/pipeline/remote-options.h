/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "cache.h"
#include "core/context.h"

/* How to reach the remote cache, from [Cache] (and [Fetch] CAFile=) of dm2d.conf: the
 * options for cache_remote_pull/push(), each file resolved under the root like every path
 * dm2d.conf names. The strings live in paths until remote_paths_done(). */
struct remote_paths {
	char *ca_file, *netrc_file, *token_file, *header_file, *client_cert, *client_key;
};
int remote_options_from_config(const struct dm2_context *ctx, struct remote_paths *paths,
			       struct cache_remote_options *ret);
void remote_paths_done(struct remote_paths *paths);
