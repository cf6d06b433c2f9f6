/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2's signing keys in fake roots: generation, modes, adopting DKMS' key, store URIs. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "core/context.h"
#include "pipeline/keys.h"
#include "pipeline/sign.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static const char payload[] = "not an ELF file, but signatures do not care";

static int year_of(const char *timestamp)
{
	int y = 0;

	assert_non_null(timestamp);
	for (int i = 0; i < 4; i++) {
		assert_true(timestamp[i] >= '0' && timestamp[i] <= '9');
		y = y * 10 + (timestamp[i] - '0');
	}
	return y;
}

static char *dm2_bin(void)
{
	char *p = test_build_path("dm2");
	assert_non_null(p);
	return p;
}

static void sign_and_verify(const char *key_path, const char *cert_path,
			    const char *verify_cert)
{
	_cleanup_(sign_key_freep) struct sign_key *k = NULL;
	_cleanup_(module_signature_info_done) struct module_signature_info info = {};
	_cleanup_free_ void *sig = NULL;
	size_t n;

	ASSERT_OK(sign_key_load(key_path, cert_path, &k));
	ASSERT_OK(module_sign(k, "sha256", payload, sizeof(payload), &sig, &n));
	ASSERT_OK(module_verify(sig, n, verify_cert, &info));
	assert_string_equal(info.signer, sign_key_signer(k));
}

