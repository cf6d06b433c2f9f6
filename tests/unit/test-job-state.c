/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The job state machine (core/job-state.c) and the one translation of a job's outcome
 * into an exit code (control/exit-codes.c). Pure functions: no root, no kernel
 * headers. */
#include "control/exit-codes.h"
#include "core/job-state.h"
#include "shared/util.h"
#include "tests.h"

#define Q JOB_STATE_QUEUED
#define F JOB_STATE_FETCHING
#define B JOB_STATE_BUILDING
#define S JOB_STATE_SIGNING
#define I JOB_STATE_INSTALLING
#define D JOB_STATE_INSTALLED
#define X JOB_STATE_FAILED
#define K JOB_STATE_SKIPPED
#define W JOB_STATE_WAITING
#define T JOB_STATE_BUILT

static void test_string_table(void **state)
{
	static const char *const names[_JOB_STATE_MAX] = {
		[Q] = "queued",	    [F] = "fetching",  [B] = "building", [S] = "signing",
		[I] = "installing", [D] = "installed", [X] = "failed",	 [K] = "skipped",
		[W] = "waiting",    [T] = "built",
	};

	/* The state db stores these strings: they never change. */
	for (int s = 0; s < _JOB_STATE_MAX; s++) {
		assert_string_equal(job_state_to_string(s), names[s]);
		assert_int_equal(job_state_from_string(names[s]), s);
	}
	assert_null(job_state_to_string(_JOB_STATE_MAX));
	assert_null(job_state_to_string(-1));
	assert_int_equal(job_state_from_string("not-built"), -EINVAL);
	assert_int_equal(job_state_from_string("Installed"), -EINVAL);
	assert_int_equal(job_state_from_string(""), -EINVAL);
	assert_int_equal(job_state_from_string(NULL), -EINVAL);
}

static void test_final_states(void **state)
{
	static const enum job_state final[] = {D, X, K, W, T};
	static const enum job_state running[] = {Q, F, B, S, I};

	for (size_t i = 0; i < ELEMENTSOF(final); i++) {
		assert_true(job_state_is_final(final[i]));
		assert_false(job_state_is_stage(final[i]));
	}
	for (size_t i = 0; i < ELEMENTSOF(running); i++) {
		assert_false(job_state_is_final(running[i]));
		assert_true(job_state_is_stage(running[i]));
	}
	assert_false(job_state_is_stage(_JOB_STATE_MAX));
	assert_false(job_state_is_stage(_JOB_STATE_INVALID));
}

/* The whole matrix, spelled out: [from][to] = may go. The diagram of job-state.h. */
static const bool allowed[_JOB_STATE_MAX][_JOB_STATE_MAX] = {
	/*      Q  F  B  S  I  D  X  K  W  T */
	[Q] = {1, 1, 1, 1, 0, 0, 1, 1, 1, 0},
	/* A cache hit goes on to signing, or with Sign=no to installing. */
	[F] = {1, 1, 1, 1, 1, 0, 1, 1, 1, 0},
	[B] = {1, 0, 1, 1, 1, 0, 1, 1, 1, 1}, /* dm2 build ends in built */
	[S] = {1, 0, 0, 1, 1, 0, 1, 1, 1, 0},
	[I] = {1, 0, 0, 0, 1, 1, 1, 1, 1, 0},
	/* Nothing leaves a final state; the same state may be recorded again. */
	[D] = {[D] = 1},
	[X] = {[X] = 1},
	[K] = {[K] = 1},
	[W] = {[W] = 1},
	[T] = {[T] = 1},
};

static void test_transitions(void **state)
{
	for (int from = 0; from < _JOB_STATE_MAX; from++)
		for (int to = 0; to < _JOB_STATE_MAX; to++)
			if (job_state_transition_valid(from, to) != allowed[from][to])
				fail_msg("%s -> %s: %s, expected %s",
					 job_state_to_string(from),
					 job_state_to_string(to),
					 allowed[from][to] ? "refused" : "allowed",
					 allowed[from][to] ? "allowed" : "refused");
}

static void test_transitions_out_of_range(void **state)
{
	assert_false(job_state_transition_valid(_JOB_STATE_INVALID, Q));
	assert_false(job_state_transition_valid(Q, _JOB_STATE_INVALID));
	assert_false(job_state_transition_valid(_JOB_STATE_MAX, Q));
	assert_false(job_state_transition_valid(Q, _JOB_STATE_MAX));
	assert_false(job_state_transition_valid(-2, -2));
}

