/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Applying recipe patches with GNU patch, run as a child process. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "pipeline/patch.h"
#include "shared/log.h"
#include "shared/util.h"

/* Output beyond this is dropped; the reason only needs the first failing hunk. */
#define PATCH_OUTPUT_MAX (64 * 1024)

static int run_patch(const char *dir, const char *patch_path, char **ret_output,
		     int *ret_status)
{
	char *const argv[] = {
		(char *) "patch",
		(char *) "-p1",
		(char *) "--batch",
		(char *) "--forward",
		(char *) "--no-backup-if-mismatch",
		(char *) "--reject-file=-",
		(char *) "-d",
		(char *) dir,
		(char *) "-i",
		(char *) patch_path,
		NULL,
	};
	/* A clean environment: no POSIXLY_CORRECT, PATCH_*, or locale changing the
	 * output. */
	char *const envp[] = {
		(char *) "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		(char *) "LC_ALL=C",
		NULL,
	};
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	int pipefd[2], status;
	pid_t pid;

	out = malloc(PATCH_OUTPUT_MAX + 1);
	if (!out)
		return -ENOMEM;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		safe_close(pipefd[0]);
		safe_close(pipefd[1]);
		return r;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
		    dup2(pipefd[1], STDOUT_FILENO) < 0 ||
		    dup2(pipefd[1], STDERR_FILENO) < 0)
			_exit(127);
		(void) signal(SIGPIPE, SIG_DFL);
		execve("/usr/bin/patch", argv, envp);
		execvpe("patch", argv, envp);
		_exit(127);
	}
	safe_close(pipefd[1]);
	for (;;) {
		char buf[4096];
		ssize_t k = read(pipefd[0], buf, sizeof(buf));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (len < PATCH_OUTPUT_MAX) {
			size_t c = MIN((size_t) k, PATCH_OUTPUT_MAX - len);
			memcpy(out + len, buf, c);
			len += c;
		}
	}
	out[len] = '\0';
	safe_close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	*ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	*ret_output = TAKE_PTR(out);
	return 0;
}

/* From patch's output: the file being patched at the first failed hunk, and that line. */
static char *failure_reason(const char *patch_path, char *output, int status)
{
	const char *name =
		strrchr(patch_path, '/') ? strrchr(patch_path, '/') + 1 : patch_path;
	char *file = NULL, *hunk = NULL, *last = NULL, *r = NULL;
	int k;

	for (char *line = output, *next; line && *line; line = next) {
		char *v;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		line = strstrip(line);
		if (isempty(line))
			continue;
		if ((v = startswith(line, "patching file "))) {
			file = v;
			continue;
		}
		if (startswith(line, "Hunk #") && strstr(line, "FAILED")) {
			hunk = line;
			break;
		}
		if (!last && !startswith(line, "Hunk #"))
			last = line; /* e.g. "Reversed (or previously applied) patch
					detected!" */
	}
	if (hunk)
		k = asprintf(&r, "patch '%s' does not apply: %s: %s", name, strna(file),
			     hunk);
	else if (last)
		k = asprintf(&r, "patch '%s' does not apply: %s", name, last);
	else
		k = asprintf(&r,
			     "patch '%s' does not apply (patch exited with status %i)",
			     name, status);
	return k < 0 ? NULL : r;
}

int patch_apply(const char *dir, const char *patch_path, char **ret_reason)
{
	_cleanup_free_ char *output = NULL;
	int status, r;

	if (access(patch_path, R_OK) < 0) {
		r = -errno;
		if (ret_reason &&
		    asprintf(ret_reason, "patch '%s': %s", patch_path, strerror(-r)) < 0)
			*ret_reason = NULL;
		return r;
	}
	r = run_patch(dir, patch_path, &output, &status);
	if (r < 0)
		return r;
	if (status == 0)
		return 0;
	log_debug("patch '%s' failed with status %i:\n%s", patch_path, status, output);
	if (status == 127) {
		if (ret_reason &&
		    asprintf(ret_reason, "cannot run GNU patch for '%s'", patch_path) < 0)
			*ret_reason = NULL;
		return -ENOEXEC;
	}
	if (ret_reason)
		*ret_reason = failure_reason(patch_path, output, status);
	return -ENOEXEC;
}
