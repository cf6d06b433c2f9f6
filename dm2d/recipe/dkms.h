/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "libkbuild-wrap.h"
#include "recipe/dkms-vars.h"
#include "recipe/recipe.h"
#include "shared/macro.h"

/*
 * DKMS compatibility: read /usr/src/NAME-VERSION/dkms.conf as a recipe. dkms.conf is bash,
 * and bash reads it: in the build sandbox, with DKMS' variables, the /etc/dkms overrides
 * after it (dkms-run.h); what it leaves is checked here as DKMS' read_conf_strict does.
 *
 * Every problem goes through the diagnostic callback (one call per problem, message
 * without the "FILE:LINE: " prefix, which the callback gets as arguments); loading then
 * fails with -EBADMSG. Non-fatal notes (package scripts that dm2 does not run, deprecated
 * directives) are reported through the same callback with messages starting "warning: ";
 * they do not make loading fail.
 */

/* dm2 installs DKMS modules where DKMS does on Debian, whatever DEST_MODULE_LOCATION
 * says. */
#define DKMS_INSTALL_DIR "updates/dkms"
#define DKMS_TREE "/var/lib/dkms"
#define DKMS_SOURCE_TREE "/usr/src"

struct dkms_module {
	char *built_name;     /* BUILT_MODULE_NAME, no .ko */
	char *built_location; /* BUILT_MODULE_LOCATION without trailing '/', "" = top */
	char *dest_name;      /* DEST_MODULE_NAME, default built_name */
	char *dest_location;  /* the package's DEST_MODULE_LOCATION as written ("/extra")
			       * or  NULL; dm2 installs into DKMS_INSTALL_DIR instead */
	bool strip;
};

struct dkms_patch {
	char *file;  /* PATCH[#], relative to the package's patches/ directory */
	char *match; /* PATCH_MATCH[#] (ERE against the kernel release) or NULL */
};

/* A dkms.conf evaluated for one kernel (or kernel-independently). */
struct dkms_conf {
	char *path;	      /* .../dkms.conf */
	char *dir;	      /* the package's source directory */
	char *kernel_release; /* what $kernelver was, NULL for the kernel-independent view
			       */
	char *arch;	      /* what $arch was */
	struct dkms_vars *vars; /* every directive as bash left it */
	char *name;	      /* PACKAGE_NAME */
	char *version;	      /* PACKAGE_VERSION */
	uint64_t content_crc; /* CRC-64 of dkms.conf's bytes and the overrides' (see struct
			       * recipe) */
	char **overrides;     /* the admin's /etc/dkms/<m>[-<v>[-<k>[-<a>]]].conf and
			       * <m>--<k>[-<a>].conf files that were read after dkms.conf */
	char **kernel_overrides; /* without a kernel: the kernel-specific ones, not read but
				  * part of the content (content_crc) */
	struct dkms_module *modules;
	size_t n_modules;
	char *make; /* the MAKE[] entry chosen for the kernel as evaluated, or NULL */
	char *make_command; /* what dm2 runs: NULL when it is DKMS' default kbuild call
			     * (then dm2's own kbuild invocation is used), else the
			     * command with "make" rewritten to "make -jN
			     * KERNELRELEASE=KVER" and DKMS' build directory replaced by
			     * "$PWD" */
	char *clean;	    /* CLEAN, informational */
	struct dkms_patch *patches;
	size_t n_patches;
	bool autoinstall;	    /* AUTOINSTALL=yes */
	char *exclusive_kernel;	    /* BUILD_EXCLUSIVE_KERNEL (ERE) */
	char *exclusive_kernel_min; /* BUILD_EXCLUSIVE_KERNEL_MIN */
	char *exclusive_kernel_max; /* BUILD_EXCLUSIVE_KERNEL_MAX, or OBSOLETE_BY */
	char *exclusive_arch;	    /* BUILD_EXCLUSIVE_ARCH (ERE) */
	char **exclusive_config; /* BUILD_EXCLUSIVE_CONFIG words, "!CONFIG_X" allowed */
	char **build_depends;	 /* BUILD_DEPENDS[] */
	char *obsolete_by;
	bool no_weak_modules;
	char *pre_build;  /* PRE_BUILD: run in the build sandbox in the build dir */
	char *post_build; /* POST_BUILD: likewise, after make */
	char **scripts; /* "POST_ADD=script" etc.: DKMS' root scripts, never run */
};

