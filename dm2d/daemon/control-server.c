/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's end of the control socket: connections, limits, timeouts; the requests
 * themselves are control-request.c's. */
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "control/control.h"
#include "control/exit-codes.h"
#include "daemon/control-server.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/* Refusals and accept() failures are logged at most this often: a flood of them must not
 * become a flood of log. */
#define LOG_INTERVAL_USEC (60ULL * 1000000ULL)

enum conn_phase {
	CONN_READING, /* until the request line is complete */
	CONN_WAITING, /* for jobs */
	CONN_BUILDING,
};

struct control_conn {
	struct control_server *server;
	struct control_conn *next;
	int fd;
	sd_event_source *io;
	sd_event_source *timer; /* READING: the request timeout; else the request's own */
	char buf[CONTROL_LINE_MAX];
	size_t n;
	uid_t uid;
	enum conn_phase phase;
	struct control_action action; /* WAITING, BUILDING: what was asked */
	void *build;                  /* BUILDING: the daemon's child for this client */
};

struct log_limit {
	uint64_t last;
	unsigned suppressed;
};

struct control_server {
	const struct control_server_ops *ops;
	void *userdata;
	sd_event *event;
	int fd;
	bool activated; /* fd came from systemd: never unlink its path */
	char *path;     /* what we bound, removed again at exit */
	sd_event_source *listen;
	sd_event_source *resume; /* accept() ran out of fds: listen again then */
	struct control_conn *conns;
	size_t n_conns;
	size_t max_conns, root_reserved;
	struct log_limit refused, accept_failed;
};

/* Whether to log now; *ret_suppressed gets how many were not logged since the last one. */
static bool log_limit_ok(struct log_limit *l, unsigned *ret_suppressed)
{
	uint64_t now = now_mono_usec();

	if (l->last && now - l->last < LOG_INTERVAL_USEC) {
		l->suppressed++;
		return false;
	}
	*ret_suppressed = l->suppressed;
	l->suppressed = 0;
	l->last = now;
	return true;
}

static void conn_free(struct control_conn *c)
{
	struct control_server *s;

	if (!c)
		return;
	s = c->server;
	for (struct control_conn **p = &s->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			s->n_conns--;
			break;
		}
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	if (c->build)
		s->ops->build_free(c->build); /* a client that hangs up ends its build */
	safe_close(c->fd);
	control_action_done(&c->action);
	free(c);
}

/* The connection is over: the daemon may be idle now. */
static void conn_close(struct control_conn *c)
{
	struct control_server *s = c->server;

	conn_free(c);
	s->ops->closed(s->userdata);
}

static void conn_send_raw(int fd, const char *line, size_t n)
{
	/* Replies are small; a client that does not read them only hurts itself (the socket is
	 * non-blocking, so we never stall the loop). */
	if (send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t) n)
		log_debug("Control client did not take a reply line, dropping it.");
}

static void conn_send(struct control_conn *c, const char *fmt, ...) _printf_(2, 3);
static void conn_send(struct control_conn *c, const char *fmt, ...)
{
	_cleanup_free_ char *line = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n >= 0)
		conn_send_raw(c->fd, line, n);
}

static void conn_send_lines(struct control_conn *c, char **lines)
{
	STRV_FOREACH(l, lines)
		conn_send(c, "%s\n", *l);
}

/* Everything the client waits for is final: report and close. */
static void conn_finish_if_done(struct control_conn *c)
{
	struct control_server *s = c->server;
	_cleanup_strv_free_ char **lines = NULL;
	int r;

	r = control_wait_result(&s->ops->request, s->userdata, c->action.kver,
				c->action.names, &lines);
	if (r == 0)
		return;
	if (r < 0)
		conn_send(c, "DONE %i dm2d ran out of memory\n", EXIT_FAILURE_GENERIC);
	conn_send_lines(c, lines);
	conn_close(c);
}

static int on_conn_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct control_conn *c = userdata;

	if (c->phase == CONN_READING) {
		log_debug("Control client of uid %u sent no request line in time, closing.",
			  (unsigned) c->uid);
		conn_send(c, "ERR %i no request line within %llu s\n", EXIT_USAGE,
			  (unsigned long long) (CONTROL_REQUEST_TIMEOUT_USEC / 1000000));
	} else
		conn_send(c, "DONE %i timed out waiting for '%s'\n", EXIT_BUSY,
			  c->action.kver ?: "*");
	conn_close(c);
	return 0;
}

