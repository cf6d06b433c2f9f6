/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pwd.h>
#include <sys/wait.h>

#include "pipeline/build-user.h"
#include "shared/log.h"
#include "shared/util.h"

static int lookup(const char *name, uid_t *ret_uid, gid_t *ret_gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int r;

	r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (r != 0)
		return -r;
	if (!res)
		return -ESRCH;
	*ret_uid = res->pw_uid;
	*ret_gid = res->pw_gid;
	return 0;
}

static int create_system_user(const char *name)
{
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execl("/usr/sbin/useradd", "useradd", "--system", "--no-create-home",
		      "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name,
		      (char *) NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO;
	return 0;
}

int build_user_resolve(struct dm2_context *ctx, uid_t *ret_uid, gid_t *ret_gid)
{
	const char *name = ctx->config && ctx->config->build_user
				   ? ctx->config->build_user
				   : "dm2-build";
	uid_t uid;
	gid_t gid;
	int r;

	r = lookup(name, &uid, &gid);
	if (r == -ESRCH && streq(ctx->root, "/") && geteuid() == 0) {
		r = create_system_user(name);
		if (r < 0)
			log_warning_errno(
				r,
				"Failed to create build user '%s' with useradd, "
				"ignoring: %m",
				name);
		else
			log_notice("Created system user '%s' for builds.", name);
		r = lookup(name, &uid, &gid);
	}
	if (r == -ESRCH) {
		/* A fake root (tests, image builds) never gets a user added to the
		 * machine's /etc: fall back to nobody, which exists everywhere. */
		log_notice("Build user '%s' does not exist; building as 'nobody'.", name);
		r = lookup("nobody", &uid, &gid);
	}
	if (r < 0)
		return r;
	if (uid == 0) {
		log_debug("Build user '%s' is root; refusing.", name);
		return -EPERM;
	}
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;
}
