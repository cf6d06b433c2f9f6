/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>

#include "control/exit-codes.h"
#include "core/db.h"
#include "core/kernels.h"
#include "daemon/child.h"
#include "daemon/control-server.h"
#include "daemon/manager-internal.h"
#include "daemon/manager.h"
#include "daemon/watch.h"
#include "libkbuild-wrap.h"
#include "recipe/dkms-active.h"
#include "recipe/recipe-set.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/* How long SIGTERM'd children get before SIGKILL, and how long after that dm2d waits for
 * their exits before it leaves anyway: dm2d exits at most STOP_TIMEOUT_USEC +
 * STOP_KILL_GRACE_USEC after SIGTERM (25 s; systemd's default TimeoutStopSec= is 90 s). */
#define STOP_TIMEOUT_USEC (20ULL * 1000000ULL)
#define STOP_KILL_GRACE_USEC (5ULL * 1000000ULL)

/* ---- small lookups ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(struct kbw_kernel *, kbw_kernel_unref);

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

/* Queue the jobs kver needs, given the recipe set and the state db: recipes without a job
 * yet, interrupted or waiting ones, with retry failed ones, with force all. */
static int kernel_queue_jobs(struct manager *m, const char *kver, bool retry, bool force)
{
	int r;

	for (size_t i = 0; i < m->recipes->n; i++) {
		struct recipe *rc = m->recipes->recipes[i];
		struct db_job cur = {};
		struct qjob *j;
		bool want;

		if (!rc->autoinstall)
			continue;
		if (dkms_manages(m->ctx, rc)) {
			/* DKMS' own hook builds it (and ran first): dm2 would only fail on its
			 * files. */
			log_notice("'%s' for '%s' is left to DKMS, which builds it itself; 'dm2 "
				   "dkms takeover %s' hands it to dm2.",
				   rc->name, kver, rc->name);
			continue;
		}
		j = queue_find(&m->queue, rc->name, kver);
		if (j && (j->running || j->state == JOB_STATE_QUEUED) && !force)
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
		r = manager_job_enqueue(m, rc->name, kver);
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
	manager_jobs_drop_kernel(m, kver);
	if (k) {
		manager_mkernel_free(k);
		memmove(m->kernels + i, m->kernels + i + 1, sizeof(*m->kernels) * (m->n_kernels - i - 1));
		m->n_kernels--;
	}
	r = db_kernel_remove(m->db, kver);
	if (r < 0 && r != -ENOENT)
		log_warning_errno(r, "Failed to forget kernel '%s' in the state db, ignoring: %m", kver);
	control_server_job_changed(m->control, kver);
	manager_notify_status(m);
}

/* Whether kver's tree is not the one its jobs were built for (same release, headers
 * rebuilt): compares what is on disk with what the last probe recorded. */
static bool kernel_tree_changed(struct manager *m, const char *kver, const char *stamp)
{
	struct db_kernel old = {};
	bool changed = false;

	if (!stamp || db_kernel_get(m->db, kver, &old) < 0)
		return false;
	/* Before stamps, the column held the sha256 identity: not comparable, not a change. */
	if (old.identity && startswith(old.identity, "stamp:") && !streq(old.identity, stamp)) {
		log_notice("The build tree of kernel '%s' changed, rebuilding.", kver);
		log_debug("Kernel '%s': recorded %s, now %s.", kver, old.identity, stamp);
		changed = true;
	}
	db_kernel_done(&old);
	return changed;
}

static int kernel_incomplete(struct manager *m, struct mkernel *k, struct kbw_kernel *kk,
			     bool retry, const char *reason, char **ret_reason)
{
	if (k->complete || !retry)
		log_info("Kernel '%s' is not complete yet: %s", k->kver, strna(reason));
	k->complete = false;
	(void) db_kernel_upsert(m->db, k->kver, NULL, kbw_kernel_arch(kk), "incomplete", reason);
	if (ret_reason)
		*ret_reason = reason ? strdup(reason) : NULL;
	return -EAGAIN;
}

/* The completeness check: probe the tree, and queue jobs when it is complete. */
static int kernel_check(struct manager *m, const char *kver, bool retry, char **ret_reason)
{
	_cleanup_(kbw_kernel_unrefp) struct kbw_kernel *kk = NULL;
	_cleanup_free_ char *stamp = NULL;
	const char *reason = NULL;
	struct mkernel *k;
	bool force;
	int r;

	r = probe(m, kver, &kk);
	if (r == -ENOENT) {
		if (manager_kernel_get(m, kver, false))
			kernel_removed(m, kver);
		return -ENOENT;
	}
	if (r < 0)
		return log_error_errno(r, "Failed to probe kernel '%s': %m", kver);
	k = manager_kernel_get(m, kver, true);
	if (!k)
		return log_oom();
	if (!kbw_kernel_complete(kk, &reason))
		return kernel_incomplete(m, k, kk, retry, reason, ret_reason);

	r = kernel_tree_stamp(kk, &stamp);
	if (r < 0)
		log_warning_errno(r, "Failed to stat the build tree of '%s', ignoring: %m", kver);
	force = kernel_tree_changed(m, kver, stamp);
	if (!k->complete)
		log_notice("event: kernel-complete, kernel=%s", kver);
	k->complete = true;
	r = db_kernel_upsert(m->db, kver, stamp, kbw_kernel_arch(kk), "complete", NULL);
	if (r < 0)
		return log_error_errno(r, "Failed to record kernel '%s' in the state db: %m", kver);
	r = kernel_queue_jobs(m, kver, retry, force);
	manager_notify_status(m);
	return r;
}

/* ---- events ---- */

/* The debounce of dm2d: a one-shot timer in *s that fires SettleSec= from now, made on
 * first use; a timer still armed is pushed back. */
static int manager_settle_arm(struct manager *m, sd_event_source **s,
			      sd_event_time_handler_t handler, void *userdata)
{
	uint64_t settle = m->ctx->config->settle_usec;
	int r;

	if (!*s)
		return sd_event_add_time_relative(m->event, s, CLOCK_MONOTONIC, settle, 0,
						  handler, userdata);
	r = sd_event_source_set_time_relative(*s, settle);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
}

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
	manager_maybe_exit(m);
	return 0;
}

static void on_kernel_changed(const char *kver, void *userdata)
{
	struct manager *m = userdata;
	struct mkernel *k = manager_kernel_get(m, kver, true);
	int r;

	if (!k) {
		log_oom();
		return;
	}
	r = manager_settle_arm(m, &k->settle, on_settled, k);
	if (r < 0)
		log_error_errno(r, "Failed to arm the settle timer for '%s': %m", kver);
}

static void on_kernel_removed(const char *kver, void *userdata)
{
	kernel_removed(userdata, kver);
	manager_maybe_exit(userdata);
}

static int recipes_reload(struct manager *m);

static int on_recipes_settled(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct manager *m = userdata;

	(void) recipes_reload(m);
	manager_maybe_exit(m);
	return 0;
}

static void on_recipes_changed(void *userdata)
{
	struct manager *m = userdata;
	int r;

	r = manager_settle_arm(m, &m->recipes_settle, on_recipes_settled, m);
	if (r < 0)
		log_error_errno(r, "Failed to arm the recipe settle timer: %m");
}

/* Kernels the db knows but whose directory went away while we were not looking. */
static int kernels_forget_vanished(struct manager *m)
{
	struct db_kernel *known = NULL;
	size_t n_known = 0;
	int r;

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

/* Watch and check every kernel directory there is. */
static int kernels_scan(struct manager *m)
{
	_cleanup_close_ int fd = -EBADF;
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
	return 0;
}

static int rescan(struct manager *m)
{
	int r;

	r = kernels_forget_vanished(m);
	if (r < 0)
		return r;
	return kernels_scan(m);
}

/* Everything the watches could have told. Vanished kernels go first, so that new recipes
 * are not queued for them; the recipes before the kernel scan, so that the kernels found
 * are planned with the current set. */
static void rescan_all(struct manager *m)
{
	(void) kernels_forget_vanished(m);
	(void) recipes_reload(m);
	(void) kernels_scan(m);
	manager_schedule_dispatch(m);
}

static int on_rescan_settled(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct manager *m = userdata;

	rescan_all(m);
	manager_notify_status(m);
	manager_maybe_exit(m);
	return 0;
}

/* The inotify queue overflowed: events of any watch, kernels and recipes alike, are lost.
 * Every watch source reports the same overflow; the first arms the timer, and the others,
 * finding it armed, leave it as it is, so that the rescan is not put off further. */
static void on_rescan(void *userdata)
{
	struct manager *m = userdata;
	int r;

	if (manager_settle_armed(m->rescan_settle))
		return;
	log_warning("inotify queue overflowed, events were lost; rescanning everything.");
	r = manager_settle_arm(m, &m->rescan_settle, on_rescan_settled, m);
	if (r >= 0)
		return;
	log_warning_errno(r, "Failed to arm the rescan timer, rescanning at once: %m");
	rescan_all(m);
	manager_maybe_exit(m);
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

		/* The sha256 column is the jobs' to fill (it is part of their build key). */
		(void) db_recipe_upsert(m->db, rc->name, recipe_origin_to_string(rc->origin),
					rc->path, NULL);
		if (prev && prev->content_crc == rc->content_crc)
			continue;
		if (old)
			log_notice("event: recipe-%s, recipe=%s", prev ? "changed" : "added", rc->name);
		if (!old || !rc->autoinstall || dkms_manages(m->ctx, rc))
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
				(void) manager_job_enqueue(m, rc->name, m->kernels[k]->kver);
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
	r = config_load_root(m->ctx->root_fd, m->ctx->root, DM2_CONF_FILE, &c);
	if (r < 0)
		log_error_errno(r, "Failed to reload '%s', keeping the old configuration: %m",
				DM2_CONF_FILE);
	else {
		config_free(m->ctx->config);
		m->ctx->config = c;
		m->max_jobs = jobs_from_config(m);
		(void) jobserver_resize(&m->jobserver, m->max_jobs);
	}
	rescan_all(m);
	(void) sd_notify(false, "READY=1");
	manager_notify_status(m);
	log_info("Reloaded: %zu recipe(s), up to %u job(s) at once.", m->recipes->n, m->max_jobs);
	return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct manager *m = userdata;
	int r;

	if (m->stop_killed) {
		/* SIGKILL'd and still not reaped (a child stuck in the kernel): leave anyway, a
		 * stop must end. The queue in the state db says what to do next time. */
		log_error("%u job(s) did not exit after SIGKILL, exiting without them.",
			  manager_n_running(m));
		return sd_event_exit(m->event, 0);
	}
	log_warning("Jobs did not stop in time, killing them.");
	m->stop_killed = true;
	manager_kill_children(m, SIGKILL);
	r = sd_event_source_set_time_relative(s, STOP_KILL_GRACE_USEC);
	if (r >= 0)
		r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (r < 0)
		return sd_event_exit(m->event, 0);
	return 0;
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct manager *m = userdata;
	unsigned running = manager_n_running(m);

	if (m->stopping)
		return 0;
	m->stopping = true;
	(void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping, interrupting running jobs.");
	log_info("Stopping: %u running job(s) go back to the queue.", running);
	manager_kill_children(m, SIGTERM);
	if (running > 0 && sd_event_add_time_relative(m->event, &m->stop_timer, CLOCK_MONOTONIC,
						      STOP_TIMEOUT_USEC, 0, on_stop_timeout, m) < 0)
		manager_kill_children(m, SIGKILL); /* no timer: do not wait on them */
	manager_maybe_exit(m);
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
	m->jobserver = JOBSERVER_NULL;
	m->ctx = ctx;
	if (o)
		m->o = *o;
	m->cli = m->o.cli ? strdup(m->o.cli) : find_cli();
	if (!m->cli)
		return log_oom();
	m->o.cli = NULL;
	m->max_jobs = jobs_from_config(m);
	r = jobserver_new(m->max_jobs, &m->jobserver);
	if (r < 0)
		return log_error_errno(r, "Cannot create the make jobserver: %m");
	child_set_jobserver(&m->jobserver);

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
	control_server_free(m->control); /* first: it ends the builds of its clients */
	manager_queue_done(m);
	for (size_t i = 0; i < m->n_kernels; i++)
		manager_mkernel_free(m->kernels[i]);
	free(m->kernels);
	watch_free(m->watch);
	sd_event_source_disable_unref(m->sig_term);
	sd_event_source_disable_unref(m->sig_int);
	sd_event_source_disable_unref(m->sig_hup);
	sd_event_source_disable_unref(m->recipes_settle);
	sd_event_source_disable_unref(m->rescan_settle);
	sd_event_source_disable_unref(m->dispatch);
	sd_event_source_disable_unref(m->stop_timer);
	sd_event_source_disable_unref(m->idle_post);
	recipe_set_free(m->recipes);
	child_set_jobserver(NULL);
	jobserver_done(&m->jobserver);
	db_close(m->db);
	sd_event_unref(m->event);
	free(m->cli);
	return mfree(m);
}

sd_event *manager_event(struct manager *m)
{
	return m->event;
}

static int signals_setup(struct manager *m)
{
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
	return 0;
}

/* ---- the control server's view of the manager ---- */

static int ctl_trigger(void *userdata, const char *kver, char **ret_reason)
{
	return manager_trigger(userdata, kver, true, ret_reason);
}

static int ctl_find_recipes(void *userdata, char **names, char **ret_missing)
{
	return manager_find_recipes(userdata, names, ret_missing);
}

static int ctl_queue(void *userdata, const char *kver, char **names, char **ret_missing)
{
	return manager_queue(userdata, kver, names, ret_missing);
}

static bool ctl_busy(void *userdata, const char *kver, char **names)
{
	return manager_busy(userdata, kver, names);
}

static void ctl_foreach_job(void *userdata, const char *kver, char **names, control_job_fn fn,
			    void *fn_userdata)
{
	manager_foreach_job(userdata, kver, names, fn, fn_userdata);
}

static int ctl_build_new(void *userdata, const struct control_action *a,
			 control_build_line_fn on_line, control_build_exit_fn on_exit,
			 void *cb_userdata, void **ret)
{
	struct mbuild *b = NULL;
	int r;

	r = manager_build_new(userdata, a->name, a->kver, a->version, a->json, on_line, on_exit,
			      cb_userdata, &b);
	if (r < 0)
		return r;
	*ret = b;
	return 0;
}

static void ctl_build_free(void *build)
{
	manager_build_free(build);
}

static void ctl_closed(void *userdata)
{
	manager_maybe_exit(userdata);
}

static const struct control_server_ops control_ops = {
	.request = {
		.trigger = ctl_trigger,
		.find_recipes = ctl_find_recipes,
		.queue = ctl_queue,
		.busy = ctl_busy,
		.foreach_job = ctl_foreach_job,
	},
	.build_new = ctl_build_new,
	.build_free = ctl_build_free,
	.closed = ctl_closed,
};

int manager_startup(struct manager *m)
{
	static const struct watch_callbacks cb = {
		.kernel_changed = on_kernel_changed,
		.kernel_removed = on_kernel_removed,
		.recipes_changed = on_recipes_changed,
		.rescan = on_rescan,
	};
	int r;

	r = signals_setup(m);
	if (r < 0)
		return r;
	(void) sd_event_set_watchdog(m->event, true);
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
	r = control_server_new(m->event, m->ctx, &control_ops, m, &m->control);
	if (r < 0)
		return r;
	r = manager_watch_idle(m);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the idle check: %m");

	/* The persistent queue first: whatever was unfinished at the last stop or crash, and
	 * what a killed job left behind. */
	manager_recover(m);
	r = rescan(m);
	if (r < 0)
		return r;
	m->started = true;
	log_info("dm2d " DM2_VERSION " running for root '%s': %zu recipe(s), %zu kernel(s), up to "
		 "%u job(s) at once.", m->ctx->root, m->recipes->n, m->n_kernels, m->max_jobs);
	(void) sd_notify(false, "READY=1");
	manager_notify_status(m);
	manager_schedule_dispatch(m);
	return 0;
}

int manager_run(struct manager *m)
{
	return sd_event_loop(m->event);
}

/* ---- what clients ask for (through control_ops) ---- */

int manager_trigger(struct manager *m, const char *kver, bool retry, char **ret_reason)
{
	int r;

	if (!kver) {
		r = rescan(m);
		if (r < 0)
			return r;
		for (size_t i = 0; i < m->n_kernels; i++)
			if (m->kernels[i]->complete)
				(void) kernel_queue_jobs(m, m->kernels[i]->kver, retry, false);
		return 0;
	}
	(void) watch_kernel(m->watch, kver);
	return kernel_check(m, kver, retry, ret_reason);
}

int manager_find_recipes(struct manager *m, char **names, char **ret_missing)
{
	/* A recipe written a moment ago (before the settle timer re-read the directory) is
	 * what `dm2 install` asks for right after creating it: re-read once before refusing. */
	STRV_FOREACH(n, names)
		if (!recipe_set_find(m->recipes, *n)) {
			(void) recipes_reload(m);
			break;
		}
	STRV_FOREACH(n, names)
		if (!recipe_set_find(m->recipes, *n)) {
			if (ret_missing)
				*ret_missing = strdup(*n);
			return -ESRCH;
		}
	return 0;
}

int manager_queue(struct manager *m, const char *kver, char **names, char **ret_missing)
{
	struct kbw_kernel *kk = NULL;
	int r;

	r = probe(m, kver, &kk);
	if (r < 0)
		return r;
	kbw_kernel_unref(kk);
	if (!manager_kernel_get(m, kver, true))
		return -ENOMEM;
	r = manager_find_recipes(m, names, ret_missing);
	if (r < 0)
		return r;
	STRV_FOREACH(n, names) {
		r = manager_job_enqueue(m, *n, kver);
		if (r < 0)
			return r;
	}
	return 0;
}