/* Re-arm the connection's one timer (0: none). */
static int conn_set_timeout(struct control_conn *c, uint64_t usec)
{
	c->timer = sd_event_source_disable_unref(c->timer);
	if (usec == 0)
		return 0;
	return sd_event_add_time_relative(c->server->event, &c->timer, CLOCK_MONOTONIC, usec, 0,
					  on_conn_timeout, c);
}

static void conn_build_line(bool is_stderr, const char *line, void *userdata)
{
	conn_send(userdata, "%s %s\n", is_stderr ? "LOG" : "OUT", line);
}

static void conn_build_exited(int code, void *userdata)
{
	struct control_conn *c = userdata;

	conn_send(c, "DONE %i\n", code);
	conn_close(c);
}

/* What the request asked for after its reply lines. */
static void conn_next(struct control_conn *c)
{
	struct control_server *s = c->server;
	int r = -EINVAL; /* a value of c->action.next the switch does not know */

	switch (c->action.next) {
	case CONTROL_NEXT_CLOSE:
		conn_close(c);
		return;
	case CONTROL_NEXT_WAIT:
		c->phase = CONN_WAITING;
		r = conn_set_timeout(c, c->action.timeout_usec);
		if (r < 0)
			break;
		conn_finish_if_done(c); /* may free c */
		return;
	case CONTROL_NEXT_BUILD:
		c->phase = CONN_BUILDING;
		r = conn_set_timeout(c, c->action.timeout_usec);
		if (r < 0)
			break;
		r = s->ops->build_new(s->userdata, &c->action, conn_build_line,
				      conn_build_exited, c, &c->build);
		if (r < 0) {
			conn_send(c, "ERR %i starting the build failed: %s\n",
				  EXIT_FAILURE_GENERIC, strerror(-r));
			conn_close(c);
		}
		return;
	}
	conn_send(c, "ERR %i dm2d cannot wait: %s\n", EXIT_FAILURE_GENERIC, strerror(-r));
	conn_close(c);
}

static void conn_handle(struct control_conn *c, const char *line)
{
	struct control_server *s = c->server;
	_cleanup_strv_free_ char **lines = NULL;
	int r;

	r = control_handle_request(line, c->uid, &s->ops->request, s->userdata, &lines,
				   &c->action);
	if (r < 0) {
		conn_send(c, "ERR %i dm2d ran out of memory\n", EXIT_FAILURE_GENERIC);
		conn_close(c);
		return;
	}
	conn_send_lines(c, lines);
	conn_next(c);
}

/* After the request: nothing more to read, and EOF or an error means the client gave up. */
static void conn_watch_hangup(struct control_conn *c)
{
	char dummy[64];
	ssize_t k = recv(c->fd, dummy, sizeof(dummy), MSG_DONTWAIT);

	if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
		conn_close(c);
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct control_conn *c = userdata;
	ssize_t k;
	char *nl;

	if (c->phase != CONN_READING) {
		conn_watch_hangup(c);
		return 0;
	}
	k = recv(fd, c->buf + c->n, sizeof(c->buf) - 1 - c->n, MSG_DONTWAIT);
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (k <= 0) {
		conn_close(c);
		return 0;
	}
	c->n += k;
	c->buf[c->n] = '\0';
	nl = memchr(c->buf, '\n', c->n);
	if (!nl) {
		if (c->n >= sizeof(c->buf) - 1) {
			conn_send(c, "ERR %i request too long\n", EXIT_USAGE);
			conn_close(c);
		}
		return 0;
	}
	*nl = '\0';
	/* A NUL inside the line ends it: the handler sees what strlen() sees. */
	conn_handle(c, c->buf);
	return 0;
}

static size_t conns_of_uid(struct control_server *s, uid_t uid)
{
	size_t n = 0;

	for (struct control_conn *c = s->conns; c; c = c->next)
		n += c->uid == uid;
	return n;
}

