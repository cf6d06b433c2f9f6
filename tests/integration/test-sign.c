/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Module signing against the real thing: a module built with kbuild against the installed
 * headers, signed by dm2 and by the build tree's own scripts/sign-file with the same key,
 * and compared byte for byte; read back with kmod's modinfo; checked with the real dm2
 * binary.
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "pipeline/sign.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static char dir[1024];		 /* per-run scratch directory */
static char module[PATH_MAX];	 /* the unsigned module built by kbuild */
static char sign_file[PATH_MAX]; /* <tree>/scripts/sign-file */
static char dm2[PATH_MAX];	 /* the dm2 binary */

static const char module_source[] = "#include <linux/module.h>\n"
				    "#include <linux/init.h>\n"
				    "static int __init dm2sig_init(void) { return 0; }\n"
				    "static void __exit dm2sig_exit(void) { }\n"
				    "module_init(dm2sig_init);\n"
				    "module_exit(dm2sig_exit);\n"
				    "MODULE_LICENSE(\"GPL\");\n"
				    "MODULE_DESCRIPTION(\"dm2 signing test module\");\n";

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR") ?: "/tmp";
	_cleanup_free_ char *bin = NULL;
	int fd;

	snprintf(dir, sizeof(dir), "%s/dm2-test-sign-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	test_write_file(fd, "mod/dm2sig.c", module_source);
	test_write_file(fd, "mod/Kbuild", "obj-m := dm2sig.o\n");
	close(fd);

	if (test_system("make -s -C '%s' M='%s/mod' modules >'%s/build.log' 2>&1",
			test_kernel_tree(), dir, dir) != 0) {
		(void) test_system("cat '%s/build.log' >&2", dir);
		fprintf(stderr, "FATAL: kbuild of the test module failed\n");
		return -1;
	}
	snprintf(module, sizeof(module), "%s/mod/dm2sig.ko", dir);
	snprintf(sign_file, sizeof(sign_file), "%s/scripts/sign-file",
		 test_kernel_tree());
	if (access(sign_file, X_OK) < 0) {
		fprintf(stderr, "FATAL: '%s' missing\n", sign_file);
		return -1;
	}
	bin = test_build_path("dm2");
	snprintf(dm2, sizeof(dm2), "%s", bin);

	/* The same key twice over: once as DKMS makes it, once as a foreign key. */
	for (int i = 0; i < 2; i++)
		if (test_system(
			    "openssl req -new -x509 -nodes -days 36500 -subj '/CN=dm2 "
			    "test key %d' "
			    "-newkey rsa:2048 -keyout '%s/key%d.pem' -outform DER "
			    "-out '%s/cert%d.der' -addext extendedKeyUsage=codeSigning "
			    ">/dev/null 2>&1",
			    i, dir, i, dir, i) != 0)
			return -1;
	return 0;
}

static int teardown(void **state)
{
	if (dir[0] && !getenv("DM2_TEST_KEEP"))
		(void) rm_rf_at(AT_FDCWD, dir);
	return 0;
}

static char *p(const char *name)
{
	char *s = path_join(dir, name);
	assert_non_null(s);
	return s;
}

static struct sign_key *load_key(int i)
{
	_cleanup_free_ char *k = NULL, *c = NULL;
	char name[32];
	struct sign_key *key = NULL;

	snprintf(name, sizeof(name), "key%d.pem", i);
	k = p(name);
	snprintf(name, sizeof(name), "cert%d.der", i);
	c = p(name);
	ASSERT_OK(sign_key_load(k, c, &key));
	return key;
}

static void read_file(const char *path, char **ret, size_t *ret_size)
{
	ASSERT_OK(read_full_file_at(AT_FDCWD, path, 0, ret, ret_size));
}

