/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "shared/macro.h"

/*
 * Apply one patch to dir with GNU patch ("patch -p1 --batch --forward", no backup or
 * reject files), run as a child with a clean environment. On failure returns -ENOEXEC
 * and, if ret_reason is given, one line naming the patch file, the file and the failing
 * hunk: "patch 'fix.patch' does not apply: foo.c: Hunk #1 FAILED at 3."
 */
int patch_apply(const char *dir, const char *patch_path, char **ret_reason);
