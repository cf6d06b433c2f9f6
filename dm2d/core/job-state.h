/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>

#include "shared/macro.h"

/*
 * The job state machine, the one place that knows it. A job (one recipe x one kernel)
 * moves forward through
 *
 *   queued -> fetching -> building -> signing -> installing -> installed
 *
 * (a cache hit goes from fetching straight to signing; with Sign=no signing is left out;
 * `dm2 build` ends in built after building), and from any state that is not final to
 * failed, skipped or waiting. An
 * interrupted job (the daemon stopped, or a crash) goes back to queued. Nothing leaves a
 * final state: a new attempt is a new row in the state db.
 *
 * The state db stores the strings of job_state_to_string(); status, the daemon and the
 * CLI compare enum values, never strings.
 */
enum job_state {
	JOB_STATE_QUEUED,
	JOB_STATE_FETCHING,
	JOB_STATE_BUILDING,
	JOB_STATE_SIGNING,
	JOB_STATE_INSTALLING,
	JOB_STATE_INSTALLED,
	JOB_STATE_FAILED,  /* stage + one-line reason + log path */
	JOB_STATE_SKIPPED, /* reason: arch, kernel range, missing CONFIG, ... */
	JOB_STATE_WAITING, /* reason: the kernel's build tree is incomplete (which package) */
	JOB_STATE_BUILT,   /* built but neither signed nor installed (dm2 build) */
	_JOB_STATE_MAX,
	_JOB_STATE_INVALID = -EINVAL,
};
DECLARE_STRING_TABLE(job_state); /* "queued", "fetching", ..., "built" */

/* installed, failed, skipped, waiting, built: nothing more will happen to this row. */
bool job_state_is_final(enum job_state s);

/* Whether a job may go from one state to the other (the same state is allowed: a state is
 * re-recorded with a new reason or log path). The pipeline changes a job's state only
 * through job_set_state() (pipeline/job-internal.h), which refuses what this refuses. */
bool job_state_transition_valid(enum job_state from, enum job_state to);

/*
 * A stage of the pipeline is named by the state a job is in while it runs (fetching,
 * building, signing, installing): a failed job records the stage it failed in that way,
 * so the state db's stage column holds job_state_to_string() of one of these, and
 * queued for a job that could not be run at all. Whether s can be such a stage:
 */
bool job_state_is_stage(enum job_state s);
