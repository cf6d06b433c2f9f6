/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"
#include "daemon/watch.h"

/* Directories of a build tree the completeness check reads; each gets its own watch. */
static const char *const build_subdirs[] = {
	"", "include", "include/generated", "include/config", "scripts", "scripts/mod",
	"scripts/basic",
};

/* Names in lib/modules/KVER that say something about the kernel being (un)installed; depmod's
 * modules.* files and our own updates/ are ignored, or every install would wake us again. */
static const char *const kernel_dir_names[] = {
	"build", "source", ".fresh-install", "vmlinuz", "modules.order", "modules.builtin",
};

#define TREE_MASK                                                                            \
	(IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB |   \
	 IN_DELETE_SELF | IN_MOVE_SELF)

struct watch_kernel {
	struct watch *watch;
	char *kver;
	sd_event_source **sources;
	size_t n_sources;
};

struct watch {
	sd_event *event;
	struct dm2_context *ctx;
	struct watch_callbacks cb;
	void *userdata;
	sd_event_source *modules_dir;
	sd_event_source *usr_src;
	sd_event_source **recipe_dirs;
	size_t n_recipe_dirs;
	struct watch_kernel **kernels;
	size_t n_kernels;
};

/* sd-event hands an IN_Q_OVERFLOW to every source on the inotify fd, so one overflow
 * calls this once per watch; the manager logs it and debounces the rescan. */
static bool overflowed(const struct inotify_event *ev, struct watch *w)
{
	if (!(ev->mask & IN_Q_OVERFLOW))
		return false;
	if (w->cb.rescan)
		w->cb.rescan(w->userdata);
	return true;
}

static void kernel_sources_drop(struct watch_kernel *k)
{
	for (size_t i = 0; i < k->n_sources; i++)
		sd_event_source_disable_unref(k->sources[i]);
	k->sources = mfree(k->sources);
	k->n_sources = 0;
}

static struct watch_kernel *watch_kernel_free(struct watch_kernel *k)
{
	if (!k)
		return NULL;
	kernel_sources_drop(k);
	free(k->kver);
	return mfree(k);
}

static struct watch_kernel *kernel_find(struct watch *w, const char *kver, size_t *ret_idx)
{
	for (size_t i = 0; i < w->n_kernels; i++)
		if (streq(w->kernels[i]->kver, kver)) {
			if (ret_idx)
				*ret_idx = i;
			return w->kernels[i];
		}
	return NULL;
}

static int on_kernel_event(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	struct watch_kernel *k = userdata;
	struct watch *w = k->watch;

	if (overflowed(ev, w))
		return 0;
	if (ev->mask & IN_IGNORED)
		return 0; /* watched directory went away; the next watch_kernel() re-adds */
	w->cb.kernel_changed(k->kver, w->userdata);
	return 0;
}

static int on_kernel_dir_event(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	struct watch_kernel *k = userdata;
	struct watch *w = k->watch;
	bool interesting = ev->len == 0;

	if (overflowed(ev, w))
		return 0;
	if (ev->mask & IN_IGNORED)
		return 0;
	for (size_t i = 0; !interesting && i < ELEMENTSOF(kernel_dir_names); i++)
		if (streq(ev->name, kernel_dir_names[i]))
			interesting = true;
	if (interesting)
		w->cb.kernel_changed(k->kver, w->userdata);
	return 0;
}

static int kernel_add_source(struct watch_kernel *k, const char *path, uint32_t mask,
			     sd_event_inotify_handler_t handler)
{
	sd_event_source **a;
	int r;

	a = realloc(k->sources, sizeof(*a) * (k->n_sources + 1));
	if (!a)
		return -ENOMEM;
	k->sources = a;
	r = sd_event_add_inotify(k->watch->event, &a[k->n_sources], path, mask, handler, k);
	if (r < 0)
		return r;
	k->n_sources++;
	return 0;
}

int watch_kernel(struct watch *w, const char *kver)
{
	_cleanup_free_ char *dir = NULL, *build = NULL;
	struct watch_kernel *k;
	int r;

	k = kernel_find(w, kver, NULL);
	if (!k) {
		struct watch_kernel **a;

		k = calloc(1, sizeof(*k));
		if (!k)
			return -ENOMEM;
		k->watch = w;
		k->kver = strdup(kver);
		a = realloc(w->kernels, sizeof(*a) * (w->n_kernels + 1));
		if (!k->kver || !a) {
			watch_kernel_free(k);
			if (a)
				w->kernels = a;
			return -ENOMEM;
		}
		w->kernels = a;
		w->kernels[w->n_kernels++] = k;
	}

	/* Start afresh: the build link may now point elsewhere. */
	kernel_sources_drop(k);

	dir = strjoin(w->ctx->root, "/" DM2_MODULES_DIR "/", kver);
	if (!dir)
		return -ENOMEM;
	r = kernel_add_source(k, dir, TREE_MASK | IN_ONLYDIR | IN_DONT_FOLLOW, on_kernel_dir_event);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0; /* gone already; lib/modules' watch reports the removal */
	if (r < 0)
		return r;

	for (size_t i = 0; i < ELEMENTSOF(build_subdirs); i++) {
		build = mfree(build);
		build = strjoin(dir, "/build/", build_subdirs[i]);
		if (!build)
			return -ENOMEM;
		/* Follows symlinks on purpose: build -> /usr/src/linux-headers-KVER, and Debian's
		 * scripts -> /usr/lib/linux-kbuild-X.Y/scripts. */
		r = kernel_add_source(k, build, TREE_MASK | IN_ONLYDIR, on_kernel_event);
		if (r == -ENOENT || r == -ENOTDIR || r == -EACCES)
			continue;
		if (r < 0)
			return r;
	}
	return 0;
}

