/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cache/oci-parse.c: what the OCI transport reads from a registry (JSON, WWW-Authenticate),
 * the names it checks and the image manifest it writes; and the auth files of
 * shared/curl-util.c. */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>

#include "remote-internal.h"
#include "shared/fs-util.h"
#include "tests.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int json(const char *text, const char *const *path, char **ret)
{
	return oci_json_string(text, strlen(text), path, ret);
}

static void test_json(void **state)
{
	static const char *const token[] = {"token", NULL};
	static const char *const digest[] = {"config", "digest", NULL};
	char *v = NULL;

	(void) state;
	ASSERT_OK(json("{\"token\":\"abc.def\",\"expires_in\":300,\"x\":[1,{\"a\":null}]}",
		       token, &v));
	assert_string_equal(v, "abc.def");
	free(v);
	ASSERT_OK(json(" {\"config\" : {\"size\": 12, \"digest\":\"sha256:\\u0041\\n\"}} ",
		       digest, &v));
	assert_string_equal(v, "sha256:A\n");
	free(v);
	ASSERT_OK(json("{\"token\":\"\\ud83d\\ude00\"}", token, &v));
	assert_string_equal(v, "\xf0\x9f\x98\x80");
	free(v);

	ASSERT_ERR(json("{\"other\":\"x\"}", token, &v), -ENOENT);
	ASSERT_ERR(json("{\"token\":1}", token, &v), -EBADMSG);	       /* not a string */
	ASSERT_ERR(json("{\"token\":\"a\",\"token\":\"b\"}", token, &v), -EBADMSG);
	ASSERT_ERR(json("{\"token\":\"a\"} x", token, &v), -EBADMSG); /* trailing */
	ASSERT_ERR(json("{\"token\":\"a\"", token, &v), -EBADMSG);     /* truncated */
	ASSERT_ERR(json("{\"token\":\"a\\u0000\"}", token, &v), -EBADMSG);
	ASSERT_ERR(json("{\"token\":\"\\ud83d\"}", token, &v), -EBADMSG); /* lone surrogate */
	ASSERT_ERR(json("{\"token\":\"a\nb\"}", token, &v), -EBADMSG);	 /* raw control */
	ASSERT_ERR(json("{\"config\":\"sha256:x\"}", digest, &v), -EBADMSG);
	ASSERT_ERR(json("[\"token\"]", token, &v), -EBADMSG);
	ASSERT_ERR(json("", token, &v), -EBADMSG);
	/* A NUL inside the document. */
	ASSERT_ERR(oci_json_string("{\"token\":\"a\"}\0", 14, token, &v), -EBADMSG);
}

static void test_json_depth(void **state)
{
	static const char *const token[] = {"token", NULL};
	char deep[200];
	char *v = NULL;

	(void) state;
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	ASSERT_ERR(json(deep, token, &v), -EBADMSG);
}

static void test_challenge(void **state)
{
	struct oci_challenge c;

	(void) state;
	ASSERT_OK(oci_challenge_parse(
		"Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
		"scope=\"repository:library/x:pull,push\"",
		&c));
	assert_true(c.bearer);
	assert_string_equal(c.realm, "https://auth.docker.io/token");
	assert_string_equal(c.service, "registry.docker.io");
	assert_string_equal(c.scope, "repository:library/x:pull,push");
	oci_challenge_done(&c);

	ASSERT_OK(oci_challenge_parse("bearer realm=https://h/t, service=\"a\\\"b\"", &c));
	assert_string_equal(c.realm, "https://h/t");
	assert_string_equal(c.service, "a\"b");
	assert_null(c.scope);
	oci_challenge_done(&c);

	ASSERT_OK(oci_challenge_parse("Basic realm=\"dm2-test\"", &c));
	assert_false(c.bearer);
	oci_challenge_done(&c);

	ASSERT_ERR(oci_challenge_parse("Negotiate abc", &c), -EOPNOTSUPP);
	ASSERT_ERR(oci_challenge_parse("Bearer service=\"x\"", &c), -EBADMSG); /* no realm */
	ASSERT_ERR(oci_challenge_parse("Bearer realm=\"file:///etc/passwd\"", &c), -EBADMSG);
	ASSERT_ERR(oci_challenge_parse("Bearer realm=\"https://h/t", &c), -EBADMSG);
	ASSERT_ERR(oci_challenge_parse("Bearer realm", &c), -EBADMSG);
}

static void test_names(void **state)
{
	char tag[OCI_TAG_SIZE];

	(void) state;
	assert_true(oci_repository_valid("dm2/fleet"));
	assert_true(oci_repository_valid("a"));
	assert_true(oci_repository_valid("my-org/dm2.cache/x__y"));
	assert_false(oci_repository_valid(""));
	assert_false(oci_repository_valid("Dm2"));
	assert_false(oci_repository_valid("dm2/"));
	assert_false(oci_repository_valid("/dm2"));
	assert_false(oci_repository_valid("dm2//x"));
	assert_false(oci_repository_valid("dm2/-x"));
	assert_false(oci_repository_valid("dm2/x."));
	assert_false(oci_repository_valid("a..b"));
	assert_false(oci_repository_valid("a___b"));
	assert_false(oci_repository_valid("../x"));

	ASSERT_OK(oci_tag_from_key(HEX_A, tag));
	assert_string_equal(tag, "dm2-" HEX_A);
	assert_true(oci_tag_valid(tag));
	ASSERT_ERR(oci_tag_from_key("not-a-key", tag), -EINVAL);
	assert_false(oci_tag_valid(".x"));
	assert_false(oci_tag_valid("-x"));
	assert_false(oci_tag_valid("a/b"));
	assert_false(oci_tag_valid(""));
}

