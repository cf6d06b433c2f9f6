/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"
#include "core/db.h"
#include "recipe/recipe-set.h"

/*
 * Living next to DKMS, and leaving it. DKMS marks a package installed for a kernel with
 * the symlink ROOT/var/lib/dkms/<module>/kernel-<kver>-<arch> -> <version>/<kver>/<arch>
 * and copies the modules into ROOT/lib/modules/<kver>/updates/dkms (on Debian). dm2 never
 * overwrites those files (install_files() refuses files it did not install); `dm2 dkms
 * takeover` replaces them with dm2's own builds, one package x kernel at a time.
 */

#define DKMS_BACKUP_DIR DM2_STATE_DIR "/dkms-backup"

/* One module file DKMS installed (or claims to have installed) for a kernel. */
struct dkms_installed {
	char *module; /* DKMS package (PACKAGE_NAME); NULL for a file in updates/dkms that
		       * no kernel-KVER-ARCH link of var/lib/dkms accounts for */
	char *version; /* package version, NULL when unknown */
	char *kernel;
	char *arch; /* from the kernel-KVER-ARCH link, NULL when unknown */
	char *path; /* root-relative module file ("lib/modules/KVER/updates/dkms/x.ko");
		     * NULL when DKMS says installed but no file is there */
	bool dm2_managed; /* dm2 has installed files for a recipe of that name and kernel
			   */
};
void dkms_installed_free(struct dkms_installed *l, size_t n);

/*
 * What DKMS installed for kver (NULL: every kernel directory in ROOT/lib/modules): every
 * module file under lib/modules/KVER/updates/dkms that dm2's state db does not own, and
 * every package DKMS marks installed. Sorted by kernel, module, path. A root without DKMS
 * gives an empty list.
 */
int dkms_installed_modules(struct dm2_context *ctx, const char *kver,
			   struct dkms_installed **ret, size_t *ret_n);

/* The DKMS package that installed path (root-relative), -ENOENT when DKMS did not (or dm2
 * owns it). For error messages such as install conflicts. */
int dkms_file_owner(struct dm2_context *ctx, const char *path, char **ret_module);
/* An install conflict worded for a file DKMS installed ("... was installed by DKMS
 * (package 'bar'); see 'dm2 dkms takeover'"), NULL when DKMS did not: a job_conflict_fn
 * for job_options.explain_conflict. */
char *dkms_explain_conflict(struct dm2_context *ctx, const char *path);

struct dkms_takeover_result {
	bool taken_over;      /* dm2's build is installed and DKMS forgot the kernel */
	enum job_state state; /* how it ended: installed, else as dm2's job did (failed
			       * also when the takeover failed around it) */
	enum job_state stage; /* failed: where (queued: the job could not be run) */
	int error;	      /* failed: negative errno of the cause */
	char *reason;	  /* one line when !taken_over */
	char **moved;	  /* DKMS' files (root-relative) that were replaced */
	char **installed; /* dm2's files now in place (root-relative) */
	bool restored;	  /* on failure: DKMS' files were put back */
};
void dkms_takeover_result_done(struct dkms_takeover_result *r);

/*
 * Replace DKMS' build of module for kver with dm2's: move DKMS' files (paths, root-
 * relative) aside into DKMS_BACKUP_DIR/KVER/..., run the dm2 job (recipe module from
 * set), and only when dm2's files are in place delete the backups and the
 * var/lib/dkms/<module>/kernel-<kver>-<arch> link. On any failure DKMS' files are renamed
 * back unchanged. Returns < 0 only when nothing could be attempted (logged); every
 * outcome of the attempt itself returns 0 with *ret filled in.
 */
int dkms_takeover(struct dm2_context *ctx, struct db *d, const struct recipe_set *set,
		  const char *module, const char *kver, const char *arch, char **paths,
		  bool progress, struct dkms_takeover_result *ret);
/* After a takeover: turn DKMS' autoinstall off (ROOT/etc/dkms/no-autoinstall, for every
 * package). ret_unbuilt: DKMS packages dm2 does not build for new kernels (no recipe, or
 * AUTOINSTALL not set). 1: the file was created, 0: it existed, < 0: error. */
int dkms_disable_autoinstall(struct dm2_context *ctx, const struct recipe_set *set,
			     char ***ret_unbuilt);
