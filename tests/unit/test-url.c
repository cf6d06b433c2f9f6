/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shared/url.c: URLs as dm2 shows them, with no userinfo or query secrets. */
#include "shared/url.h"
#include "shared/util.h"
#include "tests.h"

static void check(const char *in, const char *want)
{
	_cleanup_free_ char *got = url_redact(in);

	assert_non_null(got);
	assert_string_equal(got, want);
}

static void test_userinfo(void **state)
{
	(void) state;
	check("http://user:secret@127.0.0.1:9/", "http://***@127.0.0.1:9/");
	check("https://user@host/path", "https://***@host/path");
	/* The password may hold '@' (unencoded): everything up to the last '@' goes. */
	check("oci://builder:p@ss@registry.example:5000/dm2/fleet",
	      "oci://***@registry.example:5000/dm2/fleet");
	/* An '@' in the path is not userinfo. */
	check("https://host/a@b", "https://host/a@b");
	check("http://host?x@y", "http://host?x@y");
}

static void test_query(void **state)
{
	(void) state;
	check("https://s3.example/b/o?X-Amz-Signature=abc&X-Amz-Date=1",
	      "https://s3.example/b/o?X-Amz-Signature=***&X-Amz-Date=***");
	check("https://h/token?service=reg&scope=repository:a:pull",
	      "https://h/token?service=***&scope=***");
	check("https://h/p?flag&t=1", "https://h/p?flag&t=***");
	check("https://h/p?", "https://h/p?");
	check("https://h/p?a=1#frag=secret", "https://h/p?a=***");
	check("https://u:p@h/p?token=1", "https://***@h/p?token=***");
}

static void test_not_urls(void **state)
{
	(void) state;
	check(NULL, "");
	check("", "");
	check("plain text", "plain text");
	/* No scheme: an '@' before the first '/' is still treated as userinfo. */
	check("user:pw@host/x", "***@host/x");
	check("ftp://user:secret@127.0.0.1/x?token=abc", "ftp://***@127.0.0.1/x?token=***");
	check("http://a b@c/", "http://***@c/");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_userinfo),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_not_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
