/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>

#include "control.h"
#include "db.h"
#include "exit-codes.h"
#include "libkbuild-wrap.h"
#include "manager.h"
#include "recipe-set.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"
#include "watch.h"

/* How long SIGTERM'd children get before SIGKILL. */
#define STOP_TIMEOUT_USEC (20ULL * 1000000ULL)

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
	sd_event_source *recipes_settle, *dispatch, *stop_timer;
	struct mjob **jobs;
	size_t n_jobs;
	struct mkernel **kernels;
	size_t n_kernels;
	unsigned max_jobs;
	unsigned n_running;
	bool started;
	bool stopping;
};

static void schedule_dispatch(struct manager *m);

/* ---- small lookups ---- */

static int probe(struct manager *m, const char *kver, struct kbw_kernel **ret)
{
	_cleanup_free_ char *dir = strjoin(m->ctx->root, "/" DM2_MODULES_DIR "/", kver);
	struct stat st;

	if (!dir)
		return -ENOMEM;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOENT;
	return kbw_kernel_probe(dir, kver, ret);
}

static void kbw_log(int priority, const char *message, void *userdata)
{
	log_full(priority, "%s", message);
}

static struct mkernel *kernel_get(struct manager *m, const char *kver, bool create)
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

static void mkernel_free(struct mkernel *k)
{
	if (!k)
		return;
	sd_event_source_disable_unref(k->settle);
	/* Owned source: unref kills and reaps a depmod still running. */
	sd_event_source_disable_unref(k->depmod_child);
	free(k->kver);
	free(k);
}

static struct mjob *job_find(struct manager *m, const char *recipe, const char *kver)
{
	for (size_t i = 0; i < m->n_jobs; i++)
		if (streq(m->jobs[i]->recipe, recipe) && streq(m->jobs[i]->kver, kver))
			return m->jobs[i];
	return NULL;
}

static void mjob_free(struct mjob *j)
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

static void notify_status(struct manager *m)
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

static int job_enqueue(struct manager *m, const char *recipe, const char *kver)
{
	struct mjob *j = job_find(m, recipe, kver);
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
			mjob_free(j);
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
	schedule_dispatch(m);
	return 0;
}

static void job_drop_kernel(struct manager *m, const char *kver)
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
		mjob_free(j); /* the child source is owned: freeing it reaps the child */
	}
	m->n_jobs = n;
}

/* Decide what kver needs, given the recipe set and the state db. */
static int kernel_plan(struct manager *m, const char *kver, bool retry, bool force)
{
	int r;

	for (size_t i = 0; i < m->recipes->n; i++) {
		struct recipe *rc = m->recipes->recipes[i];
		struct db_job cur = {};
		struct mjob *j;
		bool want;

		if (!rc->autoinstall)
			continue;
		j = job_find(m, rc->name, kver);
		if (j && j->state != MJOB_DONE && !force)
			continue;
		r = db_job_current(m->db, rc->name, kver, &cur);
		if (r == -ENOENT)
			want = true;
		else if (r < 0)
			return log_error_errno(r, "Failed to read the state of '%s' for '%s': %m",
					       rc->name, kver);
		else if (!job_state_is_final(cur.state) || cur.state == JOB_STATE_WAITING)
			want = true; /* interrupted, or it waited for this very tree */
		else if (cur.state == JOB_STATE_FAILED)
			want = retry || force;
		else
			want = force;
		db_job_done(&cur);
		if (!want)
			continue;
		r = job_enqueue(m, rc->name, kver);
		if (r < 0)
			return r;
	}
	return 0;
}

static void kernel_removed(struct manager *m, const char *kver)
{
	struct mkernel *k = NULL;
	size_t i;
	int r;

	for (i = 0; i < m->n_kernels; i++)
		if (streq(m->kernels[i]->kver, kver)) {
			k = m->kernels[i];
			break;
		}
	log_notice("event: kernel-removed, kernel=%s", kver);
	watch_kernel_forget(m->watch, kver);
	job_drop_kernel(m, kver);
	if (k) {
		mkernel_free(k);
		memmove(m->kernels + i, m->kernels + i + 1, sizeof(*m->kernels) * (m->n_kernels - i - 1));
		m->n_kernels--;
	}
	r = db_kernel_remove(m->db, kver);
	if (r < 0 && r != -ENOENT)
		log_warning_errno(r, "Failed to forget kernel '%s' in the state db, ignoring: %m", kver);
	control_server_job_changed(m->control, NULL, kver, NULL, NULL);
	notify_status(m);
}