static void test_generate_on_first_use(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *key = NULL, *cert = NULL, *key2 = NULL, *cert2 = NULL;
	_cleanup_free_ char *der1 = NULL, *der2 = NULL, *text = NULL, *out = NULL,
			    *dm2 = NULL;
	_cleanup_(key_info_done) struct key_info info = {};
	size_t n1, n2;
	struct stat st;

	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(keys_ensure(ctx, &key, &cert));
	assert_string_equal(key + strlen(t->path), "/var/lib/dm2/keys/signing_key.pem");
	assert_string_equal(cert + strlen(t->path), "/var/lib/dm2/keys/signing_key.x509");

	assert_int_equal(fstatat(t->fd, "var/lib/dm2/keys", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(fstatat(t->fd, "var/lib/dm2/keys/signing_key.pem", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(fstatat(t->fd, "var/lib/dm2/keys/signing_key.x509", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0644);

	/* The certificate: DER, v3, the extensions mokutil and the kernel expect. */
	out = path_join(t->path, "x509.txt");
	assert_int_equal(
		test_system("openssl x509 -inform DER -in '%s' -noout -text >'%s'", cert,
			    out),
		0);
	ASSERT_OK(read_full_file_at(AT_FDCWD, out, 0, &text, NULL));
	assert_non_null(strstr(text, "Version: 3"));
	assert_non_null(strstr(text, "dm2 module signing key"));
	assert_non_null(strstr(
		text, "X509v3 Basic Constraints: critical\n                CA:FALSE"));
	assert_non_null(strstr(
		text, "X509v3 Key Usage: critical\n                Digital Signature"));
	assert_non_null(strstr(text, "Code Signing, 1.3.6.1.4.1.2312.16.1.2"));
	assert_non_null(strstr(text, "X509v3 Subject Key Identifier"));
	assert_non_null(strstr(text, "X509v3 Authority Key Identifier"));
	assert_non_null(strstr(text, "Public-Key: (2048 bit)"));
	/* 100 years. */
	ASSERT_OK(key_info_from_cert(cert, &info));
	assert_int_equal(year_of(info.not_after) - year_of(info.not_before), 100);
	assert_string_equal(info.key_type, "RSA");
	assert_int_equal(info.bits, 2048);

	/* Second use: the same pair, never a new one. */
	ASSERT_OK(read_full_file_at(AT_FDCWD, cert, 0, &der1, &n1));
	ASSERT_OK(keys_ensure(ctx, &key2, &cert2));
	ASSERT_OK(read_full_file_at(AT_FDCWD, cert2, 0, &der2, &n2));
	assert_int_equal(n1, n2);
	assert_memory_equal(der1, der2, n1);
	ASSERT_ERR(keys_generate(ctx, false), -EEXIST);

	sign_and_verify(key, cert, cert);

	/* dm2 key show prints the enrolment line with the path under the root. */
	dm2 = dm2_bin();
	assert_int_equal(
		test_system("'%s' --root '%s' key show | grep -qxF 'mokutil --import "
			    "%s/var/lib/dm2/keys/signing_key.x509'",
			    dm2, t->path, t->path),
		0);
	assert_int_equal(
		test_system("'%s' --root '%s' key show | grep -q '^SHA-256: *%s$'", dm2,
			    t->path, info.fingerprint),
		0);
}

static void test_half_pair_is_an_error(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *dm2 = dm2_bin();
	char *key = NULL, *cert = NULL;

	ASSERT_OK(context_new(t->path, &ctx));
	test_write_file(t->fd, "var/lib/dm2/keys/signing_key.x509", "junk");
	ASSERT_ERR(keys_ensure(ctx, &key, &cert), -ENOENT);
	assert_null(key);
	/* And dm2 key show on junk fails cleanly. */
	assert_int_not_equal(
		test_system("'%s' --root '%s' key show >/dev/null 2>&1", dm2, t->path),
		0);
}

static void make_dkms_key(struct test_root *t, const char *dir)
{
	/* Exactly how DKMS' prepare_mok creates its key. */
	assert_int_equal(
		test_system(
			"mkdir -p '%s/%s' && openssl req -new -x509 -nodes -days 36500 "
			"-subj '/CN=DKMS module signing key' -newkey rsa:2048 "
			"-keyout '%s/%s/mok.key' -addext extendedKeyUsage=codeSigning "
			"-outform DER -out '%s/%s/mok.pub' >/dev/null 2>&1",
			t->path, dir, t->path, dir, t->path, dir),
		0);
}

static void test_adopt_dkms(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *key = NULL, *cert = NULL, *a = NULL, *b = NULL, *mok = NULL;
	_cleanup_free_ char *dm2 = dm2_bin();
	size_t na, nb;
	struct stat st;

	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_ERR(keys_adopt_dkms(ctx), -ENOENT);
	make_dkms_key(t, "var/lib/dkms");
	ASSERT_OK(keys_adopt_dkms(ctx));
	ASSERT_OK(keys_adopt_dkms(ctx)); /* again: already the same key */

	ASSERT_OK(read_full_file_at(t->fd, "var/lib/dkms/mok.pub", 0, &a, &na));
	ASSERT_OK(read_full_file_at(t->fd, "var/lib/dm2/keys/signing_key.x509", 0, &b,
				    &nb));
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	assert_int_equal(fstatat(t->fd, "var/lib/dm2/keys/signing_key.pem", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Signing with dm2's key now verifies with the certificate already enrolled for
	 * DKMS. */
	ASSERT_OK(keys_ensure(ctx, &key, &cert));
	mok = path_join(t->path, "var/lib/dkms/mok.pub");
	sign_and_verify(key, cert, mok);

	/* A different DKMS key is not silently swapped in. */
	ASSERT_OK(rm_rf_at(t->fd, "var/lib/dkms"));
	make_dkms_key(t, "var/lib/dkms");
	ASSERT_ERR(keys_adopt_dkms(ctx), -EEXIST);
	assert_int_equal(test_system("'%s' --root '%s' key adopt-dkms >/dev/null 2>&1",
				     dm2, t->path),
			 1);
	assert_int_equal(test_system("'%s' --root '%s' key adopt-dkms --force >/dev/null",
				     dm2, t->path),
			 0);
	free(b);
	b = NULL;
	free(a);
	a = NULL;
	ASSERT_OK(read_full_file_at(t->fd, "var/lib/dkms/mok.pub", 0, &a, &na));
	ASSERT_OK(read_full_file_at(t->fd, "var/lib/dm2/keys/signing_key.x509", 0, &b,
				    &nb));
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
}

static void test_adopt_dkms_mismatch(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;

	ASSERT_OK(context_new(t->path, &ctx));
	make_dkms_key(t, "var/lib/dkms");
	make_dkms_key(t, "other");
	assert_int_equal(test_system("cp '%s/other/mok.pub' '%s/var/lib/dkms/mok.pub'",
				     t->path, t->path),
			 0);
	ASSERT_ERR(keys_adopt_dkms(ctx), -EKEYREJECTED);
	assert_int_equal(faccessat(t->fd, "var/lib/dm2/keys/signing_key.pem", F_OK, 0),
			 -1);
}

static void test_configured_file_uri(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_free_ char *key = NULL, *cert = NULL, *conf = NULL, *mok = NULL;
	_cleanup_free_ char *uri = NULL;

	make_dkms_key(t, "srv/keys");
	/* Key= as an OSSL_STORE file: URI, Certificate= as a path under the root. */
	uri = strjoin("file:", t->path, "/srv/keys/mok.key");
	conf = strjoin("[Signing]\nKey=", uri, "\nCertificate=/srv/keys/mok.pub\n");
	test_write_file(t->fd, "etc/dm2/dm2d.conf", conf);
	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(keys_ensure(ctx, &key, &cert));
	assert_string_equal(key, uri);
	mok = path_join(t->path, "srv/keys/mok.pub");
	assert_string_equal(cert, mok);
	/* Nothing generated when a key is configured. */
	assert_int_equal(faccessat(t->fd, "var/lib/dm2/keys/signing_key.pem", F_OK, 0),
			 -1);
	sign_and_verify(key, cert, mok);
	/* A certificate may also come as a file: URI. */
	free(cert);
	cert = strjoin("file:", mok);
	sign_and_verify(key, cert, mok);
}

static void test_encrypted_key_pin(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *key = NULL, *cert = NULL, *both = NULL;
	struct sign_key *k = NULL;

	/* A passphrase-protected key: the PIN comes from KBUILD_SIGN_PIN, as with
	 * sign-file. */
	assert_int_equal(
		test_system("cd '%s' && openssl req -new -x509 -days 36500 "
			    "-subj '/CN=pin test' -newkey rsa:2048 -passout pass:s3cret "
			    "-keyout enc.pem -outform DER -out enc.der >/dev/null 2>&1",
			    t->path),
		0);
	key = path_join(t->path, "enc.pem");
	cert = path_join(t->path, "enc.der");
	assert_int_equal(unsetenv("KBUILD_SIGN_PIN"), 0);
	assert_true(sign_key_load(key, cert, &k) < 0);
	assert_int_equal(setenv("KBUILD_SIGN_PIN", "wrong", 1), 0);
	assert_true(sign_key_load(key, cert, &k) < 0);
	assert_null(k);
	assert_int_equal(setenv("KBUILD_SIGN_PIN", "s3cret", 1), 0);
	sign_and_verify(key, cert, cert);
	assert_int_equal(unsetenv("KBUILD_SIGN_PIN"), 0);

	/* The kernel's own signing_key.pem holds key and certificate in one file. */
	assert_int_equal(
		test_system(
			"cd '%s' && openssl req -new -x509 -nodes -days 1 -subj "
			"'/CN=both' "
			"-newkey rsa:2048 -keyout k.pem -out c.pem >/dev/null 2>&1 && "
			"cat k.pem c.pem >both.pem",
			t->path),
		0);
	both = path_join(t->path, "both.pem");
	sign_and_verify(both, NULL, both);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_on_first_use),
		cmocka_unit_test(test_half_pair_is_an_error),
		cmocka_unit_test(test_adopt_dkms),
		cmocka_unit_test(test_adopt_dkms_mismatch),
		cmocka_unit_test(test_configured_file_uri),
		cmocka_unit_test(test_encrypted_key_pin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
