/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "core/job-state.h"

static const char *const job_state_table[_JOB_STATE_MAX] = {
	[JOB_STATE_QUEUED] = "queued",	       [JOB_STATE_FETCHING] = "fetching",
	[JOB_STATE_BUILDING] = "building",     [JOB_STATE_SIGNING] = "signing",
	[JOB_STATE_INSTALLING] = "installing", [JOB_STATE_INSTALLED] = "installed",
	[JOB_STATE_FAILED] = "failed",	       [JOB_STATE_SKIPPED] = "skipped",
	[JOB_STATE_WAITING] = "waiting",       [JOB_STATE_BUILT] = "built",
};
DEFINE_STRING_TABLE(job_state, _JOB_STATE_MAX);

bool job_state_is_final(enum job_state s)
{
	switch (s) {
	case JOB_STATE_QUEUED:
	case JOB_STATE_FETCHING:
	case JOB_STATE_BUILDING:
	case JOB_STATE_SIGNING:
	case JOB_STATE_INSTALLING:
		return false;
	case JOB_STATE_INSTALLED:
	case JOB_STATE_FAILED:
	case JOB_STATE_SKIPPED:
	case JOB_STATE_WAITING:
	case JOB_STATE_BUILT:
		return true;
	case _JOB_STATE_MAX:
	case _JOB_STATE_INVALID:
		break;
	}
	return true;
}

/* For each state that is not final: the states it may move on to, besides failed,
 * skipped, waiting and back to queued. A flat table, read as the diagram in the header. */
static const unsigned forward[_JOB_STATE_MAX] = {
#define S(x) (1u << JOB_STATE_##x)
	[JOB_STATE_QUEUED] = S(FETCHING) | S(BUILDING) | S(SIGNING),
	[JOB_STATE_FETCHING] = S(BUILDING) | S(SIGNING) | S(INSTALLING),
	[JOB_STATE_BUILDING] = S(SIGNING) | S(INSTALLING) | S(BUILT),
	[JOB_STATE_SIGNING] = S(INSTALLING),
	[JOB_STATE_INSTALLING] = S(INSTALLED),
#undef S
};

bool job_state_transition_valid(enum job_state from, enum job_state to)
{
	if (from < 0 || from >= _JOB_STATE_MAX || to < 0 || to >= _JOB_STATE_MAX)
		return false;
	if (from == to)
		return true;
	if (job_state_is_final(from))
		return false;
	switch (to) {
	case JOB_STATE_QUEUED:
	case JOB_STATE_FAILED:
	case JOB_STATE_SKIPPED:
	case JOB_STATE_WAITING:
		return true;
	case JOB_STATE_FETCHING:
	case JOB_STATE_BUILDING:
	case JOB_STATE_SIGNING:
	case JOB_STATE_INSTALLING:
	case JOB_STATE_INSTALLED:
	case JOB_STATE_BUILT:
		return forward[from] & (1u << to);
	case _JOB_STATE_MAX:
	case _JOB_STATE_INVALID:
		break;
	}
	return false;
}

bool job_state_is_stage(enum job_state s)
{
	return s >= 0 && s < _JOB_STATE_MAX && !job_state_is_final(s);
}
