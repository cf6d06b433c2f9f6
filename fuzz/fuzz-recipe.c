/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The recipe parser (recipe/recipe.c, shared/ini.c): any bytes as a .recipe file. A
 * recipe that loads must format to a text that loads again to the same text (recipe.h
 * promises "loading it again gives an equal recipe"), and the queries on it must not
 * crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz-util.h"
#include "recipe/recipe.h"
#include "shared/util.h"

static void ignore_diag(const char *file, unsigned line, const char *message,
			void *userdata)
{
	/* Every diagnostic is one line: status and lint print them as FILE:LINE: MESSAGE.
	 */
	if (strchr(message, '\n'))
		abort();
}

static char *load_and_format(const char *path, const void *data, size_t size,
			     struct recipe **ret)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	char *text = NULL;

	fuzz_write_file(path, data, size);
	if (recipe_load(path, RECIPE_ORIGIN_FILE, ignore_diag, NULL, &r) < 0)
		return NULL;
	if (recipe_format(r, &text) < 0)
		abort(); /* only -ENOMEM or -EIO, neither of which happens here */
	*ret = TAKE_PTR(r);
	return text;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* What the seed recipes refer to beside themselves, so that they load. */
	static const char *const dirs[] = {"patches", "src", "full-src", "dm2-example"};
	static const char *const files[] = {"fix-old.patch", "patches/second.patch"};

	fuzz_quiet_log();
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		_cleanup_free_ char *d = fuzz_path(dirs[i]);

		if (mkdir(d, 0755) < 0)
			abort();
	}
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *f = fuzz_path(files[i]);

		fuzz_write_file(f, "", 0);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL, *again = NULL;
	_cleanup_free_ char *path = fuzz_path("fuzz.recipe"), *text = NULL, *text2 = NULL;

	if (size > RECIPE_MAX_SIZE)
		return -1;
	text = load_and_format(path, data, size, &r);
	if (!text)
		return 0;

	(void) recipe_latest_version(r);
	(void) recipe_pick_source(r, "6.1.0");
	(void) recipe_pick_source(r, "6.12.0-rc1");
	for (size_t i = 0; i < r->n_sources; i++)
		(void) recipe_find_source(r, r->sources[i].version);

	text2 = load_and_format(path, text, strlen(text), &again);
	if (!text2 || !streq(text, text2)) {
		fprintf(stderr,
			"recipe round trip differs:\n--- formatted\n%s--- "
			"reformatted\n%s",
			text, strna(text2));
		abort();
	}
	return 0;
}
