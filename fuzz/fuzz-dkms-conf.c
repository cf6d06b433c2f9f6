/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dkms.conf -> recipe (recipe/dkms.c over recipe/dkms-eval.c): the input is a package's
 * dkms.conf, optionally followed by a line "#--- override" and the admin's override file
 * for that package (/etc/dkms/PACKAGE_NAME.conf). Loaded for one kernel and
 * kernel-independently, turned into a recipe, formatted and checked against a kernel.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz-util.h"
#include "recipe/dkms.h"
#include "shared/fs-util.h"
#include "shared/util.h"

#define OVERRIDE_MARK "\n#--- override\n"

static const char *pkg_dir, *override_dir;

static void check_diag(const char *file, unsigned line, const char *message,
		       void *userdata)
{
	if (strchr(message, '\n'))
		abort(); /* every problem is one FILE:LINE: line */
}

/* The PACKAGE_NAME=word of the text, for the override's file name; NULL if none. */
static char *package_name(const char *text)
{
	const char *p = strstr(text, "PACKAGE_NAME=");
	size_t n;

	if (!p)
		return NULL;
	p += strlen("PACKAGE_NAME=");
	p += strspn(p, "\"'");
	n = strspn(p,
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-");
	return n > 0 && n < 100 && p[0] != '.' ? strndup(p, n) : NULL;
}

static void load(const char *kver)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	_cleanup_free_ char *text = NULL, *reason = NULL;

	if (dkms_conf_load(pkg_dir, kver, "x86_64", "/nonexistent/build", override_dir,
			   check_diag, NULL, &c) < 0)
		return;
	if (dkms_conf_to_recipe(c, &r) < 0)
		return;
	if (recipe_format(r, &text) < 0)
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
	override_dir = p = fuzz_path("etc/dkms");
	if (mkdir_p_at(AT_FDCWD, p, 0755) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *text = NULL, *conf = NULL, *name = NULL, *ov = NULL;
	char *mark;

	if (size > RECIPE_MAX_SIZE)
		return -1;
	text = fuzz_strndup(data, size);
	mark = strstr(text, OVERRIDE_MARK);
	if (mark)
		*mark = '\0';
	conf = path_join(pkg_dir, "dkms.conf");
	if (!conf)
		abort();
	/* The bytes as they are: dkms.c must refuse a NUL itself. */
	fuzz_write_file(conf, data, mark ? (size_t) (mark - text) : size);
	name = mark ? package_name(text) : NULL;
	if (name) {
		_cleanup_free_ char *file = strjoin(name, ".conf");

		ov = file ? path_join(override_dir, file) : NULL;
		if (!ov)
			abort();
		mark += strlen(OVERRIDE_MARK);
		fuzz_write_file(ov, mark, strlen(mark));
	}

	load("6.1.0-18-amd64");
	load(NULL);
	if (ov)
		(void) unlink(ov);
	return 0;
}
