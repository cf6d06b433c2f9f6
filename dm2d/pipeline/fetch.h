/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "shared/macro.h"

/*
 * Downloads (libcurl multi interface). Only https://, http:// and file:// URLs are
 * fetched; redirects may only lead to https:// or http://. TLS is always verified against
 * the system CAs plus [Fetch] CAFile= (a path under the root). Admin mirrors ([Fetch]
 * Mirror=) are tried before the URL they rewrite; each URL is tried 1 + Retries= times on
 * transient errors (5xx, connection failures, timeouts, stalls, truncated bodies) with
 * exponential backoff.
 *
 * Results land in ROOT/var/cache/dm2/downloads/<sha256 of the content>, written
 * atomically. With sha256 given and that file present (and still matching), nothing is
 * downloaded. A download without a known hash is remembered as downloads/url-<sha256 of
 * the URL> (a symlink to the content file), so the same URL is not fetched twice either.
 *
 * Errors: -EREMOTEIO download failed (HTTP error, network, protocol, TLS, size cap),
 * -EUCLEAN content does not match sha256, -EINVAL bad URL list, other -errno for local
 * I/O. ret_reason (optional) gets a one-line reason naming the URL on failure.
 */
int fetch_url_full(struct dm2_context *ctx, char **urls, const char *sha256,
		   char **ret_path, char **ret_reason);
/* The same, without a reason (the reason is logged at debug level). */
int fetch_url(struct dm2_context *ctx, char **urls, const char *sha256, char **ret_path);

/* The URLs tried for one recipe URL: mirror rewrites first (in config order), then the
 * URL. */
int fetch_expand_mirrors(const struct dm2_config *c, char **urls, char ***ret);
