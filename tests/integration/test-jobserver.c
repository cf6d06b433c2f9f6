/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Builds sharing one make jobserver pool (make 4.3, fd form): across several builds at
 * once no more compile jobs run than there are tokens, one build alone uses them all, and a
 * build that exits holding tokens does not shrink the pool.
 *
 * The test Makefile has JOBS independent jobs; each writes its start and end time (ns,
 * CLOCK_REALTIME, the same in every namespace) after a real module (base.ko, built first
 * through the pool by kbuild itself) into out.ko, the one output we copy out.
 */
#include <fcntl.h>
#include <pwd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "libkbuild-wrap.h"
#include "shared/fs-util.h"
#include "shared/jobserver.h"
#include "shared/util.h"
#include "tests.h"

#define N_JOBS 6

static const char makefile[] =
	"J := 1 2 3 4 5 6\n"
	"out.ko: $(addprefix j,$(J))\n"
	"\t(cat base.ko; echo; echo DM2T; cat t.*) > $@\n"
	"j%:\n"
	"\t@echo \"s $$(date +%s%N)\" > t.$*; sleep 0.4; echo \"e $$(date +%s%N)\" >> t.$*\n";

/* tests/data/modules/hello built by kbuild on the pool (no -j of its own), as ROOT/src/base.ko. */
static void make_base(struct test_root *t, const int pool[2])
{
	struct passwd *pw = getpwnam("nobody");
	_cleanup_free_ char *dir = NULL, *work = NULL, *log = NULL, *src = NULL;
	struct kbw_build_result *res = NULL;
	struct kbw_kernel *k = NULL;
	char *mods[] = {(char *) "dm2_hello.ko", NULL};

	assert_true(asprintf(&dir, "%s/lib/modules/%s", t->path, t->kver) > 0);
	ASSERT_OK(kbw_kernel_probe(dir, t->kver, &k));
	src = test_source_path("tests/data/modules/hello");
	assert_true(asprintf(&work, "%s/base", t->path) > 0);
	assert_true(asprintf(&log, "%s/base.log", t->path) > 0);
	ASSERT_OK(kbw_build(k,
			    &(struct kbw_build_params){
				    .source_dir = src, .work_dir = work, .log_path = log,
				    .modules = mods, .jobs = 2, .uid = pw->pw_uid,
				    .gid = pw->pw_gid, .timeout_usec = 300 * 1000000ULL,
				    .isolate = true, .jobserver = pool != NULL,
				    .jobserver_fds = {pool ? pool[0] : -1, pool ? pool[1] : -1}},
			    &res));
	if (!kbw_build_succeeded(res))
		test_system("tail -n 30 '%s'", log);
	assert_true(kbw_build_succeeded(res));
	kbw_build_result_free(res);
	kbw_kernel_unref(k);
	assert_int_equal(test_system("mkdir -p '%s/src' && cp '%s/dm2_hello.ko' '%s/src/base.ko'",
				     t->path, work, t->path), 0);
}

struct jbuild {
	struct kbw_kernel *k;
	struct kbw_build_params p;
	char *src, *work, *log;
	char *mods[2];
};

static void jbuild_init(struct jbuild *b, struct test_root *t, const char *name,
			const char *command, const int pool[2])
{
	struct passwd *pw = getpwnam("nobody");
	_cleanup_free_ char *dir = NULL;

	assert_non_null(pw);
	*b = (struct jbuild){};
	assert_true(asprintf(&dir, "%s/lib/modules/%s", t->path, t->kver) > 0);
	ASSERT_OK(kbw_kernel_probe(dir, t->kver, &b->k));
	assert_true(asprintf(&b->src, "%s/src", t->path) > 0);
	test_write_file(t->fd, "src/Makefile", makefile);
	assert_true(asprintf(&b->work, "%s/%s", t->path, name) > 0);
	assert_true(asprintf(&b->log, "%s/%s.log", t->path, name) > 0);
	b->mods[0] = strdup("out.ko");
	b->p = (struct kbw_build_params){
		.source_dir = b->src,
		.work_dir = b->work,
		.log_path = b->log,
		.command = command,
		.modules = b->mods,
		.jobs = 2,
		.uid = pw->pw_uid,
		.gid = pw->pw_gid,
		.timeout_usec = 120 * 1000000ULL,
		.isolate = true,
		.jobserver = pool != NULL,
		.jobserver_fds = {pool ? pool[0] : -1, pool ? pool[1] : -1},
	};
}

static void jbuild_done(struct jbuild *b)
{
	kbw_kernel_unref(b->k);
	free(b->src);
	free(b->work);
	free(b->log);
	free(b->mods[0]);
}

static void jbuild_run(struct jbuild *b)
{
	struct kbw_build_result *res = NULL;

	ASSERT_OK(kbw_build(b->k, &b->p, &res));
	if (!kbw_build_succeeded(res)) {
		fprintf(stderr, "reason: %s\n", strna(res->reason));
		test_system("tail -n 30 '%s'", b->log);
	}
	assert_true(kbw_build_succeeded(res));
	kbw_build_result_free(res);
}

