/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One build's share of a GNU make jobserver (make 4.3: "--jobserver-auth=R,W", inherited
 * pipe fds). The build never sees the pool: it gets a pipe of its own, and while it runs
 * we lend it tokens from the pool one at a time and pass back what it writes into its pipe.
 * Every token lent is counted, so when the build's namespace is dead we know how many it
 * kept (make killed while holding them, a recipe that reads the pipe and exits) and give
 * them back: a build cannot shrink the pool for the others.
 *
 * The build runs on one token of the pool too, taken before it starts: make's implicit
 * token, so that N tokens mean at most N jobs across every build sharing the pool.
 *
 * A lent token may sit unread while the build is in a serial part (modpost, link); when
 * the pool is empty (another build may want it) we take it back after a while.
 */
#include <fcntl.h>
#include <sys/ioctl.h>

#include "kbw-internal.h"

#define IDLE_RECLAIM_USEC (100 * 1000)
#define TOKEN '+'

/* An fd of our own on the same pipe, non-blocking (O_NONBLOCK is per open file, and make
 * must keep blocking reads on its own). */
static int reopen_nonblocking(int fd, int flags)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, flags | O_NONBLOCK | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

static unsigned pipe_count(int fd)
{
	int n = 0;

	if (ioctl(fd, FIONREAD, &n) < 0 || n < 0)
		return 0;
	return (unsigned) n;
}

static int put(int fd, unsigned n)
{
	char buf[64];

	memset(buf, TOKEN, sizeof(buf));
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

/* Non-blocking: how many of up to n tokens could be read. */
static unsigned take(int fd, unsigned n)
{
	char buf[64];
	unsigned got = 0;

	while (got < n) {
		ssize_t k = read(fd, buf, MIN(n - got, sizeof(buf)));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (unsigned) k;
	}
	return got;
}

static int take_implicit(int pool_r)
{
	char c;

	for (;;) {
		ssize_t k = read(pool_r, &c, 1);

		if (k == 1)
			return 0;
		if (k < 0 && errno == EINTR)
			continue;
		return k < 0 ? -errno : -EPIPE;
	}
}

int kbw_jobs_begin(struct kbw_jobs *j, int pool_r, int pool_w)
{
	int p[2], r;

	*j = (struct kbw_jobs){.pool_w = pool_w, .pool_nb = -EBADF, .fds = {-EBADF, -EBADF},
			       .own_nb = -EBADF};
	j->pool_nb = reopen_nonblocking(pool_r, O_RDONLY);
	if (j->pool_nb < 0)
		return j->pool_nb;
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		kbw_jobs_end(j, NULL);
		return r;
	}
	j->fds[0] = p[0];
	j->fds[1] = p[1];
	j->own_nb = reopen_nonblocking(p[0], O_RDONLY);
	if (j->own_nb < 0) {
		r = j->own_nb;
		kbw_jobs_end(j, NULL);
		return r;
	}
	r = take_implicit(pool_r);
	if (r < 0) {
		kbw_jobs_end(j, NULL);
		return r;
	}
	j->implicit = true;
	kbw_jobs_tick(j);
	return 0;
}

/* Keep one token ready in the build's pipe while the pool has one; pass returned ones on. */
void kbw_jobs_tick(struct kbw_jobs *j)
{
	unsigned c = pipe_count(j->own_nb), back;
	uint64_t now = now_mono_usec();

	if (c > 1) {
		back = take(j->own_nb, c - 1);
		j->drained += back;
		(void) put(j->pool_w, back);
		c -= back;
	}
	if (c == 1 && now - j->lent_at >= IDLE_RECLAIM_USEC && pipe_count(j->pool_nb) == 0) {
		back = take(j->own_nb, 1);
		j->drained += back;
		(void) put(j->pool_w, back);
		c -= back;
		j->lent_at = now; /* and do not lend it again at once */
		return;
	}
	if (c == 0 && now - j->lent_at >= (j->drained ? IDLE_RECLAIM_USEC / 4 : 0) &&
	    take(j->pool_nb, 1) == 1) {
		if (put(j->fds[1], 1) < 0) {
			(void) put(j->pool_w, 1);
			return;
		}
		j->lent++;
		j->lent_at = now;
	}
}

/* The build is gone: every token lent and not passed back returns to the pool, whether it
 * is still in the build's pipe or the build kept it; so does the implicit one. */
void kbw_jobs_end(struct kbw_jobs *j, unsigned *ret_kept)
{
	unsigned out = j->lent - j->drained, in_pipe = 0;

	if (j->own_nb >= 0)
		in_pipe = pipe_count(j->own_nb);
	if (ret_kept)
		*ret_kept = out > in_pipe ? out - in_pipe : 0;
	if (out + j->implicit > 0)
		(void) put(j->pool_w, out + j->implicit);
	j->lent = j->drained = 0;
	j->implicit = false;
	j->pool_nb = safe_close(j->pool_nb);
	j->own_nb = safe_close(j->own_nb);
	j->fds[0] = safe_close(j->fds[0]);
	j->fds[1] = safe_close(j->fds[1]);
}
