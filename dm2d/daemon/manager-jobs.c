/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running dm2d's queue: jobs as `dm2 install` children, Jobs= at a time, one depmod per
 * batch; and `dm2 build` children for clients, in the same Jobs= slots. A job's outcome is
 * what its child wrote in the state db. */
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>

#include "control/control.h"
#include "control/exit-codes.h"
#include "core/db.h"
#include "core/recover.h"
#include "daemon/child.h"
#include "daemon/control-server.h"
#include "daemon/manager-internal.h"
#include "daemon/manager.h"
#include "recipe/recipe-set.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/* A child's stdout or stderr, read line by line. */
struct mbuild_pipe {
	struct mbuild *build;
	bool is_stderr;
	int fd;
	sd_event_source *source;
	size_t n;
	char line[CONTROL_REPLY_MAX - 8]; /* room for "OUT " and the newline */
};

struct mbuild {
	struct manager *m;
	struct mbuild *next; /* m->builds, in request order */
	char *recipe;
	char *kver;
	char **args; /* the dm2 command line */
	bool started;
	pid_t pid; /* > 0: running, and counted in m->n_builds_running */
	sd_event_source *child;
	struct mbuild_pipe out, err;
	manager_build_line_fn on_line;
	manager_build_exit_fn on_exit;
	void *userdata;
};

struct mkernel *manager_kernel_get(struct manager *m, const char *kver, bool create)
{
	struct mkernel *k, **a;

	for (size_t i = 0; i < m->n_kernels; i++)
		if (streq(m->kernels[i]->kver, kver))
			return m->kernels[i];
	if (!create)
		return NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->m = m;
	k->kver = strdup(kver);
	a = realloc(m->kernels, sizeof(*a) * (m->n_kernels + 1));
	if (!k->kver || !a) {
		free(k->kver);
		free(k);
		if (a)
			m->kernels = a;
		return NULL;
	}
	m->kernels = a;
	m->kernels[m->n_kernels++] = k;
	return k;
}

void manager_mkernel_free(struct mkernel *k)
{
	if (!k)
		return;
	sd_event_source_disable_unref(k->settle);
	/* Owned source: unref kills and reaps a depmod still running. */
	sd_event_source_disable_unref(k->depmod_child);
	free(k->kver);
	free(k);
}

unsigned manager_n_running(struct manager *m)
{
	return (unsigned) queue_n_running(&m->queue) + m->n_builds_running;
}

static uint64_t expected_usec(const char *recipe, const char *kver, void *userdata);

/* The queue's jobs that ended, and the time the rest should take on Jobs= slots from the
 * recorded durations (a running job: what remains of its expected time). */
static void progress(struct manager *m, size_t *ret_done, uint64_t *ret_left_usec)
{
	uint64_t left = 0, now = now_mono_usec();
	size_t done = 0;

	for (size_t i = 0; i < m->queue.n; i++) {
		struct qjob *j = m->queue.jobs[i];
		struct mjob *mj = j->running ? j->data : NULL;
		uint64_t e;

		if (!j->running && j->state != JOB_STATE_QUEUED) {
			done++;
			continue;
		}
		e = expected_usec(j->recipe, j->kver, m);
		if (mj && mj->started)
			e = e > now - mj->started ? e - (now - mj->started) : 0;
		left += e;
	}
	*ret_done = done;
	*ret_left_usec = left / MAX(m->max_jobs, 1u);
}

void manager_notify_status(struct manager *m)
{
	size_t queued = queue_n_queued(&m->queue), done;
	unsigned running = manager_n_running(m);
	uint64_t left;

	if (running == 0 && queued == 0) {
		(void) sd_notify(false, "STATUS=Idle, watching for kernels.");
		return;
	}
	progress(m, &done, &left);
	(void) sd_notifyf(false, "STATUS=%zu done, %u running, %zu queued; about %llu s left.",
			  done, running, queued, (unsigned long long) ((left + 999999) / 1000000));
}

