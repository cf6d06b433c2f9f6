/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "shared/macro.h"

/*
 * The control socket ROOT/run/dm2/control (AF_UNIX stream). One request line per connection,
 * words separated by single spaces (recipe names and kernel releases never contain spaces):
 *
 *   TRIGGER <KVER|*> <WAIT 0|1> <TIMEOUT_SEC>  rescan one kernel (or all) now, queue what is
 *                                             missing, retry failed jobs; with WAIT, wait until
 *                                             that kernel's jobs and its depmod are done
 *   INSTALL <KVER> <TIMEOUT_SEC> NAME...      (re)build and install these recipes, and wait
 *   BUILD <KVER> <TIMEOUT_SEC> <NAME> [VERSION|-] [json|text]
 *                                             run `dm2 build NAME -k KVER [--version VERSION]
 *                                             [--json]` as a child, once one of the Jobs=
 *                                             slots is free; the queue and the state db are
 *                                             not touched. A client that hangs up kills it.
 *   STATUS                                    the daemon's queue
 *
 * The daemon answers with lines:
 *   JOB <recipe> <kver> <state> [reason]      a job reached a final state (or, for STATUS, is
 *                                             in that state)
 *   MSG <text>                                progress for humans
 *   OUT <line>                                BUILD: a line the build wrote on its stdout (the
 *                                             client prints it on stdout as it is)
 *   LOG <line>                                BUILD: the same for its stderr
 *   DONE <exit code> [text]                   last line; the exit code for the client (0 all
 *                                             installed or skipped, 5 something failed, 9 the
 *                                             kernel's tree is incomplete, 12 timed out or
 *                                             dm2d stopped first; for BUILD the exit status
 *                                             of `dm2 build`)
 *   ERR <exit code> <message>                 request refused (11: permission denied, ...)
 *   NORECIPE <name>                           INSTALL, BUILD: last line; the daemon has no
 *                                             such recipe (the client reads other recipe
 *                                             directories, e.g. with --recipes), nothing was
 *                                             done: the client may do the work itself
 *
 * Only peers with uid 0 (SO_PEERCRED) may TRIGGER, INSTALL or BUILD; anyone may ask for
 * STATUS. The request line must arrive within 10 s of connecting (else "ERR 2 no request
 * line ..."); a connection over dm2d's limits (per user, in all) gets "ERR 12 dm2d has too
 * many control connections open" at once. TIMEOUT_SEC above a week counts as a week.
 */

#define CONTROL_LINE_MAX 4096
/* The longest answer line a client takes (a build's --json result is one line). */
#define CONTROL_REPLY_MAX (4 * CONTROL_LINE_MAX)

/* The daemon's end is daemon/control-server.c; the request handler daemon/control-request.c. */

/* ---- client side (dm2 trigger, and build/install forwarding) ---- */

/* Parse one request line into words (split at spaces). */
int control_split(const char *line, char ***ret);
/* Can w be sent as one word (a kernel release, recipe name or version)? Not empty, not
 * "." or "..", printable, no spaces and no slashes. */
bool control_word_ok(const char *w);

/*
 * Connect to the daemon of ctx's root. -ENOENT / -ECONNREFUSED when no daemon listens.
 */
int control_connect(struct dm2_context *ctx, int *ret_fd);

/*
 * Send one request and read the answer; JOB and MSG lines are printed to stdout for humans
 * ("recipe kver: state (reason)"), OUT and LOG lines as they are to stdout and stderr, or
 * everything is passed on raw (to stdout) when raw is set. Returns the exit code
 * from DONE/ERR (>= 0), or a negative errno when the conversation broke. timeout_usec bounds
 * the whole conversation on the client side too (0 = unbounded); on expiry returns EXIT_BUSY.
 */
int control_request(int fd, const char *request, uint64_t timeout_usec, bool raw);
/* control_request()'s answer to NORECIPE. */
#define CONTROL_NO_RECIPE (-ESRCH)

/*
 * For `dm2 install`: if a daemon runs for ctx's root, ask it to install the recipes
 * names for kver and wait (timeout_usec, 0 = unbounded); *ret_exit gets the exit code the CLI
 * should return. -ENOENT when no daemon runs (then the CLI runs the engine itself).
 */
int control_try_forward(struct dm2_context *ctx, char **names, const char *kver,
			uint64_t timeout_usec, int *ret_exit);

/*
 * The same for `dm2 build`, waiting as long as the build takes: the daemon runs it
 * (BUILD), its stdout and stderr lines are printed on ours, *ret_exit gets its exit code.
 * -ENOENT also when a word cannot be sent (the CLI then runs the build itself and reports
 * it).
 */
int control_try_forward_build(struct dm2_context *ctx, const char *name, const char *kver,
			      const char *version, bool json, int *ret_exit);
