/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

static char *tmpdir;

static void tmpdir_remove(void)
{
	if (tmpdir)
		(void) rm_rf_at(AT_FDCWD, tmpdir);
	tmpdir = mfree(tmpdir);
}

const char *fuzz_tmpdir(void)
{
	const char *base = getenv("DM2_FUZZ_TMPDIR");

	if (tmpdir)
		return tmpdir;
	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	tmpdir = path_join(base ?: "/tmp", "dm2-fuzz-XXXXXX");
	if (!tmpdir || !mkdtemp(tmpdir)) {
		fprintf(stderr, "fuzz: cannot make a scratch directory under '%s': %m\n",
			base ?: "/tmp");
		abort();
	}
	atexit(tmpdir_remove);
	return tmpdir;
}

char *fuzz_path(const char *rel)
{
	char *p = path_join(fuzz_tmpdir(), rel);

	if (!p)
		abort();
	return p;
}

void fuzz_write_file(const char *path, const void *data, size_t size)
{
	_cleanup_close_ int fd =
		open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const uint8_t *p = data;

	if (fd < 0) {
		fprintf(stderr, "fuzz: cannot write '%s': %m\n", path);
		abort();
	}
	while (size > 0) {
		ssize_t k = write(fd, p, size);

		if (k <= 0) {
			fprintf(stderr, "fuzz: cannot write '%s': %m\n", path);
			abort();
		}
		p += k;
		size -= (size_t) k;
	}
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

void fuzz_quiet_log(void)
{
	if (!getenv("DM2_FUZZ_DEBUG"))
		log_set_max_level(LOG_EMERG - 1);
}
