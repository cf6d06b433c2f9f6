/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The strip stage, Strip= (DKMS STRIP[]): `strip -g` (llvm-strip for clang-built kernels)
 * on a private copy of each module, before it is signed: stripping a signed module would
 * break the signature, and the copy in the build cache stays as built. A failure is a
 * failure of the build.
 */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeline/job-internal.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/spawn.h"
#include "shared/util.h"

/* Run tool -g on abs with a clean environment, its stderr in the build log. Returns its
 * wait status. */
static int run_strip(struct job *j, const char *tool, const char *abs, int *ret_status)
{
	static const char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
					   "LC_ALL=C", NULL};
	_cleanup_close_ int log = open(j->log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	pid_t pid;
	int r;

	r = spawn(&(const struct spawn_options){
			  .argv = (char *const[]){(char *) tool, (char *) "-g", (char *) abs, NULL},
			  .envp = (char *const *) envp,
			  .stdin_fd = SPAWN_NULL,
			  .stdout_fd = SPAWN_NULL,
			  .stderr_fd = log >= 0 ? log : SPAWN_NULL,
		  },
		  &pid);
	if (r == -ENOENT) {
		/* Not installed: the shell's 127, which fail_strip() words as such. */
		*ret_status = W_EXITCODE(127, 0);
		return 0;
	}
	if (r < 0)
		return r;
	return spawn_wait(pid, ret_status);
}

static int fail_strip(struct job *j, const struct job_module *m, const char *tool,
		      int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return job_failf(j, -ENOENT,
				 "'%s' not found (install %s) or set Strip=no", tool,
				 streq(tool, "strip") ? "binutils" : "llvm");
	return job_failf(j, -EPROTO, "'%s -g %s' failed (%s %d)", tool, m->name,
			 WIFEXITED(status) ? "exit status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* The module's data is replaced by its stripped copy. */
static int strip_module(struct job *j, struct job_module *m)
{
	const char *tool = kbw_kernel_llvm(j->kernel) ? "llvm-strip" : "strip";
	_cleanup_free_ char *rel = NULL, *abs = NULL, *out = NULL;
	size_t out_size;
	int status, r;

	rel = strjoin(j->work, "/strip-", m->name);
	if (!rel)
		return log_oom();
	abs = context_path(j->ctx, rel);
	if (!abs)
		return log_oom();
	r = write_file_atomic_at(j->ctx->root_fd, rel, m->data, m->size, 0644);
	if (r >= 0)
		r = run_strip(j, tool, abs, &status);
	if (r >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		(void) unlinkat(j->ctx->root_fd, rel, 0);
		return fail_strip(j, m, tool, status);
	}
	if (r >= 0)
		r = read_full_file_at(j->ctx->root_fd, rel, 0, &out, &out_size);
	(void) unlinkat(j->ctx->root_fd, rel, 0);
	if (r < 0)
		return job_failf(j, r, "stripping '%s' failed: %m", m->name);
	free(m->data);
	m->data = TAKE_PTR(out);
	m->size = out_size;
	return 0;
}

int stage_strip(struct job *j)
{
	for (size_t i = 0; i < j->n_modules; i++) {
		/* A built module the recipe does not list keeps the default, Strip=yes.
		 */
		int r = !j->modules[i].rm || j->modules[i].rm->strip
				? strip_module(j, &j->modules[i])
				: 0;

		if (r != 0)
			return r;
	}
	return 0;
}
