/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "shared/macro.h"

struct job;

/* A build log longer than this is kept as the build wrote it, without the header. */
#define BUILD_LOG_MAX (32U * 1024U * 1024U)

/* "build.log" for install jobs, "test.log" for build_only ones (dm2 build, recipe test):
 * the file name of the job's log in logs/NAME/KVER/. */
const char *build_log_name(const struct job *j);
/* The header: dm2's version, recipe and source version, where the source came from and
 * its checksums and content id, the patches (and which apply to this kernel), the make
 * command line, the kernel. Lines start with '#'. */
int build_log_header(const struct job *j, char **ret);
/* The job's log (j->log_path) made from the header and the build's output in make_log
 * (which is removed), written atomically. */
int build_log_finish(struct job *j, const char *make_log);
/* The job's log for a job that failed before building (fetch, verify, unpack, patch):
 * the header and "dm2: REASON". */
int build_log_failure(struct job *j, const char *reason);
