/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>

#include "core/context.h"
#include "core/db.h"
#include "pipeline/install.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"
#include "tests.h"

struct fixture {
	struct test_root *t;
	struct dm2_context *ctx;
	struct db *db;
	char *dm2dir; /* lib/modules/KVER/updates/dm2 */
};

static void fixture_init(struct fixture *f)
{
	f->t = test_root_new();
	ASSERT_OK(context_new(f->t->path, &f->ctx));
	ASSERT_OK(db_open(f->ctx, true, &f->db));
	f->dm2dir = strjoin("lib/modules/", f->t->kver, "/updates/dm2");
	assert_non_null(f->dm2dir);
}

static void fixture_done(struct fixture *f)
{
	db_close(f->db);
	context_free(f->ctx);
	test_root_free(f->t);
	free(f->dm2dir);
}

static char *read_at(int fd, const char *dir, const char *name)
{
	_cleanup_free_ char *p = strjoin(dir, "/", name);
	char *text = NULL;

	assert_non_null(p);
	if (read_full_file_at(fd, p, 0, &text, NULL) < 0)
		return NULL;
	return text;
}

static size_t count_entries(int fd, const char *dir)
{
	int dfd = openat(fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	assert_true(dfd >= 0);
	d = fdopendir(dfd);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_atomic_install(void **state)
{
	struct fixture f = {};
	struct install_item it = {
		.dir = "updates/dm2", .name = "foo.ko", .data = "one", .size = 3};
	struct db_installed_file *l = NULL;
	_cleanup_free_ char *text = NULL, *p = NULL;
	char hex[SHA256_HEX_SIZE];
	size_t n;

	fixture_init(&f);
	ASSERT_OK(install_files(f.ctx, f.db, "foo", f.t->kver, &it, 1, NULL, NULL));
	text = read_at(f.t->fd, f.dm2dir, "foo.ko");
	assert_string_equal(text, "one");
	/* No temporary file is left next to it. */
	assert_int_equal(count_entries(f.t->fd, f.dm2dir), 1);

	ASSERT_OK(db_installed_list(f.db, f.t->kver, "foo", &l, &n));
	assert_int_equal(n, 1);
	p = strjoin(f.dm2dir, "/foo.ko");
	assert_string_equal(l[0].path, p);
	sha256_buf_hex("one", 3, hex);
	assert_string_equal(l[0].sha256, hex);
	assert_null(l[0].overrides_intree);
	db_installed_files_free(l, n);

	/* Reinstalling our own file replaces it. */
	it.data = "two";
	ASSERT_OK(install_files(f.ctx, f.db, "foo", f.t->kver, &it, 1, NULL, NULL));
	free(text);
	text = read_at(f.t->fd, f.dm2dir, "foo.ko");
	assert_string_equal(text, "two");

	/* Another name (compression changed): the old file goes, the record follows. */
	it.name = "foo.ko.xz";
	ASSERT_OK(install_files(f.ctx, f.db, "foo", f.t->kver, &it, 1, NULL, NULL));
	assert_int_equal(count_entries(f.t->fd, f.dm2dir), 1);
	free(text);
	text = read_at(f.t->fd, f.dm2dir, "foo.ko.xz");
	assert_string_equal(text, "two");
	ASSERT_OK(db_installed_list(f.db, f.t->kver, "foo", &l, &n));
	assert_int_equal(n, 1);
	assert_non_null(endswith(l[0].path, "foo.ko.xz"));
	db_installed_files_free(l, n);

	/* Unsafe names are refused. */
	it.name = "../x.ko";
	ASSERT_ERR(install_files(f.ctx, f.db, "foo", f.t->kver, &it, 1, NULL, NULL), -EINVAL);
	fixture_done(&f);
}

static void test_refuse_foreign(void **state)
{
	struct fixture f = {};
	struct install_item it = {
		.dir = "updates/dm2", .name = "bar.ko", .data = "mine", .size = 4};
	_cleanup_free_ char *p = NULL, *text = NULL, *conflict = NULL;

	fixture_init(&f);
	p = strjoin(f.dm2dir, "/bar.ko");
	test_write_file(f.t->fd, p, "somebody else's");
	ASSERT_ERR(install_files(f.ctx, f.db, "bar", f.t->kver, &it, 1, NULL, &conflict),
		   -EEXIST);
	assert_string_equal(conflict, p);
	text = read_at(f.t->fd, f.dm2dir, "bar.ko");
	assert_string_equal(text, "somebody else's");

	/* A file of another recipe is foreign too. */
	it.name = "baz.ko";
	ASSERT_OK(install_files(f.ctx, f.db, "baz", f.t->kver, &it, 1, NULL, NULL));
	ASSERT_ERR(install_files(f.ctx, f.db, "other", f.t->kver, &it, 1, NULL, NULL), -EEXIST);
	fixture_done(&f);
}

static void test_uninstall_keeps_modified(void **state)
{
	struct fixture f = {};
	struct install_item it[2] = {
		{.dir = "updates/dm2", .name = "a.ko", .data = "aaa", .size = 3},
		{.dir = "extra", .name = "b.ko", .data = "bbb", .size = 3},
	};
	_cleanup_strv_free_ char **kept = NULL;
	_cleanup_free_ char *b = NULL, *text = NULL, *a = NULL;
	struct db_installed_file *l = NULL;
	size_t n;

	fixture_init(&f);
	ASSERT_OK(install_files(f.ctx, f.db, "ab", f.t->kver, it, 2, NULL, NULL));
	b = strjoin("lib/modules/", f.t->kver, "/extra/b.ko");
	a = strjoin(f.dm2dir, "/a.ko");
	test_write_file(f.t->fd, b, "changed by the admin");

	ASSERT_OK(install_remove(f.ctx, f.db, "ab", f.t->kver, &kept));
	assert_int_equal(strv_length(kept), 1);
	assert_string_equal(kept[0], b);
	assert_int_equal(faccessat(f.t->fd, a, F_OK, 0), -1);
	ASSERT_OK(read_full_file_at(f.t->fd, b, 0, &text, NULL));
	assert_string_equal(text, "changed by the admin");
	ASSERT_OK(db_installed_list(f.db, f.t->kver, "ab", &l, &n));
	assert_int_equal(n, 0);
	free(l);
	fixture_done(&f);
}

/* A write that fails on the last module (here: a file size limit) leaves the earlier
 * install whole and no temporary file behind. */
static void test_failed_write_keeps_old(void **state)
{
	struct fixture f = {};
	struct install_item it[2] = {
		{.dir = "updates/dm2", .name = "a.ko", .data = "old a", .size = 5},
		{.dir = "updates/dm2", .name = "b.ko", .data = "old b", .size = 5},
	};
	static char big[64 * 1024];
	struct rlimit saved, small = {.rlim_cur = 16 * 1024};
	_cleanup_free_ char *a = NULL, *b = NULL;

	fixture_init(&f);
	ASSERT_OK(install_files(f.ctx, f.db, "ab", f.t->kver, it, 2, NULL, NULL));
	it[0].data = "new a";
	it[1].data = big;
	it[1].size = sizeof(big);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small.rlim_max = saved.rlim_max;
	(void) signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	ASSERT_ERR(install_files(f.ctx, f.db, "ab", f.t->kver, it, 2, NULL, NULL), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	(void) signal(SIGXFSZ, SIG_DFL);

	a = read_at(f.t->fd, f.dm2dir, "a.ko");
	b = read_at(f.t->fd, f.dm2dir, "b.ko");
	assert_string_equal(a, "old a");
	assert_string_equal(b, "old b");
	assert_int_equal(count_entries(f.t->fd, f.dm2dir), 2);
	fixture_done(&f);
}

static void test_depmod(void **state)
{
	struct fixture f = {};
	_cleanup_free_ char *c = NULL, *ko = NULL, *dep = NULL, *reason = NULL,
			    *data = NULL;
	_cleanup_free_ char *depfile = NULL;
	struct install_item it = {.dir = "updates/dm2", .name = "dm2_depmod_test.ko"};
	size_t size;

	fixture_init(&f);
	/* A real ELF object with a .modinfo section: enough for depmod and modinfo. */
	c = strjoin(f.t->path, "/m.c");
	ko = strjoin(f.t->path, "/m.o");
	test_write_file(
		f.t->fd, "m.c",
		"static const char mi[] __attribute__((section(\".modinfo\"), used)) ="
		" \"license=GPL\\0name=dm2_depmod_test\\0\";\n"
		"int init_module(void) { return 0; }\n");
	assert_int_equal(test_system("gcc -c -o '%s' '%s'", ko, c), 0);
	ASSERT_OK(read_full_file_at(f.t->fd, "m.o", 0, &data, &size));
	it.data = data;
	it.size = size;

	ASSERT_OK(install_files(f.ctx, f.db, "dm2-depmod-test", f.t->kver, &it, 1, NULL, NULL));
	ASSERT_OK(install_depmod(f.ctx, f.t->kver, &reason));
	depfile = strjoin("lib/modules/", f.t->kver, "/modules.dep");
	ASSERT_OK(read_full_file_at(f.t->fd, depfile, 0, &dep, NULL));
	assert_non_null(strstr(dep, "updates/dm2/dm2_depmod_test.ko:"));

	ASSERT_ERR(install_depmod(f.ctx, "0.0.0-no-such-kernel", NULL), -ENOENT);
	fixture_done(&f);
}

static void test_intree_override(void **state)
{
	struct fixture f = {};
	_cleanup_free_ char *intree = NULL, *builtin = NULL, *found = NULL;
	struct install_item it = {
		.dir = "updates/dm2", .name = "foo_bar.ko", .data = "x", .size = 1};
	struct db_installed_file *l = NULL;
	size_t n;

	fixture_init(&f);
	intree = strjoin("lib/modules/", f.t->kver, "/kernel/drivers/misc/foo-bar.ko.xz");
	builtin = strjoin("lib/modules/", f.t->kver, "/modules.builtin");
	test_write_file(f.t->fd, intree, "in-tree");
	test_write_file(f.t->fd, builtin, "kernel/fs/ext4/ext4.ko\nkernel/fs/baz.ko\n");

	ASSERT_OK(install_find_intree(f.ctx, f.t->kver, "foo_bar.ko", &found));
	assert_string_equal(found, intree);
	free(found);
	ASSERT_OK(install_find_intree(f.ctx, f.t->kver, "baz.ko.zst", &found));
	assert_string_equal(found, "builtin");
	free(found);
	found = NULL;
	ASSERT_ERR(install_find_intree(f.ctx, f.t->kver, "quux.ko", &found), -ENOENT);

	ASSERT_OK(install_files(f.ctx, f.db, "foo", f.t->kver, &it, 1, NULL, NULL));
	ASSERT_OK(db_installed_list(f.db, f.t->kver, "foo", &l, &n));
	assert_int_equal(n, 1);
	assert_string_equal(l[0].overrides_intree, intree);
	db_installed_files_free(l, n);
	fixture_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_atomic_install),
		cmocka_unit_test(test_refuse_foreign),
		cmocka_unit_test(test_uninstall_keeps_modified),
		cmocka_unit_test(test_failed_write_keeps_old),
		cmocka_unit_test(test_depmod),
		cmocka_unit_test(test_intree_override),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