/* The most jobs that ran at once in the builds whose work dirs are listed. */
static unsigned max_overlap(char **works, size_t n)
{
	long long ev[64];
	size_t m = 0;
	unsigned cur = 0, best = 0;

	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *path = strjoin(works[i], "/out.ko"), *text = NULL;
		size_t size = 0;
		char *line, *save = NULL;

		ASSERT_OK(read_full_file_at(AT_FDCWD, path, 0, &text, &size));
		line = memmem(text, size, "\nDM2T\n", 6);
		assert_non_null(line);
		for (line = strtok_r(line + 6, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			long long ns = atoll(line + 2);

			assert_true(m < ELEMENTSOF(ev));
			/* ends sort before starts at the same time */
			ev[m++] = line[0] == 's' ? ns * 2 + 1 : ns * 2;
		}
	}
	assert_int_equal(m, 2 * N_JOBS * n);
	for (size_t i = 1; i < m; i++)
		for (size_t j = i; j > 0 && ev[j - 1] > ev[j]; j--) {
			long long x = ev[j];

			ev[j] = ev[j - 1];
			ev[j - 1] = x;
		}
	for (size_t i = 0; i < m; i++) {
		cur = (ev[i] & 1) ? cur + 1 : cur - 1;
		best = MAX(best, cur);
	}
	return best;
}

static unsigned pool_count(const int pool[2])
{
	int n = -1;

	assert_int_equal(ioctl(pool[0], FIONREAD, &n), 0);
	return (unsigned) n;
}

/* One build alone, no -j of its own: it runs on both tokens. */
static void test_alone_uses_pool(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(jobserver_done) struct jobserver js = JOBSERVER_NULL;
	struct jbuild b;

	ASSERT_OK(jobserver_new(2, &js));
	make_base(t, js.fds);
	assert_int_equal(pool_count(js.fds), 2);
	jbuild_init(&b, t, "alone", "make -f Makefile", js.fds);
	jbuild_run(&b);
	assert_int_equal(max_overlap(&b.work, 1), 2);
	assert_int_equal(pool_count(js.fds), 2);
	jbuild_done(&b);
}

/* Three builds at once on a pool of two tokens: never more than two jobs. */
static void test_concurrent_capped(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(jobserver_done) struct jobserver js = JOBSERVER_NULL;
	struct jbuild b[3];
	char *works[3];
	pid_t pids[3];

	ASSERT_OK(jobserver_new(2, &js));
	make_base(t, js.fds);
	for (int i = 0; i < 3; i++) {
		_cleanup_free_ char *name = NULL;

		assert_true(asprintf(&name, "c%d", i) > 0);
		jbuild_init(&b[i], t, name, "make -f Makefile", js.fds);
		works[i] = b[i].work;
	}
	for (int i = 0; i < 3; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct kbw_build_result *res = NULL;

			_exit(kbw_build(b[i].k, &b[i].p, &res) >= 0 &&
					      kbw_build_succeeded(res)
				      ? 0
				      : 1);
		}
	}
	for (int i = 0; i < 3; i++) {
		int status = 0;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(max_overlap(works, 3), 2);
	assert_int_equal(pool_count(js.fds), 2);
	for (int i = 0; i < 3; i++)
		jbuild_done(&b[i]);
}

/* A build that takes a token and exits with it: the pool is whole again afterwards and
 * the next build runs on both tokens. */
static void test_kept_tokens_come_back(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(jobserver_done) struct jobserver js = JOBSERVER_NULL;
	_cleanup_free_ char *log = NULL;
	struct jbuild thief, next;
	size_t size = 0;

	ASSERT_OK(jobserver_new(2, &js));
	make_base(t, js.fds);
	jbuild_init(&thief, t, "thief", "head -c 1 <&3 >/dev/null && MAKEFLAGS= make -f Makefile -j1", js.fds);
	jbuild_run(&thief);
	ASSERT_OK(read_full_file_at(AT_FDCWD, thief.log, 0, &log, &size));
	assert_non_null(strstr(log, "kept 1 jobserver token"));
	assert_int_equal(pool_count(js.fds), 2);

	jbuild_init(&next, t, "next", "make -f Makefile", js.fds);
	jbuild_run(&next);
	assert_int_equal(max_overlap(&next.work, 1), 2);
	assert_int_equal(pool_count(js.fds), 2);
	jbuild_done(&thief);
	jbuild_done(&next);
}

/* Without a pool a build keeps its own -j (MakeJobs=). */
static void test_no_pool(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	struct jbuild b;

	make_base(t, NULL);
	jbuild_init(&b, t, "plain", "make -f Makefile -j1", NULL);
	jbuild_run(&b);
	assert_int_equal(max_overlap(&b.work, 1), 1);
	jbuild_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alone_uses_pool),
		cmocka_unit_test(test_concurrent_capped),
		cmocka_unit_test(test_kept_tokens_come_back),
		cmocka_unit_test(test_no_pool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
