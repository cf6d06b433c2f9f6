/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"
#include "core/db.h"

/*
 * Installing modules into ROOT/lib/modules/KVER and running depmod. The caller holds the
 * kernel lock (lock_kernel()) around install_files()/install_remove()/install_depmod().
 * Every file written is recorded in the state db with its sha256; nothing dm2 did not
 * install is ever overwritten or removed.
 */

struct install_item {
	const char *dir;  /* directory relative to lib/modules/KVER ("updates/dm2") */
	const char *name; /* file name ("foo.ko", "foo.ko.xz") */
	const void *data; /* signed (and compressed) module */
	size_t size;
};

/* What the state db and the install manifest say about an install (NULL strings: not
 * known). */
struct install_meta {
	const char *version;
	const char *build_key;
	const char *signer;
	bool from_cache;
};

/*
 * Write every item to a temporary file beside its target and fsync it, then the install
 * manifest (core/manifest.h: the new files and, until they are replaced, the old ones;
 * meta may be NULL), and only when all are written rename them over their targets (so a
 * failed write leaves the earlier install whole), record them for recipe x kver, then
 * remove the files recorded for recipe x kver by an earlier install that are not part of
 * this one (when their content is still ours). -EEXIST when a target exists and dm2 did
 * not install it for this recipe (the item's root-relative path is returned in
 * *ret_where, if given); nothing is written then. When writing fails (-ENOSPC, -EIO),
 * *ret_where names the root-relative directory that could not be written.
 */
int install_files(struct dm2_context *ctx, struct db *d, const char *recipe,
		  const char *kver, const struct install_item *items, size_t n,
		  const struct install_meta *meta, char **ret_where);

/*
 * Remove the files of recipe x kver whose content still matches the recorded sha256,
 * forget recipe x kver in the db, then remove its install manifest. A file that was changed since is left in place and its
 * root-relative path is appended to *ret_kept (if given). Does not run depmod.
 */
int install_remove(struct dm2_context *ctx, struct db *d, const char *recipe,
		   const char *kver, char ***ret_kept);

/*
 * `depmod -a -b ROOT KVER`. It runs even when lib/modules/KVER has no modules.dep yet (a
 * fresh fake root or image build): depmod then creates it. Its stderr goes to the log
 * (warnings) and its first line becomes *ret_reason on failure. -ENOENT:
 * ROOT/lib/modules/KVER does not exist; -ENOEXEC: no depmod binary; -EPROTO: depmod
 * failed.
 */
int install_depmod(struct dm2_context *ctx, const char *kver, char **ret_reason);

/* The in-tree module a module named 'name' ("foo.ko", "foo.ko.xz") would shadow in kver:
 * the root-relative path under lib/modules/KVER/kernel/, "builtin" when modules.builtin
 * lists it, or NULL (-ENOENT). Names compare with '-' and '_' equal, as the kernel does.
 */
int install_find_intree(struct dm2_context *ctx, const char *kver, const char *name,
			char **ret);

/* The kernel directory is gone: forget its jobs and files (no file is touched). */
int install_remove_kernel(struct dm2_context *ctx, struct db *d, const char *kver);
