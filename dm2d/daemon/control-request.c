/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One control request, answered through struct control_ops; see control-request.h. */
#include <stdarg.h>
#include <stdio.h>

#include "control/control.h"
#include "control/exit-codes.h"
#include "daemon/control-request.h"
#include "shared/log.h"
#include "shared/util.h"

/* Longer timeouts are cut to a week: no overflow in microseconds. */
#define TIMEOUT_SEC_MAX (7ULL * 24 * 3600)

void control_action_done(struct control_action *a)
{
	free(a->kver);
	strv_free(a->names);
	free(a->name);
	free(a->version);
	*a = (struct control_action){};
}

/* A reply builder: lines, and whether an allocation failed on the way. */
struct reply {
	char **lines;
	int r;
};

static void reply_add(struct reply *rp, const char *fmt, ...) _printf_(2, 3);
static void reply_add(struct reply *rp, const char *fmt, ...)
{
	char *line;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0) {
		rp->r = -ENOMEM;
		return;
	}
	/* One line each: a reason or name with a control character would end the line early
	 * or reach the client's terminal. */
	for (char *p = line; *p; p++)
		if ((unsigned char) *p < ' ' || *p == 0x7f)
			*p = '?';
	if (strv_consume(&rp->lines, line) < 0)
		rp->r = -ENOMEM;
}

struct job_lines {
	struct reply *rp;
	bool failed, waiting;
};

static void job_line(const struct control_job *job, void *userdata)
{
	struct job_lines *jl = userdata;
	const char *st = job->running ? "running" : strna(job_state_to_string(job->state));

	if (!job->running && job->state == JOB_STATE_FAILED)
		jl->failed = true;
	if (!job->running && job->state == JOB_STATE_WAITING)
		jl->waiting = true;
	reply_add(jl->rp, "JOB %s %s %s%s%s", job->recipe, job->kver, st, job->reason ? " " : "",
		  strempty(job->reason));
}

/* The JOB lines of kver's jobs (names: only these); returns the exit code a waiting client
 * gets: 5 when one failed, else 9 when one waits for its kernel, else 0. */
static int list_jobs(const struct control_ops *ops, void *userdata, const char *kver,
		     char **names, struct reply *rp)
{
	struct job_lines jl = {.rp = rp};

	ops->foreach_job(userdata, kver, names, job_line, &jl);
	return jl.failed ? EXIT_BUILD_FAILED : jl.waiting ? EXIT_WAITING : EXIT_OK;
}

int control_wait_result(const struct control_ops *ops, void *userdata, const char *kver,
			char **names, char ***ret_lines)
{
	struct reply rp = {};
	int code;

	if (ops->busy(userdata, kver, names))
		return 0;
	code = list_jobs(ops, userdata, kver, names, &rp);
	reply_add(&rp, "DONE %i", code);
	if (rp.r < 0) {
		strv_free(rp.lines);
		return rp.r;
	}
	*ret_lines = rp.lines;
	return 1;
}

static int parse_timeout(const char *s, struct reply *rp, uint64_t *ret)
{
	uint64_t sec;

	if (safe_atou64(s, &sec) < 0) {
		reply_add(rp, "ERR %i invalid timeout '%s'", EXIT_USAGE, s);
		return -EINVAL;
	}
	*ret = MIN(sec, TIMEOUT_SEC_MAX) * 1000000ULL;
	return 0;
}

/* BUILD KVER TIMEOUT NAME [VERSION|-] [json|text] */
static int handle_build(const struct control_ops *ops, void *userdata, char **w, size_t n,
			struct reply *rp, struct control_action *a)
{
	const char *version = n > 4 && !streq(w[4], "-") ? w[4] : NULL;
	bool json = n > 5 && streq(w[5], "json");
	int r;

	if (n < 4 || n > 6 || !control_word_ok(w[1]) || !control_word_ok(w[3]) ||
	    (n > 4 && !control_word_ok(w[4])) || (n > 5 && !json && !streq(w[5], "text"))) {
		reply_add(rp, "ERR %i usage: BUILD KVER TIMEOUT NAME [VERSION|-] [json|text]",
			  EXIT_USAGE);
		return 0;
	}
	if (parse_timeout(w[2], rp, &a->timeout_usec) < 0)
		return 0;
	r = ops->find_recipes(userdata, (char *[]){w[3], NULL}, NULL);
	if (r == -ESRCH) {
		reply_add(rp, "NORECIPE %s", w[3]);
		return 0;
	}
	if (r < 0) {
		reply_add(rp, "ERR %i reading recipes failed: %s", EXIT_FAILURE_GENERIC,
			  strerror(-r));
		return 0;
	}
	a->kver = strdup(w[1]);
	a->name = strdup(w[3]);
	a->version = version ? strdup(version) : NULL;
	if (!a->kver || !a->name || (version && !a->version))
		return -ENOMEM;
	a->json = json;
	a->next = CONTROL_NEXT_BUILD;
	return 0;
}

