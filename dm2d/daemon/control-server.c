/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's end of the control socket; see control.h for the protocol. */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "control/control.h"
#include "control/exit-codes.h"
#include "daemon/manager.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

struct control_conn {
	struct control_server *server;
	struct control_conn *next;
	int fd;
	sd_event_source *io;
	sd_event_source *timer;
	char buf[CONTROL_LINE_MAX];
	size_t n;
	uid_t uid;
	bool waiting;      /* a request is waiting for jobs */
	char *kver;        /* what it waits for (NULL: all kernels) */
	char **names;      /* only these recipes (INSTALL) */
	struct mbuild *build; /* BUILD: the daemon's child for this client */
};

struct control_server {
	struct manager *manager;
	sd_event *event;
	int fd;
	bool activated; /* fd came from systemd: never unlink its path */
	char *path;     /* what we bound, removed again at exit */
	sd_event_source *listen;
	struct control_conn *conns;
};

static void conn_free(struct control_conn *c)
{
	struct control_server *s;

	if (!c)
		return;
	s = c->server;
	for (struct control_conn **p = &s->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	manager_build_free(c->build); /* a client that hangs up ends its build */
	safe_close(c->fd);
	free(c->kver);
	strv_free(c->names);
	free(c);
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
	if (n < 0)
		return;
	/* Replies are small; a client that does not read them only hurts itself (the socket is
	 * non-blocking, so we never stall the loop). */
	if (send(c->fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
		log_debug("Control client did not take a reply line, dropping it.");
}

static void conn_job_line(const char *recipe, const char *kver, const char *state,
			  const char *reason, void *userdata)
{
	struct control_conn *c = userdata;

	conn_send(c, "JOB %s %s %s%s%s\n", recipe, kver, state, reason ? " " : "", strempty(reason));
}

/* Everything the client waits for is final: report and close. */
static void conn_finish_if_done(struct control_conn *c)
{
	struct manager *m = c->server->manager;
	int code;

	if (manager_busy(m, c->kver, c->names))
		return;
	code = manager_foreach_job(m, c->kver, c->names, conn_job_line, c);
	conn_send(c, "DONE %i\n", code);
	conn_free(c);
	manager_check_idle(m);
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct control_conn *c = userdata;
	struct manager *m = c->server->manager;

	conn_send(c, "DONE %i timed out waiting for '%s'\n", EXIT_BUSY, c->kver ?: "*");
	conn_free(c);
	manager_check_idle(m);
	return 0;
}

/* A TIMEOUT_SEC above 0 ends the request with DONE 12 after that long. */
static int conn_arm_timeout(struct control_conn *c, const char *timeout)
{
	uint64_t sec = 0;

	if (safe_atou64(timeout, &sec) < 0) {
		conn_send(c, "ERR %i invalid timeout '%s'\n", EXIT_USAGE, timeout);
		return -EINVAL;
	}
	if (sec == 0)
		return 0;
	return sd_event_add_time_relative(c->server->event, &c->timer, CLOCK_MONOTONIC,
					  sec * 1000000ULL, 0, on_conn_timeout, c);
}

static int conn_start_wait(struct control_conn *c, const char *kver, char **names,
			   const char *timeout)
{
	int r;

	c->names = names; /* owned by c from here on */
	if (kver) {
		c->kver = strdup(kver);
		if (!c->kver)
			return -ENOMEM;
	}
	r = conn_arm_timeout(c, timeout);
	if (r < 0)
		return r;
	c->waiting = true;
	conn_finish_if_done(c); /* may free c */
	return 0;
}

static void conn_build_line(bool is_stderr, const char *line, void *userdata)
{
	conn_send(userdata, "%s %s\n", is_stderr ? "LOG" : "OUT", line);
}

static void conn_build_exited(int code, void *userdata)
{
	struct control_conn *c = userdata;
	struct manager *m = c->server->manager;

	conn_send(c, "DONE %i\n", code);
	conn_free(c);
	manager_check_idle(m);
}

/* BUILD KVER TIMEOUT NAME [VERSION|-] [json|text] */
static int conn_start_build(struct control_conn *c, char **w, size_t n)
{
	const char *version = n > 4 && !streq(w[4], "-") ? w[4] : NULL;
	bool json = n > 5 && streq(w[5], "json");
	int r;

	if (n < 4 || n > 6 || !control_word_ok(w[1]) || !control_word_ok(w[3]) ||
	    (n > 4 && !control_word_ok(w[4])) ||
	    (n > 5 && !json && !streq(w[5], "text"))) {
		conn_send(c, "ERR %i usage: BUILD KVER TIMEOUT NAME [VERSION|-] [json|text]\n",
			  EXIT_USAGE);
		return -EINVAL;
	}
	c->kver = strdup(w[1]);
	if (!c->kver)
		return -ENOMEM;
	r = conn_arm_timeout(c, w[2]);
	if (r < 0)
		return r;
	r = manager_find_recipes(c->server->manager, (char *[]){w[3], NULL}, NULL);
	if (r == -ESRCH) {
		conn_send(c, "NORECIPE %s\n", w[3]);
		return r;
	}
	r = manager_build_new(c->server->manager, w[3], w[1], version, json,
			      conn_build_line, conn_build_exited, c, &c->build);
	if (r < 0) {
		conn_send(c, "ERR %i starting the build failed: %s\n",
			  EXIT_FAILURE_GENERIC, strerror(-r));
		return r;
	}
	return 0;
}

static void conn_handle(struct control_conn *c, char *line)
{
	struct manager *m = c->server->manager;
	_cleanup_strv_free_ char **w = NULL, **names = NULL;
	_cleanup_free_ char *reason = NULL;
	size_t n;
	int r;

	if (control_split(line, &w) < 0 || !w || !w[0]) {
		conn_send(c, "ERR %i empty request\n", EXIT_USAGE);
		goto close;
	}
	n = strv_length(w);
	log_debug("Control request '%s' from uid %u.", line, (unsigned) c->uid);

	if (streq(w[0], "STATUS")) {
		manager_foreach_job(m, NULL, NULL, conn_job_line, c);
		conn_send(c, "DONE 0\n");
		goto close;
	}
	if (!streq(w[0], "TRIGGER") && !streq(w[0], "INSTALL") && !streq(w[0], "BUILD")) {
		conn_send(c, "ERR %i unknown request '%s'\n", EXIT_USAGE, w[0]);
		goto close;
	}
	if (c->uid != 0) {
		log_notice("Refused '%s' from uid %u: only root may change anything.", w[0],
			   (unsigned) c->uid);
		conn_send(c, "ERR %i permission denied: only root may ask dm2d to build\n",
			  EXIT_PERMISSION);
		goto close;
	}

	if (streq(w[0], "BUILD")) {
		r = conn_start_build(c, w, n);
		if (r < 0)
			goto close;
		return;
	}
	if (streq(w[0], "TRIGGER")) {
		const char *kver;

		if (n != 4 || !control_word_ok(w[1])) {
			conn_send(c, "ERR %i usage: TRIGGER KVER|* WAIT TIMEOUT\n", EXIT_USAGE);
			goto close;
		}
		kver = streq(w[1], "*") ? NULL : w[1];
		r = manager_trigger(m, kver, true, &reason);
		if (r == -ENOENT) {
			conn_send(c, "ERR %i no kernel '%s' under lib/modules\n", EXIT_NOT_FOUND, w[1]);
			goto close;
		}
		if (r == -EAGAIN) {
			conn_send(c, "DONE %i kernel '%s' is incomplete: %s\n", EXIT_WAITING, w[1],
				  strna(reason));
			goto close;
		}
		if (r < 0) {
			conn_send(c, "ERR %i trigger failed: %s\n", EXIT_FAILURE_GENERIC, strerror(-r));
			goto close;
		}
		if (!streq(w[2], "1")) {
			conn_send(c, "DONE 0\n");
			goto close;
		}
		r = conn_start_wait(c, kver, NULL, w[3]);
		if (r < 0)
			goto close;
		return;
	}

	/* INSTALL KVER TIMEOUT NAME... */
	if (n < 4 || !control_word_ok(w[1])) {
		conn_send(c, "ERR %i usage: INSTALL KVER TIMEOUT NAME...\n", EXIT_USAGE);
		goto close;
	}
	for (size_t i = 3; i < n; i++)
		if (!control_word_ok(w[i])) {
			conn_send(c, "ERR %i invalid recipe name '%s'\n", EXIT_USAGE, w[i]);
			goto close;
		}
	for (size_t i = 3; i < n; i++)
		if (strv_extend(&names, w[i]) < 0)
			goto close;
	r = manager_queue(m, w[1], names, &reason);
	if (r == -ENOENT) {
		conn_send(c, "ERR %i no kernel '%s' under lib/modules\n", EXIT_NOT_FOUND, w[1]);
		goto close;
	}
	if (r == -ESRCH) {
		conn_send(c, "NORECIPE %s\n", strna(reason));
		goto close;
	}
	if (r < 0) {
		conn_send(c, "ERR %i queueing failed: %s\n", EXIT_FAILURE_GENERIC, strerror(-r));
		goto close;
	}
	r = conn_start_wait(c, w[1], TAKE_PTR(names), w[2]);
	if (r < 0)
		goto close;
	return;
close:
	conn_free(c);
	manager_check_idle(m);
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct control_conn *c = userdata;
	struct manager *m = c->server->manager;
	ssize_t k;
	char *nl;

	if (c->waiting || c->build) {
		/* Nothing more to read; EOF or error means the client gave up waiting. */
		char dummy[64];

		k = recv(fd, dummy, sizeof(dummy), MSG_DONTWAIT);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_free(c);
			manager_check_idle(m);
		}
		return 0;
	}

	k = recv(fd, c->buf + c->n, sizeof(c->buf) - 1 - c->n, MSG_DONTWAIT);
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (k <= 0) {
		conn_free(c);
		manager_check_idle(m);
		return 0;
	}
	c->n += k;
	c->buf[c->n] = '\0';
	nl = strchr(c->buf, '\n');
	if (!nl) {
		if (c->n >= sizeof(c->buf) - 1) {
			conn_send(c, "ERR %i request too long\n", EXIT_USAGE);
			conn_free(c);
			manager_check_idle(m);
		}
		return 0;
	}
	*nl = '\0';
	conn_handle(c, c->buf);
	return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct control_server *srv = userdata;
	struct control_conn *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int cfd, r;

	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warning_errno(errno, "Failed to accept a control connection, ignoring: %m");
		return 0;
	}
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warning_errno(errno, "Failed to read the peer's credentials, ignoring: %m");
		safe_close(cfd);
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		safe_close(cfd);
		return log_oom();
	}
	c->server = srv;
	c->fd = cfd;
	c->uid = cred.uid;
	c->next = srv->conns;
	srv->conns = c;
	r = sd_event_add_io(srv->event, &c->io, cfd, EPOLLIN, on_conn_io, c);
	if (r < 0) {
		conn_free(c);
		return log_error_errno(r, "Failed to watch a control connection: %m");
	}
	return 0;
}

