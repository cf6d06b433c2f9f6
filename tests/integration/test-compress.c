/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Module compression after signing: a real kbuild module, signed, compressed by dm2 and
 * decompressed by the real xz, zstd and gzip tools back to exactly the signed bytes.
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "pipeline/compress.h"
#include "pipeline/sign.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static char dir[1024];
static char dm2[PATH_MAX];
static char *signed_module;
static size_t signed_size;

static const char module_source[] = "#include <linux/module.h>\n"
				    "#include <linux/init.h>\n"
				    "static int __init dm2z_init(void) { return 0; }\n"
				    "static void __exit dm2z_exit(void) { }\n"
				    "module_init(dm2z_init);\n"
				    "module_exit(dm2z_exit);\n"
				    "MODULE_LICENSE(\"GPL\");\n";

static int setup(void **state)
{
	_cleanup_(sign_key_freep) struct sign_key *key = NULL;
	_cleanup_free_ char *bin = NULL, *k = NULL, *c = NULL, *ko = NULL, *s = NULL;
	const char *tmp = getenv("TMPDIR") ?: "/tmp";
	int fd;

	snprintf(dir, sizeof(dir), "%s/dm2-test-compress-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	test_write_file(fd, "mod/dm2z.c", module_source);
	test_write_file(fd, "mod/Kbuild", "obj-m := dm2z.o\n");
	close(fd);
	if (test_system("make -s -C '%s' M='%s/mod' modules >'%s/build.log' 2>&1",
			test_kernel_tree(), dir, dir) != 0) {
		(void) test_system("cat '%s/build.log' >&2", dir);
		return -1;
	}
	if (test_system("openssl req -new -x509 -nodes -days 36500 -subj '/CN=dm2 "
			"compress test' "
			"-newkey rsa:2048 -keyout '%s/key.pem' -outform DER -out "
			"'%s/cert.der' "
			">/dev/null 2>&1",
			dir, dir) != 0)
		return -1;
	k = path_join(dir, "key.pem");
	c = path_join(dir, "cert.der");
	ko = path_join(dir, "mod/dm2z.ko");
	s = path_join(dir, "signed.ko");
	if (sign_key_load(k, c, &key) < 0 || module_sign_file(key, "sha256", ko, s) < 0)
		return -1;
	if (read_full_file_at(AT_FDCWD, s, 0, &signed_module, &signed_size) < 0)
		return -1;
	bin = test_build_path("dm2");
	snprintf(dm2, sizeof(dm2), "%s", bin);
	return 0;
}

static int teardown(void **state)
{
	signed_module = mfree(signed_module);
	if (dir[0] && !getenv("DM2_TEST_KEEP"))
		(void) rm_rf_at(AT_FDCWD, dir);
	return 0;
}

/* Compress with dm2, write NAME, decompress with the real tool, compare with the signed
 * module; also round-trip through module_decompress(). */
static void check_format(enum kbw_compression c, const char *name, const char *tool)
{
	_cleanup_free_ void *z = NULL, *back = NULL;
	_cleanup_free_ char *path = path_join(dir, name);
	size_t nz, nback;
	int fd;

	ASSERT_OK(module_compress(c, signed_module, signed_size, &z, &nz));
	assert_true(nz < signed_size);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_OK(write_file_atomic_at(fd, name, z, nz, 0644));
	close(fd);
	assert_int_equal(
		test_system("%s -d -c '%s' | cmp - '%s/signed.ko'", tool, path, dir), 0);

	ASSERT_OK(module_decompress(c, z, nz, &back, &nback));
	assert_int_equal(nback, signed_size);
	assert_memory_equal(back, signed_module, signed_size);
	assert_int_equal(compression_from_filename(path), c);

	/* dm2 verify decompresses first, and a module corrupted in its compressed form
	 * fails. */
	assert_int_equal(test_system("'%s' verify --cert '%s/cert.der' '%s' >/dev/null",
				     dm2, dir, path),
			 0);
	assert_int_equal(
		test_system("cp '%s' '%s.bad' && printf 'XXXX' | dd of='%s.bad' bs=1 "
			    "seek=%zu conv=notrunc status=none && '%s' verify --cert "
			    "'%s/cert.der' '%s.bad' >/dev/null 2>&1",
			    path, path, path, nz / 2, dm2, dir, path),
		13);

	/* Truncated input is an error, not a short module. */
	{
		void *t = NULL;
		size_t nt;

		ASSERT_ERR(module_decompress(c, z, nz / 2, &t, &nt), -EBADMSG);
		assert_null(t);
	}
}

static void test_xz(void **state)
{
	_cleanup_free_ char *list = NULL, *text = NULL;

	check_format(KBW_COMPRESSION_XZ, "m.ko.xz", "xz");
	/* CRC32 check and a 1 MiB dictionary, as the kernel's XZ Embedded needs. */
	list = path_join(dir, "xz.list");
	assert_int_equal(
		test_system("xz --robot --list -vv '%s/m.ko.xz' >'%s'", dir, list), 0);
	ASSERT_OK(read_full_file_at(AT_FDCWD, list, 0, &text, NULL));
	assert_non_null(strstr(text, "\tCRC32\t"));
	assert_null(strstr(text, "CRC64"));
	assert_non_null(strstr(text, "--lzma2=dict=1MiB"));
}

static void test_zstd(void **state)
{
	check_format(KBW_COMPRESSION_ZSTD, "m.ko.zst", "zstd -q");
}

static void test_gzip(void **state)
{
	_cleanup_free_ void *z = NULL;
	const uint8_t *h;
	size_t nz;

	check_format(KBW_COMPRESSION_GZIP, "m.ko.gz", "gzip");
	/* The plain 10-byte header: no FNAME/FEXTRA/FCOMMENT/FHCRC, mtime 0. */
	ASSERT_OK(module_compress(KBW_COMPRESSION_GZIP, signed_module, signed_size, &z,
				  &nz));
	h = z;
	assert_int_equal(h[0], 0x1f);
	assert_int_equal(h[1], 0x8b);
	assert_int_equal(h[2], 8);
	assert_int_equal(h[3], 0);
	assert_int_equal(h[4] | h[5] | h[6] | h[7], 0);
}

static void test_none_and_garbage(void **state)
{
	static const char garbage[] =
		"this is not compressed data at all, not even close";
	_cleanup_free_ void *copy = NULL;
	void *out = NULL;
	size_t n;

	ASSERT_OK(module_compress(KBW_COMPRESSION_NONE, signed_module, signed_size, &copy,
				  &n));
	assert_int_equal(n, signed_size);
	assert_memory_equal(copy, signed_module, n);
	assert_int_equal(compression_from_filename("a/b.ko"), KBW_COMPRESSION_NONE);
	ASSERT_ERR(
		module_decompress(KBW_COMPRESSION_XZ, garbage, sizeof(garbage), &out, &n),
		-EBADMSG);
	ASSERT_ERR(module_decompress(KBW_COMPRESSION_ZSTD, garbage, sizeof(garbage), &out,
				     &n),
		   -EBADMSG);
	ASSERT_ERR(module_decompress(KBW_COMPRESSION_GZIP, garbage, sizeof(garbage), &out,
				     &n),
		   -EBADMSG);
	assert_null(out);
}

static void test_sign_compressed_cli(void **state)
{
	/* dm2 sign on a .ko.xz signs the module inside and compresses it again; the
	 * result is the same module as signing first and compressing after. */
	assert_int_equal(
		test_system(
			"xz --check=crc32 -c '%s/mod/dm2z.ko' >'%s/plain.ko.xz' && "
			"'%s' sign --key '%s/key.pem' --cert '%s/cert.der' "
			"--hash sha256 '%s/plain.ko.xz' && xz -d -c '%s/plain.ko.xz' | "
			"cmp - '%s/signed.ko'",
			dir, dir, dm2, dir, dir, dir, dir, dir),
		0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xz),
		cmocka_unit_test(test_zstd),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_none_and_garbage),
		cmocka_unit_test(test_sign_compressed_cli),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
