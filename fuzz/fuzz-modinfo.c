/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A built module's bytes, which are the build's: any bytes as a .ko to libkbuild-wrap's
 * modinfo reader (libelf), for the two keys dm2d reads from every module it builds
 * (vermagic, license) and for a key taken from the input's last bytes.
 */
#include <stdlib.h>

#include "fuzz-util.h"
#include "libkbuild-wrap.h"
#include "shared/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	return 0;
}

static void read_key(const char *path, const char *key)
{
	_cleanup_free_ char *value = NULL;
	int r = kbw_module_info(path, key, &value);

	if (r >= 0 ? !value : value != NULL)
		abort();
	if (r < 0 && r != -ENODATA && r != -ENOEXEC && r != -EINVAL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *path = NULL, *key = NULL;

	if (size > 1024 * 1024)
		return -1;
	path = fuzz_path("fuzz.ko");
	fuzz_write_file(path, data, size);
	read_key(path, "vermagic");
	read_key(path, "license");
	key = fuzz_strndup(data + size - MIN(size, (size_t) 8), MIN(size, (size_t) 8));
	read_key(path, key);
	(void) unlink(path);
	return 0;
}
