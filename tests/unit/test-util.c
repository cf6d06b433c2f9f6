/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>

#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/ini.h"
#include "shared/util.h"
#include "tests.h"

static void test_version_compare(void **state)
{
	assert_int_equal(version_compare("6.10", "6.9"), 1);
	assert_int_equal(version_compare("6.1.0-56-amd64", "6.1.0-9-amd64"), 1);
	assert_int_equal(version_compare("6.1", "6.1.0"), -1);
	assert_int_equal(version_compare("1.2.2", "1.2.2"), 0);
	assert_int_equal(version_compare("0.12.7", "0.13.2"), -1);
}

static void test_strv(void **state)
{
	_cleanup_strv_free_ char **l = NULL;
	_cleanup_free_ char *j = NULL;

	ASSERT_OK(strv_split("  a b\tc  ", " \t", &l));
	assert_int_equal(strv_length(l), 3);
	assert_true(strv_contains(l, "b"));
	j = strv_join(l, ",");
	assert_string_equal(j, "a,b,c");
}

static void test_parse_size(void **state)
{
	uint64_t v;

	ASSERT_OK(parse_size("10K", &v));
	assert_int_equal(v, 10240);
	ASSERT_OK(parse_size("2G", &v));
	assert_int_equal(v, 2ULL << 30);
	ASSERT_ERR(parse_size("x", &v), -EINVAL);
	ASSERT_ERR(parse_size("-1", &v), -ERANGE);
	ASSERT_OK(parse_size("5mb", &v));
	assert_int_equal(v, 5ULL << 20);
	ASSERT_OK(parse_size("3KB", &v));
	assert_int_equal(v, 3072);
	/* Issue 12, attack 7: a unit alone read before the string (ASan: heap overflow). */
	ASSERT_ERR(parse_size("k", &v), -EINVAL);
	ASSERT_ERR(parse_size("G", &v), -EINVAL);
	ASSERT_ERR(parse_size("KB", &v), -EINVAL);
	ASSERT_ERR(parse_size("", &v), -EINVAL);
	ASSERT_ERR(parse_size("1MK", &v), -EINVAL);
	ASSERT_ERR(parse_size("1KK", &v), -EINVAL);
}

/* What a build log line may hold reaches terminals and --json (issue 12, attack 12). */
static void test_escape(void **state)
{
	_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *json = NULL;
	size_t size = 0;
	FILE *f;

	assert_true(utf8_is_valid("plain, caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x90\xa7"));
	assert_false(utf8_is_valid("caf\xe9"));		 /* Latin-1 */
	assert_false(utf8_is_valid("\xc0\xaf"));	 /* overlong '/' */
	assert_false(utf8_is_valid("\xed\xa0\x80"));	 /* surrogate */
	assert_false(utf8_is_valid("\xf4\x90\x80\x80")); /* above U+10FFFF */
	assert_false(utf8_is_valid("\xe2\x82"));	 /* truncated */
	assert_false(utf8_is_valid("\x80"));

	assert_non_null(a = escape_terminal("ERROR: \033[2J\033]0;pwn\007 end\r\n", ""));
	assert_string_equal(a, "ERROR: \\x1b[2J\\x1b]0;pwn\\x07 end\\x0d\\x0a");
	assert_non_null(
		b = escape_terminal("t\tn\n\x7f \xc2\x9b[1m caf\xc3\xa9 \xff\xe2\x82",
				    "\t\n"));
	assert_string_equal(b, "t\tn\n\\x7f \\xc2\\x9b[1m caf\xc3\xa9 \\xff\\xe2\\x82");
	assert_non_null(c = escape_terminal("", ""));
	assert_string_equal(c, "");

	assert_non_null(f = open_memstream(&json, &size));
	json_write_string(f, "\033]0;x\007 \"q\" \\ \xc2\x9b caf\xc3\xa9 \xff\xc3 \x7f");
	assert_int_equal(fclose(f), 0);
	assert_string_equal(json,
			    "\"\\u001b]0;x\\u0007 \\\"q\\\" \\\\ \\u009b caf\xc3\xa9 "
			    "\\ufffd\\ufffd \\u007f\"");
}

struct ini_seen {
	unsigned items, sections, errors, last_error_line;
};

static int ini_item(const char *section, const char *key, const char *value, unsigned line,
		    void *userdata)
{
	struct ini_seen *s = userdata;

	if (!key)
		s->sections++;
	else
		s->items++;
	return 0;
}

static void ini_error(unsigned line, const char *message, void *userdata)
{
	struct ini_seen *s = userdata;

	s->errors++;
	s->last_error_line = line;
}

static void test_ini(void **state)
{
	struct ini_seen s = {};

	ASSERT_OK(ini_parse_string("# c\r\n[A]\r\nx = 1\r\n\r\n[B]\ny=\n", ini_item, ini_error, &s));
	assert_int_equal(s.sections, 2);
	assert_int_equal(s.items, 2);

	s = (struct ini_seen) {};
	ASSERT_ERR(ini_parse_string("x=1\n[A]\nbogus\n[B\n", ini_item, ini_error, &s), -EBADMSG);
	assert_int_equal(s.errors, 3);
	assert_int_equal(s.last_error_line, 4);
}

static void test_fs(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *text = NULL;
	char hex[SHA256_HEX_SIZE];

	ASSERT_OK(mkdir_p_at(t->fd, "a/b/c", 0755));
	ASSERT_OK(write_file_atomic_at(t->fd, "a/b/c/f", "hello", 5, 0600));
	ASSERT_OK(read_full_file_at(t->fd, "a/b/c/f", 0, &text, NULL));
	assert_string_equal(text, "hello");
	ASSERT_OK(sha256_file_hex_at(t->fd, "a/b/c/f", hex));
	assert_string_equal(hex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
	ASSERT_OK(symlinkat("c/f", t->fd, "a/b/link"));
	ASSERT_OK(copy_tree_at(t->fd, "a", t->fd, "copy"));
	assert_int_equal(faccessat(t->fd, "copy/b/c/f", F_OK, 0), 0);
	ASSERT_OK(rm_rf_at(t->fd, "a"));
	assert_int_equal(faccessat(t->fd, "a", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_true(path_is_safe_relative("a/b"));
	assert_false(path_is_safe_relative("a/../b"));
	assert_false(path_is_safe_relative("/a"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_compare),
		cmocka_unit_test(test_strv),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_ini),
		cmocka_unit_test(test_fs),
		cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