static void log_job_state(const struct qjob *j, const char *id_text)
{
	log_set_context(j->recipe, j->kver, id_text);
	if (j->state == JOB_STATE_FAILED)
		log_error("event: job-state, job=%s, recipe=%s, kernel=%s, state=failed, "
			  "reason=%s (see 'dm2 log %s -k %s')", id_text, j->recipe, j->kver,
			  strna(j->reason), j->recipe, j->kver);
	else
		log_notice("event: job-state, job=%s, recipe=%s, kernel=%s, state=%s", id_text,
			   j->recipe, j->kver, strna(job_state_to_string(j->state)));
	log_set_context(NULL, NULL, NULL);
}

/* ---- the queue ---- */

/* j was just (re)queued: the state db's queue gets it too. */
static int job_record_queued(struct manager *m, struct qjob *j)
{
	char id_text[24];
	int r;

	r = db_job_enqueue(m->db, j->recipe, j->kver, &j->db_id);
	if (r < 0) {
		(void) queue_job_finished(j, JOB_STATE_FAILED, "dm2d could not record the job");
		return log_error_errno(r, "Failed to queue '%s' for kernel '%s' in the state db: %m",
				       j->recipe, j->kver);
	}
	snprintf(id_text, sizeof(id_text), "%" PRIi64, j->db_id);
	log_job_state(j, id_text);
	manager_schedule_dispatch(m);
	return 0;
}

int manager_job_enqueue(struct manager *m, const char *recipe, const char *kver)
{
	struct qjob *j;
	int r;

	r = queue_add(&m->queue, recipe, kver, &j);
	if (r < 0)
		return log_oom();
	if (r != QUEUE_ADDED)
		return 0;
	return job_record_queued(m, j);
}

static void mjob_free(struct mjob *mj)
{
	if (!mj)
		return;
	sd_event_source_disable_unref(mj->child); /* owned: kills and reaps the child */
	sd_event_source_disable_unref(mj->out);
	safe_close(mj->out_fd);
	free(mj);
}

/* The queue forgets a job: stop its child first. */
static void qjob_free_data(struct qjob *j)
{
	struct mjob *mj = j->data;

	if (mj && mj->pid > 0)
		(void) kill(-mj->pid, SIGKILL);
	mjob_free(mj);
	j->data = NULL;
}

void manager_jobs_drop_kernel(struct manager *m, const char *kver)
{
	queue_drop_kernel(&m->queue, kver, qjob_free_data);
	manager_jobserver_refill(m, true); /* its engines may have died holding tokens */
}

void manager_queue_done(struct manager *m)
{
	queue_done(&m->queue, qjob_free_data);
}

static int cli_args(struct manager *m, char ***ret, ...)
{
	_cleanup_strv_free_ char **a = NULL;
	const char *s;
	va_list ap;

	if (strv_extend(&a, m->cli) < 0 || strv_extend(&a, "--root") < 0 ||
	    strv_extend(&a, m->ctx->root) < 0)
		return -ENOMEM;
	STRV_FOREACH(d, m->ctx->recipe_dirs)
		if (strv_extend(&a, "--recipes") < 0 || strv_extend(&a, *d) < 0)
			return -ENOMEM;
	va_start(ap, ret);
	while ((s = va_arg(ap, const char *)))
		if (strv_extend(&a, s) < 0) {
			va_end(ap);
			return -ENOMEM;
		}
	va_end(ap);
	*ret = TAKE_PTR(a);
	return 0;
}

/* ---- jobs ---- */

static void job_output_line(const char *line, void *userdata)
{
	struct mjob *mj = userdata;
	struct qjob *j = mj->qj;

	if (isempty(line))
		return;
	snprintf(mj->last, sizeof(mj->last), "%s", line);
	log_set_context(j->recipe, j->kver, mj->id_text);
	/* The job's own state-change lines repeat what the daemon logs for the same job. */
	if (startswith(line, "dm2: event: job-state,"))
		log_debug("%s %s: %s", j->recipe, j->kver, line);
	else
		log_info("%s %s: %s", j->recipe, j->kver, line);
	log_set_context(NULL, NULL, NULL);
}