/* The completeness check: probe the tree, and queue jobs when it is complete. */
static int kernel_check(struct manager *m, const char *kver, bool retry, char **ret_reason)
{
	struct kbw_kernel *kk = NULL;
	struct db_kernel old = {};
	struct mkernel *k;
	const char *reason = NULL, *identity;
	bool force = false;
	int r;

	r = probe(m, kver, &kk);
	if (r == -ENOENT) {
		if (kernel_get(m, kver, false))
			kernel_removed(m, kver);
		return -ENOENT;
	}
	if (r < 0)
		return log_error_errno(r, "Failed to probe kernel '%s': %m", kver);

	k = kernel_get(m, kver, true);
	if (!k) {
		kbw_kernel_unref(kk);
		return log_oom();
	}
	if (!kbw_kernel_complete(kk, &reason)) {
		if (k->complete || !retry)
			log_info("Kernel '%s' is not complete yet: %s", kver, strna(reason));
		k->complete = false;
		(void) db_kernel_upsert(m->db, kver, NULL, kbw_kernel_arch(kk), "incomplete", reason);
		if (ret_reason)
			*ret_reason = reason ? strdup(reason) : NULL;
		kbw_kernel_unref(kk);
		return -EAGAIN;
	}

	identity = kbw_kernel_identity(kk);
	if (db_kernel_get(m->db, kver, &old) >= 0) {
		/* Same release, different tree (headers rebuilt): everything must be redone. */
		if (old.identity && identity && !streq(old.identity, identity)) {
			log_notice("Kernel '%s' changed (identity %.12s -> %.12s), rebuilding.", kver,
				   old.identity, identity);
			force = true;
		}
		db_kernel_done(&old);
	}
	if (!k->complete)
		log_notice("event: kernel-complete, kernel=%s", kver);
	k->complete = true;
	r = db_kernel_upsert(m->db, kver, identity, kbw_kernel_arch(kk), "complete", NULL);
	kbw_kernel_unref(kk);
	if (r < 0)
		return log_error_errno(r, "Failed to record kernel '%s' in the state db: %m", kver);
	r = kernel_plan(m, kver, retry, force);
	notify_status(m);
	return r;
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

static void maybe_exit(struct manager *m);

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
		maybe_exit(m);
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

	k = kernel_get(m, j->kver, false);
	if (k && streq(strna(j->final_state), "installed"))
		k->depmod_pending = true;
	if (j->again) {
		j->again = false;
		(void) job_enqueue(m, j->recipe, j->kver);
	}
	schedule_dispatch(m);
	control_server_job_changed(m->control, j->recipe, j->kver, j->final_state, j->reason);
	notify_status(m);
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
	schedule_dispatch(m);
	control_server_job_changed(m->control, NULL, k->kver, NULL, NULL);
	maybe_exit(m);
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
		struct mjob *o = job_find(m, *n, j->kver);

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
		struct mkernel *k = kernel_get(m, j->kver, false);

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
	notify_status(m);
	maybe_exit(m);
	return 0;
}

static void schedule_dispatch(struct manager *m)
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
	int enabled = SD_EVENT_OFF;

	if (!m->started || m->n_running > 0 || control_server_n_waiting(m->control) > 0)
		return false;
	if (m->recipes_settle && sd_event_source_get_enabled(m->recipes_settle, &enabled) >= 0 &&
	    enabled != SD_EVENT_OFF)
		return false;
	for (size_t i = 0; i < m->n_kernels; i++) {
		struct mkernel *k = m->kernels[i];

		if (k->depmod_pending || k->depmod_child)
			return false;
		if (k->settle && sd_event_source_get_enabled(k->settle, &enabled) >= 0 &&
		    enabled != SD_EVENT_OFF)
			return false;
	}
	for (size_t i = 0; i < m->n_jobs; i++)
		if (m->jobs[i]->state != MJOB_DONE)
			return false;
	return true;
}

static void maybe_exit(struct manager *m)
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
	maybe_exit(m);
}

/* ---- events ---- */

static int on_settled(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mkernel *k = userdata;
	struct manager *m = k->m;
	_cleanup_free_ char *copy = strdup(k->kver);
	int r;

	if (!copy)
		return log_oom();
	/* Watch what exists now, then look: nothing that appears afterwards is missed. */
	r = watch_kernel(m->watch, copy);
	if (r < 0)
		log_warning_errno(r, "Failed to watch kernel '%s', ignoring: %m", copy);
	(void) kernel_check(m, copy, false, NULL);
	maybe_exit(m);
	return 0;
}

