/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The build stage: kbuild, as the build user, in the job's work directory (builder.c). */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "pipeline/builder.h"
#include "pipeline/build-log.h"
#include "pipeline/job-internal.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/ticker.h"
#include "shared/util.h"

/* SIGTERM (dm2d stopping, systemd) and SIGINT (Ctrl-C) during a build: kbuild runs in its
 * own session, so the signal never reaches it; kill its whole process group, let the job
 * record the interruption and the caller re-raise the signal (job_interrupted()). Outside
 * a build the signal keeps its default action, as before. */
static volatile sig_atomic_t in_build, interrupted;

static void on_stop_signal(int sig)
{
	if (!in_build) {
		(void) signal(sig, SIG_DFL);
		(void) raise(sig);
		return;
	}
	interrupted = sig;
	kbw_build_cancel_all();
}

void job_stop_handlers_install(void)
{
	static bool done;
	static const int sigs[] = {SIGTERM, SIGINT};

	if (done)
		return;
	done = true;
	for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
		struct sigaction old,
			sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESTART};

		/* A signal the caller ignores (nohup, background jobs) stays ignored. */
		if (sigaction(sigs[i], NULL, &old) < 0 || old.sa_handler == SIG_IGN)
			continue;
		sigemptyset(&sa.sa_mask);
		(void) sigaction(sigs[i], &sa, NULL);
	}
}

int job_interrupted(void)
{
	return interrupted;
}

bool job_builds(const struct job *j)
{
	return !j->from_cache;
}

/* "ROOT/var/lib/dm2/work/job-XXXXXX/build/foo.c:3: error" is gone by the time anyone
 * reads it: say "foo.c:3: error". */
static int fail_build(struct job *j)
{
	_cleanup_free_ char *prefix = strjoin(j->build_dir, "/"), *t = NULL, *m = NULL;
	const char *why = j->build->reason ?: "the build failed", *p;

	if (prefix && (p = strstr(why, prefix))) {
		t = strndup(why, p - why);
		m = t ? strjoin(t, p + strlen(prefix)) : NULL;
	}
	return job_fail(j, -EPROTO, m ?: why);
}

/*
 * The licence of what was built, not of what the sources say: each module's modinfo
 * license (dahdi ships non-GPL files it never builds; jool writes
 * MODULE_LICENSE(JOOL_LICENSE)). A module that is not GPL-compatible is not installed
 * unless dm2d.conf says AllowNonGPL=yes.
 */
static int check_licenses(struct job *j)
{
	STRV_FOREACH(m, j->build->modules) {
		_cleanup_free_ char *license = NULL;
		const char *base = strrchr(*m, '/') ? strrchr(*m, '/') + 1 : *m;
		int r;

		r = kbw_module_info(*m, "license", &license);
		if (r < 0 && r != -ENODATA)
			return job_failf(j, r, "cannot read the license of '%s': %m", base);
		if (license_is_gpl_compatible(license))
			continue;
		if (j->ctx->config && j->ctx->config->allow_non_gpl) {
			log_notice("Module '%s' of '%s' has license '%s', not GPL-compatible; "
				   "installed because of AllowNonGPL=yes.",
				   base, j->name, strempty(license));
			continue;
		}
		return job_failf(j, -EPERM,
				 "module '%s' has license '%s', which is not GPL-compatible: "
				 "not installed (AllowNonGPL=yes in dm2d.conf allows it)",
				 base, license ? license : "(none)");
	}
	return 0;
}

int stage_build(struct job *j)
{
	_cleanup_free_ char *log_dir = NULL, *make_log = NULL;
	int r, k;

	log_dir = strjoin(DM2_LOG_DIR "/", j->name, "/", j->kver);
	if (!log_dir)
		return log_oom();
	r = mkdir_p_at(j->ctx->root_fd, log_dir, 0755);
	if (r < 0)
		return log_error_errno(r, "Failed to create '%s': %m", log_dir);

	/* The build writes its output beside the log; the log is the header and that. */
	make_log = strjoin(j->log_path, ".make");
	if (!make_log)
		return log_oom();
	/* On a terminal, a long build shows its time and its last compiler line. */
	struct ticker tick = { .pid = -1 };
	if (j->o->progress && isatty(STDERR_FILENO))
		(void) ticker_start(&tick, STDERR_FILENO, AT_FDCWD, make_log);
	in_build = 1;
	r = builder_build(j->ctx, j->recipe, j->kernel, j->src_dir, j->build_dir,
			  make_log, j->needs_symvers, &j->build);
	in_build = 0;
	ticker_stop(&tick);
	k = build_log_finish(j, make_log);
	if (k < 0)
		log_warning_errno(k, "Failed to write the build log '%s', ignoring: %m",
				  j->log_path);
	j->log_written = true;
	if (interrupted)
		return job_requeue(j, interrupted);
	if (r < 0) {
		/* The staging dir is gone by now: name the work dir (a full disk: which). */
		_cleanup_free_ char *work = context_path(j->ctx, DM2_WORK_DIR);

		return job_failf(j, r, "cannot run the build in '%s': %m", strna(work));
	}
	if (!kbw_build_succeeded(j->build))
		return fail_build(j);
	r = check_licenses(j);
	if (r != 0)
		return r; /* JOB_STOP: failed and recorded */

	r = job_modules_set(j, j->build->modules, NULL);
	if (r < 0)
		return r;
	/* `dm2 log` shows the log of this build from now on. */
	return job_set_state(j, j->state, j->stage, NULL, j->log_path);
}