static int on_job_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mjob *mj = userdata;

	if (child_read_lines(fd, mj->line, sizeof(mj->line), &mj->n_line, false, job_output_line,
			     mj) > 0)
		return 0;
	mj->out = sd_event_source_disable_unref(mj->out);
	mj->out_fd = safe_close(mj->out_fd);
	return 0;
}

/* A stop request rather than a failure: dm2d stops (it sent the signal), or someone
 * (systemd stopping the whole unit, a Ctrl-C) asked the job's process to stop. */
static bool job_stopped(struct manager *m, const siginfo_t *si)
{
	if (si->si_code == CLD_EXITED)
		return m->stopping && si->si_status != EXIT_OK;
	return m->stopping || si->si_status == SIGTERM || si->si_status == SIGINT ||
	       si->si_status == SIGHUP;
}

/* Why the child ended without recording an outcome in the state db. */
static char *exit_reason(const struct mjob *mj, const siginfo_t *si)
{
	char *s = NULL;

	if (si->si_code != CLD_EXITED)
		(void) asprintf(&s, "dm2 install was killed by signal %s",
				strna(sigabbrev_np(si->si_status)));
	else if (!isempty(mj->last))
		s = strdup(mj->last);
	else
		(void) asprintf(&s, "dm2 install exited with status %i", si->si_status);
	return s;
}

/*
 * The child exited: its outcome is the state its job row reached (the row dm2 install
 * wrote; it is the current one of recipe x kernel, a new one if the daemon's was finished
 * meanwhile). A stop request puts an unfinished or failed row back to queued: a stop is
 * not a failure. A row left unfinished otherwise becomes failed, at the state it was in.
 */
static void job_outcome(struct mjob *mj, const siginfo_t *si)
{
	struct manager *m = mj->m;
	struct qjob *j = mj->qj;
	struct db_job cur = {};
	bool have = db_job_current(m->db, j->recipe, j->kver, &cur) >= 0;
	int r;

	if (have)
		j->db_id = cur.id;
	if (have && job_state_is_final(cur.state) && cur.state != JOB_STATE_FAILED) {
		(void) queue_job_finished(j, cur.state, cur.reason);
	} else if (job_stopped(m, si)) {
		r = db_job_set_state(m->db, j->db_id, JOB_STATE_QUEUED, NULL, NULL, NULL);
		if (r < 0)
			log_warning_errno(r, "Failed to put job %s back in the queue, ignoring: %m",
					  mj->id_text);
		queue_job_requeue(j);
	} else if (have && cur.state == JOB_STATE_FAILED) {
		(void) queue_job_finished(j, JOB_STATE_FAILED, cur.reason);
	} else {
		_cleanup_free_ char *why = exit_reason(mj, si);
		const char *stage = have ? job_state_to_string(cur.state) : "queued";

		(void) queue_job_finished(j, JOB_STATE_FAILED, strna(why));
		(void) db_job_set_state(m->db, j->db_id, JOB_STATE_FAILED, stage, strna(why), NULL);
	}
	db_job_done(&cur);
}

/* An engine killed while its build held tokens could not give them back (libkbuild-wrap
 * returns what a build kept, but only while the engine lives). */
void manager_jobserver_refill(struct manager *m, bool killed)
{
	bool idle = manager_n_running(m) == 0;
	int r;

	/* A killed engine may have held tokens: top up at once, or a build waiting for one
	 * would wait for ever; the pool may run over its size until it is idle again. */
	if (!idle && !killed)
		return;
	r = jobserver_refill(&m->jobserver, idle);
	if (r > 0)
		log_info("Returned %d make jobserver token(s) a dead build held to the pool.", r);
	else if (r < 0)
		log_warning_errno(r, "Cannot refill the make jobserver: %m");
}

