/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2d's children; see child.h. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/child.h"
#include "shared/jobserver.h"
#include "shared/spawn.h"
#include "shared/util.h"

int child_output_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;

		safe_close(p[0]);
		safe_close(p[1]);
		return r;
	}
	return 0;
}

static const struct jobserver *child_jobserver;

void child_set_jobserver(const struct jobserver *js)
{
	child_jobserver = js;
}

/* Our environment for a child: it must run the engine itself, never ask us back, and it
 * is not the service systemd started (no notify socket, no activation fds). */
static char **child_env(void)
{
	static const char *const drop[] = {"DM2_NO_FORWARD=", "NOTIFY_SOCKET=", "LISTEN_FDS=",
					   "LISTEN_PID=", "LISTEN_FDNAMES=", JOBSERVER_ENV "="};
	_cleanup_strv_free_ char **env = NULL;

	for (char **e = environ; e && *e; e++) {
		bool keep = true;

		for (size_t i = 0; i < ELEMENTSOF(drop); i++)
			keep = keep && !startswith(*e, drop[i]);
		if (keep && strv_extend(&env, *e) < 0)
			return NULL;
	}
	if (strv_extend(&env, "DM2_NO_FORWARD=1") < 0)
		return NULL;
	if (child_jobserver && jobserver_valid(child_jobserver) &&
	    strv_consume(&env, jobserver_env(child_jobserver)) < 0)
		return NULL;
	return TAKE_PTR(env);
}

int child_spawn(char **args, int out_fd, int err_fd, pid_t *ret_pid)
{
	_cleanup_strv_free_ char **env = child_env();

	if (!env)
		return -ENOMEM;
	return spawn(&(struct spawn_options){
			     .argv = args,
			     .envp = env,
			     .stdin_fd = out_fd >= 0 ? SPAWN_NULL : SPAWN_INHERIT,
			     .stdout_fd = out_fd >= 0 ? out_fd : SPAWN_INHERIT,
			     .stderr_fd = err_fd >= 0 ? err_fd : SPAWN_INHERIT,
			     /* so SIGTERM reaches make and the compilers too */
			     .new_process_group = true,
			     .keep_fds = child_jobserver && jobserver_valid(child_jobserver)
						 ? child_jobserver->fds
						 : NULL,
			     .n_keep_fds = child_jobserver && jobserver_valid(child_jobserver) ? 2 : 0,
		     },
		     ret_pid);
}

int child_spawn_watched(sd_event *e, char **args, int out_fd, int err_fd,
			sd_event_child_handler_t on_exit, void *userdata, pid_t *ret_pid,
			sd_event_source **ret_child)
{
	pid_t pid = 0; /* set when child_spawn() succeeds; gcc -O2 cannot tell */
	int r;

	r = child_spawn(args, out_fd, err_fd, &pid);
	if (r < 0)
		return r;
	r = sd_event_add_child(e, ret_child, pid, WEXITED, on_exit, userdata);
	if (r < 0) {
		(void) kill(pid, SIGKILL);
		(void) waitpid(pid, NULL, 0);
		return r;
	}
	(void) sd_event_source_set_child_process_own(*ret_child, true);
	*ret_pid = pid;
	return 0;
}

int child_read_lines(int fd, char *line, size_t size, size_t *n, bool drain,
		     void (*fn)(const char *line, void *userdata), void *userdata)
{
	for (;;) {
		char buf[4096];
		ssize_t k = read(fd, buf, sizeof(buf));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN && !drain)
			return 1;
		if (k <= 0) {
			if (*n > 0) {
				line[*n] = '\0';
				fn(line, userdata);
				*n = 0;
			}
			return 0;
		}
		for (ssize_t i = 0; i < k; i++) {
			if (buf[i] == '\n' || *n >= size - 1) {
				line[*n] = '\0';
				fn(line, userdata);
				*n = 0;
				if (buf[i] == '\n')
					continue;
			}
			line[(*n)++] = buf[i];
		}
		if (!drain)
			return 1;
	}
}
