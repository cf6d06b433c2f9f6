/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 status' progress line: done, running and queued builds per kernel being prepared, and
 * the time left from the durations in the state db. */
#include "cli/status.h"
#include "core/db.h"
#include "shared/util.h"
#include "tests.h"

static void test_rootp(struct test_root **t)
{
	test_root_free(*t);
}

static char *progress(struct db *d, const struct status_row *rows, size_t n, unsigned slots)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	assert_non_null(f);
	ASSERT_OK(status_print_progress(f, d, rows, n, slots));
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void test_progress(void **state)
{
	_cleanup_(test_rootp) struct test_root *t = test_root_new();
	_cleanup_free_ char *path = NULL, *out = NULL, *idle = NULL;
	struct db *d = NULL;
	struct status_row rows[] = {
		{.name = (char *) "apfs", .kernel = (char *) "6.2", .state = JOB_STATE_INSTALLED},
		{.name = (char *) "evdi", .kernel = (char *) "6.2", .state = JOB_STATE_BUILDING},
		{.name = (char *) "scap", .kernel = (char *) "6.2", .state = JOB_STATE_QUEUED},
		{.name = (char *) "tp", .kernel = (char *) "6.2", .state = JOB_STATE_QUEUED},
		{.name = (char *) "apfs", .kernel = (char *) "6.1", .state = JOB_STATE_INSTALLED},
	};

	assert_true(asprintf(&path, "%s/state.db", t->path) > 0);
	ASSERT_OK(db_open_path(path, true, &d));
	ASSERT_OK(db_duration_record(d, "evdi", "6.1", 10000000, 18000000));
	ASSERT_OK(db_duration_record(d, "scap", "6.1", 30000000, 50000000));
	/* (10 + 30) s over 2 slots; tp never built */
	out = progress(d, rows, ELEMENTSOF(rows), 2);
	assert_string_equal(out, "Kernel 6.2: 1 done, 1 running, 2 queued; about 20 s left "
				 "(not counting builds never timed).\n");
	/* nothing left for 6.1: no line */
	idle = progress(d, &rows[4], 1, 2);
	assert_string_equal(idle, "");
	db_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_progress),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
