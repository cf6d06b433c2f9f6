/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "core/context.h"
#include "shared/macro.h"

/*
 * inotify watches (sd_event_add_inotify) for dm2d: ROOT/lib/modules (kernel directories come
 * and go), each ROOT/lib/modules/KVER (its build link, .fresh-install, vmlinuz), the kernel's
 * build tree and the directories the completeness check looks into, ROOT/usr/src (dkms.conf
 * packages) and the recipe directories. inotify is not recursive and events can be lost, so
 * the watcher only says "something changed for KVER" / "recipes changed"; the manager debounces
 * and then checks the tree itself. An IN_Q_OVERFLOW calls rescan(), once for every
 * watch source (sd-event passes the overflow to all of them): events of any watch may be
 * lost.
 */

struct watch;

struct watch_callbacks {
	void (*kernel_changed)(const char *kver, void *userdata);
	void (*kernel_removed)(const char *kver, void *userdata);
	void (*recipes_changed)(void *userdata);
	void (*rescan)(void *userdata);
};

int watch_new(sd_event *e, struct dm2_context *ctx, const struct watch_callbacks *cb,
	      void *userdata, struct watch **ret);
struct watch *watch_free(struct watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct watch *, watch_free);

/* (Re)establish the watches of one kernel: its directory, the build tree and the
 * subdirectories that exist right now. Call it before each completeness check, so that a
 * file appearing after the check is seen. */
int watch_kernel(struct watch *w, const char *kver);
/* Drop a kernel's watches. */
void watch_kernel_forget(struct watch *w, const char *kver);
/* Number of inotify watch sources (for tests and STATUS=). */
size_t watch_n_sources(struct watch *w);
