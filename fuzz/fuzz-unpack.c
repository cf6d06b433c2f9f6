/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Archive unpacking (pipeline/unpack.c): any bytes as a downloaded source archive (tar,
 * compressed tar, zip; libarchive guesses), unpacked into a fresh directory per input.
 * What unpack.h promises is checked afterwards: nothing created beside the destination,
 * the destination gone on failure, no device nodes, FIFOs, sockets or set-id bits in it,
 * no symlink that leads outside it, and the working directory restored.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/context.h"
#include "fuzz-util.h"
#include "pipeline/unpack.h"
#include "shared/fs-util.h"
#include "shared/util.h"

static struct dm2_config config = {
	/* Small caps: the fuzzer looks for escapes, not for how fast a disk fills. */
	.max_unpacked_size = 16ULL << 20,
	.max_entries = 512,
};
static struct dm2_context ctx = {
	.root = (char *) "/", .root_fd = AT_FDCWD, .config = &config};
static char *base, *dest, *dest_real;
static char cwd[PATH_MAX];

static int check_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char target[PATH_MAX], *resolved;

	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) || S_ISFIFO(st->st_mode) ||
	    S_ISSOCK(st->st_mode) || (st->st_mode & (S_ISUID | S_ISGID))) {
		fprintf(stderr, "fuzz-unpack: '%s' has mode %o\n", path, st->st_mode);
		abort();
	}
	if (!S_ISLNK(st->st_mode))
		return 0;
	ssize_t k = readlink(path, target, sizeof(target) - 1);
	if (k < 0)
		abort();
	target[k] = '\0';
	if (target[0] == '/') {
		fprintf(stderr, "fuzz-unpack: '%s' -> absolute '%s'\n", path, target);
		abort();
	}
	resolved = realpath(path, NULL);
	if (resolved && !startswith(resolved, dest_real) &&
	    strlen(resolved) + 1 != strlen(dest_real)) {
		fprintf(stderr, "fuzz-unpack: '%s' -> '%s' leads to '%s'\n", path, target,
			resolved);
		abort();
	}
	free(resolved);
	return 0;
}

/* Only "out" may be in base, and only after a success. */
static void check_base(bool success)
{
	DIR *d = opendir(base);
	struct dirent *de;

	if (!d)
		abort();
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
		    (!success || !streq(de->d_name, "out"))) {
			fprintf(stderr, "fuzz-unpack: '%s/%s' left behind (%s)\n", base,
				de->d_name, success ? "success" : "failure");
			abort();
		}
	closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet_log();
	base = fuzz_path("unpack");
	dest = path_join(base, "out");
	if (!dest || mkdir(base, 0755) < 0 || !getcwd(cwd, sizeof(cwd)))
		abort();

	_cleanup_free_ char *real = realpath(base, NULL);

	dest_real = real ? strjoin(real, "/out/") : NULL;
	if (!dest_real)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_close_ int fd = memfd_create("fuzz-archive", MFD_CLOEXEC);
	_cleanup_free_ char *reason = NULL;
	char now[PATH_MAX];
	int r;

	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t) size))
		abort();
	r = unpack_archive_fd(&ctx, fd, "fuzz.tar", NULL, dest, &reason);
	if (!getcwd(now, sizeof(now)) || !streq(now, cwd))
		abort();
	check_base(r >= 0);
	if (r < 0) {
		if (r != -ENOMEM && !reason)
			abort(); /* a refusal always says why */
		return 0;
	}
	if (nftw(dest, check_entry, 16, FTW_PHYS) != 0)
		abort();
	if (rm_rf_at(AT_FDCWD, dest) < 0)
		abort();
	return 0;
}
