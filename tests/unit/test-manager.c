/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2d's queue (queue.c) and its control request handler (control-request.c), without an
 * event loop, a state db or a kernel. */
#include "control/exit-codes.h"
#include "daemon/control-request.h"
#include "daemon/queue.h"
#include "shared/util.h"
#include "tests.h"

/* ---- the queue ---- */

/* "consumer" needs "provider" (Needs=); nothing else needs anything. */
static char **fake_needs(const char *recipe, void *userdata)
{
	static char *provider[] = {(char *) "provider", NULL};

	return streq(recipe, "consumer") ? provider : NULL;
}

static bool fake_blocked(const char *kver, void *userdata)
{
	const char *blocked = userdata;

	return blocked && streq(kver, blocked);
}

static const struct queue_ops ops = {.needs = fake_needs, .kernel_blocked = fake_blocked};

static void test_queue_order_and_dedup(void **state)
{
	struct queue q;
	struct qjob *a, *b, *again;

	queue_init(&q);
	assert_int_equal(queue_add(&q, "a", "6.1", &a), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "b", "6.1", &b), QUEUE_ADDED);
	/* The same pair again while it waits: one entry, nothing to record. */
	assert_int_equal(queue_add(&q, "a", "6.1", &again), QUEUE_ALREADY);
	assert_ptr_equal(again, a);
	assert_int_equal(q.n, 2);
	assert_int_equal(queue_n_queued(&q), 2);
	/* Another kernel is another job. */
	assert_int_equal(queue_add(&q, "a", "6.2", NULL), QUEUE_ADDED);
	assert_int_equal(q.n, 3);

	/* First queued, first started. */
	assert_ptr_equal(queue_next(&q, &ops, NULL), a);
	queue_job_started(a);
	assert_ptr_equal(queue_next(&q, &ops, NULL), b);
	assert_int_equal(queue_n_running(&q), 1);
	assert_true(queue_busy(&q, "6.1", NULL));
	assert_true(queue_busy(&q, NULL, (char *[]){(char *) "a", NULL}));
	assert_false(queue_busy(&q, "6.3", NULL));

	/* Queued again while it runs: it runs once more afterwards. */
	assert_int_equal(queue_add(&q, "a", "6.1", NULL), QUEUE_AGAIN);
	assert_true(queue_job_finished(a, JOB_STATE_INSTALLED, NULL));
	assert_int_equal(a->state, JOB_STATE_QUEUED);
	queue_job_started(a);
	assert_false(queue_job_finished(a, JOB_STATE_FAILED, "does not compile"));
	assert_int_equal(a->state, JOB_STATE_FAILED);
	assert_string_equal(a->reason, "does not compile");
	/* Done jobs are queued anew, without the old reason. */
	assert_int_equal(queue_add(&q, "a", "6.1", NULL), QUEUE_ADDED);
	assert_null(a->reason);
	queue_done(&q, NULL);
}

/* Seconds per recipe name: "big" 30, "mid" 10, "consumer" 40, others unknown (0). */
static uint64_t fake_expected(const char *recipe, const char *kver, void *userdata)
{
	return streq(recipe, "big") ? 30000000u : streq(recipe, "mid") ? 10000000u
		: streq(recipe, "consumer") ? 40000000u : 0;
}

static const struct queue_ops timed_ops = {
	.needs = fake_needs, .kernel_blocked = fake_blocked, .expected_usec = fake_expected};

static void test_queue_longest_first(void **state)
{
	struct queue q;
	struct qjob *small, *mid, *big, *unknown, *consumer, *provider;

	queue_init(&q);
	assert_int_equal(queue_add(&q, "small", "6.1", &small), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "mid", "6.1", &mid), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "unknown", "6.1", &unknown), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "big", "6.1", &big), QUEUE_ADDED);
	/* the 40 s consumer needs the provider (0 s): the provider is on the longest path */
	assert_int_equal(queue_add(&q, "consumer", "6.1", &consumer), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "provider", "6.1", &provider), QUEUE_ADDED);

	assert_ptr_equal(queue_next(&q, &timed_ops, NULL), provider);
	queue_job_started(provider);
	assert_ptr_equal(queue_next(&q, &timed_ops, NULL), big);
	queue_job_started(big);
	(void) queue_job_finished(provider, JOB_STATE_INSTALLED, NULL);
	assert_ptr_equal(queue_next(&q, &timed_ops, NULL), consumer);
	queue_job_started(consumer);
	assert_ptr_equal(queue_next(&q, &timed_ops, NULL), mid);
	queue_job_started(mid);
	/* unknown ones keep the queue's order */
	assert_ptr_equal(queue_next(&q, &timed_ops, NULL), small);
	queue_job_started(small);
	assert_ptr_equal(queue_next(&q, &timed_ops, NULL), unknown);
	queue_done(&q, NULL);
}

