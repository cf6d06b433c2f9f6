/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "core/context.h"

/*
 * The unprivileged user builds run as: dm2d.conf [Build] User= (default "dm2-build").
 * If that user does not exist and ctx->root is "/" and we are root, it is created with
 * useradd --system (no home, nologin shell). In every other case (fake roots, tests, not
 * root) /etc is never touched: the build falls back to "nobody", with a notice. Looks
 * users up in the machine's passwd database (builds run on this machine).
 */
int build_user_resolve(struct dm2_context *ctx, uid_t *ret_uid, gid_t *ret_gid);