static void test_byte_identical_to_sign_file(void **state)
{
	static const char *const hashes[] = {"sha256", "sha384", "sha512"};
	_cleanup_(sign_key_freep) struct sign_key *key = load_key(0);

	for (size_t i = 0; i < ELEMENTSOF(hashes); i++) {
		_cleanup_free_ char *kernel_out = NULL, *dm2_out = NULL, *cli_out = NULL;
		_cleanup_free_ char *a = NULL, *b = NULL, *orig = NULL;
		size_t na, norig;
		char name[64];

		snprintf(name, sizeof(name), "kernel-%s.ko", hashes[i]);
		kernel_out = p(name);
		snprintf(name, sizeof(name), "dm2-%s.ko", hashes[i]);
		dm2_out = p(name);
		snprintf(name, sizeof(name), "cli-%s.ko", hashes[i]);
		cli_out = p(name);

		assert_int_equal(
			test_system("'%s' %s '%s/key0.pem' '%s/cert0.der' '%s' '%s'",
				    sign_file, hashes[i], dir, dir, module, kernel_out),
			0);
		ASSERT_OK(module_sign_file(key, hashes[i], module, dm2_out));
		assert_int_equal(test_system("cmp '%s' '%s'", kernel_out, dm2_out), 0);

		/* The same through the command line, as a packager would script it. */
		assert_int_equal(
			test_system("'%s' sign --key '%s/key0.pem' --cert '%s/cert0.der' "
				    "--hash %s -o '%s' '%s'",
				    dm2, dir, dir, hashes[i], cli_out, module),
			0);
		assert_int_equal(test_system("cmp '%s' '%s'", kernel_out, cli_out), 0);

		/* The input is untouched and the output is the input plus a trailer. */
		read_file(module, &orig, &norig);
		read_file(dm2_out, &a, &na);
		assert_true(na > norig + 40);
		assert_memory_equal(a, orig, norig);
		assert_memory_equal(a + na - 28, MODULE_SIG_MAGIC, 28);
		assert_int_equal(a[na - 40 + 2], 2); /* id_type PKCS#7 */
		assert_int_equal(module_unsigned_length(a, na), norig);

		/* sign-file argument order works too. */
		assert_int_equal(
			test_system("cp '%s' '%s/inplace.ko' && '%s' sign %s "
				    "'%s/key0.pem' '%s/cert0.der' '%s/inplace.ko'",
				    module, dir, dm2, hashes[i], dir, dir, dir),
			0);
		b = p("inplace.ko");
		assert_int_equal(test_system("cmp '%s' '%s'", kernel_out, b), 0);
	}
}

static void modinfo_field(const char *path, const char *field, char *buf, size_t n)
{
	_cleanup_free_ char *out = NULL, *text = NULL;

	out = p("modinfo.out");
	assert_int_equal(test_system("modinfo -F %s '%s' >'%s'", field, path, out), 0);
	read_file(out, &text, NULL);
	snprintf(buf, n, "%s", strstrip(text));
}

static void test_modinfo(void **state)
{
	_cleanup_(sign_key_freep) struct sign_key *key = load_key(0);
	_cleanup_free_ char *out = p("modinfo.ko");
	char v[256];

	ASSERT_OK(module_sign_file(key, "sha512", module, out));
	modinfo_field(out, "signer", v, sizeof(v));
	assert_string_equal(v, "dm2 test key 0");
	assert_string_equal(sign_key_signer(key), "dm2 test key 0");
	modinfo_field(out, "sig_key", v, sizeof(v));
	assert_string_equal(v, sign_key_id(key));
	modinfo_field(out, "sig_hashalgo", v, sizeof(v));
	assert_string_equal(v, "sha512");
	modinfo_field(out, "sig_id", v, sizeof(v));
	assert_string_equal(v, "PKCS#7");
}

