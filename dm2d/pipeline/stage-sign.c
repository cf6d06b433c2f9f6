/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sign stage: every module signed with dm2's key (keys.c), in the kernel's format
 * (sign.c), with the kernel's hash unless Hash= says otherwise. Left out with Sign=no. */
#include "pipeline/job-internal.h"
#include "pipeline/keys.h"
#include "pipeline/sign.h"
#include "shared/log.h"
#include "shared/util.h"

bool job_signs(const struct job *j)
{
	return j->ctx->config->sign && !j->builder_signed;
}

static int load_key(struct job *j, struct sign_key **ret)
{
	_cleanup_free_ char *key_path = NULL, *cert_path = NULL;
	int r;

	r = keys_ensure(j->ctx, &key_path, &cert_path);
	if (r >= 0)
		r = sign_key_load(key_path, cert_path, ret);
	if (r < 0)
		return job_failf(j, r, "cannot load the signing key '%s': %m",
				 strna(key_path));
	if (free_and_strdup(&j->signer, sign_key_signer(*ret)) < 0)
		return log_oom();
	return 0;
}

int stage_sign(struct job *j)
{
	_cleanup_(sign_key_freep) struct sign_key *key = NULL;
	const char *hash;
	int r;

	r = load_key(j, &key);
	if (r != 0)
		return r;
	hash = j->ctx->config->sign_hash ?: kbw_kernel_sig_hash(j->kernel) ?: "sha256";
	for (size_t i = 0; i < j->n_modules; i++) {
		struct job_module *m = &j->modules[i];
		void *out = NULL;
		size_t out_size;

		r = module_sign(key, hash, m->data, m->size, &out, &out_size);
		if (r < 0)
			return job_failf(j, r, "signing '%s' with %s failed: %m", m->name,
					 hash);
		free(m->data);
		m->data = out;
		m->size = out_size;
	}
	return 0;
}
