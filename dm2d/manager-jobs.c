/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2d's queue: jobs as `dm2 install` children, Jobs= at a time, one depmod per batch. */
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <systemd/sd-daemon.h>

#include "control.h"
#include "db.h"
#include "exit-codes.h"
#include "manager-internal.h"
#include "manager.h"
#include "recipe-set.h"
#include "shared/log.h"
#include "shared/util.h"

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

struct mjob *manager_job_find(struct manager *m, const char *recipe, const char *kver)
{
	for (size_t i = 0; i < m->n_jobs; i++)
		if (streq(m->jobs[i]->recipe, recipe) && streq(m->jobs[i]->kver, kver))
			return m->jobs[i];
	return NULL;
}

void manager_mjob_free(struct mjob *j)
{
	if (!j)
		return;
	sd_event_source_disable_unref(j->child);
	sd_event_source_disable_unref(j->out);
	safe_close(j->out_fd);
	free(j->recipe);
	free(j->kver);
	free(j->final_state);
	free(j->reason);
	free(j);
}

static bool strv_has_or_null(char **l, const char *s)
{
	return !l || strv_contains(l, s);
}

void manager_notify_status(struct manager *m)
{
	size_t queued = 0;

	for (size_t i = 0; i < m->n_jobs; i++)
		if (m->jobs[i]->state == MJOB_QUEUED)
			queued++;
	if (m->n_running == 0 && queued == 0)
		(void) sd_notify(false, "STATUS=Idle, watching for kernels.");
	else
		(void) sd_notifyf(false, "STATUS=%u job(s) running, %zu queued.", m->n_running, queued);
}

/* ---- the queue ---- */

int manager_job_enqueue(struct manager *m, const char *recipe, const char *kver)
{
	struct mjob *j = manager_job_find(m, recipe, kver);
	int64_t id;
	int r;

	if (j && j->state == MJOB_QUEUED)
		return 0;
	if (j && j->state == MJOB_RUNNING) {
		j->again = true;
		return 0;
	}
	r = db_job_enqueue(m->db, recipe, kver, &id);
	if (r < 0)
		return log_error_errno(r, "Failed to queue '%s' for kernel '%s' in the state db: %m",
				       recipe, kver);
	if (!j) {
		struct mjob **a;

		j = calloc(1, sizeof(*j));
		if (!j)
			return log_oom();
		j->m = m;
		j->out_fd = -EBADF;
		j->recipe = strdup(recipe);
		j->kver = strdup(kver);
		a = realloc(m->jobs, sizeof(*a) * (m->n_jobs + 1));
		if (a)
			m->jobs = a;
		if (!j->recipe || !j->kver || !a) {
			manager_mjob_free(j);
			return log_oom();
		}
		m->jobs[m->n_jobs++] = j;
	}
	j->db_id = id;
	snprintf(j->id_text, sizeof(j->id_text), "%" PRIi64, id);
	j->state = MJOB_QUEUED;
	j->final_state = mfree(j->final_state);
	j->reason = mfree(j->reason);
	j->last[0] = '\0';
	log_set_context(recipe, kver, j->id_text);
	log_notice("event: job-state, job=%s, recipe=%s, kernel=%s, state=queued", j->id_text,
		   recipe, kver);
	log_set_context(NULL, NULL, NULL);
	manager_schedule_dispatch(m);
	return 0;
}

void manager_jobs_drop_kernel(struct manager *m, const char *kver)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_jobs; i++) {
		struct mjob *j = m->jobs[i];

		if (!streq(j->kver, kver)) {
			m->jobs[n++] = j;
			continue;
		}
		if (j->state == MJOB_RUNNING && j->pid > 0) {
			(void) kill(-j->pid, SIGKILL);
			m->n_running--;
		}
		manager_mjob_free(j); /* the child source is owned: freeing it reaps the child */
	}
	m->n_jobs = n;
}

/* ---- children ---- */

