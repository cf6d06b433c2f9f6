/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "core/context.h"
#include "libkbuild-wrap.h"

/*
 * The kernels installed under ROOT/lib/modules: every directory there is probed with
 * libkbuild-wrap (complete or not). A directory without a build tree is listed as
 * incomplete.
 */

/* All kernels, sorted newest release first (version_compare()). Fails only on allocation
 * or when ROOT/lib/modules cannot be read; a missing ROOT/lib/modules gives an empty
 * list. */
int kernels_list(struct dm2_context *ctx, struct kbw_kernel ***ret, size_t *ret_n);
void kernels_free(struct kbw_kernel **k, size_t n);
/* One kernel by release; -ENOENT when ROOT/lib/modules/RELEASE does not exist, -EINVAL
 * for a release that is not a plain directory name. */
int kernel_find(struct dm2_context *ctx, const char *release, struct kbw_kernel **ret);

/*
 * What dm2 remembers of a complete kernel's build tree (the kernels table's identity
 * column) to notice that it was rebuilt under the same release: release, size and mtime of
 * the files that make up the kernel identity. dm2d and `dm2 install` both record it, so a
 * restart compares like with like. The sha256 identity itself (kbw_kernel_identity(), part
 * of every build key) is not used here: computing it would pull OpenSSL into the idle
 * daemon for nothing. A "touch" without a change costs one cache hit per module.
 */
int kernel_tree_stamp(const struct kbw_kernel *k, char **ret);
