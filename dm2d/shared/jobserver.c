/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/jobserver.h"
#include "shared/util.h"

static int put_tokens(int fd, unsigned n)
{
	char buf[64];

	memset(buf, '+', sizeof(buf));
	while (n > 0) {
		ssize_t k = write(fd, buf, MIN(n, sizeof(buf)));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		n -= (unsigned) k;
	}
	return 0;
}

int jobserver_new(unsigned tokens, struct jobserver *ret)
{
	struct jobserver js = {.tokens = MAX(tokens, 1u)};
	int r;

	if (pipe2(js.fds, O_CLOEXEC) < 0)
		return -errno;
	r = put_tokens(js.fds[1], js.tokens);
	if (r < 0) {
		jobserver_done(&js);
		return r;
	}
	*ret = js;
	return 0;
}

void jobserver_done(struct jobserver *js)
{
	js->fds[0] = safe_close(js->fds[0]);
	js->fds[1] = safe_close(js->fds[1]);
	js->fds[0] = js->fds[1] = -1;
}

int jobserver_refill(struct jobserver *js, bool idle)
{
	int n = 0, r;

	if (!jobserver_valid(js))
		return 0;
	if (ioctl(js->fds[0], FIONREAD, &n) < 0)
		return -errno;
	if (idle && n > 0 && (unsigned) n > js->tokens) {
		/* topped up while others held tokens they then gave back: the excess goes */
		char buf[64];
		ssize_t k = read(js->fds[0], buf, MIN((unsigned) n - js->tokens, sizeof(buf)));

		return k < 0 ? -errno : 0;
	}
	if (n < 0 || (unsigned) n >= js->tokens)
		return 0;
	r = put_tokens(js->fds[1], js->tokens - (unsigned) n);
	return r < 0 ? r : (int) (js->tokens - (unsigned) n);
}

int jobserver_resize(struct jobserver *js, unsigned tokens)
{
	unsigned old = js->tokens;

	js->tokens = MAX(tokens, 1u);
	if (!jobserver_valid(js) || js->tokens <= old)
		return 0;
	return put_tokens(js->fds[1], js->tokens - old);
}

char *jobserver_env(const struct jobserver *js)
{
	return strdup_printf(JOBSERVER_ENV "=%d,%d", js->fds[0], js->fds[1]);
}

static bool is_pipe(int fd, int want_mode)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_ACCMODE) == want_mode && fstat(fd, &st) == 0 &&
	       S_ISFIFO(st.st_mode);
}

int jobserver_from_env(struct jobserver *ret)
{
	const char *v = getenv(JOBSERVER_ENV);
	int rfd = -1, wfd = -1, n = 0;

	if (isempty(v))
		return 0;
	if (sscanf(v, "%d,%d%n", &rfd, &wfd, &n) != 2 || v[n] || rfd < 3 || wfd < 3 ||
	    !is_pipe(rfd, O_RDONLY) || !is_pipe(wfd, O_WRONLY))
		return -EINVAL;
	*ret = (struct jobserver){.fds = {rfd, wfd}};
	return 0;
}