/* An installed build's wall time and the CPU time of the engine and everything it reaped
 * (the sandbox reaps the build's processes: si_utime/si_stime include them), for the
 * longest-first order and the time left. */
static void record_duration(struct mjob *mj, const siginfo_t *si)
{
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t wall = now_mono_usec() - mj->started, cpu;
	int r;

	if (mj->qj->state != JOB_STATE_INSTALLED || hz <= 0 || mj->started == 0)
		return;
	cpu = (uint64_t) (si->si_utime + si->si_stime) * 1000000u / (uint64_t) hz;
	r = db_duration_record(mj->m->db, mj->qj->recipe, mj->qj->kver, wall, cpu);
	if (r < 0)
		log_warning_errno(r, "Cannot record how long '%s' took to build: %m",
				  mj->qj->recipe);
}

static int on_job_exited(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct mjob *mj = userdata;
	struct manager *m = mj->m;
	struct qjob *j = mj->qj;
	struct mkernel *k;
	bool again = j->again;

	/* What the child wrote before it exited. */
	if (mj->out)
		(void) child_read_lines(mj->out_fd, mj->line, sizeof(mj->line), &mj->n_line, true,
					job_output_line, mj);
	j->again = false; /* job_outcome() decides on the state; "again" comes after */
	job_outcome(mj, si);
	record_duration(mj, si);
	if (j->state == JOB_STATE_QUEUED)
		log_info("Job %s ('%s' for kernel '%s') was stopped; it goes back to the queue.",
			 mj->id_text, j->recipe, j->kver);
	else
		log_job_state(j, mj->id_text);
	k = manager_kernel_get(m, j->kver, false);
	if (k && j->state == JOB_STATE_INSTALLED)
		k->depmod_pending = true;
	j->data = NULL;
	mjob_free(mj); /* freeing the owned source reaps the zombie */
	manager_jobserver_refill(m, si->si_code != CLD_EXITED);
	if (again && j->state != JOB_STATE_QUEUED)
		(void) manager_job_enqueue(m, j->recipe, j->kver);
	manager_schedule_dispatch(m);
	control_server_job_changed(m->control, j->kver);
	manager_notify_status(m);
	manager_maybe_exit(m);
	return 0;
}

static int job_start(struct manager *m, struct qjob *j)
{
	_cleanup_strv_free_ char **args = NULL;
	_cleanup_close_ int wr = -EBADF;
	struct mjob *mj;
	int p[2], r;

	r = cli_args(m, &args, "install", j->recipe, "-k", j->kver, "--no-depmod", NULL);
	if (r < 0)
		return r;
	mj = calloc(1, sizeof(*mj));
	if (!mj)
		return -ENOMEM;
	*mj = (struct mjob){.m = m, .qj = j, .out_fd = -EBADF, .started = now_mono_usec()};
	snprintf(mj->id_text, sizeof(mj->id_text), "%" PRIi64, j->db_id);
	r = child_output_pipe(p);
	if (r < 0) {
		mjob_free(mj);
		return r;
	}
	mj->out_fd = p[0];
	wr = p[1];
	/* Watch the output first: once the child runs, nothing may fail that leaves it running
	 * without being counted. */
	r = sd_event_add_io(m->event, &mj->out, mj->out_fd, EPOLLIN, on_job_output, mj);
	if (r >= 0)
		r = child_spawn_watched(m->event, args, wr, wr, on_job_exited, mj, &mj->pid,
					&mj->child);
	if (r < 0) {
		mjob_free(mj);
		return r;
	}
	j->data = mj;
	queue_job_started(j);
	m->was_busy = true;
	log_set_context(j->recipe, j->kver, mj->id_text);
	log_info("Building '%s' for kernel '%s' (job %s).", j->recipe, j->kver, mj->id_text);
	log_set_context(NULL, NULL, NULL);
	return 0;
}

