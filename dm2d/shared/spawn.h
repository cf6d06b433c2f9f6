/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one way dm2 starts a program: fork, set the child up, exec. The child starts clean:
 * default signal dispositions and an empty signal mask (sd-event blocks signals in the
 * parent), only stdin, stdout and stderr open, and optionally a signal when its parent
 * dies. A program that cannot be found or run is an error of spawn() itself (its errno,
 * e.g. -ENOENT or -EACCES), not an exit status the caller has to decode.
 *
 * Hand-written rather than posix_spawn(): that cannot set a parent-death signal.
 */

#include <sys/types.h>

#include "shared/macro.h"

/* Values for the stdio fields besides an fd of ours. */
#define SPAWN_INHERIT (-1) /* the child gets our stdin/stdout/stderr */
#define SPAWN_NULL (-2)	   /* /dev/null */
#define SPAWN_CAPTURE (-3) /* spawn_run() only: into the output it returns */

struct spawn_options {
	/* The program: with a slash, run as it is; without, looked up in the PATH= of envp
	 * (or our $PATH, or the usual directories). NULL: argv[0]. */
	const char *program;
	char *const *argv;
	char *const *envp; /* NULL: our environment */
	const char *cwd;   /* NULL: ours */
	/* Each an fd, SPAWN_INHERIT or SPAWN_NULL: set all three (0 is an fd, our stdin). */
	int stdin_fd, stdout_fd, stderr_fd;
	int death_signal;	/* sent to the child when we die (PR_SET_PDEATHSIG); 0: none */
	bool new_process_group; /* so one kill(-pid) reaches everything the child starts */
	const int *keep_fds;	/* these (> 2) stay open in the child, at the same numbers */
	size_t n_keep_fds;
};

/* Start the program; its pid in *ret_pid. The caller reaps it (spawn_wait(), or
 * sd_event_add_child()). */
int spawn(const struct spawn_options *o, pid_t *ret_pid);
/* Wait for the child, retrying on EINTR; *ret_status (may be NULL) as from waitpid(). */
int spawn_wait(pid_t pid, int *ret_status);
/* spawn() and spawn_wait(), collecting what the child writes to the fds that are
 * SPAWN_CAPTURE (stdout and stderr interleaved, as a terminal would show them): at most
 * max_output bytes of it, NUL-terminated, in *ret_output (may be NULL). */
int spawn_run(const struct spawn_options *o, size_t max_output, char **ret_output,
	      int *ret_status);
