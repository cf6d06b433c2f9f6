/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/job-state.h"
#include "shared/macro.h"

/*
 * dm2d's queue of jobs (recipe x kernel), as plain data: no event loop, no state db, no
 * children. The manager owns it, records each change in the state db and runs what
 * queue_next() hands out. One entry per recipe x kernel: queueing it again while it waits
 * changes nothing (dedup), while it runs marks it to run once more afterwards. Jobs start
 * in the order they were queued, except that a job whose Needs= recipes for the same
 * kernel are not done yet waits for them.
 */

struct qjob {
	char *recipe;
	char *kver;
	/* JOB_STATE_QUEUED while waiting or running (see running), a final state once done. */
	enum job_state state;
	bool running;
	bool again; /* queued again while running: run once more afterwards */
	char *reason; /* final states: why (failed, skipped, waiting) */
	int64_t db_id;
	void *data; /* the manager's: the child that runs it */
	uint64_t source_bytes; /* queue_ops.source_bytes, asked once per queueing */
	bool sized;
};

struct queue {
	struct qjob **jobs; /* in queueing order */
	size_t n;
};

/* What the scheduler asks about a job's surroundings. */
struct queue_ops {
	/* The recipes this recipe needs (Needs=), or NULL. */
	char **(*needs)(const char *recipe, void *userdata);
	/* Whether jobs for kver must not start now (its depmod runs). */
	bool (*kernel_blocked)(const char *kver, void *userdata);
	/* The expected wall time of a build of recipe for kver (0: unknown), or NULL: of
	 * the jobs ready to start, the longest goes first, so that the last to finish is
	 * not a long one started late. Ties keep the queue's order. */
	uint64_t (*expected_usec)(const char *recipe, const char *kver, void *userdata);
	/* The size of the recipe's sources in bytes (0: unknown), or NULL: of the ready jobs
	 * with equal expected times (never built: 0), the bigger goes first, a stand-in for
	 * the duration no build has recorded yet. Asked once each time the job is queued. */
	uint64_t (*source_bytes)(const char *recipe, void *userdata);
};

void queue_init(struct queue *q);
/* Frees every entry; free_data (may be NULL) is called for each entry's data first. */
void queue_done(struct queue *q, void (*free_data)(struct qjob *j));

struct qjob *queue_find(const struct queue *q, const char *recipe, const char *kver);

enum queue_add_result {
	QUEUE_ALREADY, /* it waits in the queue already: nothing changed */
	QUEUE_AGAIN,   /* it runs: it runs once more when done */
	QUEUE_ADDED,   /* new or done before: it waits now (record it in the state db) */
};
/* Queue recipe x kver; *ret (optional) gets the entry. -ENOMEM. */
int queue_add(struct queue *q, const char *recipe, const char *kver, struct qjob **ret);

/* The job to start next (the oldest queued one whose needs are done and whose kernel is
 * not blocked), or NULL. */
struct qjob *queue_next(const struct queue *q, const struct queue_ops *ops, void *userdata);
void queue_job_started(struct qjob *j);
/* The job reached final state st (reason may be NULL). Returns true when it was queued
 * again while it ran: then it waits once more instead (QUEUE_ADDED semantics). */
bool queue_job_finished(struct qjob *j, enum job_state st, const char *reason);
/* The job was interrupted (dm2d stops, or its process got a stop signal): it waits again,
 * at its old place in the order. */
void queue_job_requeue(struct qjob *j);

/* Forget kver's jobs; free_data is called for each first (it stops a running child). */
void queue_drop_kernel(struct queue *q, const char *kver, void (*free_data)(struct qjob *j));

/* Whether a job of kver (NULL: any) among names (NULL: any) is queued or running. */
bool queue_busy(const struct queue *q, const char *kver, char *const *names);
size_t queue_n_queued(const struct queue *q);
size_t queue_n_running(const struct queue *q);