/* ---- depmod ---- */

static int on_depmod_exited(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct mkernel *k = userdata;
	struct manager *m = k->m;

	k->depmod_child = sd_event_source_disable_unref(k->depmod_child);
	k->depmod_pid = 0;
	if (si->si_code != CLD_EXITED || si->si_status != 0)
		log_error("event: depmod-failed, kernel=%s, status=%i (see 'dm2 depmod -k %s')",
			  k->kver, si->si_status, k->kver);
	else
		log_notice("event: depmod-done, kernel=%s", k->kver);
	manager_schedule_dispatch(m);
	control_server_job_changed(m->control, k->kver);
	manager_maybe_exit(m);
	return 0;
}

static void depmod_start(struct manager *m, struct mkernel *k)
{
	_cleanup_strv_free_ char **args = NULL;
	int r;

	k->depmod_pending = false;
	r = cli_args(m, &args, "depmod", "-k", k->kver, NULL);
	if (r >= 0)
		r = child_spawn_watched(m->event, args, -EBADF, -EBADF, on_depmod_exited, k,
					&k->depmod_pid, &k->depmod_child);
	if (r < 0)
		log_error_errno(r, "Failed to run depmod for '%s': %m", k->kver);
}

/* ---- what the scheduler asks ---- */

static char **job_needs(const char *recipe, void *userdata)
{
	struct manager *m = userdata;
	struct recipe *rc = recipe_set_find(m->recipes, recipe);

	return rc ? rc->needs : NULL;
}

static bool kernel_blocked(const char *kver, void *userdata)
{
	struct mkernel *k = manager_kernel_get(userdata, kver, false);

	return k && k->depmod_child;
}

static uint64_t expected_usec(const char *recipe, const char *kver, void *userdata)
{
	struct manager *m = userdata;
	uint64_t usec = 0;

	/* never built: 0, after every one with a known duration */
	if (db_duration_expected(m->db, recipe, kver, &usec) < 0)
		return 0;
	return usec;
}

/* The biggest of the recipe's local source trees (a DKMS package's /usr/src/NAME-VER). */
static uint64_t source_bytes(const char *recipe, void *userdata)
{
	struct manager *m = userdata;
	struct recipe *rc = recipe_set_find(m->recipes, recipe);
	uint64_t best = 0;

	for (size_t i = 0; rc && i < rc->n_sources; i++) {
		uint64_t n = 0;

		if (rc->sources[i].path && dir_size_at(AT_FDCWD, rc->sources[i].path, &n) >= 0)
			best = MAX(best, n);
	}
	return best;
}

static const struct queue_ops queue_ops = {
	.needs = job_needs,
	.kernel_blocked = kernel_blocked,
	.expected_usec = expected_usec,
	.source_bytes = source_bytes,
};

/* ---- builds for clients ---- */

static void build_line(const char *line, void *userdata)
{
	struct mbuild_pipe *p = userdata;
	struct mbuild *b = p->build;

	log_debug("build %s %s: %s", b->recipe, b->kver, line);
	b->on_line(p->is_stderr, line, b->userdata);
}

/* Pass on what the pipe holds; close it at its end, or with drain (see child_read_lines()). */
static void build_pipe_read(struct mbuild_pipe *p, bool drain)
{
	if (child_read_lines(p->fd, p->line, sizeof(p->line), &p->n, drain, build_line, p) > 0)
		return;
	p->source = sd_event_source_disable_unref(p->source);
	p->fd = safe_close(p->fd);
}

static int on_build_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	build_pipe_read(userdata, false);
	return 0;
}

/* The child exited or must go: kill what is left of its process group, reap it, free its
 * slot. */
