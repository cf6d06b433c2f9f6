/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Applying recipe patches with GNU patch, run as a child process. */
#include <sys/wait.h>

#include "pipeline/patch.h"
#include "shared/log.h"
#include "shared/spawn.h"
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
	const struct spawn_options o = {
		.argv = argv,
		.envp = envp,
		.stdin_fd = SPAWN_NULL,
		.stdout_fd = SPAWN_CAPTURE,
		.stderr_fd = SPAWN_CAPTURE,
	};
	int status, r;

	r = spawn_run(&o, PATCH_OUTPUT_MAX, ret_output, &status);
	if (r < 0)
		return r;
	*ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
	if (r == -ENOENT || r == -EACCES || r == -ENOEXEC) {
		if (ret_reason)
			*ret_reason = strdup_printf("cannot run GNU patch for '%s': %s", patch_path,
						    r == -ENOENT ? "not installed" : strerror(-r));
		return -ENOEXEC;
	}
	if (r < 0)
		return r;
	if (status == 0)
		return 0;
	log_debug("patch '%s' failed with status %i:\n%s", patch_path, status, output);
	if (ret_reason)
		*ret_reason = failure_reason(patch_path, output, status);
	return -ENOEXEC;
}
