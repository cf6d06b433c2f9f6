/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What follows bash in the sandbox (recipe/dkms.c over recipe/dkms-vars.c): the input is a
 * package's dkms.conf (only used to find line numbers), a line "#--- dump", and the dump
 * bash printed after sourcing it (NAME NUL INDEX NUL VALUE NUL ..., all of it hostile).
 * Checked for one kernel and kernel-independently, turned into a recipe, formatted and
 * matched against a kernel. The seeds are the 30 Debian 12 *-dkms packages' files with
 * the dumps dm2 got for 6.1.0-57-amd64.
 */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz-util.h"
#include "recipe/dkms.h"
#include "shared/fs-util.h"
#include "shared/util.h"

#define DUMP_MARK "\n#--- dump\n"

static const char *pkg_dir;

static void check_diag(const char *file, unsigned line, const char *message,
		       void *userdata)
{
	if (strchr(message, '\n'))
		abort(); /* every problem is one FILE:LINE: line */
}

static void load(const char *text, size_t size, const void *dump, size_t dump_size,
		 const char *kver)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *out = NULL, *reason = NULL;

	if (dkms_conf_from_dump(&(struct dkms_load_params){.dir = pkg_dir,
							  .kernel_release = kver,
							  .arch = "x86_64",
							  .kernel_build_dir = "/nonexistent/build"},
				text, size, dump, dump_size, check_diag, NULL, &c) < 0)
		return;
	if (dkms_conf_to_recipe(c, &r) < 0)
		return;
	if (recipe_format(r, &out) < 0)
		abort();
	(void) dkms_applies(r, kver ?: "6.1.0-18-amd64", NULL, "x86_64", &reason);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *p;

	fuzz_quiet_log();
	pkg_dir = p = fuzz_path("usr/src/pkg-1.0");
	if (mkdir_p_at(AT_FDCWD, p, 0755) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *text = NULL;
	const char *mark;
	size_t n;

	if (size > RECIPE_MAX_SIZE)
		return -1;
	text = fuzz_strndup(data, size);
	mark = memmem(data, size, DUMP_MARK, strlen(DUMP_MARK));
	if (!mark)
		return 0;
	n = (size_t) (mark - (const char *) data);
	text[n] = '\0';
	mark += strlen(DUMP_MARK);
	load(text, n, mark, size - (size_t) ((const uint8_t *) mark - data), "6.1.0-18-amd64");
	load(text, n, mark, size - (size_t) ((const uint8_t *) mark - data), NULL);
	return 0;
}