/* Every path the pipeline takes is a chain of allowed steps. */
static void test_pipeline_paths(void **state)
{
	static const enum job_state paths[][8] = {
		{Q, F, B, S, I, D, -1},	   /* built, signed, installed */
		{Q, F, S, I, D, -1},	   /* from the build cache */
		{Q, F, B, I, D, -1},	   /* Sign=no */
		{Q, F, I, D, -1},	   /* from the cache, Sign=no */
		{Q, F, B, T, -1},	   /* dm2 build */
		{Q, W, -1},		   /* incomplete build tree */
		{Q, K, -1},		   /* not applicable */
		{Q, F, X, -1},		   /* download failed */
		{Q, F, B, B, S, X, -1},	   /* log path recorded, then signing failed */
		{B, Q, F, B, S, I, D, -1}, /* left in building by a kill -9, run again */
	};

	for (size_t p = 0; p < ELEMENTSOF(paths); p++)
		for (size_t i = 1; paths[p][i] >= 0; i++)
			if (!job_state_transition_valid(paths[p][i - 1], paths[p][i]))
				fail_msg("path %zu: %s -> %s refused", p,
					 job_state_to_string(paths[p][i - 1]),
					 job_state_to_string(paths[p][i]));
}

/* dm2(1), EXIT STATUS: what each outcome of a job exits with. */
static void test_exit_codes(void **state)
{
	assert_int_equal(exit_code_from_job(D, Q, 0), EXIT_OK);
	assert_int_equal(exit_code_from_job(T, B, 0), EXIT_OK);
	assert_int_equal(exit_code_from_job(K, Q, 0), EXIT_SKIPPED);
	assert_int_equal(exit_code_from_job(W, Q, 0), EXIT_WAITING);
	/* Not finished: no success. */
	for (enum job_state s = Q; s <= I; s++)
		assert_int_equal(exit_code_from_job(s, s, 0), EXIT_FAILURE_GENERIC);

	assert_int_equal(exit_code_from_job(X, Q, -ENOENT), EXIT_NOT_FOUND);
	assert_int_equal(exit_code_from_job(X, Q, -ENOMEM), EXIT_FAILURE_GENERIC);
	assert_int_equal(exit_code_from_job(X, F, -EREMOTEIO), EXIT_FETCH_FAILED);
	assert_int_equal(exit_code_from_job(X, F, -EUCLEAN), EXIT_FETCH_FAILED);
	assert_int_equal(exit_code_from_job(X, F, -ENOENT), EXIT_FETCH_FAILED);
	assert_int_equal(exit_code_from_job(X, F, -EBADMSG), EXIT_BAD_INPUT);
	assert_int_equal(exit_code_from_job(X, F, -ENOEXEC), EXIT_BAD_INPUT);
	/* A Needs= loop. */
	assert_int_equal(exit_code_from_job(X, F, -EINVAL), EXIT_BAD_INPUT);
	assert_int_equal(exit_code_from_job(X, F, -ENOMEM), EXIT_FAILURE_GENERIC);
	assert_int_equal(exit_code_from_job(X, F, -EBUSY), EXIT_FAILURE_GENERIC);
	assert_int_equal(exit_code_from_job(X, B, -EPROTO), EXIT_BUILD_FAILED);
	assert_int_equal(exit_code_from_job(X, B, -EINTR), EXIT_BUILD_FAILED);
	assert_int_equal(exit_code_from_job(X, B, -ENOENT), EXIT_BUILD_FAILED);
	assert_int_equal(exit_code_from_job(X, S, -ENOENT), EXIT_SIGN_FAILED);
	assert_int_equal(exit_code_from_job(X, I, -EEXIST), EXIT_INSTALL_FAILED);
	assert_int_equal(exit_code_from_job(X, I, -EPROTO), EXIT_INSTALL_FAILED);
	assert_int_equal(exit_code_from_job(X, I, -EBUSY), EXIT_BUSY);
	/* A stage that is no stage. */
	assert_int_equal(exit_code_from_job(X, D, -EIO), EXIT_FAILURE_GENERIC);
	assert_int_equal(exit_code_from_job(_JOB_STATE_INVALID, Q, 0),
			 EXIT_FAILURE_GENERIC);
}

static void test_exit_codes_source(void **state)
{
	assert_int_equal(exit_code_from_source_error(0), EXIT_OK);
	assert_int_equal(exit_code_from_source_error(-EREMOTEIO), EXIT_FETCH_FAILED);
	assert_int_equal(exit_code_from_source_error(-EFBIG), EXIT_BAD_INPUT);
	assert_int_equal(exit_code_from_source_error(-EIO), EXIT_FAILURE_GENERIC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_string_table),
		cmocka_unit_test(test_final_states),
		cmocka_unit_test(test_transitions),
		cmocka_unit_test(test_transitions_out_of_range),
		cmocka_unit_test(test_pipeline_paths),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_exit_codes_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
