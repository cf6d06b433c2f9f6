/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pipeline's record of a job: the one state change function refuses what the state
 * machine refuses, and a batch's jobs wait in installing for their shared depmod. */
#include <inttypes.h>

#include "control/exit-codes.h"
#include "core/context.h"
#include "core/db.h"
#include "core/lock.h"
#include "pipeline/job-internal.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

struct fixture {
	struct test_root *t;
	struct dm2_context *ctx;
	struct db *db;
};

static void fixture_init(struct fixture *f)
{
	f->t = test_root_new();
	ASSERT_OK(context_new(f->t->path, &f->ctx));
	ASSERT_OK(db_open(f->ctx, true, &f->db));
}

static void fixture_done(struct fixture *f)
{
	db_close(f->db);
	context_free(f->ctx);
	test_root_free(f->t);
}

/* A job of name for kver that got as far as state st. */
static int64_t job_at(struct fixture *f, const char *name, const char *kver,
		      enum job_state st)
{
	static const enum job_state path[] = {JOB_STATE_FETCHING, JOB_STATE_BUILDING,
					      JOB_STATE_SIGNING, JOB_STATE_INSTALLING};
	int64_t id;

	ASSERT_OK(db_kernel_upsert(f->db, kver, "identity", "x86_64", "complete", NULL));
	ASSERT_OK(db_recipe_upsert(f->db, name, "admin", "/r", NULL));
	ASSERT_OK(db_job_enqueue(f->db, name, kver, &id));
	for (size_t i = 0; i < ELEMENTSOF(path) && path[i] <= st; i++)
		ASSERT_OK(db_job_set_state(f->db, id, path[i], NULL, NULL, NULL));
	if (job_state_is_final(st))
		ASSERT_OK(db_job_set_state(f->db, id, st, "building", "broken", NULL));
	return id;
}

static void batch_add(struct job_batch *b, int64_t id)
{
	b->ids = realloc(b->ids, (b->n + 1) * sizeof(*b->ids));
	assert_non_null(b->ids);
	b->ids[b->n++] = id;
}

static void assert_job(struct fixture *f, int64_t id, enum job_state st,
		       const char *stage, const char *reason)
{
	struct db_job j = {};

	ASSERT_OK(db_job_get(f->db, id, &j));
	if (j.state != st)
		fail_msg("job %" PRIi64 " is %s, expected %s", id,
			 job_state_to_string(j.state), job_state_to_string(st));
	if (stage)
		assert_string_equal(j.stage, stage);
	if (reason)
		assert_string_equal(j.reason, reason);
	db_job_done(&j);
}

static void test_set_state_refuses(void **state)
{
	static const struct job_options o = {};
	struct fixture f = {};
	struct job j = {.o = &o, .name = "a", .kver = "1.0-test", .id_text = "test"};

	fixture_init(&f);
	j.db = f.db;
	j.id = job_at(&f, "a", "1.0-test", JOB_STATE_INSTALLING);
	j.state = JOB_STATE_INSTALLING;
	ASSERT_OK(
		job_set_state(&j, JOB_STATE_INSTALLED, JOB_STATE_INSTALLING, NULL, NULL));
	/* Nothing leaves a final state, and the db keeps what it had. */
	ASSERT_ERR(job_set_state(&j, JOB_STATE_FETCHING, JOB_STATE_FETCHING, NULL, NULL),
		   -EINVAL);
	ASSERT_ERR(job_set_state(&j, JOB_STATE_FAILED, JOB_STATE_INSTALLING, "x", NULL),
		   -EINVAL);
	assert_int_equal(j.state, JOB_STATE_INSTALLED);
	assert_job(&f, j.id, JOB_STATE_INSTALLED, NULL, NULL);
	/* The same state again is allowed (a reason or log path added). */
	ASSERT_OK(
		job_set_state(&j, JOB_STATE_INSTALLED, JOB_STATE_INSTALLING, NULL, NULL));

	/* Without a db (dm2 build) the same rules hold. */
	j.db = NULL;
	j.state = JOB_STATE_FETCHING;
	ASSERT_ERR(job_set_state(&j, JOB_STATE_INSTALLED, JOB_STATE_FETCHING, NULL, NULL),
		   -EINVAL);
	ASSERT_OK(job_set_state(&j, JOB_STATE_BUILDING, JOB_STATE_BUILDING, NULL, NULL));
	ASSERT_OK(job_set_state(&j, JOB_STATE_BUILT, JOB_STATE_BUILDING, NULL, NULL));
	fixture_done(&f);
}

