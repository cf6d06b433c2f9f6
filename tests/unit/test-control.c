/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* control.c, the client side of the daemon's line protocol, against canned replies. */
#include <sys/socket.h>

#include "control/control.h"
#include "control/exit-codes.h"
#include "shared/util.h"
#include "tests.h"

/* A connected pair; the "daemon" end already holds the reply. Returns the client end. */
static int canned(const char *reply, int *ret_daemon)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	if (reply)
		assert_int_equal(write(sv[1], reply, strlen(reply)), (ssize_t) strlen(reply));
	*ret_daemon = sv[1];
	return sv[0];
}

static void test_control_done_codes(void **state)
{
	int d, c;
	char buf[256] = {};

	/* JOB lines are printed, DONE's code is returned, the request arrives as one line. */
	c = canned("JOB a 6.1 installed\nJOB b 6.1 failed does not compile\nDONE 5\n", &d);
	assert_int_equal(control_request(c, "TRIGGER 6.1 1 10", 0, false), EXIT_BUILD_FAILED);
	assert_true(read(d, buf, sizeof(buf) - 1) > 0);
	assert_string_equal(buf, "TRIGGER 6.1 1 10\n");
	close(c);
	close(d);

	c = canned("ERR 11 permission denied: only root may ask dm2d to build\n", &d);
	assert_int_equal(control_request(c, "TRIGGER * 0 0", 0, false), EXIT_PERMISSION);
	close(c);
	close(d);

	/* A build's output lines come before its exit code. */
	c = canned("OUT {\"succeeded\": false}\nLOG dm2: Building 'a' failed\nDONE 5\n",
		   &d);
	assert_int_equal(control_request(c, "BUILD 6.1 0 a - json", 0, false),
			 EXIT_BUILD_FAILED);
	close(c);
	close(d);

	/* Replies split over several reads still parse. */
	c = canned("DO", &d);
	assert_int_equal(write(d, "NE 0\n", 5), 5);
	assert_int_equal(control_request(c, "STATUS", 0, true), 0);
	close(c);
	close(d);
}

static void test_control_broken(void **state)
{
	int d, c;

	/* The daemon goes away before DONE. */
	c = canned("JOB a 6.1 installed\n", &d);
	assert_int_equal(shutdown(d, SHUT_WR), 0);
	assert_int_equal(control_request(c, "STATUS", 0, false), -ECONNRESET);
	close(c);
	close(d);

	/* Garbage instead of a code. */
	c = canned("DONE x\n", &d);
	assert_int_equal(control_request(c, "STATUS", 0, false), -EBADMSG);
	close(c);
	close(d);

	/* No answer within the client's own deadline: the wait timed out. */
	c = canned(NULL, &d);
	uint64_t t0 = now_mono_usec();
	assert_int_equal(control_request(c, "TRIGGER 6.1 1 0", 200000, false), EXIT_BUSY);
	assert_true(now_mono_usec() - t0 >= 200000);
	close(c);
	close(d);
}

static void test_control_split(void **state)
{
	_cleanup_strv_free_ char **w = NULL;

	ASSERT_OK(control_split("INSTALL 6.1.0-56-amd64 30 a b", &w));
	assert_int_equal(strv_length(w), 5);
	assert_string_equal(w[0], "INSTALL");
	assert_string_equal(w[4], "b");

	assert_true(control_word_ok("6.1.0-56-amd64"));
	assert_true(control_word_ok("acpi_call+x"));
	assert_false(control_word_ok(""));
	assert_false(control_word_ok(".."));
	assert_false(control_word_ok("a/b"));
	assert_false(control_word_ok("a b"));
	assert_false(control_word_ok("a\nSTATUS"));
}

static void test_control_no_daemon(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	char *names[] = { (char *) "x", NULL };
	int fd = -1, code = -1;

	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_ERR(control_connect(ctx, &fd), -ENOENT);
	ASSERT_ERR(control_try_forward(ctx, names, t->kver, 0, &code), -ENOENT);
	ASSERT_ERR(control_try_forward_build(ctx, "x", t->kver, NULL, true, &code),
		   -ENOENT);
	assert_int_equal(code, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_done_codes),
		cmocka_unit_test(test_control_broken),
		cmocka_unit_test(test_control_split),
		cmocka_unit_test(test_control_no_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
