/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

/* dm2d's children (dm2-engine for jobs, builds and depmod): started with a clean signal
 * mask in their own process group, output on pipes read line by line. */

/* A pipe for a child's output: only our end (p[0]) is non-blocking, so a child that writes
 * faster than we read waits instead of losing lines to EAGAIN. */
int child_output_pipe(int p[2]);

struct jobserver;
/* The make jobserver pool every child gets (fds kept, $DM2_JOBSERVER), or NULL. */
void child_set_jobserver(const struct jobserver *js);

/* Run args[0] with args; its stdout and stderr go to out_fd and err_fd (-EBADF: ours),
 * stdin is /dev/null when out_fd is given. It never talks back to dm2d (DM2_NO_FORWARD). */
int child_spawn(char **args, int out_fd, int err_fd, pid_t *ret_pid);

/* child_spawn(), and on_exit when it exits; the returned source owns the child (freeing
 * it kills and reaps the child). */
int child_spawn_watched(sd_event *e, char **args, int out_fd, int err_fd,
			sd_event_child_handler_t on_exit, void *userdata, pid_t *ret_pid,
			sd_event_source **ret_child);

/* Read what the pipe fd holds and hand each line to fn (one longer than size - 1 bytes in
 * pieces); the *n bytes of an unfinished line wait in line. Returns 1 while the pipe is
 * open; at its end (or an error) the unfinished line is handed on too, and 0 returned.
 * With drain (the child exited), reads all there is now and ends there: a grandchild that
 * still holds the pipe open is not waited for. */
int child_read_lines(int fd, char *line, size_t size, size_t *n, bool drain,
		     void (*fn)(const char *line, void *userdata), void *userdata);
