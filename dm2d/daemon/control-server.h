/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "core/context.h"
#include "daemon/control-request.h"
#include "shared/macro.h"

/*
 * The daemon's end of the control socket (the protocol: control/control.h). It knows the
 * daemon only through struct control_server_ops, so it never includes the manager.
 *
 * Anyone may connect, so the socket is bounded: at most CONTROL_CONN_MAX connections at
 * once (fewer when RLIMIT_NOFILE is low), CONTROL_CONN_PER_UID_MAX of them per non-root
 * uid, and some kept for root, so a local user can neither exhaust dm2d's fds nor lock
 * root out; a request line must arrive within CONTROL_REQUEST_TIMEOUT_USEC of connecting.
 * When accept() runs out of fds anyway, the socket is not watched for
 * CONTROL_ACCEPT_PAUSE_USEC (no busy loop), and that is logged at most once a minute.
 */
#define CONTROL_CONN_MAX 256
#define CONTROL_CONN_PER_UID_MAX 16
#define CONTROL_CONN_ROOT_RESERVED 32
#define CONTROL_REQUEST_TIMEOUT_USEC (10ULL * 1000000ULL)
#define CONTROL_ACCEPT_PAUSE_USEC (1ULL * 1000000ULL)

struct control_server;

typedef void (*control_build_line_fn)(bool is_stderr, const char *line, void *userdata);
typedef void (*control_build_exit_fn)(int code, void *userdata);

struct control_server_ops {
	struct control_ops request;
	/* Start the build a BUILD request asked for; *ret is freed with build_free. */
	int (*build_new)(void *userdata, const struct control_action *a,
			 control_build_line_fn on_line, control_build_exit_fn on_exit,
			 void *cb_userdata, void **ret);
	void (*build_free)(void *build);
	/* A connection closed: the daemon may be idle now. */
	void (*closed)(void *userdata);
};

/* Use a socket-activated listening fd if sd_listen_fds() passed one, else bind
 * ROOT/run/dm2/control (mode 0666: everyone may connect, the peer uid decides). */
int control_server_new(sd_event *e, struct dm2_context *ctx, const struct control_server_ops *ops,
		       void *userdata, struct control_server **ret);
struct control_server *control_server_free(struct control_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct control_server *, control_server_free);
/* A job or a kernel's depmod changed state (kver NULL: any kernel): waiting clients get
 * their JOB lines and DONE once everything they wait for is final. */
void control_server_job_changed(struct control_server *s, const char *kver);
/* Connections open: a request read or waiting (the daemon is not idle meanwhile). */
size_t control_server_n_waiting(struct control_server *s);
