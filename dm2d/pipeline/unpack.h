/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/context.h"
#include "shared/macro.h"

/*
 * Unpack a tar (plain, gzip, xz, zstd, bzip2) or zip archive into dest_dir, which must
 * not exist yet (its parent must). Only regular files, directories, symlinks whose target
 * stays inside the tree (checked lexically, and never through another symlink of the
 * archive) and hardlinks to earlier regular files of the archive are accepted. Absolute
 * paths, "..", device nodes, FIFOs and sockets are refused; setuid/setgid/sticky bits are
 * dropped; total bytes and entry count are capped by [Unpack] MaxUnpackedSize= and
 * MaxEntries=. When all entries share one top-level directory, it is stripped. On any
 * failure dest_dir is removed and nothing is left behind; nothing is ever created outside
 * dest_dir.
 *
 * archive_fd is read from its start. If sha256 is given the file is hashed from that same
 * fd before libarchive sees a byte; a mismatch fails with -EUCLEAN. A refused entry or a
 * broken archive fails with -EBADMSG, a cap with -EFBIG. ret_reason gets one line such as
 * "'evil.tar.gz': entry '../x': path escapes the source tree".
 *
 * libarchive's disk writer works relative to the working directory, so this changes the
 * process's working directory while it runs (and restores it): not for threaded callers.
 */
int unpack_archive_fd(struct dm2_context *ctx, int archive_fd, const char *display_name,
		      const char *sha256, const char *dest_dir, char **ret_reason);
/* The same for a file path, without hash check or reason (logged at debug level). */
int unpack_archive(struct dm2_context *ctx, const char *archive, const char *dest_dir);
