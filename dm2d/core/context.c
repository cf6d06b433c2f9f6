/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "core/context.h"
#include "libkbuild-wrap.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

static char *default_root(void)
{
#ifdef DM2_CMAKE_BUILD_DIR
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		const char *rest = startswith(exe, DM2_CMAKE_BUILD_DIR "/");
		if (rest && !strchr(rest, '/'))
			return strdup(DM2_CMAKE_BUILD_DIR "/root");
	}
#endif
	return strdup("/");
}

static void kbw_to_log(int priority, const char *message, void *userdata)
{
	log_full(priority, "%s", message);
}

int context_new(const char *root, struct dm2_context **ret)
{
	_cleanup_(context_freep) struct dm2_context *c = NULL;
	char buf[PATH_MAX];
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return log_oom();
	c->root_fd = -EBADF;
	/* libkbuild-wrap reports through a callback, into our log. Installed here, once:
	 * every dm2 program makes its context before it looks at a kernel. */
	kbw_set_log_fn(kbw_to_log, NULL);

	c->root = root ? strdup(root) : default_root();
	if (!c->root)
		return log_oom();
	if (!root && !streq(c->root, "/")) {
		r = mkdir_p_at(AT_FDCWD, c->root, 0755);
		if (r < 0)
			return log_error_errno(r, "Failed to create '%s': %m", c->root);
	}
	if (!realpath(c->root, buf))
		return log_error_errno(errno, "Root directory '%s' is not usable: %m", c->root);
	r = free_and_strdup(&c->root, buf);
	if (r < 0)
		return log_oom();

	c->root_fd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->root_fd < 0)
		return log_error_errno(errno, "Failed to open root directory '%s': %m", c->root);

	r = config_load_root(c->root_fd, c->root, DM2_CONF_FILE, &c->config);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(c);
	return 0;
}

struct dm2_context *context_free(struct dm2_context *c)
{
	if (!c)
		return NULL;
	safe_close(c->root_fd);
	free(c->root);
	strv_free(c->recipe_dirs);
	config_free(c->config);
	return mfree(c);
}

char *context_path(const struct dm2_context *c, const char *rel)
{
	return path_join(c->root, rel);
}
