/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* exit_code_merge(): which of several jobs' outcomes a command exits with. */
#include "control/exit-codes.h"
#include "tests.h"

static void test_merge(void **state)
{
	/* A failure beats waiting, which beats skipped, which beats success, in either
	 * order; of two failures the first stays. */
	assert_int_equal(exit_code_merge(EXIT_SKIPPED, EXIT_BUILD_FAILED),
			 EXIT_BUILD_FAILED);
	assert_int_equal(exit_code_merge(EXIT_BUILD_FAILED, EXIT_SKIPPED),
			 EXIT_BUILD_FAILED);
	assert_int_equal(exit_code_merge(EXIT_SKIPPED, EXIT_WAITING), EXIT_WAITING);
	assert_int_equal(exit_code_merge(EXIT_WAITING, EXIT_FETCH_FAILED),
			 EXIT_FETCH_FAILED);
	assert_int_equal(exit_code_merge(EXIT_OK, EXIT_SKIPPED), EXIT_SKIPPED);
	assert_int_equal(exit_code_merge(EXIT_SKIPPED, EXIT_OK), EXIT_SKIPPED);
	assert_int_equal(exit_code_merge(EXIT_SIGN_FAILED, EXIT_BUILD_FAILED),
			 EXIT_SIGN_FAILED);
	assert_int_equal(exit_code_merge(EXIT_OK, EXIT_OK), EXIT_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
