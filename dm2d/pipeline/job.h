/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "core/db.h"
#include "libkbuild-wrap.h"
#include "recipe/recipe-set.h"

/*
 * One job: one recipe x one kernel through the pipeline, synchronously. The stages, in
 * order, are the table in job.c: kernel (incomplete build tree: waiting), plan (not
 * applicable: skipped), source (fetching), cache lookup (local, then Remote=), Needs=,
 * build, cache store (+ Push=), read, strip, sign (unless Sign=no), compress, install
 * (under the kernel lock), depmod; then installed. `dm2 build` runs the same table with
 * .build_only: kernel, plan, source and build, nothing cached, recorded or installed, and
 * ends in built.
 *
 * Every transition is written to the state db (the job row is the one db_job_enqueue()
 * returns, so a job the daemon queued is continued, not duplicated). A failure at any
 * stage records failed + stage + one-line reason + log path and leaves the previously
 * installed module of the recipe for that kernel in place. Needs= recipes are installed
 * first when they are not yet, and their Module.symvers is passed to the build.
 */

/*
 * The jobs of one `dm2 install` for one kernel share one depmod: a job with .batch set
 * stops before depmod, in state installing with its files in place, and adds its id
 * here; job_batch_finish() then runs depmod once and moves them all to installed (or to
 * failed at installing). A Needs= recipe already installed by the batch counts as
 * installed.
 */
struct job_batch {
	int64_t *ids;
	size_t n;
};
void job_batch_done(struct job_batch *b);

/*
 * run_depmod false (dm2 install --no-depmod): the jobs become installed without it.
 * Returns 0 when every job became installed; else the error of depmod (-EBUSY: the kernel
 * lock timed out), with every job recorded failed at installing and the reason logged.
 */
int job_batch_finish(struct dm2_context *ctx, struct db *d, const char *kver,
		     struct job_batch *b, bool run_depmod);

/* Words an install conflict: path (root-relative) exists and dm2 did not install it.
 * Returns a one-line reason, or NULL for the default wording. */
typedef char *(*job_conflict_fn)(struct dm2_context *ctx, const char *path);

struct job_options {
	struct job_batch *batch; /* NULL: every job runs depmod itself */
	bool force;	     /* ignore the cache: always compile (the result is stored) */
	bool progress;	     /* print "NAME VER for KVER: stage..." lines on stdout */
	bool build_only;     /* dm2 build: stop after the build, record nothing (d is
			      * NULL), keep the work directory */
	const char *version; /* build_only: this source version instead of the plan's */
	const struct recipe_set *recipes; /* NULL: load with recipe_set_load() */
	job_conflict_fn explain_conflict; /* NULL: "'PATH' exists and was not installed by
					   * dm2" */
};

/* The outcome, in the pipeline's own terms: exit_code_from_job() (control/exit-codes.h)
 * turns state, stage and error into dm2's exit status. */
struct job_result {
	int64_t id;
	enum job_state state; /* final; installing when .batch defers its depmod */
	enum job_state stage; /* failed: the stage it failed in */
	int error;	      /* failed: negative errno of the cause */
	bool from_cache;
	char *version;
	char *reason; /* failed/skipped/waiting: one line */
	char *log_path;
	char *signer;
	/* build_only: what the build produced, once it ran (its modules are in the kept
	 * work directory). */
	struct kbw_build_result *build;
};
void job_result_done(struct job_result *r);

/*
 * Run recipe x kver. Returns < 0 only when the job could not be run or recorded at all
 * (state db unusable, no such recipe: -ENOENT with nothing recorded, no such kernel, no
 * such build_only version); every outcome of the pipeline itself, including failures,
 * returns 0 with *ret filled in.
 */
int job_run(struct dm2_context *ctx, struct db *d, const char *recipe, const char *kver,
	    const struct job_options *o, struct job_result *ret);

/*
 * job_run() makes SIGTERM and SIGINT (unless ignored) stop a build in progress together
 * with every process of it (kbw_build_cancel_all()); that job then ends failed at
 * building, "interrupted by signal TERM". Returns that signal (0: none): the caller stops
 * its batch and re-raises it. A signal outside a build has its default action.
 */
int job_interrupted(void);
