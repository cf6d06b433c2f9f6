/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What manager.c (events, planning) and manager-jobs.c (queue, children) share. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "core/context.h"
#include "daemon/manager.h"

enum mjob_state {
	MJOB_QUEUED,
	MJOB_RUNNING,
	MJOB_DONE,
};

struct mjob {
	struct manager *m;
	char *recipe;
	char *kver;
	int64_t db_id;
	char id_text[24];
	enum mjob_state state;
	bool again;          /* queued again while running: run once more afterwards */
	char *final_state;   /* DONE: installed, failed, skipped, waiting */
	char *reason;
	pid_t pid;
	sd_event_source *child;
	sd_event_source *out;
	int out_fd;
	char line[512];
	size_t n_line;
	char last[512];      /* last output line, the reason when the db has none */
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
	struct mjob **jobs;
	size_t n_jobs;
	struct mkernel **kernels;
	size_t n_kernels;
	struct mbuild *builds; /* owned by their control connections */
	unsigned max_jobs;
	unsigned n_running; /* jobs and builds */
	bool started;
	bool stopping;
};

struct mkernel *manager_kernel_get(struct manager *m, const char *kver, bool create);
void manager_mkernel_free(struct mkernel *k);
struct mjob *manager_job_find(struct manager *m, const char *recipe, const char *kver);
void manager_mjob_free(struct mjob *j);
void manager_notify_status(struct manager *m);
/* Queue recipe x kver (in the state db too); a running one is run once more afterwards. */
int manager_job_enqueue(struct manager *m, const char *recipe, const char *kver);
/* The kernel went away: kill and forget its jobs. */
void manager_jobs_drop_kernel(struct manager *m, const char *kver);
/* Start what may start, and depmod kernels whose batch is done, before the loop sleeps. */
void manager_schedule_dispatch(struct manager *m);
/* Close the state db whenever the daemon has nothing left to do. */
int manager_watch_idle(struct manager *m);
/* Send sig to the process group of every running job and build. */
void manager_kill_children(struct manager *m, int sig);
/* The debounce of dm2d: a one-shot timer in *s that fires SettleSec= from now, made on
 * first use; a timer still armed is pushed back. */
int manager_settle_arm(struct manager *m, sd_event_source **s,
		       sd_event_time_handler_t handler, void *userdata);
/* Whether a timer of manager_settle_arm() has yet to fire. */
bool manager_settle_armed(sd_event_source *s);
/* Exit the loop when stopping and no child is left, or when idle with --exit-when-idle. */
void manager_maybe_exit(struct manager *m);
