/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/job-state.h"
#include "shared/macro.h"

/*
 * The daemon's answer to one control request line (the protocol is in control/control.h),
 * apart from sockets and from the manager: the handler sees the daemon only through
 * struct control_ops, so tests and the fuzz target drive it with a table of their own.
 */

struct control_job {
	const char *recipe;
	const char *kver;
	enum job_state state; /* queued, or a final state */
	bool running;         /* it runs now (state says queued) */
	const char *reason;   /* final states: why, or NULL */
};
typedef void (*control_job_fn)(const struct control_job *job, void *userdata);

/* What a request may ask of the daemon. Errors are negative errno, as for the manager_*
 * functions they stand for (see daemon/manager.h). */
struct control_ops {
	/* Probe kver now (NULL: every kernel) and queue what is missing or failed. */
	int (*trigger)(void *userdata, const char *kver, char **ret_reason);
	int (*find_recipes)(void *userdata, char **names, char **ret_missing);
	int (*queue)(void *userdata, const char *kver, char **names, char **ret_missing);
	bool (*busy)(void *userdata, const char *kver, char **names);
	void (*foreach_job)(void *userdata, const char *kver, char **names, control_job_fn fn,
			    void *fn_userdata);
};

/* What the connection does after the reply lines. */
enum control_next {
	CONTROL_NEXT_CLOSE, /* the reply is complete */
	CONTROL_NEXT_WAIT,  /* wait until kver's jobs (names: only these) are done */
	CONTROL_NEXT_BUILD, /* run a build for the client */
};

struct control_action {
	enum control_next next;
	char *kver;            /* WAIT (NULL: every kernel), BUILD */
	char **names;          /* WAIT: only these recipes (NULL: all) */
	uint64_t timeout_usec; /* WAIT, BUILD: 0 = none */
	char *name;            /* BUILD */
	char *version;         /* BUILD: NULL = the planned one */
	bool json;             /* BUILD */
};
void control_action_done(struct control_action *a);

/* Handle one request line (without its newline) from a peer with uid. The reply lines
 * (without newlines) go to *ret_lines, what comes next to *ret_action. Returns 0, or
 * -ENOMEM; anything the request got wrong is an ERR line. */
int control_handle_request(const char *line, uid_t uid, const struct control_ops *ops,
			   void *userdata, char ***ret_lines, struct control_action *ret_action);

/* For a waiting request: 0 while something it waits for is still queued or running;
 * else 1 with the JOB lines and the DONE line in *ret_lines. */
int control_wait_result(const struct control_ops *ops, void *userdata, const char *kver,
			char **names, char ***ret_lines);
