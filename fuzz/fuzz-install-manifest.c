/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The install manifest parser (core/manifest.c), which a state db rebuild runs as root on
 * every lib/modules/KVER/.dm2/RECIPE.manifest. What parses and formats must parse back to
 * the same text.
 */
#include <stdlib.h>
#include <string.h>

#include "core/manifest.h"
#include "fuzz-util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest *m = NULL, *back = NULL;
	char *text, *out = NULL, *again = NULL;
	const char *why = NULL;
	unsigned line = 0;

	if (size > MANIFEST_MAX_SIZE)
		return 0;
	text = fuzz_strndup(data, size);
	if (!text)
		return 0;
	if (manifest_parse(text, &m, &line, &why) >= 0 && manifest_format(m, &out) >= 0) {
		if (manifest_parse(out, &back, &line, &why) < 0 ||
		    manifest_format(back, &again) < 0 || strcmp(out, again) != 0)
			abort(); /* what dm2 writes it must read back unchanged */
	}
	free(again);
	free(out);
	manifest_free(back);
	manifest_free(m);
	free(text);
	return 0;
}
