/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client's end of the control socket; see control.h for the protocol. */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "control/control.h"
#include "control/exit-codes.h"
#include "shared/log.h"
#include "shared/util.h"

/* ---- client ---- */

int control_split(const char *line, char ***ret)
{
	return strv_split(line, " ", ret);
}

bool control_word_ok(const char *w)
{
	if (isempty(w) || streq(w, ".") || streq(w, "..") || strchr(w, '/'))
		return false;
	for (const char *p = w; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

int control_connect(struct dm2_context *ctx, int *ret_fd)
{
	_cleanup_free_ char *path = context_path(ctx, DM2_CONTROL_SOCKET);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;

	if (!path)
		return -ENOMEM;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static void print_reply(const char *line, bool raw)
{
	_cleanup_strv_free_ char **w = NULL;
	const char *p;

	if (raw) {
		printf("%s\n", line);
		return;
	}
	if ((p = startswith(line, "MSG ")) || (p = startswith(line, "OUT "))) {
		printf("%s\n", p);
		return;
	}
	if ((p = startswith(line, "LOG "))) {
		fprintf(stderr, "%s\n", p);
		return;
	}
	if (!startswith(line, "JOB "))
		return;
	/* JOB recipe kver state [reason...] */
	if (strv_split(line, " ", &w) < 0 || strv_length(w) < 4)
		return;
	p = line;
	for (int i = 0; i < 4 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	printf("%s %s: %s%s%s%s\n", w[1], w[2], w[3], p ? " (" : "", strempty(p), p ? ")" : "");
}

int control_request(int fd, const char *request, uint64_t timeout_usec, bool raw)
{
	uint64_t deadline = timeout_usec ? now_mono_usec() + timeout_usec : 0;
	char buf[CONTROL_REPLY_MAX];
	size_t n = 0;
	size_t len = strlen(request);

	if (send(fd, request, len, MSG_NOSIGNAL) != (ssize_t) len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		return -errno;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int to = -1, r;
		char *nl;
		ssize_t k;

		if (deadline) {
			uint64_t now = now_mono_usec();

			if (now >= deadline)
				return EXIT_BUSY;
			to = (int) MIN((deadline - now + 999) / 1000, (uint64_t) INT32_MAX);
		}
		r = poll(&p, 1, to);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return EXIT_BUSY;
		k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -ECONNRESET; /* the daemon went away before DONE */
		n += k;
		buf[n] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			const char *rest;
			int code;

			*nl = '\0';
			if (startswith(buf, "NORECIPE "))
				return CONTROL_NO_RECIPE;
			if ((rest = startswith(buf, "DONE ")) || (rest = startswith(buf, "ERR "))) {
				const char *text = strchr(rest, ' ');

				if (safe_atoi(text ? strndupa(rest, text - rest) : rest, &code) < 0)
					return -EBADMSG;
				if (raw)
					printf("%s\n", buf);
				else if (text && startswith(buf, "ERR "))
					log_error("dm2d: %s", text + 1);
				else if (text)
					printf("%s\n", text + 1);
				fflush(stdout);
				return code;
			}
			print_reply(buf, raw);
			fflush(stdout);
			memmove(buf, nl + 1, n - (nl + 1 - buf) + 1);
			n -= nl + 1 - buf;
		}
		if (n >= sizeof(buf) - 1)
			return -EBADMSG;
	}
}

/* Send request to the daemon of ctx's root, if one runs; see control_try_forward(). */
static int forward(struct dm2_context *ctx, const char *request, uint64_t timeout_usec,
		   int *ret_exit)
{
	_cleanup_close_ int fd = -EBADF;
	int r;

	/* dm2d's own children run the engine themselves. */
	if (getenv("DM2_NO_FORWARD"))
		return -ENOENT;
	r = control_connect(ctx, &fd);
	if (r == -ENOENT || r == -ECONNREFUSED || r == -ENOTDIR)
		return -ENOENT;
	if (r < 0)
		return r;
	r = control_request(fd, request, timeout_usec, false);
	if (r == CONTROL_NO_RECIPE) {
		log_info("dm2d does not have that recipe (it reads other recipe directories); "
			 "working here instead.");
		return -ENOENT;
	}
	if (r < 0)
		return r;
	*ret_exit = r;
	return 0;
}

int control_try_forward(struct dm2_context *ctx, char **names, const char *kver,
			uint64_t timeout_usec, int *ret_exit)
{
	_cleanup_free_ char *joined = NULL, *req = NULL;

	if (!names || !names[0] || !kver)
		return -EINVAL;
	/* What cannot travel as one word each ("a b" would ask for two recipes) is for the
	 * engine here to refuse. */
	if (!control_word_ok(kver))
		return -ENOENT;
	STRV_FOREACH(n, names)
		if (!control_word_ok(*n))
			return -ENOENT;
	joined = strv_join(names, " ");
	if (!joined)
		return -ENOMEM;
	if (asprintf(&req, "INSTALL %s %llu %s", kver,
		     (unsigned long long) ((timeout_usec + 999999) / 1000000), joined) < 0)
		return -ENOMEM;
	return forward(ctx, req, timeout_usec, ret_exit);
}

int control_try_forward_build(struct dm2_context *ctx, const char *name, const char *kver,
			      const char *version, bool json, int *ret_exit)
{
	_cleanup_free_ char *req = NULL;

	if (!control_word_ok(name) || !control_word_ok(kver) ||
	    (version && (!control_word_ok(version) || streq(version, "-"))))
		return -ENOENT;
	if (asprintf(&req, "BUILD %s 0 %s %s %s", kver, name, version ?: "-",
		     json ? "json" : "text") < 0)
		return -ENOMEM;
	return forward(ctx, req, 0, ret_exit);
}
