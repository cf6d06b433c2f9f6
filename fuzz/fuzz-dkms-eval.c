/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dkms.conf evaluator (recipe/dkms-eval.c): any bytes as dkms.conf text, evaluated
 * with a kernel and without one (as dkms.c does), and every variable it set read back.
 */
#include <stdlib.h>

#include "fuzz-util.h"
#include "recipe/dkms-eval.h"
#include "recipe/recipe.h"
#include "shared/util.h"

static void check_diag(const char *file, unsigned line, const char *message,
		       void *userdata)
{
	/* Each problem is one "FILE:LINE: message" line. */
	if (strchr(message, '\n'))
		abort();
}

static void read_back(const char *name, unsigned line, void *userdata)
{
	const struct dkms_vars *v = userdata;
	size_t n = dkms_vars_size(v, name);

	for (size_t i = 0; i < n && i < 64; i++)
		(void) dkms_vars_get(v, name, i);
}

static void eval(const uint8_t *data, size_t size, const char *kver)
{
	_cleanup_(dkms_vars_freep) struct dkms_vars *v = NULL;
	const struct dkms_eval_params params = {
		.kernelver = kver,
		.arch = "x86_64",
		.nproc = 4,
	};

	if (dkms_vars_new(&v) < 0 ||
	    dkms_vars_set(v, "kernelver", 0, kver ?: "", 0) < 0 ||
	    dkms_vars_set(v, "dkms_tree", 0, "/var/lib/dkms", 0) < 0)
		abort();
	(void) dkms_eval("dkms.conf", (const char *) data, size, v, &params, check_diag,
			 NULL);
	dkms_vars_foreach_assigned(v, read_back, v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > RECIPE_MAX_SIZE)
		return -1;
	eval(data, size, "6.1.0-18-amd64");
	eval(data, size, NULL);
	return 0;
}
