/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/db.h"

/*
 * `dm2 status`: one row per recipe x kernel, read from the state db only (two queries, no
 * kernel probing, no recipe parsing), so it answers in a few milliseconds. Rows are the
 * current job of every recipe x kernel pair, plus "not-built" rows for every recipe and
 * complete kernel the db knows that have no job yet.
 */
struct status_row {
	char *name;
	char *version; /* of the current job */
	char *kernel;
	char *arch;
	enum job_state state; /* of the current job; meaningless when not_built */
	bool not_built;	      /* no job yet for this recipe x kernel */
	char *stage; /* failed: where */
	char *reason;
	char *signer;
	bool from_cache;
	uint64_t when; /* usec: finished, else started, else created; 0 = never */
	char *log_path;
	char *install_dir; /* relative to lib/modules/KVER, of the installed files */
	char **files;	   /* root-relative paths of the installed files */
	char **overrides;  /* in-tree modules shadowed ("kernel/...ko" or "builtin") */
	char *installed_version; /* version of the module in place (may be older after a
				  * failed rebuild), or NULL when nothing is installed */
};

int status_collect(struct db *d, const char *name, const char *kver,
		   struct status_row **ret, size_t *ret_n);
void status_rows_free(struct status_row *rows, size_t n);

/* The human table (header + one line per row), control characters and invalid UTF-8 of
 * the values escaped (escape_terminal()). -ENOMEM. */
int status_print_table(FILE *f, const struct status_row *rows, size_t n);
/* {"version":1,"modules":[...],"progress":[...]}: the schema documented in dm2(1);
 * progress as status_print_progress() (d may be NULL). extra: more members of the top
 * object ("key":value,...), or NULL. */
void status_print_json(FILE *f, struct db *d, const struct status_row *rows, size_t n,
		       unsigned slots, const char *extra);
/* "progress":[{"kernel":K,"done":D,"running":R,"queued":Q,"left_sec":S,"untimed":U}],
 * one entry per kernel with builds not yet ended. */
void status_print_json_progress(FILE *f, struct db *d, const struct status_row *rows,
				size_t n, unsigned slots);
/* The state as the JSON output names it: job_state_to_string(), or "not-built". */
const char *status_state_name(const struct status_row *row);
/* One-line state text: "installed", "failed at building: REASON", "skipped: REASON", ...
 */
char *status_state_text(const struct status_row *row);

/* For each kernel with builds not yet ended, one line: "Kernel K: D done, R running, Q
 * queued; about S s left." from the recorded durations, over slots builds at once. */
int status_print_progress(FILE *f, struct db *d, const struct status_row *rows, size_t n,
			  unsigned slots);
