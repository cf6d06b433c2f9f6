/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "libkbuild-wrap.h"
#include "recipe/recipe.h"

/*
 * Build one recipe for one kernel with libkbuild-wrap: maps the recipe to
 * kbw_build_params (Directory=, MakeVariable=, expected modules BUILT_LOCATION/NAME.ko,
 * DKMS MAKE[] commands with kernelver/kernel_source_dir in the environment), runs as the
 * build's own uid (build-user.h) with the timeout, limits and -j of dm2d.conf, in the
 * sandbox of libkbuild-wrap. The paths in *ret (modules, symvers) name root-owned copies
 * that were checked and staged in work_dir after every build process was gone.
 *
 * source_dir: the prepared sources (copied into the build's private tmpfs).
 * work_dir: must not exist; created root-owned, it receives the staged outputs.
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

/*
 * Strip= (DKMS STRIP[]): `strip -g` (llvm-strip for clang-built kernels) on the module in
 * *buf, run as a build uid of its own in the build sandbox (never as root: the ELF is the
 * build's), with strip's output appended to log_path (NULL: discarded). On success *buf
 * and *size are replaced by the stripped module; when strip fails, -EPROTO and
 * *ret_reason says why in one line ("'strip' not found (install binutils) or set
 * Strip=no").
 */
int builder_strip(struct dm2_context *ctx, const struct kbw_kernel *k, const char *name,
		  const char *log_path, char **buf, size_t *size, char **ret_reason);
