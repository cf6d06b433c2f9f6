/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* unpack_archive_fd(): good archives in every format, and one hostile archive per
 * refusal. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "core/context.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"
#include "tests.h"
#include "pipeline/unpack.h"

static char work[PATH_MAX]; /* archives made for this run */
static char marker[64];	    /* in every name a hostile archive tries to create outside */

static int setup(void **state)
{
	snprintf(work, sizeof(work), "%s/dm2-unpack-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(work))
		return -1;
	snprintf(marker, sizeof(marker), "dm2evil%ld", (long) getpid());
	return 0;
}

static int teardown(void **state)
{
	(void) rm_rf_at(AT_FDCWD, work);
	return 0;
}

/* Make an archive with tests/helpers/make-archive.py; returns a static path. */
static const char *make_archive(const char *kind, const char *ext, const char *arg)
{
	static char path[PATH_MAX + 64];
	_cleanup_free_ char *helper = test_source_path("tests/helpers/make-archive.py");

	snprintf(path, sizeof(path), "%s/%s.%s", work, kind, ext);
	assert_int_equal(test_system("python3 '%s' '%s' '%s' '%s'", helper, kind, path,
				     arg ?: marker),
			 0);
	return path;
}

static struct dm2_context *context_for(struct test_root *t, const char *conf)
{
	struct dm2_context *ctx = NULL;

	if (conf)
		test_write_file(t->fd, "etc/dm2/dm2d.conf", conf);
	assert_int_equal(context_new(t->path, &ctx), 0);
	return ctx;
}

/* Anything named after the marker in /tmp, the current directory or $TMPDIR? */
static void assert_no_marker(void)
{
	assert_int_equal(test_system("! ls -a /tmp . '%s' 2>/dev/null | grep -q '%s'",
				     getenv("TMPDIR") ?: "/tmp", marker),
			 0);
}

static int unpack(struct dm2_context *ctx, const char *archive, const char *sha256,
		  const char *dest, char **reason)
{
	_cleanup_close_ int fd = open(archive, O_RDONLY | O_CLOEXEC);
	const char *name = strrchr(archive, '/') + 1;

	assert_true(fd >= 0);
	return unpack_archive_fd(ctx, fd, name, sha256, dest, reason);
}

static char *listing(const char *dir)
{
	_cleanup_free_ char *out = NULL;
	char *text = NULL;

	assert_true(asprintf(&out, "%s/listing", work) > 0);
	assert_int_equal(
		test_system("cd '%s' && find . -printf '%%p %%y %%m\\n' | sort > '%s'",
			    dir, out),
		0);
	assert_int_equal(read_full_file_at(AT_FDCWD, out, 0, &text, NULL), 0);
	return text;
}

/* A hostile archive: refused with the expected message, nothing left anywhere. */
static void expect_refusal(const char *kind, const char *ext, const char *arg,
			   const char *conf, int error, const char *message)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, conf);
	_cleanup_free_ char *before = NULL, *after = NULL, *dest = NULL, *reason = NULL;
	const char *archive = make_archive(kind, ext, arg);
	int r;

	dest = path_join(t->path, "var/lib/dm2/work/src");
	assert_int_equal(mkdir_p_at(t->fd, "var/lib/dm2/work", 0755), 0);
	before = listing(t->path);
	assert_no_marker();

	r = unpack(ctx, archive, NULL, dest, &reason);
	if (r != error)
		fail_msg("%s: got %d (%s), expected %d; reason: %s", kind, r,
			 strerror(-r), error, strna(reason));
	assert_non_null(reason);
	fprintf(stderr, "# %s: %s\n", kind, reason);
	assert_null(strchr(reason, '\n'));
	if (!strstr(reason, message))
		fail_msg("%s: reason '%s' lacks '%s'", kind, reason, message);
	assert_int_equal(access(dest, F_OK), -1);

	after = listing(t->path);
	assert_string_equal(before, after);
	assert_no_marker();
}

static void test_absolute(void **state)
{
	expect_refusal("absolute", "tar.gz", NULL, NULL, -EBADMSG,
		       "absolute path refused");
}

static void test_dotdot(void **state)
{
	_cleanup_free_ char *msg = NULL;

	assert_true(
		asprintf(&msg,
			 "'dotdot.tar.gz': entry 'proj/../../%s-dotdot': path escapes "
			 "the source tree",
			 marker) > 0);
	expect_refusal("dotdot", "tar.gz", NULL, NULL, -EBADMSG, msg);
}

static void test_symlink_escape(void **state)
{
	expect_refusal("symlink-escape", "tar.xz", NULL, NULL, -EBADMSG,
		       "escapes the source tree");
	expect_refusal("symlink-absolute", "tar", NULL, NULL, -EBADMSG,
		       "symlink to absolute path");
	expect_refusal("symlink-chain", "tar.gz", NULL, NULL, -EBADMSG,
		       "leads through another symlink");
	expect_refusal("symlink-top-escape", "tar.gz", NULL, NULL, -EBADMSG,
		       "'symlink-top-escape.tar.gz': entry 'proj/evil': symlink to '..' "
		       "escapes");
	expect_refusal("through-symlink", "tar.gz", NULL, NULL, -EBADMSG,
		       "cannot extract");
}

static void test_hardlink_escape(void **state)
{
	expect_refusal("hardlink-escape", "tar.gz", NULL, NULL, -EBADMSG,
		       "hardlink to '../../etc/passwd' refused");
	expect_refusal("hardlink-missing", "tar.bz2", NULL, NULL, -EBADMSG,
		       "hardlink to '/etc/passwd' refused");
}

static void test_special_files(void **state)
{
	expect_refusal("device", "tar.gz", NULL, NULL, -EBADMSG, "device node refused");
	expect_refusal("fifo", "tar.zst", NULL, NULL, -EBADMSG, "FIFO refused");
}

