/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The compress stage: after signing, every module compressed as the kernel's own modules
 * are (compress.c); a module that cannot be compressed cannot be installed. */
#include "pipeline/compress.h"
#include "pipeline/job-internal.h"
#include "shared/log.h"

int stage_compress(struct job *j)
{
	enum kbw_compression comp = kbw_kernel_compression(j->kernel);

	if (comp == KBW_COMPRESSION_NONE)
		return 0;
	for (size_t i = 0; i < j->n_modules; i++) {
		struct job_module *m = &j->modules[i];
		void *out = NULL;
		size_t out_size;
		int r;

		r = module_compress(comp, m->data, m->size, &out, &out_size);
		if (r < 0)
			return job_failf(j, r, "compressing '%s' failed", m->name);
		free(m->data);
		m->data = out;
		m->size = out_size;
	}
	return 0;
}
