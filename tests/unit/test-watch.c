/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* watch.c: which file-system changes reach the daemon, and how. Real inotify on a fake root. */
#include <fcntl.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>

#include "core/context.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"
#include "daemon/watch.h"

struct seen {
	char *changed;  /* last kernel reported changed */
	char *removed;  /* last kernel reported removed */
	unsigned n_changed, n_removed, n_recipes, n_rescan;
};

static void on_changed(const char *kver, void *ud)
{
	struct seen *s = ud;

	free(s->changed);
	s->changed = strdup(kver);
	s->n_changed++;
}

static void on_removed(const char *kver, void *ud)
{
	struct seen *s = ud;

	free(s->removed);
	s->removed = strdup(kver);
	s->n_removed++;
}

static void on_recipes(void *ud)
{
	((struct seen *) ud)->n_recipes++;
}

static void on_rescan(void *ud)
{
	((struct seen *) ud)->n_rescan++;
}

static const struct watch_callbacks cb = {
	.kernel_changed = on_changed,
	.kernel_removed = on_removed,
	.recipes_changed = on_recipes,
	.rescan = on_rescan,
};

/* Run the loop until *counter moves or a second passed. */
static void run_until(sd_event *e, unsigned *counter)
{
	unsigned before = *counter;
	uint64_t end = now_mono_usec() + 1000000;

	while (*counter == before && now_mono_usec() < end)
		assert_true(sd_event_run(e, 100000) >= 0);
}

/* Drain what is pending, so later checks see only new events. */
static void settle(sd_event *e)
{
	for (int i = 0; i < 5; i++)
		assert_true(sd_event_run(e, 20000) >= 0);
}

static void test_watch_kernels(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_(watch_freep) struct watch *w = NULL;
	struct seen s = {};
	sd_event *e = NULL;

	ASSERT_OK(context_new(t->path, &ctx));
	ASSERT_OK(sd_event_new(&e));
	ASSERT_OK(mkdir_p_at(t->fd, "etc/dm2/recipes.d", 0755));
	ASSERT_OK(watch_new(e, ctx, &cb, &s, &w));
	assert_true(watch_n_sources(w) >= 2);

	/* A new kernel directory is reported and watched at once. */
	ASSERT_OK(mkdir_p_at(t->fd, "lib/modules/9.9.9-test", 0755));
	run_until(e, &s.n_changed);
	assert_string_equal(s.changed, "9.9.9-test");
	settle(e);

	/* Files in it that say nothing about the kernel (depmod output) are ignored ... */
	unsigned n = s.n_changed;
	test_write_file(t->fd, "lib/modules/9.9.9-test/modules.dep", "");
	settle(e);
	assert_int_equal(s.n_changed, n);
	/* ... its build link is not. */
	assert_int_equal(symlinkat("/nonexistent", t->fd, "lib/modules/9.9.9-test/build"), 0);
	run_until(e, &s.n_changed);
	assert_int_equal(s.n_changed, n + 1);

	/* A build tree filling up: after watch_kernel(), files in its include/generated count. */
	ASSERT_OK(unlinkat(t->fd, "lib/modules/9.9.9-test/build", 0));
	ASSERT_OK(mkdir_p_at(t->fd, "lib/modules/9.9.9-test/build/include/generated", 0755));
	settle(e);
	ASSERT_OK(watch_kernel(w, "9.9.9-test"));
	n = s.n_changed;
	test_write_file(t->fd, "lib/modules/9.9.9-test/build/include/generated/autoconf.h", "x");
	run_until(e, &s.n_changed);
	assert_true(s.n_changed > n);
	settle(e);

	/* Removal is reported with the release. */
	ASSERT_OK(rm_rf_at(t->fd, "lib/modules/9.9.9-test"));
	run_until(e, &s.n_removed);
	assert_string_equal(s.removed, "9.9.9-test");

	/* Recipe directories: a new file is a change; dot files (temporaries) are not. */
	settle(e);
	unsigned r0 = s.n_recipes;
	test_write_file(t->fd, "etc/dm2/recipes.d/.x.recipe.swp", "");
	settle(e);
	assert_int_equal(s.n_recipes, r0);
	test_write_file(t->fd, "etc/dm2/recipes.d/x.recipe", "[Recipe]\n");
	run_until(e, &s.n_recipes);
	assert_true(s.n_recipes > r0);
	assert_int_equal(s.n_rescan, 0);

	watch_kernel_forget(w, "9.9.9-test");
	w = watch_free(w);
	sd_event_unref(e);
	free(s.changed);
	free(s.removed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watch_kernels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
