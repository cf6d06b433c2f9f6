/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "core/job-state.h"
#include "shared/macro.h"

/*
 * The state db: ROOT/var/lib/dm2/state.db (SQLite, WAL, busy timeout 5 s, foreign keys).
 * It holds kernels, recipes, jobs (one row per attempt; the newest row of a recipe x
 * kernel is its current state, which `dm2 status` shows) and every file dm2 installed.
 * Readers never block the writer (WAL); every write runs in BEGIN IMMEDIATE. The schema
 * version is PRAGMA user_version; db_open(writable) migrates older databases (version 0 =
 * empty file) forward.
 *
 * Times are microseconds since the epoch (CLOCK_REALTIME), 0 = never.
 * Like every engine helper, nothing here logs errors: they are returned as negative errno
 * (-EBUSY when the database stayed locked past the busy timeout, -EIO for other SQLite
 * errors, -ENOENT for missing rows / a missing database opened read-only).
 */

#define DB_SCHEMA_VERSION 2


struct db;

/*
 * Open ROOT/var/lib/dm2/state.db. writable: create the directory and the file if missing
 * and migrate the schema. Read-only: -ENOENT if there is no database yet; a database with
 * a newer schema than we know is refused with -EPROTO in both modes.
 *
 * Recovery (writable, also on a reconnect after db_suspend()): a database SQLite calls
 * corrupt or not a database, or that fails PRAGMA quick_check (a truncated file), is moved
 * aside to state.db.broken-<UTC time> with its -wal and -shm, logged once with the reason,
 * and replaced by a fresh one; a fresh database (missing, empty, or the replacement) is
 * filled from the install manifests below ROOT (manifest.h) whose files still match their
 * hashes, so status and ownership survive. A reader gets -EBADMSG for a damaged database
 * and never changes it. The files are world-readable and keep their -wal and -shm, so
 * anyone may read status (read-only WAL); a reader that cannot use them reads a database
 * without a -wal file as immutable.
 */
int db_open(struct dm2_context *ctx, bool writable, struct db **ret);
/* Same, for an explicit absolute path (tests, tools). */
int db_open_path(const char *path, bool writable, struct db **ret);
struct db *db_close(struct db *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct db *, db_close);

int db_schema_version(struct db *d, int *ret);
/* The database file, for messages (a full disk: which file could not be written). */
const char *db_filename(const struct db *d);

/* Explicit transactions for callers that group several writes (BEGIN IMMEDIATE). The db_*
 * write functions below run in their own transaction unless one is already open. */
int db_begin(struct db *d);
int db_commit(struct db *d);
void db_rollback(struct db *d);

/* ---- kernels ---- */

struct db_kernel {
	char *release;
	char *identity; /* kbw_kernel_identity(), or NULL when the tree is incomplete */
	char *arch;
	char *state;  /* "complete", "incomplete" */
	char *reason; /* why incomplete */
	uint64_t seen;
};
void db_kernel_done(struct db_kernel *k);
void db_kernels_free(struct db_kernel *k, size_t n);

int db_kernel_upsert(struct db *d, const char *release, const char *identity,
		     const char *arch, const char *state, const char *reason);
int db_kernel_get(struct db *d, const char *release, struct db_kernel *ret);
int db_kernels_list(struct db *d, struct db_kernel **ret, size_t *ret_n);
/* The kernel directory disappeared: drop the kernel, its jobs and its installed-file
 * records. */
int db_kernel_remove(struct db *d, const char *release);

/* ---- recipes ---- */

/* content_hash NULL keeps the one recorded (dm2d knows recipes by a CRC only). */
int db_recipe_upsert(struct db *d, const char *name, const char *origin, const char *path,
		     const char *content_hash);

/* ---- jobs ---- */

struct db_job {
	int64_t id;
	char *recipe;
	char *kernel;
	char *version; /* source version chosen, or NULL before planning */
	enum job_state state;
	char *stage;	/* for failed: the state it failed in ("building", ...) */
	char *reason;	/* one line, for failed / skipped / waiting */
	char *log_path; /* absolute path of the build log, or NULL */
	char *build_key;
	bool from_cache;
	char *signer; /* signer CN, or NULL when unsigned */
	uint64_t created, started, finished;
	unsigned attempt; /* 1 for the first run, +1 each time an unfinished job is
			     resumed */
};
void db_job_done(struct db_job *j);
void db_jobs_free(struct db_job *j, size_t n);