static void on_kernel_changed(const char *kver, void *userdata)
{
	struct manager *m = userdata;
	struct mkernel *k = kernel_get(m, kver, true);
	uint64_t settle = m->ctx->config->settle_usec;
	int r;

	if (!k) {
		log_oom();
		return;
	}
	if (k->settle) {
		r = sd_event_source_set_time_relative(k->settle, settle);
		if (r >= 0)
			r = sd_event_source_set_enabled(k->settle, SD_EVENT_ONESHOT);
	} else {
		r = sd_event_add_time_relative(m->event, &k->settle, CLOCK_MONOTONIC, settle, 0,
					       on_settled, k);
	}
	if (r < 0)
		log_error_errno(r, "Failed to arm the settle timer for '%s': %m", kver);
}

static void on_kernel_removed(const char *kver, void *userdata)
{
	kernel_removed(userdata, kver);
	maybe_exit(userdata);
}

static int recipes_reload(struct manager *m);

static int on_recipes_settled(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct manager *m = userdata;

	(void) recipes_reload(m);
	maybe_exit(m);
	return 0;
}

static void on_recipes_changed(void *userdata)
{
	struct manager *m = userdata;
	uint64_t settle = m->ctx->config->settle_usec;
	int r;

	if (m->recipes_settle) {
		r = sd_event_source_set_time_relative(m->recipes_settle, settle);
		if (r >= 0)
			r = sd_event_source_set_enabled(m->recipes_settle, SD_EVENT_ONESHOT);
	} else
		r = sd_event_add_time_relative(m->event, &m->recipes_settle, CLOCK_MONOTONIC, settle,
					       0, on_recipes_settled, m);
	if (r < 0)
		log_error_errno(r, "Failed to arm the recipe settle timer: %m");
}

static int rescan(struct manager *m)
{
	_cleanup_close_ int fd = -EBADF;
	struct db_kernel *known = NULL;
	size_t n_known = 0;
	DIR *d;
	struct dirent *de;
	int r;

	fd = openat(m->ctx->root_fd, DM2_MODULES_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(errno, "Failed to open '%s/%s': %m", m->ctx->root,
				       DM2_MODULES_DIR);
	d = fdopendir(fd);
	if (!d)
		return log_oom();
	TAKE_FD(fd);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		r = watch_kernel(m->watch, de->d_name);
		if (r < 0)
			log_warning_errno(r, "Failed to watch kernel '%s', ignoring: %m", de->d_name);
		(void) kernel_check(m, de->d_name, false, NULL);
	}
	closedir(d);

	/* Kernels the db knows but whose directory went away while we were not looking. */
	r = db_kernels_list(m->db, &known, &n_known);
	if (r < 0)
		return log_error_errno(r, "Failed to list kernels in the state db: %m");
	for (size_t i = 0; i < n_known; i++) {
		_cleanup_free_ char *rel = strjoin(DM2_MODULES_DIR "/", known[i].release);
		struct stat st;

		if (!rel)
			break;
		if (fstatat(m->ctx->root_fd, rel, &st, 0) < 0 && errno == ENOENT)
			kernel_removed(m, known[i].release);
	}
	db_kernels_free(known, n_known);
	return 0;
}

static void on_rescan(void *userdata)
{
	struct manager *m = userdata;

	(void) rescan(m);
	maybe_exit(m);
}

static void recipe_diag(const char *file, unsigned line, const char *message, void *userdata)
{
	log_warning("%s:%u: %s", file, line, message);
}

static int recipes_reload(struct manager *m)
{
	struct recipe_set *new = NULL, *old = m->recipes;
	int r;

	r = recipe_set_load(m->ctx, recipe_diag, m, &new);
	if (r < 0)
		return log_error_errno(r, "Failed to load recipes, keeping the old set: %m");
	m->recipes = new;
	for (size_t i = 0; i < new->n; i++) {
		struct recipe *rc = new->recipes[i];
		struct recipe *prev = old ? recipe_set_find(old, rc->name) : NULL;

		(void) db_recipe_upsert(m->db, rc->name, recipe_origin_to_string(rc->origin),
					rc->path, rc->content_hash);
		if (prev && streq(strempty(prev->content_hash), strempty(rc->content_hash)))
			continue;
		if (old)
			log_notice("event: recipe-%s, recipe=%s", prev ? "changed" : "added", rc->name);
		if (!old || !rc->autoinstall)
			continue; /* at start, rescan() plans everything */
		for (size_t k = 0; k < m->n_kernels; k++)
			if (m->kernels[k]->complete) {
				struct db_job cur = {};
				bool force = prev != NULL;

				/* A new recipe is built where it has no current job; a changed one
				 * everywhere. */
				if (!force && db_job_current(m->db, rc->name, m->kernels[k]->kver, &cur) >= 0 &&
				    job_state_is_final(cur.state) && cur.state != JOB_STATE_WAITING) {
					db_job_done(&cur);
					continue;
				}
				db_job_done(&cur);
				(void) job_enqueue(m, rc->name, m->kernels[k]->kver);
			}
	}
	if (old)
		for (size_t i = 0; i < old->n; i++)
			if (!recipe_set_find(new, old->recipes[i]->name))
				log_notice("event: recipe-removed, recipe=%s (installed modules are "
					   "kept; 'dm2 uninstall' removes them)", old->recipes[i]->name);
	recipe_set_free(old);
	return 0;
}

