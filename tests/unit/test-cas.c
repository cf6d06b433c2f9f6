/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shared/cas.c, the content-addressed store under the downloads and the build cache's
 * objects; and fetch_url_full() on top of it for a file:// URL. No kernel needed. */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "core/context.h"
#include "pipeline/fetch.h"
#include "shared/cas.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"
#include "tests.h"

static char dir[PATH_MAX];
static int dir_fd = -EBADF;

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/dm2-cas-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir))
		return -1;
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dir_fd >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
	dir_fd = safe_close(dir_fd);
	return rm_rf_at(AT_FDCWD, dir);
}

/* New content through a temporary: written, sealed, committed. */
static void put(struct cas *s, int tmp_dir_fd, const char *content, char sha[SHA256_HEX_SIZE])
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint64_t size;

	ASSERT_OK(cas_tmp_new(tmp_dir_fd, &fd, &tmp));
	assert_true(startswith(tmp, CAS_TMP_PREFIX));
	ASSERT_OK(loop_write(fd, content, strlen(content)));
	ASSERT_OK(cas_seal(fd, sha, &size));
	assert_int_equal(size, strlen(content));
	ASSERT_OK(cas_commit(s, tmp_dir_fd, tmp, sha, size));
	assert_int_equal(faccessat(tmp_dir_fd, tmp, F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

static void assert_object(struct cas *s, const char *sha, const char *content)
{
	_cleanup_free_ char *rel = NULL, *text = NULL;

	ASSERT_OK(cas_object_path(s, sha, &rel));
	ASSERT_OK(read_full_file_at(s->dir_fd, rel, 0, &text, NULL));
	assert_string_equal(text, content);
	ASSERT_OK(cas_verify(s, sha, strlen(content)));
}

static void test_paths(void **state)
{
	static const char sha[] = "ab00000000000000000000000000000000000000000000000000000000000001";
	struct cas flat = {.dir_fd = -EBADF}, fan = {.dir_fd = -EBADF, .fanout = true};
	_cleanup_free_ char *a = NULL, *b = NULL;
	char upper[SHA256_HEX_SIZE];

	ASSERT_OK(cas_object_path(&flat, sha, &a));
	assert_string_equal(a, sha);
	ASSERT_OK(cas_object_path(&fan, sha, &b));
	assert_true(startswith(b, "ab/") && streq(b + 3, sha));
	/* Nothing but the one spelling may become a path in the store. */
	memcpy(upper, sha, sizeof(upper));
	upper[0] = 'A';
	ASSERT_ERR(cas_object_path(&flat, upper, &a), -EINVAL);
	ASSERT_ERR(cas_object_path(&flat, "../etc/passwd", &a), -EINVAL);
	ASSERT_ERR(cas_object_path(&flat, "ab", &a), -EINVAL);
}

static void test_commit(void **state)
{
	struct cas s;
	char sha[SHA256_HEX_SIZE], want[SHA256_HEX_SIZE];

	ASSERT_OK(cas_open_at(&s, dir_fd, "fan/objects", true));
	ASSERT_OK(mkdir_p_at(dir_fd, "fan/tmp", 0700));
	_cleanup_close_ int tmp_fd = openat(dir_fd, "fan/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(tmp_fd >= 0);

	put(&s, tmp_fd, "hello\n", sha);
	sha256_buf_hex("hello\n", 6, want);
	assert_string_equal(sha, want);
	assert_object(&s, sha, "hello\n");

	/* The same content again: the one copy stays (same inode), the temporary goes. */
	struct stat before, after;
	_cleanup_free_ char *rel = NULL;
	ASSERT_OK(cas_object_path(&s, sha, &rel));
	assert_int_equal(fstatat(s.dir_fd, rel, &before, 0), 0);
	put(&s, tmp_fd, "hello\n", sha);
	assert_int_equal(fstatat(s.dir_fd, rel, &after, 0), 0);
	assert_int_equal(before.st_ino, after.st_ino);

	/* A damaged object is what verify reports, and what the next commit replaces. */
	ASSERT_OK(write_file_atomic_at(s.dir_fd, rel, "HELLO\n", 6, 0644));
	ASSERT_ERR(cas_verify(&s, sha, CAS_SIZE_ANY), -EBADMSG);
	put(&s, tmp_fd, "hello\n", sha);
	assert_object(&s, sha, "hello\n");
	ASSERT_ERR(cas_verify(&s, sha, 7), -EBADMSG);

	assert_int_equal(unlinkat(s.dir_fd, rel, 0), 0);
	ASSERT_ERR(cas_verify(&s, sha, CAS_SIZE_ANY), -ENOENT);
	cas_close(&s);
	assert_int_equal(s.dir_fd, -EBADF);
}

static void test_flat_and_copy(void **state)
{
	_cleanup_free_ char *src = path_join(dir, "source"), *tmp = NULL;
	_cleanup_close_ int in = -EBADF;
	struct cas s;
	char sha[SHA256_HEX_SIZE];
	uint64_t size;

	ASSERT_OK(cas_open_at(&s, dir_fd, "flat", false));
	ASSERT_OK(write_file_atomic_at(AT_FDCWD, src, "copied content", 14, 0644));
	in = open(src, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	/* Temporaries beside the objects, as the downloads keep their .part files. */
	ASSERT_OK(cas_tmp_copy(s.dir_fd, in, &tmp, sha, &size));
	assert_int_equal(size, 14);
	ASSERT_OK(cas_commit(&s, s.dir_fd, tmp, sha, size));
	assert_int_equal(faccessat(s.dir_fd, sha, F_OK, 0), 0);
	assert_object(&s, sha, "copied content");
	/* A sha256 that is not one is refused before anything is renamed. */
	ASSERT_ERR(cas_commit(&s, s.dir_fd, "whatever", "../x", 1), -EINVAL);
	cas_close(&s);
}

/* A recipe may spell SHA256= in capitals: the store's names are lowercase. */
static void test_fetch_uppercase_sha(void **state)
{
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *root = path_join(dir, "root"), *src = path_join(dir, "src.tar");
	_cleanup_free_ char *url = NULL, *path = NULL, *reason = NULL;
	char sha[SHA256_HEX_SIZE], upper[SHA256_HEX_SIZE];

	ASSERT_OK(mkdir_p_at(AT_FDCWD, root, 0755));
	ASSERT_OK(write_file_atomic_at(AT_FDCWD, src, "a source", 8, 0644));
	sha256_buf_hex("a source", 8, sha);
	for (size_t i = 0; i < sizeof(sha); i++)
		upper[i] = (char) toupper((unsigned char) sha[i]);
	url = strjoin("file://", src);
	ASSERT_OK(context_new(root, &ctx));
	ASSERT_OK(fetch_url_full(ctx, (char *[]){url, NULL}, upper, &path, &reason));
	assert_true(endswith(path, sha));
	/* And the second time it is found in the store, under the same name. */
	path = mfree(path);
	ASSERT_OK(fetch_url_full(ctx, (char *[]){(char *) "file:///nonexistent", NULL}, upper,
				 &path, &reason));
	assert_true(endswith(path, sha));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_commit),
		cmocka_unit_test(test_flat_and_copy),
		cmocka_unit_test(test_fetch_uppercase_sha),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
