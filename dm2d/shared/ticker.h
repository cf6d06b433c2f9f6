/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/*
 * The one updating line of a long build on a terminal: a child process that, from one
 * second on, rewrites "  [M:SS] LAST LINE OF THE LOG" on tty_fd once a second (control
 * characters dropped, cut to the terminal's width), until ticker_stop() kills it and
 * clears the line. A child, not a thread or a timer, because the build itself blocks the
 * caller. Callers start it only when tty_fd is a terminal.
 */
struct ticker {
	pid_t pid;
	int tty_fd;
};

/* 0 and a running ticker, or < 0 (nothing started: a ticker is never worth failing for).
 */
int ticker_start(struct ticker *t, int tty_fd, int log_dir_fd, const char *log_path);
void ticker_stop(struct ticker *t);