/* Whether one more connection from uid fits: root may use the reserved ones too. */
static bool conn_allowed(struct control_server *s, uid_t uid)
{
	if (s->n_conns >= s->max_conns)
		return false;
	if (uid == 0)
		return true;
	if (s->n_conns >= s->max_conns - s->root_reserved)
		return false;
	return conns_of_uid(s, uid) < CONTROL_CONN_PER_UID_MAX;
}

static void conn_refuse(struct control_server *s, int cfd, uid_t uid)
{
	static const char line[] = "ERR 12 dm2d has too many control connections open\n";
	unsigned suppressed;

	conn_send_raw(cfd, line, sizeof(line) - 1);
	safe_close(cfd);
	if (log_limit_ok(&s->refused, &suppressed))
		log_warning("Refused a control connection of uid %u: too many open (%zu, at most "
			    "%u per user); %u more refused since the last message.",
			    (unsigned) uid, s->n_conns, CONTROL_CONN_PER_UID_MAX, suppressed);
}

static int conn_new(struct control_server *s, int cfd, uid_t uid)
{
	struct control_conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		safe_close(cfd);
		return log_oom();
	}
	c->server = s;
	c->fd = cfd;
	c->uid = uid;
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
	r = sd_event_add_io(s->event, &c->io, cfd, EPOLLIN, on_conn_io, c);
	if (r >= 0)
		r = conn_set_timeout(c, CONTROL_REQUEST_TIMEOUT_USEC);
	if (r < 0) {
		conn_free(c);
		return log_error_errno(r, "Failed to watch a control connection: %m");
	}
	return 0;
}

static int on_resume(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct control_server *s = userdata;

	(void) sd_event_source_set_enabled(s->listen, SD_EVENT_ON);
	return 0;
}

/* Out of fds (or memory): stop watching the socket for a while rather than spin on it; the
 * clients wait in the backlog. */
static void accept_pause(struct control_server *s, int error)
{
	unsigned suppressed;
	int r;

	if (log_limit_ok(&s->accept_failed, &suppressed))
		log_warning_errno(error, "Failed to accept a control connection, pausing for %llu "
				  "ms (%zu open; %u more failures since the last message): %m",
				  (unsigned long long) (CONTROL_ACCEPT_PAUSE_USEC / 1000),
				  s->n_conns, suppressed);
	(void) sd_event_source_set_enabled(s->listen, SD_EVENT_OFF);
	if (!s->resume)
		r = sd_event_add_time_relative(s->event, &s->resume, CLOCK_MONOTONIC,
					       CONTROL_ACCEPT_PAUSE_USEC, 0, on_resume, s);
	else {
		r = sd_event_source_set_time_relative(s->resume, CONTROL_ACCEPT_PAUSE_USEC);
		if (r >= 0)
			r = sd_event_source_set_enabled(s->resume, SD_EVENT_ONESHOT);
	}
	if (r < 0) /* no timer: better a busy socket than a deaf one */
		(void) sd_event_source_set_enabled(s->listen, SD_EVENT_ON);
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct control_server *s = userdata;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			accept_pause(s, errno);
		else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warning_errno(errno, "Failed to accept a control connection, ignoring: %m");
		return 0;
	}
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warning_errno(errno, "Failed to read the peer's credentials, ignoring: %m");
		safe_close(cfd);
		return 0;
	}
	if (!conn_allowed(s, cred.uid)) {
		conn_refuse(s, cfd, cred.uid);
		return 0;
	}
	(void) conn_new(s, cfd, cred.uid);
	return 0;
}

/* Room for connections: a quarter of the fds dm2d may open, the rest is for its jobs. */
static void limits_from_rlimit(struct control_server *s)
{
	struct rlimit rl;
	size_t max = CONTROL_CONN_MAX;

	if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur != RLIM_INFINITY)
		max = MIN(max, (size_t) rl.rlim_cur / 4);
	s->max_conns = MAX(max, (size_t) 4);
	s->root_reserved = MIN((size_t) CONTROL_CONN_ROOT_RESERVED, s->max_conns / 4);
}