static void test_resign_replaces(void **state)
{
	_cleanup_(sign_key_freep) struct sign_key *key = load_key(0);
	_cleanup_(sign_key_freep) struct sign_key *other = load_key(1);
	_cleanup_free_ char *once = p("once.ko"), *twice = p("twice.ko"),
			    *swapped = p("sw.ko");
	_cleanup_free_ char *a = NULL, *b = NULL;
	size_t na, nb;

	ASSERT_OK(module_sign_file(key, "sha256", module, once));
	ASSERT_OK(module_sign_file(key, "sha256", once, twice));
	read_file(once, &a, &na);
	read_file(twice, &b, &nb);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);

	/* In place, with another key and hash: equal to signing the pristine module so.
	 */
	ASSERT_OK(module_sign_file(other, "sha384", twice, twice));
	ASSERT_OK(module_sign_file(other, "sha384", module, swapped));
	assert_int_equal(test_system("cmp '%s' '%s'", twice, swapped), 0);
}

static void test_refuses_bad_hash(void **state)
{
	_cleanup_(sign_key_freep) struct sign_key *key = load_key(0);
	_cleanup_free_ char *data = NULL;
	void *out = NULL;
	size_t n, nout;

	read_file(module, &data, &n);
	ASSERT_ERR(module_sign(key, "sha1", data, n, &out, &nout), -EOPNOTSUPP);
	ASSERT_ERR(module_sign(key, "md5", data, n, &out, &nout), -EOPNOTSUPP);
	assert_null(out);
	assert_int_equal(
		test_system("'%s' sign --key '%s/key0.pem' --cert '%s/cert0.der' "
			    "--hash sha1 -o '%s/x.ko' '%s' 2>/dev/null",
			    dm2, dir, dir, dir, module),
		2);
}

static void test_mismatched_key_cert(void **state)
{
	_cleanup_free_ char *k = p("key0.pem"), *c = p("cert1.der"),
			    *missing = p("nope.pem");
	struct sign_key *key = NULL;

	ASSERT_ERR(sign_key_load(k, c, &key), -EKEYREJECTED);
	ASSERT_ERR(sign_key_load(missing, c, &key), -ENOENT);
	assert_null(key);
}

static void test_verify(void **state)
{
	_cleanup_(sign_key_freep) struct sign_key *key = load_key(0);
	_cleanup_(module_signature_info_done) struct module_signature_info info = {};
	_cleanup_free_ char *good = p("good.ko"), *cert = p("cert0.der"), *data = NULL;
	size_t n;

	ASSERT_OK(module_sign_file(key, "sha256", module, good));
	read_file(good, &data, &n);
	ASSERT_OK(module_verify(data, n, cert, &info));
	assert_string_equal(info.signer, "dm2 test key 0");
	assert_string_equal(info.hash, "sha256");
	assert_string_equal(info.key_id, sign_key_id(key));

	/* The real binary: good is 0, everything else is 13. */
	assert_int_equal(test_system("'%s' verify --cert '%s/cert0.der' '%s' >/dev/null",
				     dm2, dir, good),
			 0);
	assert_int_equal(test_system("'%s' verify --cert '%s/cert0.der' '%s' 2>/dev/null",
				     dm2, dir, module),
			 13);
	assert_int_equal(test_system("'%s' verify --cert '%s/cert1.der' '%s' 2>/dev/null",
				     dm2, dir, good),
			 13);
	/* Truncated trailer: the last 10 bytes cut off. */
	assert_int_equal(
		test_system("head -c %zu '%s' >'%s/trunc.ko' && '%s' verify --cert "
			    "'%s/cert0.der' '%s/trunc.ko' 2>/dev/null",
			    n - 10, good, dir, dm2, dir, dir),
		13);
	/* One flipped byte in the module proper. */
	assert_int_equal(
		test_system("cp '%s' '%s/flip.ko' && printf '\\377' | dd of='%s/flip.ko' "
			    "bs=1 seek=200 conv=notrunc status=none && '%s' verify "
			    "--cert '%s/cert0.der' '%s/flip.ko' 2>/dev/null",
			    good, dir, dir, dm2, dir, dir),
		13);

	/* The library reports why. */
	{
		_cleanup_free_ char *orig = NULL;
		struct module_signature_info none = {};
		size_t norig;

		read_file(module, &orig, &norig);
		ASSERT_ERR(module_verify(orig, norig, cert, &none), -ENODATA);
		ASSERT_ERR(module_verify(data, n - 10, cert, &none), -ENODATA);
		/* Marker intact but the length field points outside the file. */
		data[n - 29] = (char) 0xff;
		ASSERT_ERR(module_verify(data, n, cert, &none), -EBADMSG);
	}
}

