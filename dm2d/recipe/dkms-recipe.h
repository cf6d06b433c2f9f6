/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdio.h>

#include "recipe/dkms.h"

/*
 * A dm2 recipe from an evaluated dkms.conf c (r: dkms_conf_to_recipe(c)), for a packager
 * to start from (dm2 dkms import --recipe): Name=, Version=, Path= the package's
 * directory, Kernel= from BUILD_EXCLUSIVE_KERNEL_MIN/MAX, Modules= from
 * BUILT_MODULE_NAME/LOCATION, Directory= from a MAKE that is a kbuild call in one
 * subdirectory, RequireConfig=, Needs=, Strip=, License= from the sources'
 * MODULE_LICENSE. What has no recipe equivalent is a "# REVIEW:" comment; the text loads
 * as a recipe. -EIO when writing fails.
 */
int dkms_recipe_write(const struct dkms_conf *c, const struct recipe *r, FILE *f);
