/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "libkbuild-wrap.h"
#include "recipe/recipe.h"

/*
 * Build one recipe for one kernel with libkbuild-wrap: maps the recipe to
 * kbw_build_params (Directory=, MakeVariable=, expected modules BUILT_LOCATION/NAME.ko,
 * DKMS MAKE[] commands with kernelver/kernel_source_dir in the environment), runs as the
 * build user with the timeout, memory limit and -j of dm2d.conf, isolated in namespaces.
 *
 * source_dir: the prepared sources (copied again into work_dir, which must not exist).
 * extra_symbols: Module.symvers files of Needs= recipes, or NULL.
 * Returns 0 when the build ran (check kbw_build_succeeded(*ret) and (*ret)->reason), < 0
 * if it could not be started; the parent directories of work_dir and log_path are
 * created.
 */
int builder_build(struct dm2_context *ctx, const struct recipe *r,
		  const struct kbw_kernel *k, const char *source_dir,
		  const char *work_dir, const char *log_path, char **extra_symbols,
		  struct kbw_build_result **ret);

/* -j for one build: [Build] MakeJobs=, else the number of CPUs (at least 1). */
unsigned builder_make_jobs(struct dm2_context *ctx);