/* Bytes of source per recipe name: "huge" 9 MB, "medium" 1 MB, others unknown (0); the
 * number of questions in *userdata. */
static uint64_t fake_bytes(const char *recipe, void *userdata)
{
	unsigned *asked = userdata;

	(*asked)++;
	return streq(recipe, "huge") ? 9000000u : streq(recipe, "medium") ? 1000000u : 0;
}

static const struct queue_ops sized_ops = {
	.needs = fake_needs, .expected_usec = fake_expected, .source_bytes = fake_bytes};

/* Never built (no duration): bigger sources first; a recorded duration still goes ahead. */
static void test_queue_unknown_by_size(void **state)
{
	struct queue q;
	struct qjob *small, *medium, *huge, *mid;
	unsigned asked = 0;

	queue_init(&q);
	assert_int_equal(queue_add(&q, "small", "6.1", &small), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "medium", "6.1", &medium), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "huge", "6.1", &huge), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "mid", "6.1", &mid), QUEUE_ADDED);

	assert_ptr_equal(queue_next(&q, &sized_ops, &asked), mid); /* 10 s recorded */
	queue_job_started(mid);
	assert_ptr_equal(queue_next(&q, &sized_ops, &asked), huge);
	queue_job_started(huge);
	assert_ptr_equal(queue_next(&q, &sized_ops, &asked), medium);
	queue_job_started(medium);
	assert_ptr_equal(queue_next(&q, &sized_ops, &asked), small);
	/* each job's size was asked once, however often the queue was scanned */
	assert_int_equal(asked, 4);
	/* queued anew: asked again (its sources may have changed) */
	(void) queue_job_finished(huge, JOB_STATE_INSTALLED, NULL);
	assert_int_equal(queue_add(&q, "huge", "6.1", NULL), QUEUE_ADDED);
	assert_ptr_equal(queue_next(&q, &sized_ops, &asked), huge);
	assert_int_equal(asked, 5);
	queue_done(&q, NULL);
}

static void test_queue_needs(void **state)
{
	struct queue q;
	struct qjob *consumer, *provider, *other;

	queue_init(&q);
	/* The dependant arrives first: only the scheduler can make it wait. */
	assert_int_equal(queue_add(&q, "consumer", "6.1", &consumer), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "provider", "6.1", &provider), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "consumer", "6.2", &other), QUEUE_ADDED);
	assert_ptr_equal(queue_next(&q, &ops, NULL), provider);
	queue_job_started(provider);
	/* Running is not done: 6.1's consumer still waits; 6.2 has no provider job. */
	assert_ptr_equal(queue_next(&q, &ops, NULL), other);
	queue_job_started(other);
	assert_null(queue_next(&q, &ops, NULL));
	(void) queue_job_finished(provider, JOB_STATE_INSTALLED, NULL);
	assert_ptr_equal(queue_next(&q, &ops, NULL), consumer);
	/* A failed provider does not hold the consumer forever (it fails on its own). */
	queue_done(&q, NULL);

	queue_init(&q);
	assert_int_equal(queue_add(&q, "consumer", "6.1", &consumer), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "provider", "6.1", &provider), QUEUE_ADDED);
	queue_job_started(provider);
	(void) queue_job_finished(provider, JOB_STATE_FAILED, "x");
	assert_ptr_equal(queue_next(&q, &ops, NULL), consumer);
	queue_done(&q, NULL);
}

