/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Recording a job: the one place its state changes, its result, its progress lines. */
#include <assert.h>
#include <stdarg.h>
#include <unistd.h>

#include "pipeline/job-internal.h"
#include "shared/log.h"
#include "shared/util.h"

/* State changes are greppable events for the journal (the daemon's children); on a
 * terminal the progress lines say the same, so the events only show with -v there. */
/* State changes are for whoever debugs (dm2 -v); the command's own summary line is what
 * people read, and dm2d logs the events of the jobs it runs itself. */
static int event_level(void)
{
	return LOG_DEBUG;
}

void job_progress(struct job *j, const char *what)
{
	if (!j->o->progress)
		return;
	printf("%s %s for %s: %s\n", j->name,
	       strna(j->source ? j->source->version : NULL), j->kver, what);
	fflush(stdout);
}

int job_set_state(struct job *j, enum job_state to, enum job_state stage,
		  const char *reason, const char *log_path)
{
	bool failed = to == JOB_STATE_FAILED;
	int r;

	/* A failure names the stage it happened in; nothing else does. */
	if (!job_state_transition_valid(j->state, to) ||
	    (failed && !job_state_is_stage(stage)))
		return log_error_errno(EINVAL,
				       "Job %s of '%s' for '%s' cannot go from %s to %s.",
				       j->id_text, j->name, j->kver,
				       strna(job_state_to_string(j->state)),
				       strna(job_state_to_string(to)));
	if (j->db) {
		r = db_job_set_state(j->db, j->id, to,
				     failed ? job_state_to_string(stage) : NULL, reason,
				     log_path);
		if (r < 0)
			return log_error_errno(r, "Failed to record state of job %s in '%s': %m",
					       j->id_text, db_filename(j->db));
		/* The same state again only adds a reason or the log path: no event. */
		if (to != j->state)
			log_full(event_level(),
				 "event: job-state, job=%s, recipe=%s, kernel=%s, "
				 "state=%s%s%s",
				 j->id_text, j->name, j->kver, job_state_to_string(to),
				 failed ? ", stage=" : "",
				 failed ? strempty(job_state_to_string(stage)) : "");
	}
	j->state = to;
	return 0;
}

int job_enter(struct job *j, enum job_state st)
{
	_cleanup_free_ char *s = NULL;
	int r;

	r = job_set_state(j, st, st, NULL, NULL);
	if (r < 0)
		return r;
	s = strjoin(job_state_to_string(st), "...");
	if (s)
		job_progress(j, s);
	return 0;
}

static int result_set(struct job *j, enum job_state st, enum job_state stage, int error,
		      const char *reason, const char *log_path)
{
	j->res.state = st;
	j->res.stage = stage;
	j->res.error = error;
	if (free_and_strdup(&j->res.reason, reason) < 0 ||
	    free_and_strdup(&j->res.log_path, log_path) < 0)
		return log_oom();
	return 0;
}

int job_finish(struct job *j, enum job_state st, const char *reason)
{
	_cleanup_free_ char *s = NULL;
	int r;

	assert(st == JOB_STATE_WAITING || st == JOB_STATE_SKIPPED);
	r = result_set(j, st, j->stage, 0, reason, NULL);
	if (r >= 0)
		r = job_set_state(j, st, j->stage, reason, NULL);
	if (r < 0)
		return r;
	s = strjoin(job_state_to_string(st), ": ", strna(reason));
	if (s)
		job_progress(j, s);
	return JOB_STOP;
}

int job_requeue(struct job *j, int sig)
{
	_cleanup_free_ char *reason = NULL;
	int r;

	if (asprintf(&reason, "interrupted by signal %s", sigabbrev_np(sig) ?: "?") < 0)
		return log_oom();
	r = result_set(j, JOB_STATE_QUEUED, j->stage, -EINTR, reason, NULL);
	if (r >= 0)
		r = job_set_state(j, JOB_STATE_QUEUED, j->stage, NULL, NULL);
	if (r < 0)
		return r;
	log_notice("%s for %s: %s; it goes back to the queue.", j->name, j->kver, reason);
	return JOB_STOP;
}

int job_fail_at(struct job *j, enum job_state stage, int error, const char *reason)
{
	/* The log of a failed build, or of sources that could not be prepared (its header
	 * says what was fetched from where: build-log.c). */
	const char *log = (stage == JOB_STATE_BUILDING || stage == JOB_STATE_FETCHING) &&
					  j->log_written
				  ? j->log_path
				  : NULL;
	_cleanup_free_ char *see = NULL;
	int r;

	r = result_set(j, JOB_STATE_FAILED, stage, error, reason, log);
	if (r >= 0)
		r = job_set_state(j, JOB_STATE_FAILED, stage, reason, log);
	if (r < 0)
		return r;
	/* Without a state db (dm2 build), `dm2 log` does not know this log: name it. */
	if (log)
		see = j->db ? strdup(" (see dm2 log)") : strjoin(" (log: ", log, ")");
	log_error("%s %s for %s: failed at %s: %s%s", j->name,
		  strna(j->source ? j->source->version : NULL), j->kver,
		  job_state_to_string(stage), strna(reason), strempty(see));
	return JOB_STOP;
}

int job_fail(struct job *j, int error, const char *reason)
{
	return job_fail_at(j, j->stage, error, reason);
}

int job_failf(struct job *j, int error, const char *format, ...)
{
	_cleanup_free_ char *reason = NULL;
	va_list ap;
	int r;

	errno = error < 0 ? -error : error; /* for %m */
	va_start(ap, format);
	r = vasprintf(&reason, format, ap);
	va_end(ap);
	if (r < 0)
		return log_oom();
	return job_fail(j, error, reason);
}

int job_record_build(struct job *j, const char *build_key, const char *signer)
{
	int r;

	if (!j->db)
		return 0;
	r = db_job_set_build(j->db, j->id, j->source ? j->source->version : NULL,
			     build_key, j->from_cache, signer);
	if (r < 0)
		return log_error_errno(r, "Failed to record job %s: %m", j->id_text);
	return 0;
}

int job_complete(struct job *j)
{
	_cleanup_free_ char *s = NULL;
	int r;

	if (j->o->build_only) {
		j->res.state = JOB_STATE_BUILT;
		return job_set_state(j, JOB_STATE_BUILT, j->stage, NULL, NULL);
	}
	r = job_record_build(j, NULL, j->signer);
	if (r < 0)
		return r;
	/* With a batch, depmod is still to come: job_batch_finish() says installed. */
	j->res.state = j->o->batch ? JOB_STATE_INSTALLING : JOB_STATE_INSTALLED;
	if (!j->o->batch) {
		r = job_set_state(j, JOB_STATE_INSTALLED, j->stage, NULL, NULL);
		if (r < 0)
			return r;
	}
	s = strjoin("installed (", j->from_cache ? "from cache" : "built",
		    j->signer ? ", signed by '" : ", unsigned", strempty(j->signer),
		    j->signer ? "')" : ")");
	if (s)
		job_progress(j, s);
	return 0;
}