static int spawn(struct manager *m, char **args, int out_fd, pid_t *ret_pid)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		sigset_t ss;

		/* sd-event blocked these in the parent; the child starts with a clean slate. */
		sigemptyset(&ss);
		(void) sigprocmask(SIG_SETMASK, &ss, NULL);
		(void) setpgid(0, 0); /* so SIGTERM reaches make and the compilers too */
		if (out_fd >= 0) {
			int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

			if (null >= 0)
				(void) dup2(null, STDIN_FILENO);
			(void) dup2(out_fd, STDOUT_FILENO);
			(void) dup2(out_fd, STDERR_FILENO);
		}
		/* A child must run the engine itself, never ask us back. */
		(void) setenv("DM2_NO_FORWARD", "1", 1);
		(void) unsetenv("NOTIFY_SOCKET");
		(void) unsetenv("LISTEN_FDS");
		(void) unsetenv("LISTEN_PID");
		execv(args[0], args);
		_exit(127);
	}
	*ret_pid = pid;
	return 0;
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

static void job_output_line(struct mjob *j, const char *line)
{
	if (isempty(line))
		return;
	snprintf(j->last, sizeof(j->last), "%s", line);
	log_set_context(j->recipe, j->kver, j->id_text);
	/* The job's own state-change lines repeat what the daemon logs for the same job. */
	if (startswith(line, "dm2: event: job-state,"))
		log_debug("%s %s: %s", j->recipe, j->kver, line);
	else
		log_info("%s %s: %s", j->recipe, j->kver, line);
	log_set_context(NULL, NULL, NULL);
}

static int on_job_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mjob *j = userdata;
	char buf[4096];
	ssize_t k = read(fd, buf, sizeof(buf));

	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (k <= 0) {
		if (j->n_line > 0) {
			j->line[j->n_line] = '\0';
			job_output_line(j, j->line);
			j->n_line = 0;
		}
		j->out = sd_event_source_disable_unref(j->out);
		j->out_fd = safe_close(j->out_fd);
		return 0;
	}
	for (ssize_t i = 0; i < k; i++) {
		if (buf[i] == '\n' || j->n_line >= sizeof(j->line) - 1) {
			j->line[j->n_line] = '\0';
			job_output_line(j, j->line);
			j->n_line = 0;
			if (buf[i] == '\n')
				continue;
		}
		j->line[j->n_line++] = buf[i];
	}
	return 0;
}

static const char *state_from_exit(int code)
{
	switch (code) {
	case EXIT_OK:
		return "installed";
	case EXIT_SKIPPED:
		return "skipped";
	case EXIT_WAITING:
		return "waiting";
	default:
		return "failed";
	}
}

void manager_maybe_exit(struct manager *m);

static int on_job_exited(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct mjob *j = userdata;
	struct manager *m = j->m;
	struct db_job cur = {};
	struct mkernel *k;
	int code = si->si_code == CLD_EXITED ? si->si_status : -1;

	/* Drain what the child wrote before it exited. */
	while (j->out && on_job_output(j->out, j->out_fd, EPOLLIN, j) == 0 && j->out)
		;
	j->child = sd_event_source_disable_unref(j->child);
	j->pid = 0;
	m->n_running--;

	if (m->stopping && code != EXIT_OK) {
		/* Interrupted by our SIGTERM: it goes back to the queue for the next start. */
		(void) db_job_set_state(m->db, j->db_id, JOB_STATE_QUEUED, NULL, NULL, NULL);
		j->state = MJOB_QUEUED;
		manager_maybe_exit(m);
		return 0;
	}

	j->state = MJOB_DONE;
	free(j->final_state);
	free(j->reason);
	j->final_state = j->reason = NULL;
	if (db_job_current(m->db, j->recipe, j->kver, &cur) >= 0 && job_state_is_final(cur.state)) {
		j->final_state = strdup(job_state_to_string(cur.state));
		j->reason = cur.reason ? strdup(cur.reason) : NULL;
	} else {
		j->final_state = strdup(state_from_exit(code));
		if (code != EXIT_OK && code != EXIT_SKIPPED) {
			if (code < 0)
				(void) asprintf(&j->reason, "killed by signal %i", si->si_status);
			else
				j->reason = strdup(isempty(j->last) ? "dm2 install failed" : j->last);
			(void) db_job_set_state(m->db, j->db_id, JOB_STATE_FAILED, "building",
						j->reason, NULL);
		}
	}
	db_job_done(&cur);

	log_set_context(j->recipe, j->kver, j->id_text);
	if (streq(strna(j->final_state), "failed"))
		log_error("event: job-state, job=%s, recipe=%s, kernel=%s, state=failed, reason=%s "
			  "(see 'dm2 log %s -k %s')", j->id_text, j->recipe, j->kver, strna(j->reason),
			  j->recipe, j->kver);
	else
		log_notice("event: job-state, job=%s, recipe=%s, kernel=%s, state=%s", j->id_text,
			   j->recipe, j->kver, strna(j->final_state));
	log_set_context(NULL, NULL, NULL);

	k = manager_kernel_get(m, j->kver, false);
	if (k && streq(strna(j->final_state), "installed"))
		k->depmod_pending = true;
	if (j->again) {
		j->again = false;
		(void) manager_job_enqueue(m, j->recipe, j->kver);
	}
	manager_schedule_dispatch(m);
	control_server_job_changed(m->control, j->recipe, j->kver, j->final_state, j->reason);
	manager_notify_status(m);
	return 0;
}

