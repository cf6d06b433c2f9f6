/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The build sandbox against a hostile module source (tests/data/modules/hostile): real
 * kbuild builds against the installed kernel headers whose Kbuild tries to escape, to
 * outlive the build, to backdoor the next build, to reach the host, and to exceed limits.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "libkbuild-wrap.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

#define SECRET "-----BEGIN PRIVATE KEY----- dm2 test secret\n"

static void resultp(struct kbw_build_result **r)
{
	kbw_build_result_free(*r);
}

struct build {
	struct kbw_kernel *k;
	struct kbw_build_params p;
	char *src, *work, *log, *vars[5], *tag;
	char *mods[2];
};

/* A build of tests/data/modules/MODULE into ROOT/WORK as nobody, with make variables. */
static void build_init(struct build *b, struct test_root *t, const char *module,
		       const char *work, const char *attack, const char *rule, const char *arg)
{
	struct passwd *pw = getpwnam("nobody");
	_cleanup_free_ char *dir = NULL;
	size_t n = 0;

	assert_non_null(pw);
	*b = (struct build){};
	assert_true(asprintf(&dir, "%s/lib/modules/%s", t->path, t->kver) > 0);
	ASSERT_OK(kbw_kernel_probe(dir, t->kver, &b->k));
	dir = mfree(dir);
	assert_true(asprintf(&dir, "tests/data/modules/%s", module) > 0);
	b->src = test_source_path(dir);
	assert_true(asprintf(&b->work, "%s/%s", t->path, work) > 0);
	assert_true(asprintf(&b->log, "%s/%s.log", t->path, work) > 0);
	assert_true(asprintf(&b->tag, "%d", (int) getpid()) > 0);
	assert_true(asprintf(&b->mods[0], "dm2_%s.ko", module) > 0);
	if (attack)
		b->vars[n++] = strjoin("DM2_ATTACK=", attack);
	if (rule)
		b->vars[n++] = strjoin("DM2_RULE=", rule);
	b->vars[n++] = strjoin("DM2_ARG=", strempty(arg));
	b->vars[n++] = strjoin("DM2_TAG=", b->tag);
	b->p = (struct kbw_build_params){
		.source_dir = b->src,
		.work_dir = b->work,
		.log_path = b->log,
		.make_vars = b->vars,
		.modules = b->mods,
		.jobs = 2,
		.uid = pw->pw_uid,
		.gid = pw->pw_gid,
		.timeout_usec = 300 * 1000000ULL,
		.memory_max = 4ULL << 30,
		.isolate = true,
	};
}

static void build_done(struct build *b)
{
	kbw_kernel_unref(b->k);
	free(b->src);
	free(b->work);
	free(b->log);
	free(b->tag);
	free(b->mods[0]);
	for (size_t i = 0; i < ELEMENTSOF(b->vars); i++)
		free(b->vars[i]);
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* Pids of the live processes whose command line is exactly "sleep ARG"; each one found is
 * killed (by its pid) when kill_them, so that a failing test leaves nothing behind. */
static int count_sleeps(const char *arg, bool kill_them)
{
	_cleanup_(closedirp) DIR *d = opendir("/proc");
	_cleanup_free_ char *want = NULL;
	struct dirent *de;
	size_t want_len;
	int n = 0;

	assert_non_null(d);
	assert_true(asprintf(&want, "sleep%c%s", 0, arg) > 0);
	want_len = strlen("sleep") + 1 + strlen(arg) + 1;
	while ((de = readdir(d))) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		pid_t pid = (pid_t) strtol(de->d_name, NULL, 10);
		size_t size = 0;

		if (pid <= 0)
			continue;
		assert_true(asprintf(&path, "/proc/%d/cmdline", (int) pid) > 0);
		if (read_full_file_at(AT_FDCWD, path, 0, &text, &size) < 0)
			continue;
		if (size != want_len || memcmp(text, want, want_len) != 0)
			continue;
		n++;
		if (kill_them)
			(void) kill(pid, SIGKILL);
	}
	return n;
}

static void assert_built(struct build *b, const struct kbw_build_result *res)
{
	if (!kbw_build_succeeded(res)) {
		fprintf(stderr, "reason: %s\n", strna(res->reason));
		test_system("tail -n 30 '%s'", b->log);
	}
	assert_true(kbw_build_succeeded(res));
}