void watch_kernel_forget(struct watch *w, const char *kver)
{
	size_t i;
	struct watch_kernel *k = kernel_find(w, kver, &i);

	if (!k)
		return;
	watch_kernel_free(k);
	memmove(w->kernels + i, w->kernels + i + 1, sizeof(*w->kernels) * (w->n_kernels - i - 1));
	w->n_kernels--;
}

static int on_modules_dir(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	struct watch *w = userdata;

	if (overflowed(ev, w))
		return 0;
	if (ev->len == 0 || ev->name[0] == '.')
		return 0;
	if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
		watch_kernel_forget(w, ev->name);
		w->cb.kernel_removed(ev->name, w->userdata);
		return 0;
	}
	if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
		/* Watch it at once, then report: files created in it from now on are seen. */
		int r = watch_kernel(w, ev->name);

		if (r < 0)
			log_warning_errno(r, "Failed to watch kernel '%s', ignoring: %m", ev->name);
		w->cb.kernel_changed(ev->name, w->userdata);
	}
	return 0;
}

static int on_recipes_event(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	struct watch *w = userdata;

	if (overflowed(ev, w))
		return 0;
	if (ev->mask & IN_IGNORED)
		return 0;
	if (ev->len > 0 && ev->name[0] == '.')
		return 0; /* editor and package-manager temporaries */
	w->cb.recipes_changed(w->userdata);
	return 0;
}

static int add_recipe_dir(struct watch *w, const char *path)
{
	sd_event_source **a;
	int r;

	a = realloc(w->recipe_dirs, sizeof(*a) * (w->n_recipe_dirs + 1));
	if (!a)
		return -ENOMEM;
	w->recipe_dirs = a;
	r = sd_event_add_inotify(w->event, &a[w->n_recipe_dirs], path,
				 IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
					 IN_CREATE | IN_ONLYDIR,
				 on_recipes_event, w);
	if (r == -ENOENT || r == -ENOTDIR) {
		log_debug("Recipe directory '%s' does not exist, not watching it.", path);
		return 0;
	}
	if (r < 0)
		return r;
	w->n_recipe_dirs++;
	return 0;
}

int watch_new(sd_event *e, struct dm2_context *ctx, const struct watch_callbacks *cb,
	      void *userdata, struct watch **ret)
{
	_cleanup_(watch_freep) struct watch *w = NULL;
	_cleanup_free_ char *modules = NULL, *usr_src = NULL, *admin = NULL, *vendor = NULL,
			    *etc_dkms = NULL;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->event = e;
	w->ctx = ctx;
	w->cb = *cb;
	w->userdata = userdata;

	modules = context_path(ctx, DM2_MODULES_DIR);
	usr_src = context_path(ctx, DM2_USR_SRC_DIR);
	admin = context_path(ctx, DM2_ADMIN_RECIPE_DIR);
	vendor = context_path(ctx, DM2_VENDOR_RECIPE_DIR);
	etc_dkms = context_path(ctx, DM2_DKMS_ETC_DIR);
	if (!modules || !usr_src || !admin || !vendor || !etc_dkms)
		return -ENOMEM;

	r = mkdir_p_at(ctx->root_fd, DM2_MODULES_DIR, 0755);
	if (r < 0)
		return log_error_errno(r, "Failed to create '%s': %m", modules);
	r = sd_event_add_inotify(e, &w->modules_dir, modules,
				 IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ONLYDIR,
				 on_modules_dir, w);
	if (r < 0)
		return log_error_errno(r, "Failed to watch '%s': %m", modules);

	r = sd_event_add_inotify(e, &w->usr_src, usr_src,
				 IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ONLYDIR,
				 on_recipes_event, w);
	if (r < 0 && r != -ENOENT && r != -ENOTDIR)
		return log_error_errno(r, "Failed to watch '%s': %m", usr_src);

	STRV_FOREACH(d, ctx->recipe_dirs) {
		r = add_recipe_dir(w, *d);
		if (r < 0)
			return log_error_errno(r, "Failed to watch '%s': %m", *d);
	}
	r = add_recipe_dir(w, admin);
	if (r < 0)
		return log_error_errno(r, "Failed to watch '%s': %m", admin);
	r = add_recipe_dir(w, vendor);
	if (r < 0)
		return log_error_errno(r, "Failed to watch '%s': %m", vendor);
	/* The admin's overrides of dkms.conf files are part of those recipes. */
	r = add_recipe_dir(w, etc_dkms);
	if (r < 0)
		return log_error_errno(r, "Failed to watch '%s': %m", etc_dkms);

	*ret = TAKE_PTR(w);
	return 0;
}

struct watch *watch_free(struct watch *w)
{
	if (!w)
		return NULL;
	for (size_t i = 0; i < w->n_kernels; i++)
		watch_kernel_free(w->kernels[i]);
	free(w->kernels);
	for (size_t i = 0; i < w->n_recipe_dirs; i++)
		sd_event_source_disable_unref(w->recipe_dirs[i]);
	free(w->recipe_dirs);
	sd_event_source_disable_unref(w->modules_dir);
	sd_event_source_disable_unref(w->usr_src);
	return mfree(w);
}

size_t watch_n_sources(struct watch *w)
{
	size_t n = !!w->modules_dir + !!w->usr_src + w->n_recipe_dirs;

	for (size_t i = 0; i < w->n_kernels; i++)
		n += w->kernels[i]->n_sources;
	return n;
}