static int listen_passed(struct control_server *s)
{
	if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
		return log_error_errno(EINVAL, "The passed socket is not a listening AF_UNIX "
				       "stream socket.");
	s->fd = SD_LISTEN_FDS_START;
	s->activated = true;
	(void) fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
	/* Passed without O_CLOEXEC: jobs (and the builds they run) must not inherit it. */
	(void) fcntl(s->fd, F_SETFD, FD_CLOEXEC);
	return 0;
}

static int listen_bind(struct control_server *s, struct dm2_context *ctx)
{
	_cleanup_free_ char *path = context_path(ctx, DM2_CONTROL_SOCKET);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r;

	if (!path)
		return log_oom();
	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(ENAMETOOLONG, "Control socket path '%s' is too long.", path);
	memcpy(sa.sun_path, path, strlen(path));
	r = mkdir_p_at(ctx->root_fd, DM2_RUN_DIR, 0755);
	if (r < 0)
		return log_error_errno(r, "Failed to create '%s/%s': %m", ctx->root, DM2_RUN_DIR);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return log_error_errno(errno, "Failed to create the control socket: %m");
	/* A socket someone answers on means another dm2d serves this root. */
	if (connect(s->fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
		return log_error_errno(EADDRINUSE, "Another dm2d already listens on '%s'.", path);
	s->fd = safe_close(s->fd);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return log_error_errno(errno, "Failed to create the control socket: %m");
	(void) unlinkat(ctx->root_fd, DM2_CONTROL_SOCKET, 0);
	if (bind(s->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
		return log_error_errno(errno, "Failed to bind '%s': %m", path);
	/* Everyone may connect and read status; SO_PEERCRED decides about changes. */
	(void) chmod(path, 0666);
	s->path = TAKE_PTR(path);
	if (listen(s->fd, 64) < 0)
		return log_error_errno(errno, "Failed to listen on '%s': %m", s->path);
	return 0;
}

int control_server_new(sd_event *e, struct dm2_context *ctx, const struct control_server_ops *ops,
		       void *userdata, struct control_server **ret)
{
	_cleanup_(control_server_freep) struct control_server *s = NULL;
	int n, r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return log_oom();
	s->ops = ops;
	s->userdata = userdata;
	s->event = e;
	s->fd = -EBADF;
	limits_from_rlimit(s);

	n = sd_listen_fds(true);
	if (n < 0)
		return log_error_errno(n, "Failed to read passed sockets: %m");
	if (n > 1)
		return log_error_errno(EINVAL, "Expected at most one passed socket, got %i.", n);
	r = n == 1 ? listen_passed(s) : listen_bind(s, ctx);
	if (r < 0)
		return r;
	r = sd_event_add_io(e, &s->listen, s->fd, EPOLLIN, on_accept, s);
	if (r < 0)
		return log_error_errno(r, "Failed to watch the control socket: %m");
	*ret = TAKE_PTR(s);
	return 0;
}

struct control_server *control_server_free(struct control_server *s)
{
	if (!s)
		return NULL;
	while (s->conns) {
		/* dm2d stops: a client still waiting hears why, not just a closed socket. Its
		 * unfinished jobs stay queued for the next start. */
		if (s->conns->phase != CONN_READING)
			conn_send(s->conns, "DONE %i dm2d stopped before this was done; queued "
				  "jobs go on when it starts again\n", EXIT_BUSY);
		conn_free(s->conns);
	}
	sd_event_source_disable_unref(s->listen);
	sd_event_source_disable_unref(s->resume);
	if (!s->activated)
		safe_close(s->fd);
	if (s->path) {
		/* A socket left behind would make clients think we still run. */
		(void) unlink(s->path);
		free(s->path);
	}
	return mfree(s);
}

void control_server_job_changed(struct control_server *s, const char *kver)
{
	struct control_conn *c, *next;

	if (!s)
		return;
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->phase != CONN_WAITING)
			continue;
		if (c->action.kver && kver && !streq(c->action.kver, kver))
			continue;
		conn_finish_if_done(c); /* may free c, never next */
	}
}

size_t control_server_n_waiting(struct control_server *s)
{
	size_t n = 0;

	if (!s)
		return 0;
	for (struct control_conn *c = s->conns; c; c = c->next)
		n++;
	return n;
}