/* Attacks 1 and 2: after make exits, a leftover process replaces the module and
 * Module.symvers by symlinks to a root-only file; whoever reads the paths of the result
 * later must still get what the build produced, never that file. */
static void test_outputs_are_staged_copies(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	_cleanup_free_ char *secret = NULL, *ko = NULL, *symvers = NULL, *vermagic = NULL,
			    *pattern = NULL;
	struct stat st;
	struct build b;
	size_t size;

	test_write_file(t->fd, "secret.pem", SECRET);
	assert_int_equal(fchmodat(t->fd, "secret.pem", 0600, 0), 0);
	secret = path_join(t->path, "secret.pem");
	build_init(&b, t, "hostile", "work", "swap", NULL, secret);
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	/* The swap would come as soon as make exits: give it time to happen. */
	sleep(2);
	assert_true(asprintf(&pattern, "30.%s", b.tag) > 0);
	assert_int_equal(count_sleeps(pattern, true), 0);
	/* The swapper may win the race against the sandbox's PID 1 between make's exit and
	 * the end of the namespace: then the outputs are symlinks when they are read, and the
	 * build is refused. Either way nothing of the secret comes out. */
	if (!kbw_build_succeeded(res) && res->reason && strstr(res->reason, "symbolic link")) {
		_cleanup_free_ char *staged = path_join(b.work, "dm2_hostile.ko");

		assert_int_equal(access(staged, F_OK), -1);
		build_done(&b);
		return;
	}
	assert_built(&b, res);

	assert_int_equal(lstat(res->modules[0], &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_uid, geteuid());
	ASSERT_OK(read_full_file_at(AT_FDCWD, res->modules[0], 0, &ko, &size));
	assert_null(memmem(ko, size, "dm2 test secret", 15));
	ASSERT_OK(kbw_module_vermagic(res->modules[0], &vermagic));
	assert_string_equal(vermagic, kbw_kernel_vermagic(b.k));
	assert_non_null(res->symvers);
	ASSERT_OK(read_full_file_at(AT_FDCWD, res->symvers, 0, &symvers, NULL));
	assert_null(strstr(symvers, "dm2 test secret"));
	build_done(&b);
}

/* Build expecting the output 'module' of the "links" attack: refused for 'reason', and
 * nothing of it staged. */
static void expect_refused(struct build *b, const char *module, const char *reason)
{
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	_cleanup_free_ char *staged = path_join(b->work, module);

	(void) rm_rf_at(AT_FDCWD, b->work);
	free(b->mods[0]);
	b->mods[0] = strdup(module);
	ASSERT_OK(kbw_build(b->k, &b->p, &res));
	assert_false(kbw_build_succeeded(res));
	assert_string_equal(res->reason, reason);
	assert_int_equal(access(staged, F_OK), -1);
}

/* An expected output that is a symlink, a hard link, unreadable or a lying ELF file
 * when make ends is refused. */
static void test_linked_outputs_refused(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	struct build b;

	build_init(&b, t, "hostile", "work", "links", NULL, NULL);
	expect_refused(&b, "dm2_symlink.ko",
		       "'dm2_symlink.ko' is a symbolic link or below one; refusing it");
	expect_refused(&b, "dm2_hardlink.ko",
		       "'dm2_hardlink.ko' is not a regular file with a single link; refusing it");
	/* Outputs are opened with the build user's ids (dm2d.service has no CAP_DAC_*):
	 * what that user hid from itself stays hidden, and is refused. */
	expect_refused(&b, "dm2_hidden.ko",
		       "'dm2_hidden.ko' is not readable by the build user; refusing it");
	/* Modules whose ELF headers lie: refused, and the caller (dm2d) is still alive. */
	expect_refused(&b, "dm2_noshstrtab.ko",
		       "'dm2_noshstrtab.ko' is not an ELF object whose headers fit in it; "
		       "refusing it");
	expect_refused(&b, "dm2_pastend.ko",
		       "'dm2_pastend.ko' is not an ELF object whose headers fit in it; "
		       "refusing it");
	build_done(&b);
}

/* Processes that outlive make (setsid, nohup, a double fork, a daemon ignoring SIGTERM)
 * are gone when kbw_build() returns. */
static void test_no_process_survives(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	struct build b;
	int left = 0;

	build_init(&b, t, "hostile", "work", "survive", NULL, NULL);
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	assert_built(&b, res);
	for (int i = 31; i <= 34; i++) {
		_cleanup_free_ char *pattern = NULL;
		int n;

		assert_true(asprintf(&pattern, "%d.%s", i, b.tag) > 0);
		n = count_sleeps(pattern, true);
		if (n)
			fprintf(stderr, "'sleep %s' survived the build\n", pattern);
		left += n;
	}
	assert_int_equal(left, 0);
	build_done(&b);
}

/* Attack 3: a process left by one build appends a MODULE_INFO to the sources of the next
 * one, even with both as the same uid and their work dirs side by side. */
static void test_no_backdoor_into_next_build(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *a_res = NULL, *v_res = NULL;
	_cleanup_free_ char *works = NULL, *info = NULL;
	struct build a, v;

	/* Work dirs the build user can reach, as ROOT/var/lib/dm2/work/job-* are. */
	assert_int_equal(fchmod(t->fd, 0755), 0);
	assert_int_equal(mkdirat(t->fd, "works", 0755), 0);
	works = path_join(t->path, "works");
	build_init(&a, t, "hostile", "works/a", "backdoor", NULL, works);
	ASSERT_OK(kbw_build(a.k, &a.p, &a_res));
	assert_built(&a, a_res);

	build_init(&v, t, "victim", "works/b", NULL, NULL, NULL);
	ASSERT_OK(kbw_build(v.k, &v.p, &v_res));
	assert_built(&v, v_res);
	ASSERT_ERR(kbw_module_info(v_res->modules[0], "backdoor", &info), -ENODATA);
	build_done(&a);
	build_done(&v);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(chmod(path, 0777), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

/* Attack 4: the host's /tmp (and a socket in it), /dev/shm, /var/tmp, /run and its
 * processes are out of reach. */
static void test_host_out_of_reach(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	_cleanup_free_ char *sock = NULL, *log = NULL, *leak = NULL;
	_cleanup_close_ int lfd = -EBADF;
	struct build b;
	long pids;

	assert_true(asprintf(&sock, "/tmp/dm2-sock-%d", (int) getpid()) > 0);
	(void) unlink(sock);
	lfd = listen_unix(sock);
	build_init(&b, t, "hostile", "work", "probe", NULL, sock);
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	(void) unlink(sock);
	assert_built(&b, res);
	ASSERT_OK(read_full_file_at(AT_FDCWD, b.log, 0, &log, NULL));
	assert_true(accept4(lfd, NULL, NULL, SOCK_CLOEXEC) < 0);
	assert_non_null(strstr(log, "dm2-probe unix failed"));
	/* /tmp is writable, but it is the build's own. */
	assert_non_null(strstr(log, "dm2-probe tmp-write yes"));
	assert_null(strstr(log, "dm2-probe shm-write yes"));
	assert_null(strstr(log, "dm2-probe var-tmp-write yes"));
	assert_non_null(strstr(log, "dm2-probe tmp-entries 0\n"));
	assert_non_null(strstr(log, "dm2-probe run-entries 0\n"));
	assert_non_null(strstr(log, "dm2-probe pids "));
	pids = strtol(strstr(log, "dm2-probe pids ") + 15, NULL, 10);
	assert_true(pids < 20);
	assert_true(asprintf(&leak, "/tmp/dm2-leak-%s", b.tag) > 0);
	if (access(leak, F_OK) == 0) {
		(void) unlink(leak);
		fail_msg("the build wrote '%s' on the host", leak);
	}
	build_done(&b);
}

static void build_limited(struct build *b, const struct kbw_limits *l,
			  struct kbw_build_result **ret)
{
	ASSERT_OK(kbw_build_limited(b->k, &b->p, l, ret));
	if (kbw_build_succeeded(*ret))
		test_system("tail -n 20 '%s'", b->log);
	assert_false(kbw_build_succeeded(*ret));
	fprintf(stderr, "reason: %s\n", strna((*ret)->reason));
}

static void test_process_limit(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	struct build b;

	build_init(&b, t, "hostile", "work", NULL, "forkbomb", "300");
	build_limited(&b, &(struct kbw_limits){.processes = 32}, &res);
	assert_string_equal(res->reason, "build exceeded its process limit of 32");
	build_done(&b);
}

static void test_disk_budget(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	struct build b;

	build_init(&b, t, "hostile", "work", NULL, "fill", "600");
	build_limited(&b, &(struct kbw_limits){.disk_max = 64ULL << 20}, &res);
	assert_string_equal(res->reason, "build exceeded its disk budget of 64 MiB");
	build_done(&b);
}

static void test_cpu_limit(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	struct build b;

	build_init(&b, t, "hostile", "work", NULL, "spin", NULL);
	build_limited(&b, &(struct kbw_limits){.cpu_usec = 1000000}, &res);
	assert_string_equal(res->reason,
			    "a build process exceeded its CPU time limit of 1 s");
	build_done(&b);
}

/* strip -g runs unprivileged on a copy; a tool that leaves a symlink is refused. */
static void test_run_on_file(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	_cleanup_free_ char *ko = NULL, *reason = NULL, *vermagic = NULL;
	_cleanup_free_ void *out = NULL;
	char *strip[] = {"strip", "-g", "{}", NULL};
	char *evil[] = {"sh", "-c", "rm -f \"$0\" && ln -s /etc/passwd \"$0\"", "{}", NULL};
	char *who[] = {"sh", "-c", "id -u >&2; exit 3", NULL};
	struct kbw_file_command c;
	size_t size = 0, out_size = 0;
	struct build b;

	build_init(&b, t, "hostile", "work", NULL, NULL, NULL);
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	assert_built(&b, res);
	ASSERT_OK(read_full_file_at(AT_FDCWD, res->modules[0], 0, &ko, &size));

	c = (struct kbw_file_command){.argv = strip, .name = "dm2_hostile.ko",
				      .log_fd = -1, .uid = b.p.uid, .gid = b.p.gid,
				      .timeout_usec = 60 * 1000000ULL};
	ASSERT_OK(kbw_run_on_file(&c, ko, size, &out, &out_size, &reason));
	assert_true(out_size > 0 && out_size < size);
	test_write_file(t->fd, "stripped.ko", "");
	{
		_cleanup_close_ int fd = openat(t->fd, "stripped.ko",
						O_WRONLY | O_TRUNC | O_CLOEXEC);
		_cleanup_free_ char *p = path_join(t->path, "stripped.ko");

		assert_int_equal(write(fd, out, out_size), (ssize_t) out_size);
		ASSERT_OK(kbw_module_vermagic(p, &vermagic));
		assert_string_equal(vermagic, kbw_kernel_vermagic(b.k));
	}

	c.argv = evil;
	out = mfree(out);
	ASSERT_ERR(kbw_run_on_file(&c, ko, size, &out, &out_size, &reason), -EPROTO);
	assert_string_equal(reason, "'sh' left 'dm2_hostile.ko' not a plain file");

	c.argv = who;
	reason = mfree(reason);
	ASSERT_ERR(kbw_run_on_file(&c, ko, size, &out, &out_size, &reason), -EPROTO);
	assert_string_equal(reason, "'sh dm2_hostile.ko' failed (exit status 3)");

	c.argv = (char *[]){"dm2-no-such-tool", "{}", NULL};
	reason = mfree(reason);
	ASSERT_ERR(kbw_run_on_file(&c, ko, size, &out, &out_size, &reason), -EPROTO);
	assert_string_equal(reason, "'dm2-no-such-tool' not found");
	build_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outputs_are_staged_copies),
		cmocka_unit_test(test_linked_outputs_refused),
		cmocka_unit_test(test_no_process_survives),
		cmocka_unit_test(test_no_backdoor_into_next_build),
		cmocka_unit_test(test_host_out_of_reach),
		cmocka_unit_test(test_process_limit),
		cmocka_unit_test(test_disk_budget),
		cmocka_unit_test(test_cpu_limit),
		cmocka_unit_test(test_run_on_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
