/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The built modules of a job: where they come from (the build cache or the build), and
 * the read stage, which loads them for strip, sign and compress to change in memory. */
#include <assert.h>
#include <fcntl.h>

#include "pipeline/job-internal.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

static const struct recipe_module *find_module(const struct recipe *r, const char *file)
{
	const char *dot = endswith(file, ".ko");
	size_t n = dot ? (size_t) (dot - file) : strlen(file);

	for (size_t i = 0; i < r->n_modules; i++)
		if (strlen(r->modules[i].name) == n &&
		    strncmp(r->modules[i].name, file, n) == 0)
			return &r->modules[i];
	return NULL;
}

int job_modules_set(struct job *j, char *const *paths, char *const *names)
{
	size_t n = strv_length(paths);

	assert(j->n_modules == 0);
	j->modules = calloc(n, sizeof(*j->modules));
	if (n > 0 && !j->modules)
		return log_oom();
	for (size_t i = 0; i < n; i++) {
		struct job_module *m = &j->modules[i];
		const char *slash = strrchr(paths[i], '/');

		m->path = strdup(paths[i]);
		m->name = strdup(names ? names[i] : slash ? slash + 1 : paths[i]);
		j->n_modules++;
		if (!m->path || !m->name)
			return log_oom();
		m->rm = find_module(j->recipe, m->name);
	}
	return 0;
}

int stage_read(struct job *j)
{
	for (size_t i = 0; i < j->n_modules; i++) {
		struct job_module *m = &j->modules[i];
		char *data = NULL;
		int r;

		r = read_full_file_at(AT_FDCWD, m->path, 0, &data, &m->size);
		if (r < 0)
			return job_failf(j, r, "cannot read built module '%s'", m->path);
		m->data = data;
	}
	return 0;
}