static void build_stop(struct mbuild *b)
{
	if (b->pid <= 0)
		return;
	(void) kill(-b->pid, SIGKILL);
	b->child = sd_event_source_disable_unref(b->child); /* owned: reaps the child */
	b->pid = 0;
	b->m->n_builds_running--;
	manager_schedule_dispatch(b->m);
	manager_notify_status(b->m);
}

/* Report the end to the client; why: the build has no exit status of its own (then 1). */
static void build_end(struct mbuild *b, int code, const char *why)
{
	struct manager *m = b->m;

	if (why) {
		_cleanup_free_ char *line = NULL;

		log_error("Build of '%s' for kernel '%s' failed: %s", b->recipe, b->kver,
			  why);
		if (asprintf(&line, "dm2d: the build failed: %s", why) >= 0)
			b->on_line(true, line, b->userdata);
		code = EXIT_FAILURE_GENERIC;
	} else
		log_info("Build of '%s' for kernel '%s' exited with status %i.",
			 b->recipe, b->kver, code);
	b->on_exit(code, b->userdata); /* may free b */
	manager_jobserver_refill(m, why != NULL);
	manager_maybe_exit(m);
}

static int on_build_exited(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct mbuild *b = userdata;
	char why[64];

	/* What it wrote before it exited comes first. */
	if (b->out.fd >= 0)
		build_pipe_read(&b->out, true);
	if (b->err.fd >= 0)
		build_pipe_read(&b->err, true);
	build_stop(b);
	if (si->si_code == CLD_EXITED) {
		build_end(b, si->si_status, NULL);
		return 0;
	}
	snprintf(why, sizeof(why), "killed by signal %s",
		 strna(sigabbrev_np(si->si_status)));
	build_end(b, EXIT_FAILURE_GENERIC, why);
	return 0;
}

static int build_start(struct mbuild *b)
{
	struct manager *m = b->m;
	_cleanup_close_ int out_wr = -EBADF, err_wr = -EBADF;
	int p[2], r;

	r = child_output_pipe(p);
	if (r < 0)
		return r;
	b->out.fd = p[0];
	out_wr = p[1];
	r = child_output_pipe(p);
	if (r < 0)
		return r;
	b->err.fd = p[0];
	err_wr = p[1];
	r = sd_event_add_io(m->event, &b->out.source, b->out.fd, EPOLLIN, on_build_output,
			    &b->out);
	if (r >= 0)
		r = sd_event_add_io(m->event, &b->err.source, b->err.fd, EPOLLIN,
				    on_build_output, &b->err);
	if (r < 0)
		return r;
	r = child_spawn_watched(m->event, b->args, out_wr, err_wr, on_build_exited, b, &b->pid,
			  &b->child);
	if (r < 0)
		return r;
	m->n_builds_running++;
	log_notice("event: build, recipe=%s, kernel=%s", b->recipe, b->kver);
	return 0;
}

/* Builds go first: someone waits for each of them. */
static void builds_dispatch(struct manager *m)
{
	for (struct mbuild *b = m->builds, *next; b && manager_n_running(m) < m->max_jobs;
	     b = next) {
		char why[128];
		int r;

		next = b->next;
		if (b->started)
			continue;
		b->started = true;
		r = build_start(b);
		if (r >= 0)
			continue;
		snprintf(why, sizeof(why), "dm2d could not start it: %s", strerror(-r));
		build_end(b, EXIT_FAILURE_GENERIC, why); /* may free b */
	}
}

