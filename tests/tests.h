/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Test helpers shared by tests/test-*.c (cmocka). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "shared/macro.h"

/* Assert that an int-returning call succeeded, printing the error if not. */
#define ASSERT_OK(expr)                                                                   \
	({                                                                                \
		int _r_ = (expr);                                                         \
		if (_r_ < 0)                                                              \
			fail_msg("%s failed: %s (%d)", #expr, strerror(-_r_), _r_);       \
		_r_;                                                                      \
	})
#define ASSERT_ERR(expr, err)                                                             \
	do {                                                                              \
		int _r_ = (expr);                                                         \
		if (_r_ != (err))                                                         \
			fail_msg("%s returned %d (%s), expected %d (%s)", #expr, _r_,    \
				 strerror(_r_ < 0 ? -_r_ : _r_), (err), strerror(-(err)));  \
	} while (0)

/*
 * A fake root made for one test: a fresh directory under $TMPDIR (or /tmp) holding
 * lib/modules/KVER/build -> the real installed kernel build tree, so real kbuild builds work
 * and nothing of the machine's own /lib/modules, /etc or /var is touched. Removed again by
 * test_root_free() unless DM2_TEST_KEEP=1.
 */
struct test_root {
	char *path;
	int fd;
	const char *kver; /* release of the linked kernel */
	const char *tree; /* real build tree it links to */
};

struct test_root *test_root_new(void);
void test_root_free(struct test_root *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct test_root *, test_root_free);

/* The real kernel build tree used by tests, and its release. Aborts loudly when the machine
 * has none (install linux-headers-amd64): such tests must not silently pass. */
const char *test_kernel_tree(void);
const char *test_kernel_release(void);

/* Absolute path of a file in the source tree / build tree. Caller frees. */
char *test_source_path(const char *rel);
char *test_build_path(const char *rel);

/* Write a file below dir_fd, creating parent directories. */
void test_write_file(int dir_fd, const char *path, const char *content);
/* Run a shell command, return its exit status (or -1). */
int test_system(const char *format, ...) _printf_(1, 2);