static void test_manifest(void **state)
{
	const struct remote_object config = {.sha256 = HEX_A, .size = 120};
	const struct remote_object layers[] = {
		{.sha256 = HEX_B, .size = 4096},
		{.sha256 = HEX_A, .size = 120},
		{.sha256 = HEX_B, .size = 4096}, /* the same content under two names */
	};
	_cleanup_free_ char *text = NULL;
	struct remote_object back;
	size_t len = 0;

	(void) state;
	ASSERT_OK(oci_manifest_build(HEX_B, &config, layers, ELEMENTSOF(layers), &text, &len));
	assert_int_equal(strlen(text), len);
	assert_non_null(strstr(text, "\"mediaType\":\"" OCI_MEDIA_MANIFEST "\""));
	assert_non_null(strstr(text, "\"config\":{\"mediaType\":\"" OCI_MEDIA_DM2_MANIFEST
				     "\",\"digest\":\"sha256:" HEX_A "\",\"size\":120}"));
	/* Each blob once. */
	assert_non_null(strstr(text, "sha256:" HEX_B "\",\"size\":4096}"));
	assert_null(strstr(strstr(text, "sha256:" HEX_B "\",\"size\":4096}") + 1,
			   "sha256:" HEX_B "\",\"size\":4096}"));
	ASSERT_OK(oci_manifest_config(text, len, &back));
	assert_string_equal(back.sha256, HEX_A);

#define OTHER_TYPE                                                                       \
	"{\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":" \
	"\"sha256:" HEX_A "\"}}"
	ASSERT_ERR(oci_manifest_config(OTHER_TYPE, strlen(OTHER_TYPE), &back), -EMEDIUMTYPE);
	ASSERT_ERR(oci_manifest_config("{\"config\":{\"mediaType\":\"" OCI_MEDIA_DM2_MANIFEST
				       "\",\"digest\":\"sha512:" HEX_A "\"}}",
				       strlen("{\"config\":{\"mediaType\":\"" OCI_MEDIA_DM2_MANIFEST
					      "\",\"digest\":\"sha512:" HEX_A "\"}}"),
				       &back),
		   -EBADMSG);
	ASSERT_ERR(oci_manifest_config("{}", 2, &back), -ENOENT);
	ASSERT_ERR(oci_manifest_build("bad", &config, layers, 1, &text, &len), -EINVAL);
}

static char dir[PATH_MAX];

static char *write_tmp(const char *name, const char *content)
{
	char *p = path_join(dir, name);

	assert_non_null(p);
	ASSERT_OK(write_file_atomic_at(AT_FDCWD, p, content, strlen(content), 0600));
	return p;
}

static void test_auth_files(void **state)
{
	_cleanup_free_ char *h = NULL, *t = NULL, *why = NULL, *tok = NULL;
	struct curl_slist *l = NULL;

	(void) state;
	snprintf(dir, sizeof(dir), "%s", "/tmp/dm2-test-oci-XXXXXX");
	assert_non_null(mkdtemp(dir));
	h = write_tmp("headers", "# comment\n\nX-Api-Key: s3cret\n  Authorization: Bearer t  \n");
	ASSERT_OK(http_header_file_load(h, &l, &why));
	assert_non_null(l);
	assert_string_equal(l->data, "X-Api-Key: s3cret");
	assert_string_equal(l->next->data, "Authorization: Bearer t");
	assert_null(l->next->next);
	curl_slist_free_all(l);
	free(h);

	h = write_tmp("bad-headers", "X-Ok: 1\nno colon s3cret\n");
	ASSERT_ERR(http_header_file_load(h, &l, &why), -EINVAL);
	assert_non_null(strstr(why, "line 2: not a 'Name: value' header"));
	assert_null(strstr(why, "s3cret"));
	why = mfree(why);
	free(h);
	h = write_tmp("cr-headers", "X-A: 1\rX-Injected: 2\n");
	ASSERT_ERR(http_header_file_load(h, &l, &why), -EINVAL);
	why = mfree(why);
	ASSERT_ERR(http_header_file_load("/nonexistent/headers", &l, &why), -ENOENT);
	assert_non_null(strstr(why, "HeaderFile '/nonexistent/headers'"));
	why = mfree(why);

	t = write_tmp("token", "  abc.def-ghi_jkl  \nsecond line ignored\n");
	ASSERT_OK(http_token_file_load(t, &tok, &why));
	assert_string_equal(tok, "abc.def-ghi_jkl");
	free(t);
	t = write_tmp("empty-token", "\n");
	ASSERT_ERR(http_token_file_load(t, &tok, &why), -EINVAL);
	why = mfree(why);
	free(t);
	t = write_tmp("spaced-token", "two s3cret\n");
	ASSERT_ERR(http_token_file_load(t, &tok, &why), -EINVAL);
	assert_null(strstr(why, "s3cret"));
	(void) rm_rf_at(AT_FDCWD, dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),	   cmocka_unit_test(test_json_depth),
		cmocka_unit_test(test_challenge),  cmocka_unit_test(test_names),
		cmocka_unit_test(test_manifest),   cmocka_unit_test(test_auth_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