/*
 * Queue recipe x kver. If that pair already has an unfinished job (queued or in progress,
 * for example one the daemon queued before it spawned `dm2 install`, or one interrupted
 * by a crash), its id is returned and its attempt counter is bumped instead of adding a
 * row; so a daemon's queue row and the `dm2 install` child that runs it share one job.
 * Otherwise a new row in state queued becomes the pair's current job.
 */
int db_job_enqueue(struct db *d, const char *recipe, const char *kver, int64_t *ret_id);
/* Move a job to a state. stage/reason/log_path NULL leave the stored value unchanged,
 * except that entering a non-failed state clears stage and reason. Sets started when
 * leaving queued and finished when entering a final state. -ENOENT for an unknown id. */
int db_job_set_state(struct db *d, int64_t id, enum job_state st, const char *stage,
		     const char *reason, const char *log_path);
/* Record what the job is building and how (NULL strings leave the stored value
 * unchanged). */
int db_job_set_build(struct db *d, int64_t id, const char *version, const char *build_key,
		     bool from_cache, const char *signer);
int db_job_get(struct db *d, int64_t id, struct db_job *ret);
/* The current (newest) job of recipe x kver; -ENOENT if none. */
int db_job_current(struct db *d, const char *recipe, const char *kver,
		   struct db_job *ret);
/* The newest job of recipe x kver that reached installed (for `status`/`log` of the
 * installed build after a later failure); -ENOENT if none. */
int db_job_last_installed(struct db *d, const char *recipe, const char *kver,
			  struct db_job *ret);
/* Jobs not in a final state, oldest first (the daemon's queue after a restart). */
int db_jobs_unfinished(struct db *d, struct db_job **ret, size_t *ret_n);
/* Current jobs, ordered by recipe then kernel; recipe/kver NULL = all. */
int db_jobs_current(struct db *d, const char *recipe, const char *kver,
		    struct db_job **ret, size_t *ret_n);
/* Record recipe x kver as installed, as an install manifest says (state db rebuild):
 * installed = when it was installed (0: now). */
int db_job_import(struct db *d, const char *recipe, const char *kver, const char *version,
		  const char *build_key, bool from_cache, const char *signer,
		  uint64_t installed);
/* Drop recipe x kver: its jobs and its installed-file records (after uninstall). */
int db_job_forget(struct db *d, const char *recipe, const char *kver);

/* ---- installed files ---- */

struct db_installed_file {
	char *kernel;
	char *recipe;
	char *path; /* relative to root: "lib/modules/KVER/updates/dm2/foo.ko" */
	char *sha256;
	char *overrides_intree; /* relative path of the in-tree module of the same name,
				 * or "builtin" when modules.builtin lists it, or NULL */
};
void db_installed_file_done(struct db_installed_file *f);
void db_installed_files_free(struct db_installed_file *f, size_t n);

int db_installed_add(struct db *d, const char *kver, const char *recipe, const char *path,
		     const char *sha256, const char *overrides_intree);
int db_installed_remove(struct db *d, const char *path);
/* Files of recipe x kver (recipe NULL: every recipe of kver; kver NULL: every kernel). */
int db_installed_list(struct db *d, const char *kver, const char *recipe,
		      struct db_installed_file **ret, size_t *ret_n);
/* The owner (recipe, kernel) of path, -ENOENT when dm2 did not install it. */
int db_installed_owner(struct db *d, const char *path, struct db_installed_file *ret);

/* Close the connection until the next call needs it again (dm2d, going idle: with the
 * last connection closed, it unloads SQLite, see sqlite-lazy.c). 1 when it closed the
 * connection, 0 when it was closed already, -EBUSY inside a transaction. */
int db_suspend(struct db *d);

/* For status.c's single read query: the raw sqlite3 handle (sqlite3 *), NULL when the
 * connection cannot be opened again. */
void *db_sqlite(struct db *d);

/* How long the last successful build of recipe for kver took (wall and CPU seconds of all
 * its processes, in µs): for the queue's longest-first order and the time left. */
int db_duration_record(struct db *d, const char *recipe, const char *kver, uint64_t wall_usec,
		       uint64_t cpu_usec);
/* The expected wall time of recipe's next build: its last one for kver, else its last one
 * for any kernel; -ENOENT when it never built. */
int db_duration_expected(struct db *d, const char *recipe, const char *kver,
			 uint64_t *ret_wall_usec);
