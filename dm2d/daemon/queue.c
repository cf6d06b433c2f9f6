/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2d's job queue as plain data; see queue.h. */
#include <errno.h>
#include <stdlib.h>

#include "daemon/queue.h"
#include "shared/util.h"

void queue_init(struct queue *q)
{
	*q = (struct queue){};
}

static void qjob_free(struct qjob *j, void (*free_data)(struct qjob *j))
{
	if (!j)
		return;
	if (free_data)
		free_data(j);
	free(j->recipe);
	free(j->kver);
	free(j->reason);
	free(j);
}

void queue_done(struct queue *q, void (*free_data)(struct qjob *j))
{
	for (size_t i = 0; i < q->n; i++)
		qjob_free(q->jobs[i], free_data);
	q->jobs = mfree(q->jobs);
	q->n = 0;
}

struct qjob *queue_find(const struct queue *q, const char *recipe, const char *kver)
{
	for (size_t i = 0; i < q->n; i++)
		if (streq(q->jobs[i]->recipe, recipe) && streq(q->jobs[i]->kver, kver))
			return q->jobs[i];
	return NULL;
}

static int queue_append(struct queue *q, const char *recipe, const char *kver,
			struct qjob **ret)
{
	struct qjob *j, **a;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->recipe = strdup(recipe);
	j->kver = strdup(kver);
	a = realloc(q->jobs, sizeof(*a) * (q->n + 1));
	if (a)
		q->jobs = a;
	if (!j->recipe || !j->kver || !a) {
		qjob_free(j, NULL);
		return -ENOMEM;
	}
	q->jobs[q->n++] = j;
	*ret = j;
	return 0;
}

int queue_add(struct queue *q, const char *recipe, const char *kver, struct qjob **ret)
{
	struct qjob *j = queue_find(q, recipe, kver);
	int r;

	if (j && j->running) {
		j->again = true;
		r = QUEUE_AGAIN;
	} else if (j && j->state == JOB_STATE_QUEUED)
		r = QUEUE_ALREADY;
	else {
		if (!j) {
			r = queue_append(q, recipe, kver, &j);
			if (r < 0)
				return r;
		}
		j->state = JOB_STATE_QUEUED;
		j->reason = mfree(j->reason);
		j->sized = false; /* its sources may have changed since */
		r = QUEUE_ADDED;
	}
	if (ret)
		*ret = j;
	return r;
}

static bool needs_pending(const struct queue *q, const struct qjob *j,
			  const struct queue_ops *ops, void *userdata)
{
	char **needs = ops && ops->needs ? ops->needs(j->recipe, userdata) : NULL;

	STRV_FOREACH(n, needs) {
		struct qjob *o = queue_find(q, *n, j->kver);

		if (o && (o->running || o->state == JOB_STATE_QUEUED))
			return true;
	}
	return false;
}

/* j's expected time plus that of the queued jobs for its kernel waiting for it (Needs=):
 * a short provider of a long dependant is on the long path, and goes first. */
static uint64_t path_usec(const struct queue *q, const struct qjob *j,
			  const struct queue_ops *ops, void *userdata)
{
	uint64_t usec = ops->expected_usec(j->recipe, j->kver, userdata);

	for (size_t i = 0; i < q->n && ops->needs; i++) {
		const struct qjob *d = q->jobs[i];

		if (d == j || d->running || d->state != JOB_STATE_QUEUED ||
		    !streq(d->kver, j->kver))
			continue;
		if (strv_contains(ops->needs(d->recipe, userdata), j->recipe))
			usec += ops->expected_usec(d->recipe, d->kver, userdata);
	}
	return usec;
}

static uint64_t job_bytes(struct qjob *j, const struct queue_ops *ops, void *userdata)
{
	if (!ops->source_bytes)
		return 0;
	if (!j->sized) {
		j->source_bytes = ops->source_bytes(j->recipe, userdata);
		j->sized = true;
	}
	return j->source_bytes;
}

struct qjob *queue_next(const struct queue *q, const struct queue_ops *ops, void *userdata)
{
	struct qjob *best = NULL;
	uint64_t best_usec = 0, best_bytes = 0;

	for (size_t i = 0; i < q->n; i++) {
		struct qjob *j = q->jobs[i];
		uint64_t usec;

		if (j->running || j->state != JOB_STATE_QUEUED)
			continue;
		if (ops && ops->kernel_blocked && ops->kernel_blocked(j->kver, userdata))
			continue;
		/* a dependency is never behind its dependant: the dependant waits for it */
		if (needs_pending(q, j, ops, userdata))
			continue;
		if (!ops || !ops->expected_usec)
			return j;
		usec = path_usec(q, j, ops, userdata);
		/* Equal times (never built: both 0): the bigger sources first. */
		if (!best || usec > best_usec ||
		    (usec == best_usec && job_bytes(j, ops, userdata) > best_bytes)) {
			best = j;
			best_usec = usec;
			best_bytes = job_bytes(j, ops, userdata);
		}
	}
	return best;
}

void queue_job_started(struct qjob *j)
{
	j->running = true;
	j->again = false;
}

bool queue_job_finished(struct qjob *j, enum job_state st, const char *reason)
{
	j->running = false;
	if (j->again) {
		j->again = false;
		j->state = JOB_STATE_QUEUED;
		j->reason = mfree(j->reason);
		return true;
	}
	j->state = st;
	if (free_and_strdup(&j->reason, reason) < 0)
		j->reason = NULL; /* the state is what matters; the reason is for humans */
	return false;
}

void queue_job_requeue(struct qjob *j)
{
	j->running = false;
	j->again = false;
	j->state = JOB_STATE_QUEUED;
	j->reason = mfree(j->reason);
}

void queue_drop_kernel(struct queue *q, const char *kver, void (*free_data)(struct qjob *j))
{
	size_t n = 0;

	for (size_t i = 0; i < q->n; i++) {
		if (streq(q->jobs[i]->kver, kver))
			qjob_free(q->jobs[i], free_data);
		else
			q->jobs[n++] = q->jobs[i];
	}
	q->n = n;
}

bool queue_busy(const struct queue *q, const char *kver, char *const *names)
{
	for (size_t i = 0; i < q->n; i++) {
		const struct qjob *j = q->jobs[i];

		if (kver && !streq(j->kver, kver))
			continue;
		if (names && !strv_contains(names, j->recipe))
			continue;
		if (j->running || j->state == JOB_STATE_QUEUED)
			return true;
	}
	return false;
}

size_t queue_n_queued(const struct queue *q)
{
	size_t n = 0;

	for (size_t i = 0; i < q->n; i++)
		n += !q->jobs[i]->running && q->jobs[i]->state == JOB_STATE_QUEUED;
	return n;
}

size_t queue_n_running(const struct queue *q)
{
	size_t n = 0;

	for (size_t i = 0; i < q->n; i++)
		n += q->jobs[i]->running;
	return n;
}
