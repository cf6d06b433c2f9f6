/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Debian's version order: a table, and the same table checked against dpkg itself. */
#include <sys/wait.h>
#include <unistd.h>

#include "shared/deb-version.h"
#include "shared/util.h"
#include "tests.h"

static const struct {
	const char *a, *b;
	int want; /* sign of a - b */
} table[] = {
	{"1.0~rc1", "1.0", -1},
	{"1.0~rc1", "1.0~rc2", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0~", "1.0", -1},
	{"1.0", "1.0+dfsg", -1},
	{"1.0", "1.0a", -1},
	{"1.0a", "1.0+", -1}, /* letters before other characters */
	{"1.0", "1.0.1", -1},
	{"1.0", "1.00", 0},
	{"1.0", "1.0-0", 0}, /* no revision is revision 0 */
	{"1.0-1", "1.0-2", -1},
	{"1.0-9", "1.0-10", -1},
	{"1.0-1", "1.0-1~bpo1", 1},
	{"0.12.7", "0.13.2", -1},
	{"6.9", "6.10", -1},
	{"2.0", "1:1.0", -1},
	{"1:1.0", "01:1.0", 0},
	{"0:1.0", "1.0", 0},
	{"2:1.0", "10:0.1", -1},
	{"1.2-3-4", "1.2-3-5", -1}, /* the revision is after the last '-' */
	{"1.2-3-4", "1.2-4", 1},    /* upstream 1.2-3 > 1.2 */
	{"a", "b", -1},
	{"1.0", "1.0", 0},
	{"", "0", 0},
	{"1.18.0", "1.18.0~git20240101", 1},
	{"99999999999999999999999", "99999999999999999999998",
	 1}, /* longer than 64 bits */
	{"1:99999999999999999999", "2:0", -1},
};

static void test_table(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		int r = deb_version_compare(table[i].a, table[i].b);
		int back = deb_version_compare(table[i].b, table[i].a);

		if (r != table[i].want || back != -table[i].want)
			fail_msg("'%s' vs '%s': %d (and %d back), want %d", table[i].a,
				 table[i].b, r, back, table[i].want);
	}
}

/* dpkg --compare-versions A OP B: 1 when it holds, 0 when not, -1 when dpkg is missing.
 */
static int dpkg_says(const char *a, const char *op, const char *b)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		execlp("dpkg", "dpkg", "--compare-versions", a, op, b, (char *) NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 127)
		return -1;
	return WEXITSTATUS(status) == 0;
}

/* The table is dpkg's own answer: where dpkg is installed, ask it (valid versions only:
 * dpkg refuses an empty one). */
static void test_same_as_dpkg(void **state)
{
	size_t asked = 0;

	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		const char *op = table[i].want < 0   ? "lt"
				 : table[i].want > 0 ? "gt"
						     : "eq";
		int r;

		if (!table[i].a[0] || !table[i].b[0])
			continue;
		r = dpkg_says(table[i].a, op, table[i].b);
		if (r < 0)
			skip();
		if (r != 1)
			fail_msg("dpkg does not agree: '%s' %s '%s'", table[i].a, op,
				 table[i].b);
		asked++;
	}
	assert_true(asked > 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_same_as_dpkg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
