/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "recipe/recipe.h"

/*
 * Does DKMS itself build this package for new kernels? Yes when it is a dkms.conf package
 * with AUTOINSTALL=yes, dkms is installed beneath the root (usr/sbin/dkms), the package
 * is registered with it (var/lib/dkms/NAME, what the *-dkms packages' `dkms add` makes),
 * and no `dm2 dkms takeover` turned DKMS' autoinstall off (etc/dkms/no-autoinstall). Then
 * DKMS' kernel hook, which runs before dm2's, builds and installs it, and dm2 must leave
 * it alone rather than fail on DKMS' files.
 */
bool dkms_manages(const struct dm2_context *ctx, const struct recipe *rc);
