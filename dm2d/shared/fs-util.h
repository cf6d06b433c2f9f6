/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "shared/macro.h"

/* Read a whole file (NUL-terminated for convenience; size excludes the NUL). Refuses files
 * larger than max_size (0 = 64 MiB) with -EFBIG. */
int read_full_file_at(int dir_fd, const char *path, size_t max_size, char **ret, size_t *ret_size);
/* Temporary file in the same directory, fsync, rename over path, fsync the directory. */
int write_file_atomic_at(int dir_fd, const char *path, const void *data, size_t size, mode_t mode);
/* write_file_atomic_at() in two steps, for several files that change together: first
 * each new content goes to a temporary file beside its path, written and fsynced (its path
 * relative to dir_fd in *ret_tmp; nothing left behind on failure), then each is renamed
 * over its path and the directory fsynced. */
int stage_file_at(int dir_fd, const char *path, const void *data, size_t size, mode_t mode,
		  char **ret_tmp);
int commit_staged_at(int dir_fd, const char *tmp, const char *path);
/* Write all of data, retrying short writes and EINTR. */
int loop_write(int fd, const void *data, size_t size);
/* Copy from in's position to EOF into out at its position. */
int copy_bytes(int in, int out);
/* Like write_file_atomic_at() but copies the contents of an open fd. */
int copy_file_atomic_at(int src_fd, int dir_fd, const char *path, mode_t mode);
/* Create a directory and any missing parents. Existing directories are fine. */
int mkdir_p_at(int dir_fd, const char *path, mode_t mode);
/* Remove a file or a directory tree, never following symlinks. Missing is fine. */
int rm_rf_at(int dir_fd, const char *path);
/* Copy a directory tree (regular files, directories, symlinks as they are; setuid, setgid and
 * sticky bits dropped, the top directory 0755); dst must not exist, its parent must. The top
 * of src may be a symlink, nothing below it is followed. Other file types are refused with
 * -EBADMSG, trees deeper than 64 levels with -ELOOP. */
int copy_tree_at(int src_dir_fd, const char *src, int dst_dir_fd, const char *dst);
/* The same, with every entry created as uid:gid (fs_ids_set()): a build user's private
 * copy, made without CAP_CHOWN or CAP_FOWNER. The source is read with our own ids. */
int copy_tree_owned_at(int src_dir_fd, const char *src, int dst_dir_fd, const char *dst,
		       uid_t uid, gid_t gid);
/* The calling thread's file-system ids become uid:gid ((uid_t) -1, (gid_t) -1: unchanged),
 * as setfsuid(2): what it creates then is theirs without a chown, and their private
 * directories are open to it without CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH. Needs
 * CAP_SETUID/CAP_SETGID; -EPERM (ours kept) without. fs_ids_restore() returns to the
 * effective ids. */
int fs_ids_set(uid_t uid, gid_t gid);
void fs_ids_restore(void);
/* openat() as uid:gid (fs_ids_set()), ours restored after: with O_CREAT, a file of theirs
 * made without a chown. Returns the fd. */
int openat_as(int dir_fd, const char *name, int flags, mode_t mode, uid_t uid, gid_t gid);
/* mkdirat() and open the new directory (O_NOFOLLOW), both as uid:gid. Returns its fd. */
int mkdirat_open_as(int dir_fd, const char *name, mode_t mode, uid_t uid, gid_t gid);
/* Create a fresh, empty, mode 0700 directory named "<prefix>XXXXXX" under dir_fd. */
int mkdtemp_at(int dir_fd, const char *prefix, char **ret_name);
/* Join a root directory and a path, with exactly one slash between them. */
char *path_join(const char *a, const char *b);
/* True if path has no "..", no empty components and is not absolute. */
bool path_is_safe_relative(const char *path);
/* Sum of file sizes below dir. */
int dir_size_at(int dir_fd, const char *path, uint64_t *ret);
