/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "control/exit-codes.h"

int exit_code_from_source_error(int error)
{
	switch (-error) {
	case 0:
		return EXIT_OK;
	case EREMOTEIO: /* download failed */
	case EUCLEAN:	/* content does not match SHA256=/GitTree= */
	case ENOENT:	/* Path= or patch file missing */
		return EXIT_FETCH_FAILED;
	case EBADMSG: /* hostile or broken archive */
	case EFBIG:   /* archive over a cap */
	case ENOEXEC: /* a patch does not apply */
	case EINVAL:
		return EXIT_BAD_INPUT;
	default:
		return EXIT_FAILURE_GENERIC;
	}
}

/* Failed in stage: which exit code says so. */
static int exit_code_from_failure(enum job_state stage, int error)
{
	switch (stage) {
	case JOB_STATE_QUEUED: /* the job could not be run: no such recipe or kernel */
		return error == -ENOENT ? EXIT_NOT_FOUND : EXIT_FAILURE_GENERIC;
	case JOB_STATE_FETCHING:
		return exit_code_from_source_error(error);
	case JOB_STATE_BUILDING:
		return EXIT_BUILD_FAILED;
	case JOB_STATE_SIGNING:
		return EXIT_SIGN_FAILED;
	case JOB_STATE_INSTALLING: /* the kernel lock timed out: busy, not broken */
		return error == -EBUSY ? EXIT_BUSY : EXIT_INSTALL_FAILED;
	case JOB_STATE_INSTALLED:
	case JOB_STATE_FAILED:
	case JOB_STATE_SKIPPED:
	case JOB_STATE_WAITING:
	case JOB_STATE_BUILT:
	case _JOB_STATE_MAX:
	case _JOB_STATE_INVALID:
		break;
	}
	return EXIT_FAILURE_GENERIC;
}

int exit_code_from_job(enum job_state state, enum job_state stage, int error)
{
	switch (state) {
	case JOB_STATE_INSTALLED:
	case JOB_STATE_BUILT:
		return EXIT_OK;
	case JOB_STATE_SKIPPED:
		return EXIT_SKIPPED;
	case JOB_STATE_WAITING:
		return EXIT_WAITING;
	case JOB_STATE_FAILED:
		return exit_code_from_failure(stage, error);
	case JOB_STATE_QUEUED:
	case JOB_STATE_FETCHING:
	case JOB_STATE_BUILDING:
	case JOB_STATE_SIGNING:
	case JOB_STATE_INSTALLING:
	case _JOB_STATE_MAX:
	case _JOB_STATE_INVALID:
		break;
	}
	return EXIT_FAILURE_GENERIC;
}

/* How much an exit code says that something went wrong, for exit_code_merge(). */
static int exit_code_weight(int code)
{
	switch (code) {
	case EXIT_OK:
		return 0;
	case EXIT_SKIPPED:
		return 1;
	case EXIT_WAITING:
		return 2;
	default:
		return 3;
	}
}

int exit_code_merge(int current, int next)
{
	return exit_code_weight(next) > exit_code_weight(current) ? next : current;
}
