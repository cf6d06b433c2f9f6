/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/ticker.h"

#define TAIL_SIZE 4096

/* The last non-empty line of the file, printable ASCII and UTF-8 only, into buf. */
static size_t last_line(int dir_fd, const char *path, char *buf, size_t size)
{
	char tail[TAIL_SIZE];
	ssize_t n = 0;
	size_t len = 0;
	int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

	if (fd >= 0) {
		off_t end = lseek(fd, 0, SEEK_END);

		n = pread(fd, tail, sizeof(tail), end > TAIL_SIZE ? end - TAIL_SIZE : 0);
		close(fd);
	}
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		n--;
	ssize_t start = n;
	while (start > 0 && tail[start - 1] != '\n' && tail[start - 1] != '\r')
		start--;
	for (ssize_t i = start; i < n && len + 1 < size; i++) {
		unsigned char c = (unsigned char) tail[i];

		/* A hostile build log must not move the cursor or change the terminal. */
		if (c == '\t')
			c = ' ';
		if (c < 0x20 || c == 0x7f)
			continue;
		buf[len++] = (char) c;
	}
	buf[len] = '\0';
	return len;
}

static int tty_columns(int fd)
{
	struct winsize w;

	if (ioctl(fd, TIOCGWINSZ, &w) < 0 || w.ws_col < 20)
		return 80;
	return w.ws_col;
}

static _Noreturn void ticker_run(int tty_fd, int dir_fd, const char *path)
{
	struct timespec start, now, second = {1, 0};
	char line[512], out[640];

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		nanosleep(&second, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		long s = (long) (now.tv_sec - start.tv_sec);
		int width = tty_columns(tty_fd);

		last_line(dir_fd, path, line, sizeof(line));
		int n = snprintf(out, sizeof(out), "\r\033[K  [%ld:%02ld] ", s / 60,
				 s % 60);
		/* Cut to the width, so the line never wraps and \r keeps working; a cut
		 * in a UTF-8 sequence is only one odd glyph at the end. */
		int room = width - 1 - (n - 4);
		if (room > 0)
			n += snprintf(out + n, sizeof(out) - (size_t) n, "%.*s", room,
				      line);
		if (write(tty_fd, out, (size_t) n) < 0)
			_exit(0);
	}
}

int ticker_start(struct ticker *t, int tty_fd, int log_dir_fd, const char *log_path)
{
	pid_t parent = getpid(), pid;

	*t = (struct ticker){.pid = -1, .tty_fd = tty_fd};
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		(void) prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		signal(SIGINT, SIG_IGN); /* ^C is the build's; ticker_stop() ends us */
		ticker_run(tty_fd, log_dir_fd, log_path);
	}
	t->pid = pid;
	return 0;
}

void ticker_stop(struct ticker *t)
{
	static const char clear[] = "\r\033[K";

	if (t->pid <= 0)
		return;
	(void) kill(t->pid, SIGKILL);
	while (waitpid(t->pid, NULL, 0) < 0 && errno == EINTR)
		;
	t->pid = -1;
	(void) !write(t->tty_fd, clear, sizeof(clear) - 1);
}
