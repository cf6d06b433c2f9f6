/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Test helpers shared by the cmocka tests (tests/unit/, tests/integration/). */

#include <setjmp.h>
#include <stdbool.h>
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
 * A fake root made for one test: a fresh directory under $TMPDIR (or /tmp) holding an
 * empty lib/modules/KVER/, so nothing of the machine's /lib/modules, /etc or /var is
 * touched. Removed again by test_root_free() unless DM2_TEST_KEEP=1.
 *
 *   test_root_new()                KVER is TEST_FAKE_KVER, no build tree: enough for code
 *                                  that only needs a kernel's name (db, install, locks,
 *                                  parsers), and runs on a machine without headers.
 *   test_root_new(.kernel = true)  lib/modules/KVER/build links to the real installed
 *                                  kernel build tree, so real kbuild builds and probes
 *                                  work; aborts when the machine has none.
 *
 * ctest labels a test "kernel" when its source asks for the kernel (.kernel = true,
 * test_kernel_tree(), test_kernel_release()); all others run with DM2_TEST_NO_KERNEL=1,
 * under which asking for the kernel aborts, so the label cannot lie.
 */
#define TEST_FAKE_KVER "6.1.0-99-dm2test"

struct test_root_options {
	bool kernel;
};

struct test_root {
	char *path;
	int fd;
	const char *kver; /* release: the linked kernel's, or TEST_FAKE_KVER */
	const char *tree; /* real build tree it links to; NULL without .kernel */
};

struct test_root *test_root_new_opts(const struct test_root_options *o);
/* In tests/integration/ (which build for real) and at the old place tests/test-*.c
 * (written when every root had the kernel), CMake defines DM2_TEST_KERNEL_BY_DEFAULT:
 * there test_root_new() links the kernel unless given .kernel = false. */
#ifdef DM2_TEST_KERNEL_BY_DEFAULT
#define test_root_new(...)                                                                \
	test_root_new_opts(&(const struct test_root_options){ .kernel = true, __VA_ARGS__ })
#else
#define test_root_new(...)                                                                \
	test_root_new_opts(&(const struct test_root_options){ __VA_ARGS__ })
#endif
void test_root_free(struct test_root *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct test_root *, test_root_free);

/* The real kernel build tree used by tests, and its release. Aborts loudly when the
 * machine has none (install linux-headers-amd64) or DM2_TEST_NO_KERNEL=1 is set: such
 * tests must not silently pass. */
const char *test_kernel_tree(void);
const char *test_kernel_release(void);

/* The installed Debian acpi-call-dkms tree (/usr/src/acpi-call-VERSION), whatever its
 * version; NULL if none. CI installs it (.ci/setup), so callers fail without it. */
const char *test_acpi_call_dir(void);

/* Absolute path of a file in the source tree / build tree. Caller frees. */
char *test_source_path(const char *rel);
char *test_build_path(const char *rel);

/* Write a file below dir_fd, creating parent directories. */
void test_write_file(int dir_fd, const char *path, const char *content);
/* Run a shell command, return its exit status (or -1). */
int test_system(const char *format, ...) _printf_(1, 2);
