/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/config.h"
#include "shared/macro.h"

/*
 * Where dm2 works. Every path below is relative to the root directory (--root, default "/")
 * and is opened relative to root_fd, never by an absolute path.
 */
#define DM2_CONF_FILE "etc/dm2/dm2d.conf"
#define DM2_ADMIN_RECIPE_DIR "etc/dm2/recipes.d"
#define DM2_VENDOR_RECIPE_DIR "usr/share/dm2/recipes"
#define DM2_STATE_DIR "var/lib/dm2"
#define DM2_STATE_DB "var/lib/dm2/state.db"
#define DM2_KEY_DIR "var/lib/dm2/keys"
#define DM2_LOG_DIR "var/lib/dm2/logs"
#define DM2_WORK_DIR "var/lib/dm2/work"
#define DM2_LOCK_DIR "var/lib/dm2/locks"
#define DM2_DOWNLOAD_DIR "var/cache/dm2/downloads"
#define DM2_ARTIFACT_DIR "var/cache/dm2/artifacts"
#define DM2_RUN_DIR "run/dm2"
#define DM2_CONTROL_SOCKET "run/dm2/control"
#define DM2_MODULES_DIR "lib/modules"
#define DM2_USR_SRC_DIR "usr/src"
#define DM2_DKMS_ETC_DIR "etc/dkms"
#define DM2_DKMS_TREE "var/lib/dkms"

struct dm2_context {
	char *root;          /* absolute, no trailing slash except for "/" itself */
	int root_fd;
	char **recipe_dirs;  /* extra recipe directories (absolute, outside root), searched first */
	struct dm2_config *config;
};

/* Open root (NULL: "/" when installed; when run from the build tree, <builddir>/root, so that
 * a newcomer's first try cannot touch the machine) and load its dm2d.conf. */
int context_new(const char *root, struct dm2_context **ret);
struct dm2_context *context_free(struct dm2_context *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dm2_context *, context_free);

/* Absolute path of a root-relative path, for messages and for programs we run. */
char *context_path(const struct dm2_context *c, const char *rel);
