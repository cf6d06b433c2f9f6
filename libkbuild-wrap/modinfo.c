/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* modinfo keys of a .ko, read with libkmod (which also reads compressed modules). */
#include <libkmod.h>

#include "kbw-internal.h"

static void kmod_log_silent(void *data, int priority, const char *file, int line,
			    const char *fn, const char *format, va_list args)
{
}

KBW_EXPORT int kbw_module_info(const char *path, const char *key, char **ret)
{
	static const char *const no_config[] = {NULL};
	struct kmod_ctx *ctx;
	struct kmod_module *mod = NULL;
	struct kmod_list *list = NULL, *l;
	char *value = NULL;
	int r;

	if (!path || !key)
		return -EINVAL;
	/* A fresh context per file: libkmod caches modules by name, and two builds of the
	 * same module name in one process must not see each other's info. */
	ctx = kmod_new("/nonexistent", (const char *const *) no_config);
	if (!ctx)
		return -ENOMEM;
	kmod_set_log_fn(ctx, kmod_log_silent, NULL);
	r = kmod_module_new_from_path(ctx, path, &mod);
	if (r < 0)
		goto finish;
	r = kmod_module_get_info(mod, &list);
	if (r < 0)
		goto finish;
	r = -ENODATA;
	kmod_list_foreach(l, list)
	{
		const char *k = kmod_module_info_get_key(l);
		const char *v = kmod_module_info_get_value(l);

		if (k && streq(k, key)) {
			value = strdup(v ?: "");
			r = value ? 0 : -ENOMEM;
			break;
		}
	}
finish:
	kmod_module_info_free_list(list);
	kmod_module_unref(mod);
	kmod_unref(ctx);
	if (r < 0)
		return r;
	*ret = value;
	return 0;
}

KBW_EXPORT int kbw_module_vermagic(const char *path, char **ret)
{
	return kbw_module_info(path, "vermagic", ret);
}
