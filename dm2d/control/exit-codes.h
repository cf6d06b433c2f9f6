/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/job-state.h"

/* Exit codes of dm2 and dm2d, documented in dm2(1) under EXIT STATUS. Keep them stable. */
enum {
	EXIT_OK = 0,
	EXIT_FAILURE_GENERIC = 1, /* anything not listed below */
	EXIT_USAGE = 2,           /* bad command line */
	EXIT_BAD_INPUT = 3,       /* invalid recipe, dkms.conf, config file or archive */
	EXIT_NOT_FOUND = 4,       /* no such recipe, kernel, file or job */
	EXIT_BUILD_FAILED = 5,    /* compiling failed (see dm2 log) */
	EXIT_FETCH_FAILED = 6,    /* download or content verification failed */
	EXIT_SIGN_FAILED = 7,     /* signing failed */
	EXIT_INSTALL_FAILED = 8,  /* installing or depmod failed; the old module is kept */
	EXIT_WAITING = 9,         /* the kernel's build tree is incomplete */
	EXIT_SKIPPED = 10,        /* the recipe does not apply to the kernel (arch, range, CONFIG) */
	EXIT_PERMISSION = 11,     /* only root may do this */
	EXIT_BUSY = 12,           /* another dm2 holds the lock, or the wait timed out */
	EXIT_BAD_SIGNATURE = 13,  /* dm2 verify: unsigned, tampered or signed by another key */
};

/*
 * The one translation of a job's outcome into an exit code; the pipeline itself speaks
 * only job states (core/job-state.h). state: where the job ended; for failed, stage is
 * the state it failed in (queued: it could not be run at all) and error the negative
 * errno of the cause. installed and built are EXIT_OK; a state that is not final (the
 * job did not finish) is EXIT_FAILURE_GENERIC.
 */
int exit_code_from_job(enum job_state state, enum job_state stage, int error);

/* For an error of preparing a source (source_prepare(), fetch_url_full(),
 * unpack_archive_fd()): EXIT_FETCH_FAILED for a failed download or a content mismatch,
 * EXIT_BAD_INPUT for an archive or patch dm2 refuses, else EXIT_FAILURE_GENERIC. */
int exit_code_from_source_error(int error);

/* Of two outcomes of one command (several kernels or recipes), the one to exit with: a
 * failure beats "waiting", which beats "skipped" (the recipe does not apply there),
 * which beats success; of two failures the first stays. */
int exit_code_merge(int current, int next);
