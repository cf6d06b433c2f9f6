/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/stat.h>

#include "recipe/dkms-active.h"
#include "shared/util.h"

static bool exists_at(int dir_fd, const char *path, mode_t type)
{
	struct stat st;

	return fstatat(dir_fd, path, &st, 0) >= 0 && (st.st_mode & S_IFMT) == type;
}

bool dkms_manages(const struct dm2_context *ctx, const struct recipe *rc)
{
	_cleanup_free_ char *registered = NULL;

	if (rc->origin != RECIPE_ORIGIN_DKMS || !rc->autoinstall || !rc->name)
		return false;
	if (exists_at(ctx->root_fd, DM2_DKMS_ETC_DIR "/no-autoinstall", S_IFREG))
		return false;
	if (!exists_at(ctx->root_fd, "usr/sbin/dkms", S_IFREG))
		return false;
	registered = strjoin(DM2_DKMS_TREE "/", rc->name);
	return registered && exists_at(ctx->root_fd, registered, S_IFDIR);
}