static int job_start(struct manager *m, struct mjob *j)
{
	_cleanup_strv_free_ char **args = NULL;
	_cleanup_close_ int wr = -EBADF;
	int p[2], r;

	r = cli_args(m, &args, "install", j->recipe, "-k", j->kver, "--no-depmod", NULL);
	if (r < 0)
		return r;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	j->out_fd = p[0];
	wr = p[1];
	r = spawn(m, args, wr, &j->pid);
	if (r < 0)
		return r;
	r = sd_event_add_child(m->event, &j->child, j->pid, WEXITED, on_job_exited, j);
	if (r < 0) {
		(void) kill(j->pid, SIGKILL);
		(void) waitpid(j->pid, NULL, 0);
		return r;
	}
	(void) sd_event_source_set_child_process_own(j->child, true);
	r = sd_event_add_io(m->event, &j->out, j->out_fd, EPOLLIN, on_job_output, j);
	if (r < 0)
		return r;
	j->state = MJOB_RUNNING;
	m->n_running++;
	log_set_context(j->recipe, j->kver, j->id_text);
	log_info("Building '%s' for kernel '%s' (job %s).", j->recipe, j->kver, j->id_text);
	log_set_context(NULL, NULL, NULL);
	return 0;
}

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
	control_server_job_changed(m->control, NULL, k->kver, NULL, NULL);
	manager_maybe_exit(m);
	return 0;
}

static bool kernel_has_work(struct manager *m, const char *kver)
{
	for (size_t i = 0; i < m->n_jobs; i++)
		if (streq(m->jobs[i]->kver, kver) && m->jobs[i]->state != MJOB_DONE)
			return true;
	return false;
}

static void depmod_start(struct manager *m, struct mkernel *k)
{
	_cleanup_strv_free_ char **args = NULL;
	int r;

	r = cli_args(m, &args, "depmod", "-k", k->kver, NULL);
	if (r >= 0)
		r = spawn(m, args, -EBADF, &k->depmod_pid);
	if (r < 0) {
		log_error_errno(r, "Failed to run depmod for '%s': %m", k->kver);
		k->depmod_pending = false;
		return;
	}
	k->depmod_pending = false;
	r = sd_event_add_child(m->event, &k->depmod_child, k->depmod_pid, WEXITED,
			       on_depmod_exited, k);
	if (r < 0) {
		(void) waitpid(k->depmod_pid, NULL, 0);
		k->depmod_pid = 0;
		log_error_errno(r, "Failed to watch depmod for '%s': %m", k->kver);
		return;
	}
	(void) sd_event_source_set_child_process_own(k->depmod_child, true);
}

static bool needs_pending(struct manager *m, struct mjob *j)
{
	struct recipe *rc = recipe_set_find(m->recipes, j->recipe);

	if (!rc)
		return false;
	STRV_FOREACH(n, rc->needs) {
		struct mjob *o = manager_job_find(m, *n, j->kver);

		if (o && o->state != MJOB_DONE)
			return true;
	}
	return false;
}