static void test_queue_blocked_kernel(void **state)
{
	struct queue q;
	struct qjob *a, *b;

	queue_init(&q);
	assert_int_equal(queue_add(&q, "a", "6.1", &a), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "b", "6.2", &b), QUEUE_ADDED);
	/* 6.1's depmod runs: its jobs wait, the others do not. */
	assert_ptr_equal(queue_next(&q, &ops, (void *) "6.1"), b);
	assert_ptr_equal(queue_next(&q, &ops, NULL), a);
	queue_done(&q, NULL);
}

static void test_queue_requeue_on_stop(void **state)
{
	struct queue q;
	struct qjob *a, *b;

	queue_init(&q);
	assert_int_equal(queue_add(&q, "a", "6.1", &a), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "b", "6.1", &b), QUEUE_ADDED);
	queue_job_started(a);
	queue_job_started(b);
	assert_int_equal(queue_add(&q, "b", "6.1", NULL), QUEUE_AGAIN);
	/* dm2d stops: both go back, in their order, and "again" is moot. */
	queue_job_requeue(a);
	queue_job_requeue(b);
	assert_int_equal(queue_n_running(&q), 0);
	assert_int_equal(queue_n_queued(&q), 2);
	assert_false(b->again);
	assert_int_equal(a->state, JOB_STATE_QUEUED);
	assert_ptr_equal(queue_next(&q, &ops, NULL), a);
	queue_done(&q, NULL);
}

static unsigned freed;

static void count_free(struct qjob *j)
{
	freed++;
}

static void test_queue_drop_kernel(void **state)
{
	struct queue q;

	queue_init(&q);
	assert_int_equal(queue_add(&q, "a", "6.1", NULL), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "b", "6.2", NULL), QUEUE_ADDED);
	assert_int_equal(queue_add(&q, "c", "6.1", NULL), QUEUE_ADDED);
	freed = 0;
	queue_drop_kernel(&q, "6.1", count_free);
	assert_int_equal(freed, 2);
	assert_int_equal(q.n, 1);
	assert_string_equal(q.jobs[0]->recipe, "b");
	queue_done(&q, count_free);
	assert_int_equal(freed, 3);
}

/* ---- the request handler, with a fake daemon ---- */

struct fake {
	int trigger_r;
	bool busy;
	char *queued;
};

static int fake_trigger(void *userdata, const char *kver, char **ret_reason)
{
	struct fake *f = userdata;

	if (f->trigger_r == -EAGAIN)
		*ret_reason = strdup("no Module.symvers");
	return f->trigger_r;
}

static int fake_find(void *userdata, char **names, char **ret_missing)
{
	STRV_FOREACH(n, names)
		if (streq(*n, "nope")) {
			if (ret_missing)
				*ret_missing = strdup(*n);
			return -ESRCH;
		}
	return 0;
}

static int fake_queue(void *userdata, const char *kver, char **names, char **ret_missing)
{
	struct fake *f = userdata;
	int r = fake_find(userdata, names, ret_missing);

	if (r < 0)
		return r;
	free(f->queued);
	f->queued = strv_join(names, ",");
	return 0;
}

static bool fake_busy(void *userdata, const char *kver, char **names)
{
	return ((struct fake *) userdata)->busy;
}

static void fake_foreach(void *userdata, const char *kver, char **names, control_job_fn fn,
			 void *fn_userdata)
{
	fn(&(struct control_job){.recipe = "a", .kver = "6.1", .state = JOB_STATE_INSTALLED},
	   fn_userdata);
	fn(&(struct control_job){.recipe = "b", .kver = "6.1", .state = JOB_STATE_FAILED,
				 .reason = "x.c:3: error\n\033[2J"},
	   fn_userdata);
	fn(&(struct control_job){.recipe = "c", .kver = "6.1", .running = true}, fn_userdata);
}

static const struct control_ops fake_ops = {
	.trigger = fake_trigger,
	.find_recipes = fake_find,
	.queue = fake_queue,
	.busy = fake_busy,
	.foreach_job = fake_foreach,
};

/* Handle line as uid; the reply lines joined by '|'. */
static char *handle(struct fake *f, const char *line, uid_t uid, struct control_action *a)
{
	_cleanup_strv_free_ char **lines = NULL;
	struct control_action ignored = {};

	ASSERT_OK(control_handle_request(line, uid, &fake_ops, f, &lines, a ?: &ignored));
	control_action_done(&ignored);
	return strv_join(lines, "|");
}

