/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "core/context.h"
#include "daemon/control-request.h"
#include "shared/macro.h"

/*
 * dm2d's brain: one sd-event loop. Kernels come and go (watch.c), each change is debounced
 * (SettleSec=) and followed by a completeness check; complete kernels get a job for every
 * recipe that has none yet. Jobs run as `dm2 install NAME -k KVER --no-depmod` child
 * processes, at most Jobs= at once; when a kernel's batch is done, one `dm2 depmod -k KVER`.
 * The queue (queue.c) mirrors the state db's: unfinished jobs found at start are run again.
 * A job's outcome is what its child recorded in the state db. Builds for `dm2 build`
 * clients take Jobs= slots too. Clients talk to the manager through the control server
 * (control-server.c), which sees it only as a table of functions.
 */

struct manager;

struct manager_options {
	bool exit_when_idle; /* leave the loop once nothing is queued, running or waited for */
	const char *cli;     /* the dm2 binary to run; NULL: next to /proc/self/exe, or $DM2_CLI */
};

int manager_new(struct dm2_context *ctx, const struct manager_options *o, struct manager **ret);
struct manager *manager_free(struct manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct manager *, manager_free);

/* Open the db, load recipes, set up watches, signals and the control socket, resume the
 * queue and rescan every kernel. Then run the loop until SIGTERM (or idle, see options). */
int manager_startup(struct manager *m);
int manager_run(struct manager *m);

sd_event *manager_event(struct manager *m);

/* ---- what the control server calls (through its table) ---- */

/* Probe kver now (no settle), or every kernel when kver is NULL; queue missing jobs and, with
 * retry, those that failed or waited. -ENOENT: no such kernel. -EAGAIN: the kernel's build
 * tree is incomplete (*ret_reason says why, when given). */
int manager_trigger(struct manager *m, const char *kver, bool retry, char **ret_reason);
/* Whether the recipe set has all of names (re-read once if not). -ESRCH names the first
 * unknown one in *ret_missing. */
int manager_find_recipes(struct manager *m, char **names, char **ret_missing);
/* Queue (again) these recipes for kver. -ENOENT: no such kernel; -ESRCH: no such recipe,
 * named in *ret_missing. */
int manager_queue(struct manager *m, const char *kver, char **names, char **ret_missing);
/* True while kver (NULL: any kernel) has jobs queued or running, or a depmod pending; names
 * restricts the question to these recipes (plus the depmod). */
bool manager_busy(struct manager *m, const char *kver, char **names);
/* kver's jobs (NULL: all; names: only these), one callback each. */
void manager_foreach_job(struct manager *m, const char *kver, char **names, control_job_fn fn,
			 void *userdata);

/* One-off builds for `dm2 build` clients. */
struct mbuild;
/* A line the build wrote on stdout (is_stderr: on stderr), without the newline. */
typedef void (*manager_build_line_fn)(bool is_stderr, const char *line, void *userdata);
/* The build is over: code is the exit status of `dm2 build` (1, explained on a stderr
 * line, when it was killed or could not start). Free the build then, or from here. */
typedef void (*manager_build_exit_fn)(int code, void *userdata);
/* Run `dm2 build NAME -k KVER [--version V] [--json]` as a child once one of the Jobs=
 * slots is free, in request order and before queued jobs. It neither queues a job nor
 * writes the state db. */
int manager_build_new(struct manager *m, const char *name, const char *kver,
		      const char *version, bool json, manager_build_line_fn on_line,
		      manager_build_exit_fn on_exit, void *userdata, struct mbuild **ret);
/* Kill (and reap) the build if it runs, forget it if it waits. NULL-safe. */
struct mbuild *manager_build_free(struct mbuild *b);