static int on_dispatch(sd_event_source *s, void *userdata)
{
	struct manager *m = userdata;
	int r;

	if (m->stopping)
		return 0;
	for (size_t i = 0; i < m->n_jobs && m->n_running < m->max_jobs; i++) {
		struct mjob *j = m->jobs[i];
		struct mkernel *k = manager_kernel_get(m, j->kver, false);

		if (j->state != MJOB_QUEUED || (k && k->depmod_child) || needs_pending(m, j))
			continue;
		r = job_start(m, j);
		if (r < 0) {
			log_error_errno(r, "Failed to start job '%s' for '%s': %m", j->recipe, j->kver);
			j->state = MJOB_DONE;
			free(j->final_state);
			j->final_state = strdup("failed");
			(void) db_job_set_state(m->db, j->db_id, JOB_STATE_FAILED, "queued",
						"dm2d could not start the job", NULL);
		}
	}
	/* One depmod per kernel, once its batch is done. */
	for (size_t i = 0; i < m->n_kernels; i++) {
		struct mkernel *k = m->kernels[i];

		if (k->depmod_pending && !k->depmod_child && !kernel_has_work(m, k->kver))
			depmod_start(m, k);
	}
	manager_notify_status(m);
	if (m->n_running == 0 && !manager_busy(m, NULL, NULL)) {
		/* Going idle, maybe for weeks: hand back what the burst of work allocated. */
		(void) sqlite3_db_release_memory(db_sqlite(m->db));
		(void) malloc_trim(0);
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

static bool manager_idle(struct manager *m)
{
	if (!m->started || m->n_running > 0 || control_server_n_waiting(m->control) > 0)
		return false;
	if (manager_settle_armed(m->recipes_settle) ||
	    manager_settle_armed(m->rescan_settle))
		return false;
	for (size_t i = 0; i < m->n_kernels; i++) {
		struct mkernel *k = m->kernels[i];

		if (k->depmod_pending || k->depmod_child ||
		    manager_settle_armed(k->settle))
			return false;
	}
	for (size_t i = 0; i < m->n_jobs; i++)
		if (m->jobs[i]->state != MJOB_DONE)
			return false;
	return true;
}

void manager_maybe_exit(struct manager *m)
{
	if (m->stopping) {
		if (m->n_running == 0)
			(void) sd_event_exit(m->event, 0);
		return;
	}
	if (m->o.exit_when_idle && manager_idle(m)) {
		log_info("Every job reached a final state, exiting (--exit-when-idle).");
		(void) sd_event_exit(m->event, 0);
	}
}

void manager_check_idle(struct manager *m)
{
	manager_maybe_exit(m);
}

bool manager_busy(struct manager *m, const char *kver, char **names)
{
	for (size_t i = 0; i < m->n_jobs; i++) {
		struct mjob *j = m->jobs[i];

		if (j->state == MJOB_DONE || (kver && !streq(j->kver, kver)) ||
		    !strv_has_or_null(names, j->recipe))
			continue;
		return true;
	}
	for (size_t i = 0; i < m->n_kernels; i++) {
		struct mkernel *k = m->kernels[i];

		if (kver && !streq(k->kver, kver))
			continue;
		if (k->depmod_pending || k->depmod_child)
			return true;
	}
	return false;
}

int manager_foreach_job(struct manager *m, const char *kver, char **names, manager_job_fn fn,
			void *userdata)
{
	bool failed = false, waiting = false;

	for (size_t i = 0; i < m->n_jobs; i++) {
		struct mjob *j = m->jobs[i];
		const char *st;

		if ((kver && !streq(j->kver, kver)) || !strv_has_or_null(names, j->recipe))
			continue;
		st = j->state == MJOB_QUEUED	? "queued"
		     : j->state == MJOB_RUNNING ? "running"
						: strna(j->final_state);
		if (streq(st, "failed"))
			failed = true;
		if (streq(st, "waiting"))
			waiting = true;
		fn(j->recipe, j->kver, st, j->state == MJOB_DONE ? j->reason : NULL, userdata);
	}
	return failed ? EXIT_BUILD_FAILED : waiting ? EXIT_WAITING : EXIT_OK;
}
