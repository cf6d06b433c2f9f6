/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: dm2d's control request handler (daemon/control-request.c), the code
 * every local user reaches through ROOT/run/dm2/control, driven without a manager. The
 * first byte picks the peer (even: root, odd: an unprivileged uid) and how the fake daemon
 * answers; the rest, up to its first newline, is the request line.
 *
 *   clang -fsanitize=fuzzer,address,undefined ... fuzz-control.c -ldm2-daemon ...
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"
#include "daemon/control-request.h"
#include "shared/util.h"

static uint8_t mode;

static int fake_trigger(void *userdata, const char *kver, char **ret_reason)
{
	static const int answers[] = {0, -ENOENT, -EAGAIN, -EIO};
	int r = answers[(mode >> 1) & 3];

	if (r == -EAGAIN && (mode & 8))
		*ret_reason = strdup("include/generated/autoconf.h is missing");
	return r;
}

static int fake_find(void *userdata, char **names, char **ret_missing)
{
	if (!(mode & 16))
		return 0;
	if (ret_missing && names && names[0])
		*ret_missing = strdup(names[0]);
	return -ESRCH;
}

static int fake_queue(void *userdata, const char *kver, char **names, char **ret_missing)
{
	if (mode & 32)
		return -ENOENT;
	return fake_find(userdata, names, ret_missing);
}

static bool fake_busy(void *userdata, const char *kver, char **names)
{
	return mode & 64;
}

static void fake_foreach(void *userdata, const char *kver, char **names, control_job_fn fn,
			 void *fn_userdata)
{
	fn(&(struct control_job){.recipe = "a", .kver = kver ?: "6.1", .state = JOB_STATE_FAILED,
				 .reason = "x.c:1: error\n"},
	   fn_userdata);
	STRV_FOREACH(n, names)
		fn(&(struct control_job){.recipe = *n, .kver = kver ?: "6.1", .running = true},
		   fn_userdata);
}

static const struct control_ops ops = {
	.trigger = fake_trigger,
	.find_recipes = fake_find,
	.queue = fake_queue,
	.busy = fake_busy,
	.foreach_job = fake_foreach,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_action a = {};
	char **lines = NULL, **done = NULL;
	char *line;
	size_t n;

	if (size < 1)
		return 0;
	mode = data[0];
	data++, size--;
	/* What the server hands on: the bytes before the newline, at most a line's worth. */
	n = size;
	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n' || data[i] == '\0') {
			n = i;
			break;
		}
	if (n >= CONTROL_LINE_MAX)
		return 0;
	line = strndup((const char *) data, n);
	if (!line)
		return 0;
	if (control_handle_request(line, mode & 1 ? 1000 : 0, &ops, NULL, &lines, &a) >= 0) {
		STRV_FOREACH(l, lines)
			if (strchr(*l, '\n'))
				abort(); /* a reply line must stay one line */
		if (a.next == CONTROL_NEXT_WAIT &&
		    control_wait_result(&ops, NULL, a.kver, a.names, &done) > 0)
			strv_free(done);
		control_action_done(&a);
		strv_free(lines);
	}
	free(line);
	return 0;
}