int manager_build_new(struct manager *m, const char *name, const char *kver,
		      const char *version, bool json, manager_build_line_fn on_line,
		      manager_build_exit_fn on_exit, void *userdata, struct mbuild **ret)
{
	struct mbuild *b, **p;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->m = m;
	b->out = (struct mbuild_pipe){.build = b, .fd = -EBADF};
	b->err = (struct mbuild_pipe){.build = b, .is_stderr = true, .fd = -EBADF};
	b->on_line = on_line;
	b->on_exit = on_exit;
	b->userdata = userdata;
	b->recipe = strdup(name);
	b->kver = strdup(kver);
	r = cli_args(m, &b->args, "build", name, "-k", kver, json ? "--json" : NULL,
		     NULL);
	if (r >= 0 && version &&
	    (strv_extend(&b->args, "--version") < 0 ||
	     strv_extend(&b->args, version) < 0))
		r = -ENOMEM;
	if (r < 0 || !b->recipe || !b->kver) {
		manager_build_free(b);
		return -ENOMEM;
	}
	for (p = &m->builds; *p; p = &(*p)->next)
		;
	*p = b;
	manager_schedule_dispatch(m);
	*ret = b;
	return 0;
}

struct mbuild *manager_build_free(struct mbuild *b)
{
	if (!b)
		return NULL;
	for (struct mbuild **p = &b->m->builds; *p; p = &(*p)->next)
		if (*p == b) {
			*p = b->next;
			break;
		}
	bool killed = b->pid > 0;

	if (killed)
		log_notice("Killing the build of '%s' for kernel '%s': its client went away "
			   "or its timeout passed.", b->recipe, b->kver);
	build_stop(b);
	if (killed)
		manager_jobserver_refill(b->m, true);
	sd_event_source_disable_unref(b->out.source);
	sd_event_source_disable_unref(b->err.source);
	safe_close(b->out.fd);
	safe_close(b->err.fd);
	strv_free(b->args);
	free(b->recipe);
	free(b->kver);
	return mfree(b);
}

static void jobs_dispatch(struct manager *m)
{
	struct qjob *j;
	int r;

	while (manager_n_running(m) < m->max_jobs && (j = queue_next(&m->queue, &queue_ops, m))) {
		r = job_start(m, j);
		if (r >= 0)
			continue;
		log_error_errno(r, "Failed to start job '%s' for '%s': %m", j->recipe, j->kver);
		(void) queue_job_finished(j, JOB_STATE_FAILED, "dm2d could not start the job");
		(void) db_job_set_state(m->db, j->db_id, JOB_STATE_FAILED, "queued",
					"dm2d could not start the job", NULL);
		control_server_job_changed(m->control, j->kver);
	}
}

static int on_dispatch(sd_event_source *s, void *userdata)
{
	struct manager *m = userdata;

	if (!m->stopping) {
		builds_dispatch(m);
		jobs_dispatch(m);
		/* One depmod per kernel, once its batch is done. */
		for (size_t i = 0; i < m->n_kernels; i++) {
			struct mkernel *k = m->kernels[i];

			if (k->depmod_pending && !k->depmod_child &&
			    !queue_busy(&m->queue, k->kver, NULL))
				depmod_start(m, k);
		}
		manager_notify_status(m);
	}
	manager_maybe_exit(m);
	return 0;
}

void manager_schedule_dispatch(struct manager *m)
{
	int r;

	if (m->dispatch) {
		r = sd_event_source_set_enabled(m->dispatch, SD_EVENT_ONESHOT);
		if (r >= 0)
			return;
	}
	r = sd_event_add_defer(m->event, &m->dispatch, on_dispatch, m);
	if (r < 0)
		log_error_errno(r, "Failed to schedule the queue: %m");
}

/* ---- idle and exit ---- */

/*
 * Runs before the loop sleeps, after anything at all happened. Going idle, maybe for weeks:
 * clean up after the burst of work (work directories left by jobs that were killed), close
 * the state db (in dm2d that unloads SQLite, see sqlite-lazy.c) and hand back what the
 * burst allocated. The next event that needs the db opens it again.
 */
static int on_post(sd_event_source *s, void *userdata)
{
	struct manager *m = userdata;

	if (!m->started || m->stopping || manager_n_running(m) > 0 ||
	    manager_busy(m, NULL, NULL))
		return 0;
	if (m->was_busy) {
		m->was_busy = false;
		manager_recover(m);
	}
	if (db_suspend(m->db) > 0)
		(void) malloc_trim(0);
	return 0;
}

