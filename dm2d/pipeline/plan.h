/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "libkbuild-wrap.h"
#include "recipe/recipe.h"
#include "shared/macro.h"

/*
 * Does a recipe apply to a kernel, and with which source? Checks, in this order: DKMS
 * BUILD_EXCLUSIVE_ARCH/KERNEL, Arch=, the license (unless allow_non_gpl), RequireConfig=,
 * and the Kernel= ranges of the sources. Whether the kernel's build tree is complete is
 * the caller's concern (state "waiting"), not the plan's.
 */
struct plan {
	bool applicable;
	char *skip_reason; /* one line when !applicable, else NULL */
	const struct recipe_source
		*source; /* chosen source when applicable (points into r) */
};

int plan_recipe(const struct recipe *r, const struct kbw_kernel *k, bool allow_non_gpl,
		struct plan *ret);
/* The same decision from plain values, for callers (and tests) without a probed kernel.
 * config(option) returns the value as in .config without quotes, or NULL when unset. */
typedef const char *(*plan_config_fn)(const char *option, void *userdata);
int plan_recipe_for(const struct recipe *r, const char *release, const char *version,
		    const char *arch, plan_config_fn config, void *userdata,
		    bool allow_non_gpl, struct plan *ret);
void plan_done(struct plan *p);
