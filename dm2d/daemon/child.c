/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2d's children; see child.h. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/child.h"
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

static _noreturn_ void child_exec(char **args, int out_fd, int err_fd)
{
	sigset_t ss;

	/* sd-event blocked these in the parent; the child starts with a clean slate. */
	sigemptyset(&ss);
	(void) sigprocmask(SIG_SETMASK, &ss, NULL);
	(void) setpgid(0, 0); /* so SIGTERM reaches make and the compilers too */
	if (out_fd >= 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (null >= 0)
			(void) dup2(null, STDIN_FILENO);
		(void) dup2(out_fd, STDOUT_FILENO);
	}
	if (err_fd >= 0)
		(void) dup2(err_fd, STDERR_FILENO);
	/* A child must run the engine itself, never ask us back. */
	(void) setenv("DM2_NO_FORWARD", "1", 1);
	(void) unsetenv("NOTIFY_SOCKET");
	(void) unsetenv("LISTEN_FDS");
	(void) unsetenv("LISTEN_PID");
	execv(args[0], args);
	_exit(127);
}

int child_spawn(char **args, int out_fd, int err_fd, pid_t *ret_pid)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_exec(args, out_fd, err_fd);
	*ret_pid = pid;
	return 0;
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
