/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What manager.c (events, kernels, which jobs a kernel needs) and manager-jobs.c (running
 * the queue: jobs, builds, depmod as children) share. Calls go one way: manager.c uses
 * manager-jobs.c, which uses the queue (queue.c) and tells waiting clients
 * (control-server.c); neither of those two knows the manager.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "shared/jobserver.h"
#include "core/context.h"
#include "daemon/manager.h"
#include "daemon/queue.h"

/* The child that runs a queued job (qjob->data while it runs). */
struct mjob {
	struct manager *m;
	struct qjob *qj;
	char id_text[24];
	pid_t pid;
	sd_event_source *child;
	sd_event_source *out;
	int out_fd;
	char line[512];
	size_t n_line;
	char last[512]; /* last output line, the reason when the db has none */
	uint64_t started; /* CLOCK_MONOTONIC µs */
};

struct mkernel {
	struct manager *m;
	char *kver;
	sd_event_source *settle;
	bool complete;
	bool depmod_pending;
	pid_t depmod_pid;
	sd_event_source *depmod_child;
};

void manager_jobserver_refill(struct manager *m, bool killed);

struct manager {
	struct dm2_context *ctx;
	struct manager_options o;
	char *cli;
	sd_event *event;
	struct db *db;
	struct recipe_set *recipes;
	struct watch *watch;
	struct control_server *control;
	sd_event_source *sig_term, *sig_int, *sig_hup;
	sd_event_source *recipes_settle, *rescan_settle, *dispatch, *stop_timer, *idle_post;
	struct queue queue;
	struct mkernel **kernels;
	size_t n_kernels;
	struct mbuild *builds; /* owned by their control connections */
	unsigned n_builds_running;
	unsigned max_jobs;
	struct jobserver jobserver; /* max_jobs tokens, shared by every build's make */
	bool started;
	bool stopping;
	bool stop_killed; /* the stop timeout passed once: children got SIGKILL */
	bool was_busy;    /* for the cleanup after a burst of work */
};

/* Whether a timer of manager_settle_arm() has yet to fire. */
static inline bool manager_settle_armed(sd_event_source *s)
{
	int enabled = SD_EVENT_OFF;

	return s && sd_event_source_get_enabled(s, &enabled) >= 0 && enabled != SD_EVENT_OFF;
}

struct mkernel *manager_kernel_get(struct manager *m, const char *kver, bool create);
void manager_mkernel_free(struct mkernel *k);
/* Jobs and builds running now: each takes one of the Jobs= slots. */
unsigned manager_n_running(struct manager *m);
void manager_notify_status(struct manager *m);
/* Queue recipe x kver (in the state db too); a running one is run once more afterwards. */
int manager_job_enqueue(struct manager *m, const char *recipe, const char *kver);
/* Stop and forget every job (dm2d exits). */
void manager_queue_done(struct manager *m);
/* The kernel went away: kill and forget its jobs. */
void manager_jobs_drop_kernel(struct manager *m, const char *kver);
/* Start what may start, and depmod kernels whose batch is done, before the loop sleeps. */
void manager_schedule_dispatch(struct manager *m);
/* Close the state db whenever the daemon has nothing left to do. */
int manager_watch_idle(struct manager *m);
/* Send sig to the process group of every running job and build. */
void manager_kill_children(struct manager *m, int sig);
/* Exit the loop when stopping and no child is left, or when idle with --exit-when-idle. */
void manager_maybe_exit(struct manager *m);
/* Unfinished jobs of the state db whose process is gone go back to queued, and work
 * directories no job can own are removed (after kill -9 or a crash). */
void manager_recover(struct manager *m);
