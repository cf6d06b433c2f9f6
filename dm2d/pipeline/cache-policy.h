/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "cache.h"
#include "core/context.h"
#include "pipeline/remote-options.h"
#include "pipeline/sign.h"

/* Certificates whose signatures make a remote cache entry acceptable (dm2d.conf(5)). */
#define DM2_TRUSTED_DIR "etc/dm2/trusted.d"

/*
 * How this root talks to its remote cache and whom it believes, from dm2d.conf: the
 * transfer options (remote-options.h: CAFile=, timeouts, credentials), the trusted
 * certificates (every *.pem in ROOT/etc/dm2/trusted.d and each TrustedKeys= file, paths
 * under the root) and, for pushing, this machine's signing key. The options in o point
 * into the policy.
 */
struct cache_policy {
	struct cache_remote_options o;
	struct remote_paths paths; /* the files o names */
	struct cache_trust *trust;
	char **trusted_files; /* absolute: what trust was loaded from */
	struct sign_key *key;
};
/* with_signer: load (generating dm2's own pair on first use, keys_ensure()) the key that
 * push signs manifests with. A bad trusted certificate file fails with *ret_reason. */
int cache_policy_load(struct dm2_context *ctx, bool with_signer, struct cache_policy *ret,
		      char **ret_reason);
void cache_policy_done(struct cache_policy *p);
