/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the stages of a job share. job.c holds the ordered table of stages; each stage is
 * one stage-*.c file with one job_stage_fn (its library, where it has one, is the file of
 * the same name: plan.c, source.c, builder.c, sign.c, compress.c, install.c). job-run.c
 * sets a job up and tears it down, job-record.c is the one place that changes its state.
 */

#include "cache.h"
#include "pipeline/job.h"
#include "pipeline/plan.h"

/* One built module on its way to lib/modules. */
struct job_module {
	char *path; /* the unsigned build: in the build cache or the build directory */
	char *name; /* "foo.ko", as built */
	const struct recipe_module *rm; /* the recipe's entry; NULL when it lists none */
	void *data; /* read, then stripped, signed and compressed in place */
	size_t size;
};

struct job {
	/* What to run. */
	struct dm2_context *ctx;
	struct db *db; /* NULL: nothing is recorded (build_only) */
	const struct job_options *o;
	const struct recipe_set *set;
	const char *name; /* the recipe's */
	const char *kver;
	struct recipe *recipe; /* evaluated for the kernel */
	struct kbw_kernel *kernel;
	unsigned depth; /* of Needs= */

	/* Where it is. */
	int64_t id;
	char id_text[24];
	enum job_state state; /* as recorded */
	enum job_state stage; /* of the stage running: a failure is recorded at it */
	struct job_result res;

	/* What the stages made. */
	struct plan plan;
	const struct recipe_source *source;
	char *work;	 /* root-relative work directory */
	char *src_dir;	 /* absolute: prepared sources */
	char *build_dir; /* absolute: where kbuild ran */
	char *log_path;	 /* absolute */
	bool log_written;
	char *content_id;
	struct cache *cache;
	char key[CACHE_KEY_SIZE];
	bool from_cache;
	bool builder_signed; /* RemoteSigning=builder: modules are the builder's signed ones */
	char **needs_symvers;
	struct kbw_build_result *build;
	struct job_module *modules;
	size_t n_modules;
	char *signer;
	int kernel_lock_fd; /* held from install through depmod */
};

/* A stage: < 0 the job could not go on (logged; the runner records it failed), 0 go on
 * with the next stage, JOB_STOP the job ended here (its final state is recorded). */
#define JOB_STOP 1
typedef int (*job_stage_fn)(struct job *j);

struct job_stage {
	const char *name;
	enum job_state state; /* while it runs; a failure in it is recorded at it */
	bool enter;	 /* starting it is a state change (db, journal, progress line) */
	bool build_only; /* `dm2 build` runs it too */
	bool (*wanted)(const struct job *j); /* NULL: always */
	job_stage_fn run;
};

/* job.c: run the stages of the table in order, then record the job complete. */
int job_run_stages(struct job *j);
/* job-run.c: a job of a Needs= recipe, one level deeper. */
int job_run_nested(struct dm2_context *ctx, struct db *d, const struct recipe_set *set,
		   const char *name, const char *kver, const struct job_options *o,
		   unsigned depth, struct job_result *ret);

/* job-record.c. The one function that changes a job's state: it refuses what
 * job_state_transition_valid() refuses, then writes the state db (when there is one) and
 * logs the greppable event. stage is recorded for failed only. */
int job_set_state(struct job *j, enum job_state to, enum job_state stage,
		  const char *reason, const char *log_path);
/* Enter the state of a stage: recorded, logged, and shown as "STATE..." with progress. */
int job_enter(struct job *j, enum job_state st);
/* End the job waiting or skipped, with a one-line reason. Returns JOB_STOP. */
int job_finish(struct job *j, enum job_state st, const char *reason);
/* A stop, not a failure: the job was interrupted by signal sig (dm2d stopping, Ctrl-C) and
 * goes back to queued, to run again from a clean work directory. Returns JOB_STOP. */
int job_requeue(struct job *j, int sig);
/* End the job failed at the running stage (job_fail_at: at stage), with error (negative
 * errno; %m in format prints it) and a one-line reason; logged once here. The build log
 * is named when the failure is the build's. Returns JOB_STOP (< 0 only for no memory). */
int job_fail(struct job *j, int error, const char *reason);
int job_failf(struct job *j, int error, const char *format, ...) _printf_(3, 4);
int job_fail_at(struct job *j, enum job_state stage, int error, const char *reason);
/* All stages ran: installed, built, or (.batch) installing until the batch's depmod. */
int job_complete(struct job *j);
/* "NAME VER for KVER: what" on stdout, with .progress. */
void job_progress(struct job *j, const char *what);
/* Record what the job builds (NULL leaves a value unchanged); nothing without a db. */
int job_record_build(struct job *j, const char *build_key, const char *signer);

/* stage-build.c: SIGTERM/SIGINT stop a build in progress (job_interrupted()). */
void job_stop_handlers_install(void);

/* The stages, in the order of the table in job.c. */
int stage_kernel(struct job *j);
int stage_plan(struct job *j);
int stage_source(struct job *j);
int stage_cache_lookup(struct job *j);
int stage_needs(struct job *j);
int stage_build(struct job *j);
int stage_cache_store(struct job *j);
/* After signing: the signed modules join the cache entry, which is pushed (Push=yes). */
int stage_cache_publish(struct job *j);
int stage_read(struct job *j);
int stage_strip(struct job *j);
int stage_sign(struct job *j);
int stage_compress(struct job *j);
int stage_install(struct job *j);
int stage_depmod(struct job *j);

/* Whether a stage is wanted. */
bool job_builds(const struct job *j); /* not from the build cache */
bool job_signs(const struct job *j);  /* Sign=yes, and not already signed by the builder */
bool job_strips(const struct job *j); /* not the builder's signed modules */

/* job-modules.c: the modules of j are the files paths, named names ("foo.ko"; NULL: the
 * last component of each path). */
int job_modules_set(struct job *j, char *const *paths, char *const *names);