struct dkms_load_params {
	struct dm2_context *ctx;
	const char *dir;	      /* absolute */
	const char *kernel_release;   /* NULL: the kernel-independent view */
	const char *arch;	      /* NULL: the machine's (uname -m) */
	const char *kernel_build_dir; /* $kernel_source_dir (NULL: /lib/modules/KVER/build) */
	const struct kbw_kernel *kernel; /* may be NULL */
	const char *overrides_dir;    /* ROOT/etc/dkms; NULL: none are read */
	bool fresh;		      /* evaluate again, whatever the cache holds */
};

/*
 * Evaluate DIR/dkms.conf. dir is absolute. kernel_release NULL gives the
 * kernel-independent view (for listings: $kernelver is empty, MAKE[0] is used). arch NULL
 * means the machine's (uname -m). kernel_build_dir is $kernel_source_dir as the build
 * will see it (NULL: /lib/modules/KVER/build). overrides_dir is where the admin's
 * overrides are (ROOT/etc/dkms; NULL: none are read); those for the package, its version,
 * the kernel and the arch are evaluated after dkms.conf, as DKMS does.
 */
int dkms_conf_load(struct dm2_context *ctx, const char *dir, const char *kernel_release,
		   const char *arch, const char *kernel_build_dir, const char *overrides_dir,
		   recipe_diag_fn diag, void *userdata, struct dkms_conf **ret);
/* The same with every parameter. A result from the cache reports its problems at debug
 * level only: they were reported when it was evaluated (once per file and kernel, and
 * again when the file changes), not once per job or scan. */
int dkms_conf_load_with(const struct dkms_load_params *p, recipe_diag_fn diag,
			void *userdata, struct dkms_conf **ret);
/* The checks of dkms_conf_load_with() over a dump (dkms-vars.h) instead of bash's run:
 * text is the dkms.conf the dump came from (for line numbers), p->dir need not exist.
 * For the fuzzer of what follows the sandbox. */
int dkms_conf_from_dump(const struct dkms_load_params *p, const char *text, size_t size,
			const void *dump, size_t dump_size, recipe_diag_fn diag,
			void *userdata, struct dkms_conf **ret);
struct dkms_conf *dkms_conf_free(struct dkms_conf *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dkms_conf *, dkms_conf_free);

/*
 * The recipe for a dkms.conf: name PACKAGE_NAME, origin RECIPE_ORIGIN_DKMS, one source
 * (Path= the directory, Version= PACKAGE_VERSION) carrying PATCH[] (absolute paths under
 * patches/, PATCH_MATCH as match) and BUILD_EXCLUSIVE_KERNEL_MIN/MAX as its kernel range,
 * modules from BUILT_MODULE_NAME/LOCATION, DEST_MODULE_NAME, STRIP installed into
 * DKMS_INSTALL_DIR, make_command, clean_command, autoinstall, exclusive_kernel/arch,
 * require_config from BUILD_EXCLUSIVE_CONFIG, needs from BUILD_DEPENDS. The description
 * names the package's own DEST_MODULE_LOCATION when it differs.
 */
int dkms_conf_to_recipe(const struct dkms_conf *c, struct recipe **ret);
int dkms_recipe_load(const struct dkms_load_params *p, recipe_diag_fn diag, void *userdata,
		     struct recipe **ret);

/* Absolute paths of ROOT/usr/src/NAME-VERSION directories holding a dkms.conf, sorted.
 * root is the absolute path of root_fd (for the returned paths). An empty list is not an
 * error. */
int dkms_scan(int root_fd, const char *root, char ***ret_dirs);

/*
 * DKMS' BUILD_EXCLUSIVE_KERNEL / _MIN / _MAX (or OBSOLETE_BY) / _ARCH rules for a recipe
 * made by dkms_conf_to_recipe(). kernel_version may be NULL (the release is compared
 * then). BUILD_EXCLUSIVE_CONFIG is recipe->require_config and checked by the plan. When
 * false and ret_reason is given, it gets one line ("BUILD_EXCLUSIVE_ARCH 'aarch64' does
 * not match 'x86_64'"). Other recipes (no DKMS fields) always apply.
 */
bool dkms_applies(const struct recipe *r, const char *kernel_release,
		  const char *kernel_version, const char *arch, char **ret_reason);