static void test_verify_flipped_byte_lib(void **state)
{
	_cleanup_(sign_key_freep) struct sign_key *key = load_key(0);
	_cleanup_free_ char *data = NULL, *orig = NULL, *cert = p("cert0.der");
	struct module_signature_info none = {};
	void *sig = NULL;
	size_t n, nsig;

	read_file(module, &orig, &n);
	ASSERT_OK(module_sign(key, "sha256", orig, n, &sig, &nsig));
	((char *) sig)[100] ^= 1;
	ASSERT_ERR(module_verify(sig, nsig, cert, &none), -EKEYREJECTED);
	free(sig);
}

static void test_hash_from_kernel_and_config(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	char v[64];
	_cleanup_free_ char *out = NULL;

	/* A kernel whose .config asks for sha384: dm2 sign -k uses it. */
	test_write_file(t->fd, "lib/modules/9.9.9-dm2test/build/.config",
			"CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_HASH=\"sha384\"\n");
	out = path_join(t->path, "k.ko");
	assert_int_equal(test_system("'%s' --root '%s' sign --key '%s/key0.pem' --cert "
				     "'%s/cert0.der' -k 9.9.9-dm2test -o '%s' '%s'",
				     dm2, t->path, dir, dir, out, module),
			 0);
	modinfo_field(out, "sig_hashalgo", v, sizeof(v));
	assert_string_equal(v, "sha384");
	/* The real kernel says sha256. */
	assert_int_equal(test_system("'%s' --root '%s' sign --key '%s/key0.pem' --cert "
				     "'%s/cert0.der' -k '%s' -o '%s' '%s'",
				     dm2, t->path, dir, dir, t->kver, out, module),
			 0);
	modinfo_field(out, "sig_hashalgo", v, sizeof(v));
	assert_string_equal(v, "sha256");
	/* [Signing] Hash= overrides the kernel; --hash overrides both. */
	test_write_file(t->fd, "etc/dm2/dm2d.conf", "[Signing]\nHash=sha512\n");
	assert_int_equal(test_system("'%s' --root '%s' sign --key '%s/key0.pem' --cert "
				     "'%s/cert0.der' -k 9.9.9-dm2test -o '%s' '%s'",
				     dm2, t->path, dir, dir, out, module),
			 0);
	modinfo_field(out, "sig_hashalgo", v, sizeof(v));
	assert_string_equal(v, "sha512");
	assert_int_equal(
		test_system("'%s' --root '%s' sign --key '%s/key0.pem' --cert "
			    "'%s/cert0.der' --hash sha256 -k 9.9.9-dm2test -o '%s' '%s'",
			    dm2, t->path, dir, dir, out, module),
		0);
	modinfo_field(out, "sig_hashalgo", v, sizeof(v));
	assert_string_equal(v, "sha256");
	/* Without --key: dm2's own key, generated in the root on first use. */
	assert_int_equal(test_system("'%s' --root '%s' sign -o '%s' '%s' 2>/dev/null && "
				     "'%s' --root '%s' verify '%s' >/dev/null",
				     dm2, t->path, out, module, dm2, t->path, out),
			 0);
	modinfo_field(out, "signer", v, sizeof(v));
	assert_non_null(strstr(v, "dm2 module signing key"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_identical_to_sign_file),
		cmocka_unit_test(test_modinfo),
		cmocka_unit_test(test_resign_replaces),
		cmocka_unit_test(test_refuses_bad_hash),
		cmocka_unit_test(test_mismatched_key_cert),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_verify_flipped_byte_lib),
		cmocka_unit_test(test_hash_from_kernel_and_config),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