static unsigned jobs_from_config(struct manager *m)
{
	long cpus;

	if (m->ctx->config->jobs > 0)
		return m->ctx->config->jobs;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus > 0 ? (unsigned) cpus : 1;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct manager *m = userdata;
	struct dm2_config *c = NULL;
	int r;

	(void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading configuration and recipes.");
	r = config_load(m->ctx->root_fd, DM2_CONF_FILE, &c);
	if (r < 0)
		log_error_errno(r, "Failed to reload '%s', keeping the old configuration: %m",
				DM2_CONF_FILE);
	else {
		config_free(m->ctx->config);
		m->ctx->config = c;
		m->max_jobs = jobs_from_config(m);
	}
	(void) recipes_reload(m);
	(void) rescan(m);
	schedule_dispatch(m);
	(void) sd_notify(false, "READY=1");
	notify_status(m);
	log_info("Reloaded: %zu recipe(s), up to %u job(s) at once.", m->recipes->n, m->max_jobs);
	return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct manager *m = userdata;

	log_warning("Jobs did not stop in time, killing them.");
	for (size_t i = 0; i < m->n_jobs; i++)
		if (m->jobs[i]->state == MJOB_RUNNING && m->jobs[i]->pid > 0)
			(void) kill(-m->jobs[i]->pid, SIGKILL);
	return 0;
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct manager *m = userdata;

	if (m->stopping)
		return 0;
	m->stopping = true;
	(void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping, interrupting running jobs.");
	log_info("Stopping: %u running job(s) go back to the queue.", m->n_running);
	for (size_t i = 0; i < m->n_jobs; i++)
		if (m->jobs[i]->state == MJOB_RUNNING && m->jobs[i]->pid > 0)
			(void) kill(-m->jobs[i]->pid, SIGTERM);
	if (m->n_running > 0)
		(void) sd_event_add_time_relative(m->event, &m->stop_timer, CLOCK_MONOTONIC,
						  STOP_TIMEOUT_USEC, 0, on_stop_timeout, m);
	maybe_exit(m);
	return 0;
}

/* ---- public ---- */

static char *find_cli(void)
{
	char exe[PATH_MAX], own[PATH_MAX + 8];
	const char *env = getenv("DM2_CLI");
	ssize_t n;
	char *slash;

	if (env)
		return strdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return strdup("dm2");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return strdup("dm2");
	*slash = '\0';
	/* Installed, dm2d lives in sbin and dm2 in bin. */
	snprintf(own, sizeof(own), "%s/dm2", exe);
	if (endswith(exe, "/sbin") && access(DM2_BINDIR "/dm2", X_OK) == 0 && access(own, X_OK) < 0)
		return strdup(DM2_BINDIR "/dm2");
	return strdup(own);
}

int manager_new(struct dm2_context *ctx, const struct manager_options *o, struct manager **ret)
{
	_cleanup_(manager_freep) struct manager *m = NULL;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return log_oom();
	m->ctx = ctx;
	if (o)
		m->o = *o;
	m->cli = m->o.cli ? strdup(m->o.cli) : find_cli();
	if (!m->cli)
		return log_oom();
	m->o.cli = NULL;
	m->max_jobs = jobs_from_config(m);

	r = sd_event_default(&m->event);
	if (r < 0)
		return log_error_errno(r, "Failed to allocate the event loop: %m");
	*ret = TAKE_PTR(m);
	return 0;
}

struct manager *manager_free(struct manager *m)
{
	if (!m)
		return NULL;
	control_server_free(m->control);
	for (size_t i = 0; i < m->n_jobs; i++)
		mjob_free(m->jobs[i]);
	free(m->jobs);
	for (size_t i = 0; i < m->n_kernels; i++)
		mkernel_free(m->kernels[i]);
	free(m->kernels);
	watch_free(m->watch);
	sd_event_source_disable_unref(m->sig_term);
	sd_event_source_disable_unref(m->sig_int);
	sd_event_source_disable_unref(m->sig_hup);
	sd_event_source_disable_unref(m->recipes_settle);
	sd_event_source_disable_unref(m->dispatch);
	sd_event_source_disable_unref(m->stop_timer);
	recipe_set_free(m->recipes);
	db_close(m->db);
	sd_event_unref(m->event);
	free(m->cli);
	return mfree(m);
}

sd_event *manager_event(struct manager *m)
{
	return m->event;
}

int manager_startup(struct manager *m)
{
	static const struct watch_callbacks cb = {
		.kernel_changed = on_kernel_changed,
		.kernel_removed = on_kernel_removed,
		.recipes_changed = on_recipes_changed,
		.rescan = on_rescan,
	};
	struct db_job *unfinished = NULL;
	size_t n_unfinished = 0;
	sigset_t ss;
	int r;

	/* sd_event_add_child() needs SIGCHLD blocked before any child exists. */
	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
		return log_error_errno(errno, "Failed to block SIGCHLD: %m");
	r = sd_event_add_signal(m->event, &m->sig_term, SIGTERM | SD_EVENT_SIGNAL_PROCMASK,
				on_sigterm, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, &m->sig_int, SIGINT | SD_EVENT_SIGNAL_PROCMASK,
					on_sigterm, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, &m->sig_hup, SIGHUP | SD_EVENT_SIGNAL_PROCMASK,
					on_sighup, m);
	if (r < 0)
		return log_error_errno(r, "Failed to set up signal handling: %m");
	(void) sd_event_set_watchdog(m->event, true);

	kbw_set_log_fn(kbw_log, NULL);
	r = db_open(m->ctx, true, &m->db);
	if (r < 0)
		return log_error_errno(r, "Failed to open the state db '%s/%s': %m", m->ctx->root,
				       DM2_STATE_DB);
	r = recipes_reload(m);
	if (r < 0)
		return r;
	r = watch_new(m->event, m->ctx, &cb, m, &m->watch);
	if (r < 0)
		return r;
	r = control_server_new(m, m->event, m->ctx, &m->control);
	if (r < 0)
		return r;

	/* The persistent queue first: whatever was unfinished at the last stop or crash. */
	r = db_jobs_unfinished(m->db, &unfinished, &n_unfinished);
	if (r < 0)
		return log_error_errno(r, "Failed to read the queue from the state db: %m");
	for (size_t i = 0; i < n_unfinished; i++) {
		log_info("Resuming job %" PRIi64 " ('%s' for kernel '%s', was %s).", unfinished[i].id,
			 unfinished[i].recipe, unfinished[i].kernel,
			 strna(job_state_to_string(unfinished[i].state)));
		(void) job_enqueue(m, unfinished[i].recipe, unfinished[i].kernel);
		(void) kernel_get(m, unfinished[i].kernel, true);
	}
	db_jobs_free(unfinished, n_unfinished);

	r = rescan(m);
	if (r < 0)
		return r;
	m->started = true;
	log_info("dm2d " DM2_VERSION " running for root '%s': %zu recipe(s), %zu kernel(s), up to "
		 "%u job(s) at once.", m->ctx->root, m->recipes->n, m->n_kernels, m->max_jobs);
	(void) sd_notify(false, "READY=1");
	notify_status(m);
	schedule_dispatch(m);
	return 0;
}

int manager_run(struct manager *m)
{
	return sd_event_loop(m->event);
}

/* ---- for control.c ---- */

int manager_trigger(struct manager *m, const char *kver, bool retry, char **ret_reason)
{
	int r;

	if (!kver) {
		r = rescan(m);
		if (r < 0)
			return r;
		for (size_t i = 0; i < m->n_kernels; i++)
			if (m->kernels[i]->complete)
				(void) kernel_plan(m, m->kernels[i]->kver, retry, false);
		return 0;
	}
	(void) watch_kernel(m->watch, kver);
	return kernel_check(m, kver, retry, ret_reason);
}

int manager_queue(struct manager *m, const char *kver, char **names, char **ret_missing)
{
	struct kbw_kernel *kk = NULL;
	int r;

	r = probe(m, kver, &kk);
	if (r < 0) {
		if (r == -ENOENT && ret_missing)
			*ret_missing = strdup(kver);
		return r;
	}
	kbw_kernel_unref(kk);
	if (!kernel_get(m, kver, true))
		return -ENOMEM;
	STRV_FOREACH(n, names)
		if (!recipe_set_find(m->recipes, *n)) {
			if (ret_missing)
				*ret_missing = strdup(*n);
			return -ENOENT;
		}
	STRV_FOREACH(n, names) {
		r = job_enqueue(m, *n, kver);
		if (r < 0)
			return r;
	}
	return 0;
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
