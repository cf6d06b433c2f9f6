/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The INI reader (shared/ini.c) and dm2d.conf (core/config.c): any bytes as
 * etc/dm2/dm2d.conf, read by config_load(), and every value of it also through
 * parse_size(), which [Build] MemoryMax= and friends use.
 */
#include <fcntl.h>
#include <stdlib.h>

#include "core/config.h"
#include "fuzz-util.h"
#include "shared/fs-util.h"
#include "shared/ini.h"
#include "shared/util.h"

static int root_fd = -EBADF;

static int on_item(const char *section, const char *key, const char *value, unsigned line,
		   void *userdata)
{
	uint64_t v;

	if (!section || (key && !value))
		abort(); /* ini.h: a key always comes with a value, inside a section */
	if (value)
		(void) parse_size(value, &v);
	return 0;
}

static void on_error(unsigned line, const char *message, void *userdata)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	_cleanup_free_ char *root = fuzz_path("root");

	fuzz_quiet_log();
	if (mkdir_p_at(AT_FDCWD, root, 0755) < 0)
		abort();
	root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0 || mkdir_p_at(root_fd, "etc/dm2", 0755) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(config_freep) struct dm2_config *c = NULL;
	_cleanup_free_ char *text = NULL, *path = NULL;

	if (size > 1 << 20)
		return -1;
	text = fuzz_strndup(data, size);
	(void) ini_parse_string(text, on_item, on_error, NULL);

	path = fuzz_path("root/etc/dm2/dm2d.conf");
	fuzz_write_file(path, data, size);
	if (config_load(root_fd, NULL, &c) >= 0 && !c)
		abort();
	return 0;
}
