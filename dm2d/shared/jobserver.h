/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A GNU make jobserver pool: a pipe holding one byte per token. dm2d owns one for all its
 * builds and passes it to each engine child as DM2_JOBSERVER=R,W (inherited fds); an
 * engine without one makes its own. libkbuild-wrap hands each build a pipe of its own
 * fed from this one (see kbw_build_params.jobserver).
 */
#include <stdbool.h>

struct jobserver {
	int fds[2];
	unsigned tokens;
};
#define JOBSERVER_NULL ((struct jobserver){.fds = {-1, -1}})
#define JOBSERVER_ENV "DM2_JOBSERVER"

/* A new pool (close-on-exec) of tokens (at least 1). */
int jobserver_new(unsigned tokens, struct jobserver *ret);
void jobserver_done(struct jobserver *js);
static inline bool jobserver_valid(const struct jobserver *js)
{
	return js->fds[0] >= 0;
}
/* Top the pool up to its tokens again: a process killed while holding tokens cannot give
 * them back itself. With idle (no process uses the pool), tokens beyond the size are
 * taken out too (a top-up while others held tokens overfills it until then). The number
 * added, or < 0. */
int jobserver_refill(struct jobserver *js, bool idle);
/* Change the size: new tokens at once, fewer as the next refill finds them. */
int jobserver_resize(struct jobserver *js, unsigned tokens);
/* "DM2_JOBSERVER=R,W" for a child that keeps both fds. */
char *jobserver_env(const struct jobserver *js);
/* The pool named by $DM2_JOBSERVER: 0 and *ret set, 0 and ret untouched when unset,
 * -EINVAL when it names no pipe. */
int jobserver_from_env(struct jobserver *ret);
