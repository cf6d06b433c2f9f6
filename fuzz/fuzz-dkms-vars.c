/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the parser of what bash prints after sourcing a dkms.conf in the
 * sandbox (recipe/dkms-vars.c). The dump comes from a process running a package's code,
 * so every byte of it is hostile. A dump that parses must give back what it holds: every
 * value readable, sizes consistent; one that does not must say why in one line.
 *
 *   clang -fsanitize=fuzzer,address,undefined ... fuzz-dkms-vars.c -ldm2-recipe ...
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recipe/dkms-vars.h"
#include "shared/util.h"

static void check(const char *name, size_t index, const char *value, void *userdata)
{
	const struct dkms_vars *v = userdata;

	if (dkms_vars_get(v, name, index) != value || dkms_vars_size(v, name) <= index ||
	    strlen(value) > DKMS_VARS_MAX_VALUE)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkms_vars *v = NULL;
	char *error = NULL;
	int r;

	r = dkms_vars_parse(data, size, &v, &error);
	if (r < 0) {
		if ((r != -EBADMSG && r != -ENOMEM) || (error && strchr(error, '\n')))
			abort();
		free(error);
		return 0;
	}
	dkms_vars_foreach(v, check, v);
	dkms_vars_free(v);
	return 0;
}
