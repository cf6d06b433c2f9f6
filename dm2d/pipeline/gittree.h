/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "shared/macro.h"

/*
 * The git tree id (SHA-1, 40 hex) of a directory, as `git add -A && git write-tree` would
 * give it: regular files are blobs with mode 100644, or 100755 when the owner may execute
 * them; symlinks are blobs of their target with mode 120000; directories are trees (mode
 * 40000) with entries sorted the way git sorts them (a directory compares as its name
 * plus '/'); empty directories are omitted, and so is a directory named ".git". Other
 * file types fail with -EBADMSG. An empty top directory gives git's empty tree id.
 */
int gittree_hash_dir(int dir_fd, const char *path, char ret[41]);
