/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The strip stage, Strip= (DKMS STRIP[]): `strip -g` (llvm-strip for clang-built kernels)
 * on a private copy of each module, before it is signed: stripping a signed module would
 * break the signature, and the copy in the build cache stays as built. strip parses the
 * build's ELF, so it runs unprivileged in the build sandbox (builder_strip()), never as
 * root. A failure is a failure of the build.
 */
#include "pipeline/builder.h"
#include "pipeline/job-internal.h"
#include "shared/log.h"
#include "shared/util.h"

/* The module's data is replaced by its stripped copy. */
static int strip_module(struct job *j, struct job_module *m)
{
	_cleanup_free_ char *reason = NULL;
	char *data = m->data;
	int r;

	r = builder_strip(j->ctx, j->kernel, m->name, j->log_path, &data, &m->size,
			  &reason);
	m->data = data;
	if (r == -EPROTO && reason)
		return job_fail(j, r, reason);
	if (r < 0)
		return job_failf(j, r, "stripping '%s' failed: %m", m->name);
	return 0;
}

int stage_strip(struct job *j)
{
	for (size_t i = 0; i < j->n_modules; i++) {
		/* A built module the recipe does not list keeps the default, Strip=yes. */
		int r = !j->modules[i].rm || j->modules[i].rm->strip
				? strip_module(j, &j->modules[i])
				: 0;

		if (r != 0)
			return r;
	}
	return 0;
}
