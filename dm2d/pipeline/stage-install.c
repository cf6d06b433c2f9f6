/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The install stage: under the kernel lock, every module written into lib/modules/KVER
 * at once, or none (install.c). The lock is held on through depmod. */
#include "core/db.h"
#include "core/lock.h"
#include "pipeline/install.h"
#include "pipeline/job-internal.h"
#include "shared/log.h"
#include "shared/util.h"

/* Where module m goes: DestDir= (else the recipe's Directory=) and DestName= (else its
 * own name), with the kernel's compression suffix. */
static char *install_name(const struct job *j, const struct job_module *m,
			  const char **ret_dir)
{
	const char *suffix = kbw_compression_suffix(kbw_kernel_compression(j->kernel));
	const struct recipe_module *rm = m->rm;

	*ret_dir = rm && rm->dest_dir ? rm->dest_dir : j->recipe->install_dir ?: "updates/dm2";
	if (!rm)
		return strjoin(m->name, suffix);
	return strjoin(rm->dest_name ?: rm->name, ".ko", suffix);
}

static int fail_conflict(struct job *j, const char *conflict)
{
	_cleanup_free_ char *why = NULL;

	/* The caller may know who put it there (dm2 install: DKMS). */
	if (conflict && j->o->explain_conflict)
		why = j->o->explain_conflict(j->ctx, conflict);
	if (!why && conflict && j->db) {
		struct db_installed_file f = {};

		/* Another recipe's file: name it, so the packager knows which two clash.
		 */
		if (db_installed_owner(j->db, conflict, &f) >= 0)
			why = strjoin("'", conflict, "' is installed by recipe '",
				      strna(f.recipe), "'");
		db_installed_file_done(&f);
	}
	if (!why)
		why = strjoin("'", strna(conflict),
			      "' exists and was not installed by dm2");
	if (!why)
		return log_oom();
	return job_fail(j, -EEXIST, why);
}

static int install(struct job *j, struct install_item *items, char **names)
{
	_cleanup_free_ char *where = NULL; /* the conflict, or where a write failed */
	int r;

	for (size_t i = 0; i < j->n_modules; i++) {
		const char *dir;

		names[i] = install_name(j, &j->modules[i], &dir);
		if (!names[i])
			return log_oom();
		items[i] = (struct install_item){
			.dir = dir,
			.name = names[i],
			.data = j->modules[i].data,
			.size = j->modules[i].size,
		};
	}
	r = lock_kernel(j->ctx, j->kver, lock_timeout_usec(LOCK_KERNEL_TIMEOUT_USEC),
			&j->kernel_lock_fd);
	if (r < 0)
		return job_fail(j, r,
				r == -EBUSY ? "timed out waiting for the kernel lock"
					    : "cannot take the kernel lock");
	r = install_files(j->ctx, j->db, j->name, j->kver, items, j->n_modules,
			  &(struct install_meta){
				  .version = j->source ? j->source->version : NULL,
				  .build_key = j->key[0] ? j->key : NULL,
				  .signer = j->signer,
				  .from_cache = j->from_cache,
			  },
			  &where);
	if (r == -EEXIST)
		return fail_conflict(j, where);
	if (r < 0 && where)
		return job_failf(j, r, "writing into '%s' failed: %m", where);
	if (r < 0)
		return job_failf(j, r, "writing the module failed: %m");
	return 0;
}

int stage_install(struct job *j)
{
	_cleanup_free_ struct install_item *items = NULL;
	char **names = NULL;
	int r;

	items = calloc(j->n_modules + 1, sizeof(*items));
	names = calloc(j->n_modules + 1, sizeof(*names));
	r = items && names ? install(j, items, names) : log_oom();
	strv_free(names);
	return r;
}
