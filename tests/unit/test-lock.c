/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* core/lock: flock() locks under ROOT/var/lib/dm2/locks/, between processes. */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "core/context.h"
#include "core/lock.h"
#include "shared/util.h"
#include "tests.h"

#define MSEC 1000ULL

struct fixture {
	struct test_root *t;
	struct dm2_context *ctx;
};

static void fixture_init(struct fixture *f)
{
	f->t = test_root_new();
	ASSERT_OK(context_new(f->t->path, &f->ctx));
}

static void fixture_done(struct fixture *f)
{
	context_free(f->ctx);
	test_root_free(f->t);
}

/* Wait for a child and return its exit status (-1 if it did not exit). */
static int child_status(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A second open of the same lock file is a second taker, even in one process. */
static void test_exclusive(void **state)
{
	_cleanup_close_ int fd = -EBADF, fd2 = -EBADF;
	struct fixture f = {};
	uint64_t t0;

	fixture_init(&f);
	ASSERT_OK(lock_kernel(f.ctx, f.t->kver, 0, &fd));
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* builds must not inherit it */
	assert_int_equal(
		faccessat(f.t->fd, DM2_LOCK_DIR "/" TEST_FAKE_KVER ".lock", F_OK, 0), 0);

	t0 = now_mono_usec();
	ASSERT_ERR(lock_kernel(f.ctx, f.t->kver, 0, &fd2), -EBUSY);
	assert_true(now_mono_usec() - t0 < 40 * MSEC); /* 0: no wait at all */
	assert_int_equal(fd2, -EBADF);		       /* untouched on failure */

	/* Another kernel's lock is independent. */
	ASSERT_OK(lock_kernel(f.ctx, "6.1.0-other", 0, &fd2));
	fd2 = safe_close(fd2);

	/* Job locks are per recipe x kernel, and apart from the kernel lock. */
	ASSERT_OK(lock_job(f.ctx, "a", f.t->kver, 0, &fd2));
	{
		_cleanup_close_ int a2 = -EBADF, b = -EBADF;

		ASSERT_ERR(lock_job(f.ctx, "a", f.t->kver, 0, &a2), -EBUSY);
		ASSERT_OK(lock_job(f.ctx, "b", f.t->kver, 0, &b));
		ASSERT_OK(lock_job(f.ctx, "a", "6.1.0-other", 0, &a2));
	}
	assert_int_equal(
		faccessat(f.t->fd, DM2_LOCK_DIR "/" TEST_FAKE_KVER "@a.lock", F_OK, 0),
		0);
	fixture_done(&f);
}

/* A bounded wait fails with -EBUSY after about the timeout; a waiting taker gets the lock
 * as soon as the holder lets go. */
static void test_timeout(void **state)
{
	int fd = -EBADF, p[2];
	struct fixture f = {};
	pid_t pid;
	char c;

	fixture_init(&f);
	ASSERT_OK(lock_kernel(f.ctx, f.t->kver, 0, &fd));
	assert_int_equal(pipe(p), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int cfd = -EBADF, r;
		uint64_t t0 = now_mono_usec(), waited;

		/* Not the parent's lock: drop the inherited open file description. */
		safe_close(fd);
		r = lock_kernel(f.ctx, f.t->kver, 200 * MSEC, &cfd);
		waited = now_mono_usec() - t0;
		if (r != -EBUSY || waited < 190 * MSEC || waited > 2000 * MSEC)
			_exit(1);
		(void) !write(p[1], "x", 1);
		/* The parent lets go after about 100 ms: taken well before 10 s. */
		t0 = now_mono_usec();
		r = lock_kernel(f.ctx, f.t->kver, 10000 * MSEC, &cfd);
		_exit(r < 0 ? 2 : now_mono_usec() - t0 > 5000 * MSEC ? 3 : 0);
	}
	p[1] = safe_close(p[1]); /* so that read() sees the child's exit */
	assert_int_equal(read(p[0], &c, 1), 1);
	usleep(100 * 1000);
	safe_close(fd);
	assert_int_equal(child_status(pid), 0);
	safe_close(p[0]);
	fixture_done(&f);
}

static void test_released_on_close(void **state)
{
	_cleanup_close_ int fd = -EBADF;
	struct fixture f = {};
	pid_t pid;

	fixture_init(&f);
	ASSERT_OK(lock_job(f.ctx, "r", f.t->kver, 0, &fd));
	fd = safe_close(fd);
	/* Another process takes it at once. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int cfd = -EBADF;

		_exit(lock_job(f.ctx, "r", f.t->kver, 0, &cfd) < 0 ? 1 : 0);
	}
	assert_int_equal(child_status(pid), 0);
	/* And again here, after that process ended. */
	ASSERT_OK(lock_job(f.ctx, "r", f.t->kver, 0, &fd));
	fixture_done(&f);
}

/* A holder that dies (even by SIGKILL, without closing anything) leaves no stale lock. */
static void test_released_on_exit(void **state)
{
	_cleanup_close_ int fd = -EBADF;
	struct fixture f = {};
	int p[2];
	pid_t pid;
	char c;

	fixture_init(&f);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int cfd = -EBADF;

		/* Gone with this test program even when an assertion ends it early. */
		(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (lock_kernel(f.ctx, f.t->kver, 0, &cfd) < 0)
			_exit(1);
		(void) !write(p[1], "x", 1);
		for (;;)
			pause();
	}
	p[1] = safe_close(p[1]); /* so that read() sees the child's exit */
	assert_int_equal(read(p[0], &c, 1), 1);
	ASSERT_ERR(lock_kernel(f.ctx, f.t->kver, 0, &fd), -EBUSY);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(child_status(pid), -1);
	ASSERT_OK(lock_kernel(f.ctx, f.t->kver, 0, &fd));
	safe_close(p[0]);
	fixture_done(&f);
}

static void test_bad_names(void **state)
{
	struct fixture f = {};
	int fd = -EBADF;

	fixture_init(&f);
	ASSERT_ERR(lock_acquire(f.ctx, "../escape", 0, &fd), -EINVAL);
	ASSERT_ERR(lock_acquire(f.ctx, "a/b", 0, &fd), -EINVAL);
	ASSERT_ERR(lock_acquire(f.ctx, "/abs", 0, &fd), -EINVAL);
	ASSERT_ERR(lock_acquire(f.ctx, "", 0, &fd), -EINVAL);
	ASSERT_ERR(lock_job(f.ctx, "x/../../y", f.t->kver, 0, &fd), -EINVAL);
	ASSERT_ERR(lock_kernel(f.ctx, "../../etc/passwd", 0, &fd), -EINVAL);
	assert_int_equal(fd, -EBADF);
	fixture_done(&f);
}

static void test_timeout_from_env(void **state)
{
	assert_int_equal(unsetenv("DM2_LOCK_TIMEOUT_SEC"), 0);
	assert_int_equal(lock_timeout_usec(7), 7);
	assert_int_equal(setenv("DM2_LOCK_TIMEOUT_SEC", "3", 1), 0);
	assert_int_equal(lock_timeout_usec(7), 3000000);
	assert_int_equal(setenv("DM2_LOCK_TIMEOUT_SEC", "0", 1), 0);
	assert_int_equal(lock_timeout_usec(7), 0);
	/* Garbage or an overflowing value: the default. */
	assert_int_equal(setenv("DM2_LOCK_TIMEOUT_SEC", "soon", 1), 0);
	assert_int_equal(lock_timeout_usec(7), 7);
	assert_int_equal(setenv("DM2_LOCK_TIMEOUT_SEC", "18446744073709551615", 1), 0);
	assert_int_equal(lock_timeout_usec(7), 7);
	assert_int_equal(unsetenv("DM2_LOCK_TIMEOUT_SEC"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exclusive),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_released_on_close),
		cmocka_unit_test(test_released_on_exit),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_timeout_from_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
