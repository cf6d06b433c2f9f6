/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2d's queue: jobs as `dm2 install` children, Jobs= at a time, one depmod per batch;
 * and `dm2 build` children for clients, in the same Jobs= slots. */
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>

#include "control/control.h"
#include "core/db.h"
#include "control/exit-codes.h"
#include "daemon/manager-internal.h"
#include "daemon/manager.h"
#include "recipe/recipe-set.h"
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
	pid_t pid; /* > 0: running, and counted in m->n_running */
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

/* A pipe for a child's output: only our end is non-blocking, a child that writes faster
 * than we read waits instead of losing lines to EAGAIN. */
static int output_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;

		safe_close(p[0]);
		safe_close(p[1]);
		return r;
	}
	return 0;
}

/* The child's stdout and stderr go to out_fd and err_fd (-EBADF: ours). */
static int spawn(struct manager *m, char **args, int out_fd, int err_fd, pid_t *ret_pid)
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
		}
		if (err_fd >= 0)
			(void) dup2(err_fd, STDERR_FILENO);
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

/* spawn(), and call on_exit when the child exits; the returned source owns the child
 * (freeing it kills and reaps the child). */
static int spawn_watched(struct manager *m, char **args, int out_fd, int err_fd,
			 sd_event_child_handler_t on_exit, void *userdata, pid_t *ret_pid,
			 sd_event_source **ret_child)
{
	pid_t pid = 0; /* set when spawn() succeeds; gcc -O2 cannot tell */
	int r;

	r = spawn(m, args, out_fd, err_fd, &pid);
	if (r < 0)
		return r;
	r = sd_event_add_child(m->event, ret_child, pid, WEXITED, on_exit, userdata);
	if (r < 0) {
		(void) kill(pid, SIGKILL);
		(void) waitpid(pid, NULL, 0);
		return r;
	}
	(void) sd_event_source_set_child_process_own(*ret_child, true);
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

/* Read what the pipe fd holds and hand each line to fn (one longer than size - 1 bytes in
 * pieces); the *n bytes of an unfinished line wait in line. Returns 1 while the pipe is
 * open; at its end (or an error) the unfinished line is handed on too, and 0 returned.
 * With drain (the child exited), reads all there is now and ends there: a grandchild that
 * still holds the pipe open is not waited for. */
static int read_lines(int fd, char *line, size_t size, size_t *n, bool drain,
		      void (*fn)(const char *line, void *userdata), void *userdata)
{
	for (;;) {
		char buf[4096];
		ssize_t k = read(fd, buf, sizeof(buf));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN && !drain)
			return 1;
		if (k <= 0) {
			if (*n > 0) {
				line[*n] = '\0';
				fn(line, userdata);
				*n = 0;
			}
			return 0;
		}
		for (ssize_t i = 0; i < k; i++) {
			if (buf[i] == '\n' || *n >= size - 1) {
				line[*n] = '\0';
				fn(line, userdata);
				*n = 0;
				if (buf[i] == '\n')
					continue;
			}
			line[(*n)++] = buf[i];
		}
		if (!drain)
			return 1;
	}
}

static void job_output_line(const char *line, void *userdata)
{
	struct mjob *j = userdata;

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

	if (read_lines(fd, j->line, sizeof(j->line), &j->n_line, false, job_output_line, j) > 0)
		return 0;
	j->out = sd_event_source_disable_unref(j->out);
	j->out_fd = safe_close(j->out_fd);
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

	/* What the child wrote before it exited. */
	if (j->out) {
		(void) read_lines(j->out_fd, j->line, sizeof(j->line), &j->n_line, true,
				  job_output_line, j);
		j->out = sd_event_source_disable_unref(j->out);
		j->out_fd = safe_close(j->out_fd);
	}
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
	r = output_pipe(p);
	if (r < 0)
		return r;
	j->out_fd = p[0];
	wr = p[1];
	/* Watch the output first: once the child runs, nothing may fail that leaves it running
	 * without being counted. */
	r = sd_event_add_io(m->event, &j->out, j->out_fd, EPOLLIN, on_job_output, j);
	if (r >= 0)
		r = spawn_watched(m, args, wr, wr, on_job_exited, j, &j->pid, &j->child);
	if (r < 0) {
		j->out = sd_event_source_disable_unref(j->out);
		j->out_fd = safe_close(j->out_fd);
		return r;
	}
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
		r = spawn(m, args, -EBADF, -EBADF, &k->depmod_pid);
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

/* ---- builds for clients ---- */

static void build_line(const char *line, void *userdata)
{
	struct mbuild_pipe *p = userdata;
	struct mbuild *b = p->build;

	log_debug("build %s %s: %s", b->recipe, b->kver, line);
	b->on_line(p->is_stderr, line, b->userdata);
}

/* Pass on what the pipe holds; close it at its end, or with drain (see read_lines()). */
static void build_pipe_read(struct mbuild_pipe *p, bool drain)
{
	if (read_lines(p->fd, p->line, sizeof(p->line), &p->n, drain, build_line, p) > 0)
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
	b->m->n_running--;
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

	r = output_pipe(p);
	if (r < 0)
		return r;
	b->out.fd = p[0];
	out_wr = p[1];
	r = output_pipe(p);
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
	r = spawn_watched(m, b->args, out_wr, err_wr, on_build_exited, b, &b->pid,
			  &b->child);
	if (r < 0)
		return r;
	m->n_running++;
	log_notice("event: build, recipe=%s, kernel=%s", b->recipe, b->kver);
	return 0;
}

/* Builds go first: someone waits for each of them. */
static void builds_dispatch(struct manager *m)
{
	for (struct mbuild *b = m->builds, *next; b && m->n_running < m->max_jobs;
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
	if (b->pid > 0)
		log_notice("Killing the build of '%s' for kernel '%s': its client went away "
			   "or its timeout passed.", b->recipe, b->kver);
	build_stop(b);
	sd_event_source_disable_unref(b->out.source);
	sd_event_source_disable_unref(b->err.source);
	safe_close(b->out.fd);
	safe_close(b->err.fd);
	strv_free(b->args);
	free(b->recipe);
	free(b->kver);
	return mfree(b);
}

static int on_dispatch(sd_event_source *s, void *userdata)
{
	struct manager *m = userdata;
	int r;

	if (m->stopping)
		return 0;
	builds_dispatch(m);
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
 * close the state db (in dm2d that unloads SQLite, see sqlite-lazy.c) and hand back what the
 * burst of work allocated. The next event that needs the db opens it again.
 */
static int on_post(sd_event_source *s, void *userdata)
{
	struct manager *m = userdata;

	if (!m->started || m->stopping || m->n_running > 0 || manager_busy(m, NULL, NULL))
		return 0;
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
	for (size_t i = 0; i < m->n_jobs; i++)
		if (m->jobs[i]->state == MJOB_RUNNING && m->jobs[i]->pid > 0)
			(void) kill(-m->jobs[i]->pid, sig);
	for (struct mbuild *b = m->builds; b; b = b->next)
		if (b->pid > 0)
			(void) kill(-b->pid, sig);
}

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
