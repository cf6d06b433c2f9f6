/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "libkbuild-wrap.h"
#include "recipe/dkms-vars.h"

/*
 * dkms.conf is bash: dm2 does what DKMS does and sources it with bash, but in the build
 * sandbox (a build uid of its own, no network, the file system read-only, a PID namespace,
 * time, CPU and memory limits), with the variables DKMS 3.0.10's read_conf sets
 * (kernelver, arch, kernel_source_dir, kernel_config, dkms_tree, source_tree,
 * install_tree, module, module_version), then the admin's /etc/dkms overrides in DKMS'
 * order in the same shell, and bash prints the DKMS directives it was left with
 * (dkms-vars.h). Under a --root other than "/", the root's usr/src, lib/modules, etc/dkms
 * and var/lib/dkms are what the file sees at /usr/src, /lib/modules, ...
 *
 * Results are cached in ROOT/var/cache/dm2/dkms/ per (dkms.conf's bytes, the package
 * directory, the kernel: release, arch, kernel_source_dir and .config's bytes) and checked
 * against the override files (each candidate's bytes, or its absence) on every use.
 */
#define DKMS_EVAL_CACHE_DIR "var/cache/dm2/dkms"
#define DKMS_EVAL_TIMEOUT_USEC (30ULL * 1000000ULL)
#define DKMS_EVAL_MEMORY_MAX (1ULL << 30)

struct dkms_eval_input {
	struct dm2_context *ctx;
	const char *dir;	       /* host path of the package directory */
	const char *conf_text;	       /* dkms.conf's bytes as read (the cache key) */
	size_t conf_size;
	const char *kernel_release;    /* NULL: the kernel-independent view ($kernelver empty) */
	const char *arch;
	const char *kernel_source_dir; /* host path of the kernel's build tree */
	const struct kbw_kernel *kernel; /* its trees stay visible; may be NULL */
	const char *overrides_dir;     /* host path of ROOT/etc/dkms, NULL: none read */
	bool fresh;		       /* neither read nor write the cache */
};

struct dkms_eval_result {
	struct dkms_vars *vars; /* the directives, and dm2_module/dm2_module_version */
	char **overrides;	/* host paths of the override files that were sourced */
	char *errors;		/* what bash printed on stderr (NULL from the cache) */
	bool cached;
};
void dkms_eval_result_done(struct dkms_eval_result *r);

/* 0, or -EPROTO with *ret_reason one line ("bash timed out after 30 s", "evaluating
 * dkms.conf needs root (it runs in the build sandbox)", a malformed dump). */
int dkms_evaluate(const struct dkms_eval_input *in, struct dkms_eval_result *ret,
		  char **ret_reason);

/*
 * What a DKMS package's build sees of a --root other than "/": the root's usr/src,
 * lib/modules, etc/dkms and var/lib/dkms at the machine's paths (read-only; usr/src over
 * the host's, where the kernel trees a root's lib/modules/KVER/build links to live), the
 * view its dkms.conf was evaluated in, so that the paths evaluation found (west-chamber's
 * `find /usr/src -name 'xtables-addons-*'`, PSRC=/usr/src/NAME-VERSION) name the same
 * files when MAKE runs. No binds under --root /.
 */
struct dkms_root_view {
	struct kbw_bind binds[4];
	char *owned[4];
	size_t n_binds;
};
int dkms_root_view_init(const struct dm2_context *ctx, struct dkms_root_view *ret);
void dkms_root_view_done(struct dkms_root_view *v);

/* The bash program that sources the files and prints the dump (for tests and fuzz
 * seeds): bash -c PROGRAM dm2-dkms CONF SRCDIR KERNELVER ARCH KERNEL_SOURCE_DIR ETC_DKMS */
extern const char dkms_eval_program[];