int manager_watch_idle(struct manager *m)
{
	return sd_event_add_post(m->event, &m->idle_post, on_post, m);
}

void manager_kill_children(struct manager *m, int sig)
{
	for (size_t i = 0; i < m->queue.n; i++) {
		struct mjob *mj = m->queue.jobs[i]->data;

		if (mj && mj->pid > 0)
			(void) kill(-mj->pid, sig);
	}
	for (struct mbuild *b = m->builds; b; b = b->next)
		if (b->pid > 0)
			(void) kill(-b->pid, sig);
}

static bool manager_idle(struct manager *m)
{
	if (!m->started || manager_n_running(m) > 0 || control_server_n_waiting(m->control) > 0)
		return false;
	if (manager_settle_armed(m->recipes_settle) || manager_settle_armed(m->rescan_settle))
		return false;
	for (size_t i = 0; i < m->n_kernels; i++) {
		struct mkernel *k = m->kernels[i];

		if (k->depmod_pending || k->depmod_child || manager_settle_armed(k->settle))
			return false;
	}
	return !queue_busy(&m->queue, NULL, NULL);
}

void manager_maybe_exit(struct manager *m)
{
	if (m->stopping) {
		if (manager_n_running(m) == 0)
			(void) sd_event_exit(m->event, 0);
		return;
	}
	if (m->o.exit_when_idle && manager_idle(m)) {
		log_info("Every job reached a final state, exiting (--exit-when-idle).");
		(void) sd_event_exit(m->event, 0);
	}
}

bool manager_busy(struct manager *m, const char *kver, char **names)
{
	if (queue_busy(&m->queue, kver, names))
		return true;
	for (size_t i = 0; i < m->n_kernels; i++) {
		struct mkernel *k = m->kernels[i];

		if (kver && !streq(k->kver, kver))
			continue;
		if (k->depmod_pending || k->depmod_child)
			return true;
	}
	return false;
}

void manager_foreach_job(struct manager *m, const char *kver, char **names, control_job_fn fn,
			 void *userdata)
{
	for (size_t i = 0; i < m->queue.n; i++) {
		const struct qjob *j = m->queue.jobs[i];

		if ((kver && !streq(j->kver, kver)) || (names && !strv_contains(names, j->recipe)))
			continue;
		fn(&(struct control_job){
			   .recipe = j->recipe,
			   .kver = j->kver,
			   .state = j->state,
			   .running = j->running,
			   .reason = j->state == JOB_STATE_QUEUED ? NULL : j->reason,
		   },
		   userdata);
	}
}

/* ---- recovery after kill -9 ---- */

void manager_recover(struct manager *m)
{
	struct db_job *stale = NULL;
	size_t n_stale = 0;
	unsigned n_dirs = 0;
	int r;

	r = recover_stale_jobs(m->ctx, m->db, &stale, &n_stale);
	if (r < 0)
		log_warning_errno(r, "Failed to look for jobs whose process is gone, ignoring: %m");
	for (size_t i = 0; i < n_stale; i++) {
		log_info("Resuming job %" PRIi64 " ('%s' for kernel '%s', attempt %u).",
			 stale[i].id, stale[i].recipe, stale[i].kernel, stale[i].attempt);
		(void) manager_kernel_get(m, stale[i].kernel, true);
		(void) manager_job_enqueue(m, stale[i].recipe, stale[i].kernel);
	}
	db_jobs_free(stale, n_stale);
	r = recover_work_dirs(m->ctx, &n_dirs);
	if (r < 0)
		log_warning_errno(r, "Failed to remove leftover work directories, ignoring: %m");
	else if (n_dirs > 0)
		log_notice("Removed %u work director%s left by jobs that were killed.", n_dirs,
			   n_dirs == 1 ? "y" : "ies");
}