static void test_control_handler_status(void **state)
{
	struct fake f = {};
	_cleanup_free_ char *s = handle(&f, "STATUS", 1000, NULL);

	/* A reason never breaks the line protocol or reaches a terminal raw. */
	assert_string_equal(s, "JOB a 6.1 installed|JOB b 6.1 failed x.c:3: error??[2J|"
			       "JOB c 6.1 running|DONE 0");
}

static void test_control_handler_refusals(void **state)
{
	struct fake f = {};
	char *s;

	s = handle(&f, "TRIGGER * 0 0", 1000, NULL);
	assert_true(startswith(s, "ERR 11 permission denied"));
	free(s);
	s = handle(&f, "", 0, NULL);
	assert_string_equal(s, "ERR 2 empty request");
	free(s);
	s = handle(&f, "FOO", 0, NULL);
	assert_string_equal(s, "ERR 2 unknown request 'FOO'");
	free(s);
	s = handle(&f, "TRIGGER 6.1 2 0", 0, NULL);
	assert_true(startswith(s, "ERR 2 usage: TRIGGER"));
	free(s);
	s = handle(&f, "INSTALL 6.1 x a", 0, NULL);
	assert_string_equal(s, "ERR 2 invalid timeout 'x'");
	assert_null(f.queued); /* refused before anything was queued */
	free(s);
	s = handle(&f, "INSTALL 6.1 0 a nope", 0, NULL);
	assert_string_equal(s, "NORECIPE nope");
	free(s);
	s = handle(&f, "BUILD ../x 0 a", 0, NULL);
	assert_true(startswith(s, "ERR 2 usage: BUILD"));
	free(s);
}

static void test_control_handler_actions(void **state)
{
	struct fake f = {};
	struct control_action a = {};
	_cleanup_strv_free_ char **lines = NULL;
	char *s;

	s = handle(&f, "INSTALL 6.1 30 a b", 0, &a);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(a.next, CONTROL_NEXT_WAIT);
	assert_string_equal(a.kver, "6.1");
	assert_int_equal(strv_length(a.names), 2);
	assert_int_equal(a.timeout_usec, 30 * 1000000ULL);
	assert_string_equal(f.queued, "a,b");
	/* Waiting: nothing while busy, then the JOB lines and DONE 5 (b failed). */
	f.busy = true;
	assert_int_equal(control_wait_result(&fake_ops, &f, a.kver, a.names, &lines), 0);
	f.busy = false;
	assert_int_equal(control_wait_result(&fake_ops, &f, a.kver, a.names, &lines), 1);
	assert_string_equal(lines[strv_length(lines) - 1], "DONE 5");
	control_action_done(&a);

	f.trigger_r = -EAGAIN;
	s = handle(&f, "TRIGGER 6.1 1 0", 0, &a);
	assert_string_equal(s, "DONE 9 kernel '6.1' is incomplete: no Module.symvers");
	assert_int_equal(a.next, CONTROL_NEXT_CLOSE);
	free(s);
	f.trigger_r = 0;
	s = handle(&f, "TRIGGER * 1 99999999999999", 0, &a);
	assert_int_equal(a.next, CONTROL_NEXT_WAIT);
	assert_null(a.kver);
	assert_int_equal(a.timeout_usec, 7ULL * 24 * 3600 * 1000000ULL); /* cut to a week */
	free(s);
	control_action_done(&a);

	s = handle(&f, "BUILD 6.1 0 a 1.2 json", 0, &a);
	assert_int_equal(a.next, CONTROL_NEXT_BUILD);
	assert_string_equal(a.name, "a");
	assert_string_equal(a.version, "1.2");
	assert_true(a.json);
	free(s);
	control_action_done(&a);
	free(f.queued);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_order_and_dedup),
		cmocka_unit_test(test_queue_needs),
		cmocka_unit_test(test_queue_longest_first),
		cmocka_unit_test(test_queue_unknown_by_size),
		cmocka_unit_test(test_queue_blocked_kernel),
		cmocka_unit_test(test_queue_requeue_on_stop),
		cmocka_unit_test(test_queue_drop_kernel),
		cmocka_unit_test(test_control_handler_status),
		cmocka_unit_test(test_control_handler_refusals),
		cmocka_unit_test(test_control_handler_actions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