int control_server_new(struct manager *m, sd_event *e, struct dm2_context *ctx,
		       struct control_server **ret)
{
	_cleanup_(control_server_freep) struct control_server *s = NULL;
	int n, r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->manager = m;
	s->event = e;
	s->fd = -EBADF;

	n = sd_listen_fds(true);
	if (n < 0)
		return log_error_errno(n, "Failed to read passed sockets: %m");
	if (n > 1)
		return log_error_errno(EINVAL, "Expected at most one passed socket, got %i.", n);
	if (n == 1) {
		if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
			return log_error_errno(EINVAL, "The passed socket is not a listening AF_UNIX stream socket.");
		s->fd = SD_LISTEN_FDS_START;
		s->activated = true;
		(void) fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
		/* Passed without O_CLOEXEC: jobs (and the builds they run) must not inherit it. */
		(void) fcntl(s->fd, F_SETFD, FD_CLOEXEC);
	} else {
		_cleanup_free_ char *path = context_path(ctx, DM2_CONTROL_SOCKET);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		if (!path)
			return -ENOMEM;
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
	}
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
		if (s->conns->waiting || s->conns->build)
			conn_send(s->conns, "DONE %i dm2d stopped before this was done; queued "
				  "jobs go on when it starts again\n", EXIT_BUSY);
		conn_free(s->conns);
	}
	sd_event_source_disable_unref(s->listen);
	if (!s->activated)
		safe_close(s->fd);
	if (s->path) {
		/* A socket left behind would make clients think we still run. */
		(void) unlink(s->path);
		free(s->path);
	}
	return mfree(s);
}

void control_server_job_changed(struct control_server *s, const char *recipe, const char *kver,
				const char *state, const char *reason)
{
	struct control_conn *c, *next;

	if (!s)
		return;
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (!c->waiting)
			continue;
		if (c->kver && kver && !streq(c->kver, kver))
			continue;
		conn_finish_if_done(c);
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