/* TRIGGER KVER|* WAIT TIMEOUT */
static int handle_trigger(const struct control_ops *ops, void *userdata, char **w, size_t n,
			  struct reply *rp, struct control_action *a)
{
	_cleanup_free_ char *reason = NULL;
	const char *kver;
	int r;

	if (n != 4 || !control_word_ok(w[1]) || (!streq(w[2], "0") && !streq(w[2], "1"))) {
		reply_add(rp, "ERR %i usage: TRIGGER KVER|* WAIT TIMEOUT", EXIT_USAGE);
		return 0;
	}
	if (parse_timeout(w[3], rp, &a->timeout_usec) < 0)
		return 0;
	kver = streq(w[1], "*") ? NULL : w[1];
	r = ops->trigger(userdata, kver, &reason);
	if (r == -ENOENT)
		reply_add(rp, "ERR %i no kernel '%s' under lib/modules", EXIT_NOT_FOUND, w[1]);
	else if (r == -EAGAIN)
		reply_add(rp, "DONE %i kernel '%s' is incomplete: %s", EXIT_WAITING, w[1],
			  strna(reason));
	else if (r < 0)
		reply_add(rp, "ERR %i trigger failed: %s", EXIT_FAILURE_GENERIC, strerror(-r));
	else if (streq(w[2], "0"))
		reply_add(rp, "DONE 0");
	else {
		if (kver && !(a->kver = strdup(kver)))
			return -ENOMEM;
		a->next = CONTROL_NEXT_WAIT;
	}
	return 0;
}

/* INSTALL KVER TIMEOUT NAME... */
static int handle_install(const struct control_ops *ops, void *userdata, char **w, size_t n,
			  struct reply *rp, struct control_action *a)
{
	_cleanup_strv_free_ char **names = NULL;
	_cleanup_free_ char *missing = NULL;
	int r;

	if (n < 4 || !control_word_ok(w[1])) {
		reply_add(rp, "ERR %i usage: INSTALL KVER TIMEOUT NAME...", EXIT_USAGE);
		return 0;
	}
	for (size_t i = 3; i < n; i++) {
		if (!control_word_ok(w[i])) {
			reply_add(rp, "ERR %i invalid recipe name '%s'", EXIT_USAGE, w[i]);
			return 0;
		}
		if (strv_extend(&names, w[i]) < 0)
			return -ENOMEM;
	}
	if (parse_timeout(w[2], rp, &a->timeout_usec) < 0)
		return 0;
	r = ops->queue(userdata, w[1], names, &missing);
	if (r == -ENOENT)
		reply_add(rp, "ERR %i no kernel '%s' under lib/modules", EXIT_NOT_FOUND, w[1]);
	else if (r == -ESRCH)
		reply_add(rp, "NORECIPE %s", strna(missing));
	else if (r < 0)
		reply_add(rp, "ERR %i queueing failed: %s", EXIT_FAILURE_GENERIC, strerror(-r));
	else {
		a->kver = strdup(w[1]);
		if (!a->kver)
			return -ENOMEM;
		a->names = TAKE_PTR(names);
		a->next = CONTROL_NEXT_WAIT;
	}
	return 0;
}

static int dispatch(const struct control_ops *ops, void *userdata, uid_t uid, char **w,
		    struct reply *rp, struct control_action *a)
{
	size_t n = strv_length(w);

	if (streq(w[0], "STATUS")) {
		(void) list_jobs(ops, userdata, NULL, NULL, rp);
		reply_add(rp, "DONE 0");
		return 0;
	}
	if (!streq(w[0], "TRIGGER") && !streq(w[0], "INSTALL") && !streq(w[0], "BUILD")) {
		reply_add(rp, "ERR %i unknown request '%s'", EXIT_USAGE, w[0]);
		return 0;
	}
	if (uid != 0) {
		log_notice("Refused '%s' from uid %u: only root may change anything.", w[0],
			   (unsigned) uid);
		reply_add(rp, "ERR %i permission denied: only root may ask dm2d to build",
			  EXIT_PERMISSION);
		return 0;
	}
	if (streq(w[0], "BUILD"))
		return handle_build(ops, userdata, w, n, rp, a);
	if (streq(w[0], "TRIGGER"))
		return handle_trigger(ops, userdata, w, n, rp, a);
	return handle_install(ops, userdata, w, n, rp, a);
}

int control_handle_request(const char *line, uid_t uid, const struct control_ops *ops,
			   void *userdata, char ***ret_lines, struct control_action *ret_action)
{
	_cleanup_strv_free_ char **w = NULL;
	struct control_action a = {};
	struct reply rp = {};
	int r;

	r = control_split(line, &w);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || !w || !w[0])
		reply_add(&rp, "ERR %i empty request", EXIT_USAGE);
	else {
		log_debug("Control request '%s' from uid %u.", line, (unsigned) uid);
		r = dispatch(ops, userdata, uid, w, &rp, &a);
		if (r < 0)
			rp.r = r;
	}
	if (rp.r < 0) {
		control_action_done(&a);
		strv_free(rp.lines);
		return rp.r;
	}
	*ret_lines = rp.lines;
	*ret_action = a;
	return 0;
}