static void test_batch_without_depmod(void **state)
{
	_cleanup_(job_batch_done) struct job_batch b = {};
	struct fixture f = {};
	int64_t a, c;

	fixture_init(&f);
	a = job_at(&f, "a", f.t->kver, JOB_STATE_INSTALLING);
	c = job_at(&f, "c", f.t->kver, JOB_STATE_INSTALLING);
	batch_add(&b, a);
	batch_add(&b, c);
	ASSERT_OK(job_batch_finish(f.ctx, f.db, f.t->kver, &b, false));
	assert_job(&f, a, JOB_STATE_INSTALLED, NULL, NULL);
	assert_job(&f, c, JOB_STATE_INSTALLED, NULL, NULL);
	assert_int_equal(b.n, 0);
	fixture_done(&f);
}

static void test_batch_depmod(void **state)
{
	_cleanup_(job_batch_done) struct job_batch b = {};
	_cleanup_free_ char *dep = NULL;
	struct fixture f = {};
	int64_t a, done, failed;

	fixture_init(&f);
	a = job_at(&f, "a", f.t->kver, JOB_STATE_INSTALLING);
	/* Listed twice (a Needs= recipe named again), or run again since: left alone. */
	done = job_at(&f, "d", f.t->kver, JOB_STATE_INSTALLING);
	ASSERT_OK(db_job_set_state(f.db, done, JOB_STATE_INSTALLED, NULL, NULL, NULL));
	failed = job_at(&f, "e", f.t->kver, JOB_STATE_FAILED);
	batch_add(&b, a);
	batch_add(&b, a);
	batch_add(&b, done);
	batch_add(&b, failed);
	ASSERT_OK(job_batch_finish(f.ctx, f.db, f.t->kver, &b, true));
	assert_job(&f, a, JOB_STATE_INSTALLED, NULL, NULL);
	assert_job(&f, done, JOB_STATE_INSTALLED, NULL, NULL);
	assert_job(&f, failed, JOB_STATE_FAILED, "building", "broken");
	dep = strjoin("lib/modules/", f.t->kver, "/modules.dep");
	assert_int_equal(faccessat(f.t->fd, dep, F_OK, 0), 0);
	fixture_done(&f);
}

static void test_batch_depmod_fails(void **state)
{
	_cleanup_(job_batch_done) struct job_batch b = {};
	struct fixture f = {};
	int64_t a, c;
	int r;

	fixture_init(&f);
	/* The kernel's directory is gone: depmod cannot run, and no job says installed.
	 */
	a = job_at(&f, "a", "0.0.0-gone", JOB_STATE_INSTALLING);
	c = job_at(&f, "c", "0.0.0-gone", JOB_STATE_INSTALLING);
	batch_add(&b, a);
	batch_add(&b, c);
	r = job_batch_finish(f.ctx, f.db, "0.0.0-gone", &b, true);
	assert_int_equal(r, -ENOENT);
	assert_int_equal(exit_code_from_job(JOB_STATE_FAILED, JOB_STATE_INSTALLING, r),
			 EXIT_INSTALL_FAILED);
	assert_job(&f, a, JOB_STATE_FAILED, "installing",
		   "depmod failed: cannot run depmod");
	assert_job(&f, c, JOB_STATE_FAILED, "installing",
		   "depmod failed: cannot run depmod");
	fixture_done(&f);
}

static void test_batch_lock_busy(void **state)
{
	_cleanup_(job_batch_done) struct job_batch b = {};
	_cleanup_close_ int fd = -EBADF;
	struct fixture f = {};
	int64_t a;
	int r;

	fixture_init(&f);
	a = job_at(&f, "a", f.t->kver, JOB_STATE_INSTALLING);
	batch_add(&b, a);
	ASSERT_OK(lock_kernel(f.ctx, f.t->kver, 0, &fd));
	assert_int_equal(setenv("DM2_LOCK_TIMEOUT_SEC", "0", 1), 0);
	r = job_batch_finish(f.ctx, f.db, f.t->kver, &b, true);
	assert_int_equal(unsetenv("DM2_LOCK_TIMEOUT_SEC"), 0);
	assert_int_equal(r, -EBUSY);
	assert_int_equal(exit_code_from_job(JOB_STATE_FAILED, JOB_STATE_INSTALLING, r),
			 EXIT_BUSY);
	assert_job(&f, a, JOB_STATE_FAILED, "installing",
		   "depmod: timed out waiting for the kernel lock");
	fixture_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_state_refuses),
		cmocka_unit_test(test_batch_without_depmod),
		cmocka_unit_test(test_batch_depmod),
		cmocka_unit_test(test_batch_depmod_fails),
		cmocka_unit_test(test_batch_lock_busy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
