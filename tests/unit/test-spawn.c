/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shared/spawn.c (and find_program(), which it uses), and patch_apply() on top of it: real
 * programs, no kernel needed. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pipeline/patch.h"
#include "shared/fs-util.h"
#include "shared/spawn.h"
#include "shared/util.h"
#include "tests.h"

static char dir[PATH_MAX];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/dm2-spawn-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	return rm_rf_at(AT_FDCWD, dir);
}

/* Run sh -c script with stdout and stderr captured. */
static int run_sh(const char *script, char *const *envp, const char *cwd, int stdin_fd,
		  char **ret_output, int *ret_status)
{
	const struct spawn_options o = {
		.argv = (char *const[]){(char *) "sh", (char *) "-c", (char *) script, NULL},
		.envp = envp,
		.cwd = cwd,
		.stdin_fd = stdin_fd,
		.stdout_fd = SPAWN_CAPTURE,
		.stderr_fd = SPAWN_CAPTURE,
	};

	return spawn_run(&o, 4096, ret_output, ret_status);
}

static void test_output_and_status(void **state)
{
	_cleanup_free_ char *out = NULL;
	int status;

	ASSERT_OK(run_sh("echo out; echo err >&2; exit 3", NULL, NULL, SPAWN_NULL, &out, &status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	assert_string_equal(out, "out\nerr\n");
}

static void test_output_capped(void **state)
{
	_cleanup_free_ char *out = NULL;
	int status;

	/* 1 MiB written, 4 KiB kept: the child must not block on the full pipe. */
	ASSERT_OK(run_sh("head -c 1048576 /dev/zero | tr '\\0' x", NULL, NULL, SPAWN_NULL, &out,
			 &status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(strlen(out), 4096);
}

static void test_env_and_cwd(void **state)
{
	char *const envp[] = {(char *) "FOO=bar", (char *) "PATH=/usr/bin:/bin", NULL};
	_cleanup_free_ char *out = NULL, *want = NULL;
	int status;

	ASSERT_OK(run_sh("printf '%s %s %s' \"$FOO\" \"$(pwd)\" \"${HOME:-unset}\"", envp, dir,
			 SPAWN_NULL, &out, &status));
	want = strdup_printf("bar %s unset", dir);
	assert_string_equal(out, want);
}

static void test_stdin_fd(void **state)
{
	_cleanup_free_ char *path = path_join(dir, "in"), *out = NULL;
	_cleanup_close_ int fd = -EBADF;
	int status;

	ASSERT_OK(write_file_atomic_at(AT_FDCWD, path, "from a file\n", 12, 0644));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ASSERT_OK(run_sh("cat", NULL, NULL, fd, &out, &status));
	assert_string_equal(out, "from a file\n");
	/* /dev/null as stdin: EOF at once. */
	out = mfree(out);
	ASSERT_OK(run_sh("cat; echo end", NULL, NULL, SPAWN_NULL, &out, &status));
	assert_string_equal(out, "end\n");
}

static void test_other_fds_closed(void **state)
{
	_cleanup_close_ int leak = -EBADF, null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *out = NULL, *script = NULL;
	int status;

	/* An fd without O_CLOEXEC, as a careless library would leave one. */
	assert_true(null >= 0);
	leak = fcntl(null, F_DUPFD, 37);
	assert_int_equal(leak, 37);
	script = strdup_printf("test -e /proc/self/fd/%d && echo open || echo closed", leak);
	ASSERT_OK(run_sh(script, NULL, NULL, SPAWN_NULL, &out, &status));
	assert_string_equal(out, "closed\n");
}

/* keep_fds stay open (without O_CLOEXEC) at their numbers, the others still close. */
static void test_kept_fds(void **state)
{
	_cleanup_close_ int a = -EBADF, b = -EBADF, c = -EBADF;
	_cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *out = NULL, *script = NULL;
	int status, keep[2];

	assert_true(null >= 0);
	a = fcntl(null, F_DUPFD_CLOEXEC, 40);
	b = fcntl(null, F_DUPFD, 41);
	c = fcntl(null, F_DUPFD_CLOEXEC, 42);
	assert_true(a == 40 && b == 41 && c == 42);
	keep[0] = c;
	keep[1] = a;
	script = strdup_printf("for f in %d %d %d; do test -e /proc/self/fd/$f && echo $f; done",
			       a, b, c);
	ASSERT_OK(spawn_run(&(struct spawn_options){
				    .argv = (char *const[]){(char *) "sh", (char *) "-c", script,
							    NULL},
				    .stdin_fd = SPAWN_NULL,
				    .stdout_fd = SPAWN_CAPTURE,
				    .stderr_fd = SPAWN_CAPTURE,
				    .keep_fds = keep,
				    .n_keep_fds = 2,
			    },
			    4096, &out, &status));
	assert_string_equal(out, "40\n42\n");
}

/* With our stdout closed, the capture pipe may get fd 1 itself: it must still work. */
static void test_low_fds(void **state)
{
	_cleanup_free_ char *out = NULL;
	int saved = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3), status;

	assert_true(saved >= 0);
	assert_int_equal(close(STDOUT_FILENO), 0);
	int r = run_sh("echo hi; echo there >&2", NULL, NULL, SPAWN_NULL, &out, &status);
	assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
	close(saved);
	ASSERT_OK(r);
	assert_string_equal(out, "hi\nthere\n");
}

static void test_exec_errors(void **state)
{
	_cleanup_free_ char *noexec = path_join(dir, "noexec"), *garbage = path_join(dir, "junk");
	pid_t pid;

	ASSERT_ERR(spawn(&(const struct spawn_options){.argv = (char *const[]){
								 (char *) "dm2-no-such-program", NULL},
						       .stdin_fd = SPAWN_NULL,
						       .stdout_fd = SPAWN_NULL,
						       .stderr_fd = SPAWN_NULL},
			 &pid),
		   -ENOENT);
	/* Not executable at all, and executable but not a program: the exec's own errno comes
	 * back from the child. */
	ASSERT_OK(write_file_atomic_at(AT_FDCWD, noexec, "x", 1, 0644));
	ASSERT_ERR(spawn(&(const struct spawn_options){.argv = (char *const[]){noexec, NULL},
						       .stdin_fd = SPAWN_NULL,
						       .stdout_fd = SPAWN_NULL,
						       .stderr_fd = SPAWN_NULL},
			 &pid),
		   -EACCES);
	ASSERT_OK(write_file_atomic_at(AT_FDCWD, garbage, "\x7f\x45\x4c\x46junk", 8, 0755));
	ASSERT_ERR(spawn(&(const struct spawn_options){.argv = (char *const[]){garbage, NULL},
						       .stdin_fd = SPAWN_NULL,
						       .stdout_fd = SPAWN_NULL,
						       .stderr_fd = SPAWN_NULL},
			 &pid),
		   -ENOEXEC);
	/* A bad cwd is reported the same way. */
	ASSERT_ERR(spawn(&(const struct spawn_options){.argv = (char *const[]){(char *) "true",
									       NULL},
						       .cwd = "/nonexistent/dm2",
						       .stdin_fd = SPAWN_NULL,
						       .stdout_fd = SPAWN_NULL,
						       .stderr_fd = SPAWN_NULL},
			 &pid),
		   -ENOENT);
}

static void test_process_group(void **state)
{
	pid_t pid;
	int status;

	ASSERT_OK(spawn(&(const struct spawn_options){.argv = (char *const[]){(char *) "sleep",
									      (char *) "5", NULL},
						      .stdin_fd = SPAWN_NULL,
						      .stdout_fd = SPAWN_NULL,
						      .stderr_fd = SPAWN_INHERIT,
						      .new_process_group = true},
			&pid));
	assert_int_equal(getpgid(pid), pid);
	assert_int_equal(kill(-pid, SIGTERM), 0);
	ASSERT_OK(spawn_wait(pid, &status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);
}

/* The child of a process that dies gets the death signal. We become the subreaper so that
 * the orphan is ours to reap and its status can be checked. */
static void test_death_signal(void **state)
{
	pid_t middle, pid = 0;
	int p[2], status;

	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	middle = fork();
	assert_true(middle >= 0);
	if (middle == 0) {
		pid_t child;

		if (spawn(&(const struct spawn_options){.argv = (char *const[]){(char *) "sleep",
										(char *) "5", NULL},
							.stdin_fd = SPAWN_NULL,
							.stdout_fd = SPAWN_NULL,
							.stderr_fd = SPAWN_NULL,
							.death_signal = SIGKILL},
			  &child) < 0)
			_exit(1);
		(void) loop_write(p[1], &child, sizeof(child));
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &pid, sizeof(pid)), sizeof(pid));
	close(p[0]);
	ASSERT_OK(spawn_wait(middle, &status));
	assert_int_equal(WEXITSTATUS(status), 0);
	ASSERT_OK(spawn_wait(pid, &status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

static void test_find_program(void **state)
{
	_cleanup_free_ char *path = NULL, *sub = path_join(dir, "bin");
	_cleanup_free_ char *search = NULL, *tool = NULL;

	ASSERT_OK(find_program("/nonexistent:/usr/bin:/bin", "sh", &path));
	assert_true(endswith(path, "/sh"));
	ASSERT_ERR(find_program("/nonexistent", "sh", NULL), -ENOENT);
	/* Empty entries (the current directory to a shell) are not searched. */
	ASSERT_ERR(find_program("::", "sh", NULL), -ENOENT);
	/* A directory of the right name is no program. */
	ASSERT_OK(mkdir_p_at(AT_FDCWD, sub, 0755));
	search = strdup_printf("%s:/usr/bin:/bin", dir);
	ASSERT_ERR(find_program(search, "bin", NULL), -ENOENT);
	ASSERT_ERR(find_program(NULL, sub, NULL), -EACCES);
	ASSERT_OK(find_program(NULL, "/bin/sh", &tool));
	assert_string_equal(tool, "/bin/sh");
	ASSERT_ERR(find_program(NULL, "", NULL), -EINVAL);
}

static void write_tree(const char *name, const char *content)
{
	_cleanup_free_ char *p = path_join(dir, name);

	ASSERT_OK(write_file_atomic_at(AT_FDCWD, p, content, strlen(content), 0644));
}

static void test_patch(void **state)
{
	_cleanup_free_ char *src = path_join(dir, "src"), *good = path_join(dir, "good.patch");
	_cleanup_free_ char *bad = path_join(dir, "bad.patch"), *reason = NULL, *text = NULL;
	_cleanup_free_ char *file = path_join(dir, "src/hello.c");

	ASSERT_OK(mkdir_p_at(AT_FDCWD, src, 0755));
	write_tree("src/hello.c", "int a;\nint b;\nint c;\n");
	write_tree("good.patch", "--- a/hello.c\n+++ b/hello.c\n@@ -1,3 +1,3 @@\n int a;\n"
				 "-int b;\n+int bee;\n int c;\n");
	write_tree("bad.patch", "--- a/hello.c\n+++ b/hello.c\n@@ -1,3 +1,3 @@\n int x;\n"
				"-int y;\n+int why;\n int z;\n");
	ASSERT_OK(patch_apply(src, good, &reason));
	ASSERT_OK(read_full_file_at(AT_FDCWD, file, 0, &text, NULL));
	assert_string_equal(text, "int a;\nint bee;\nint c;\n");
	ASSERT_ERR(patch_apply(src, bad, &reason), -ENOEXEC);
	assert_non_null(reason);
	if (!strstr(reason, "'bad.patch' does not apply: hello.c: Hunk #1 FAILED"))
		fail_msg("reason: %s", reason);
	/* Applying the good one again: already applied, said so. */
	reason = mfree(reason);
	ASSERT_ERR(patch_apply(src, good, &reason), -ENOEXEC);
	if (!strstr(reason, "'good.patch' does not apply"))
		fail_msg("reason: %s", reason);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_and_status),
		cmocka_unit_test(test_output_capped),
		cmocka_unit_test(test_env_and_cwd),
		cmocka_unit_test(test_stdin_fd),
		cmocka_unit_test(test_other_fds_closed),
		cmocka_unit_test(test_kept_fds),
		cmocka_unit_test(test_low_fds),
		cmocka_unit_test(test_exec_errors),
		cmocka_unit_test(test_process_group),
		cmocka_unit_test(test_death_signal),
		cmocka_unit_test(test_find_program),
		cmocka_unit_test(test_patch),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