static void test_limits(void **state)
{
	expect_refusal("many", "tar.gz", "20", "[Unpack]\nMaxEntries=10\n", -EFBIG,
		       "more than MaxEntries=10 entries");
	expect_refusal("big", "tar.gz", "10000", "[Unpack]\nMaxUnpackedSize=4K\n", -EFBIG,
		       "unpacked size exceeds MaxUnpackedSize=4096 bytes");
	/* zip data sizes are counted while copying, too */
	expect_refusal("big", "zip", "10000", "[Unpack]\nMaxUnpackedSize=4K\n", -EFBIG,
		       "exceeds MaxUnpackedSize=4096 bytes");
}

static void test_not_an_archive(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, NULL);
	_cleanup_free_ char *dest = path_join(t->path, "src"), *reason = NULL;
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/garbage.tar.gz", work);
	assert_int_equal(
		write_file_atomic_at(AT_FDCWD, path, "hello, not a tar", 16, 0644), 0);
	assert_int_equal(unpack(ctx, path, NULL, dest, &reason), -EBADMSG);
	assert_non_null(strstr(reason, "'garbage.tar.gz': not a tar or zip archive"));
	assert_int_equal(access(dest, F_OK), -1);
}

static void test_hash_checked_first(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, NULL);
	_cleanup_free_ char *dest = path_join(t->path, "src"), *reason = NULL;
	const char *archive = make_archive("good", "tar.gz", NULL);
	char hex[SHA256_HEX_SIZE];

	assert_int_equal(
		unpack(ctx, archive,
		       "0000000000000000000000000000000000000000000000000000000000000000",
		       dest, &reason),
		-EUCLEAN);
	assert_non_null(strstr(reason, "SHA256 mismatch"));
	assert_int_equal(access(dest, F_OK), -1);

	assert_int_equal(sha256_file_hex_at(AT_FDCWD, archive, hex), 0);
	free(reason);
	reason = NULL;
	assert_int_equal(unpack(ctx, archive, hex, dest, &reason), 0);
	/* dest must be fresh */
	assert_int_equal(unpack(ctx, archive, hex, dest, &reason), -EEXIST);
}

static void check_good_tree(const char *dest, bool hardlink)
{
	_cleanup_free_ char *text = NULL, *p = NULL;
	char target[64];
	struct stat st;
	ssize_t k;

	p = path_join(dest, "Makefile");
	assert_int_equal(read_full_file_at(AT_FDCWD, p, 0, &text, NULL), 0);
	assert_string_equal(text, "obj-m += hello.o\n");
	free(p);
	p = path_join(dest, "run.sh");
	assert_int_equal(stat(p, &st), 0);
	assert_true(st.st_mode & S_IXUSR);
	free(p);
	p = path_join(dest, "link.h");
	k = readlink(p, target, sizeof(target) - 1);
	assert_true(k > 0);
	target[k] = '\0';
	assert_string_equal(target, "sub/a.h");
	free(p);
	p = path_join(dest, "hello-copy.c");
	assert_int_equal(access(p, F_OK), hardlink ? 0 : -1);
	free(p);
	p = path_join(dest, "proj-1.0");
	assert_int_equal(access(p, F_OK), -1); /* the top-level directory was stripped */
	/* no staging directory left */
	assert_int_equal(test_system("test -z \"$(ls -A '%s' | grep '^\\.')\"", dest), 0);
}

static void test_good_formats(void **state)
{
	static const char *const exts[] = {"tar.gz",  "tar.xz", "tar.bz2",
					   "tar.zst", "tar",	"zip"};

	for (size_t i = 0; i < ELEMENTSOF(exts); i++) {
		_cleanup_(test_root_freep) struct test_root *t = test_root_new();
		_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, NULL);
		_cleanup_free_ char *dest = path_join(t->path, "src"), *reason = NULL;
		const char *archive = make_archive("good", exts[i], NULL);
		int r;

		r = unpack(ctx, archive, NULL, dest, &reason);
		if (r < 0)
			fail_msg("%s: %s", exts[i], strna(reason));
		check_good_tree(dest, !streq(exts[i], "zip"));
	}
}

static void test_two_top_level_entries_kept(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, NULL);
	_cleanup_free_ char *dest = path_join(t->path, "src"), *reason = NULL;

	assert_int_equal(
		unpack(ctx, make_archive("two-top", "tar.gz", NULL), NULL, dest, &reason),
		0);
	assert_int_equal(faccessat(t->fd, "src/a.c", F_OK, 0), 0);
	assert_int_equal(faccessat(t->fd, "src/b.c", F_OK, 0), 0);
}

static void test_setuid_stripped(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, NULL);
	_cleanup_free_ char *dest = path_join(t->path, "src"), *reason = NULL;
	struct stat st;

	assert_int_equal(
		unpack(ctx, make_archive("setuid", "tar.gz", NULL), NULL, dest, &reason),
		0);
	assert_int_equal(fstatat(t->fd, "src/suid", &st, 0), 0);
	assert_int_equal(st.st_mode & 07000, 0);
	assert_true(st.st_mode & S_IXUSR);
	assert_int_equal(fstatat(t->fd, "src/sticky", &st, 0), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07000, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_formats),
		cmocka_unit_test(test_two_top_level_entries_kept),
		cmocka_unit_test(test_setuid_stripped),
		cmocka_unit_test(test_hash_checked_first),
		cmocka_unit_test(test_not_an_archive),
		cmocka_unit_test(test_absolute),
		cmocka_unit_test(test_dotdot),
		cmocka_unit_test(test_symlink_escape),
		cmocka_unit_test(test_hardlink_escape),
		cmocka_unit_test(test_special_files),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
