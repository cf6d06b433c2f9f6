/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "core/db.h"
#include "recipe/recipe-set.h"

/*
 * One job: one recipe x one kernel through the whole pipeline, synchronously:
 *
 *   kernel probe (incomplete: waiting) -> plan (not applicable: skipped) -> fetching
 *   (source_prepare) -> build key -> cache lookup (local, then Remote= when configured)
 *   -> on a miss: building (builder_build), cache_store (+ push when Push=yes)
 *   -> signing (every .ko, unless Sign=no) -> compress as the kernel does -> installing
 *   (under the kernel lock) -> depmod (unless no_depmod) -> installed.
 *
 * Every transition is written to the state db (the job row is the one db_job_enqueue()
 * returns, so a job the daemon queued is continued, not duplicated). A failure at any
 * stage records failed + stage + one-line reason + log path and leaves the previously
 * installed module of the recipe for that kernel in place. Needs= recipes are installed
 * first when they are not yet, and their Module.symvers is passed to the build.
 */

struct job_options {
	bool no_depmod; /* the caller runs install_depmod() once for the batch */
	bool force;	/* ignore the cache: always compile (the result is stored) */
	bool progress;	/* print "NAME VER for KVER: stage..." lines on stdout */
	const struct recipe_set *recipes; /* NULL: load with recipe_set_load() */
};

struct job_result {
	int64_t id;
	enum job_state state;
	int exit_code; /* EXIT_* of exit-codes.h for this outcome (EXIT_OK when installed)
			*/
	bool from_cache;
	char *version;
	char *stage;  /* failed: where */
	char *reason; /* failed/skipped/waiting: one line */
	char *log_path;
	char *signer;
};
void job_result_done(struct job_result *r);

/*
 * Run recipe x kver. Returns < 0 only when the job could not be run or recorded at all
 * (state db unusable, no such recipe: -ENOENT with nothing recorded, no such kernel);
 * every outcome of the pipeline itself, including failures, returns 0 with *ret filled
 * in.
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
