/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "recipe/recipe.h"
#include "shared/macro.h"

/*
 * Prepare the source tree of one recipe source in dest_dir (an absolute path that must
 * not exist; its parent must):
 *  - Path= sources: the directory (an absolute path on the real file system) is copied,
 * so patches never touch the original;
 *  - URL= sources: fetched (cached by content), SHA256= verified before the archive is
 * parsed, unpacked safely, then GitTree= verified on the unpacked tree;
 *  - then the patches whose Kernel range holds for the kernel and whose match (NULL or
 * a POSIX ERE) matches kernel_release are applied in order.
 *
 * Content id (ret_content_id), stable for the same content:
 *   "sha256:<hex>"   the archive's sha256, for URL= sources with SHA256=;
 *   "git:<tree id>"  the git tree id of the unpacked/copied tree (before patches)
 * otherwise; with patches applied, "+patches:<sha256 over each applied patch's sha256
 * hex, NUL terminated, in order>" is appended.
 *
 * Errors (and ret_reason, one line): -EREMOTEIO download failed, -EUCLEAN content does
 * not match SHA256=/GitTree=, -EBADMSG hostile or broken archive, -EFBIG archive over a
 * cap, -ENOEXEC a patch does not apply, -ENOENT Path= or patch file missing. On failure
 * dest_dir is removed.
 */
int source_prepare(struct dm2_context *ctx, const struct recipe *r,
		   const struct recipe_source *s, const char *kernel_release,
		   const char *dest_dir, char **ret_content_id, char **ret_reason);
/* The same with the kernel's upstream version (kbw_kernel_version()) for the Kernel=
 * ranges of patches; source_prepare() takes the release for both. */
int source_prepare_for(struct dm2_context *ctx, const struct recipe *r,
		       const struct recipe_source *s, const char *kernel_release,
		       const char *kernel_version, const char *dest_dir,
		       char **ret_content_id, char **ret_reason);

/* A short name for messages: the last path component of a URL or path (query dropped). */
char *source_display_name(const char *url);
