/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libkbuild-wrap against the real installed kernel headers: probe, sandboxed builds. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <dirent.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "libkbuild-wrap.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

static void kbw_unrefp(struct kbw_kernel **k)
{
	kbw_kernel_unref(*k);
}
static void resultp(struct kbw_build_result **r)
{
	kbw_build_result_free(*r);
}

static char *modules_dir(struct test_root *t, const char *kver)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/lib/modules/%s", t->path, kver) > 0);
	return p;
}

static struct kbw_kernel *probe(struct test_root *t, const char *kver)
{
	_cleanup_free_ char *dir = modules_dir(t, kver);
	struct kbw_kernel *k = NULL;

	ASSERT_OK(kbw_kernel_probe(dir, kver, &k));
	return k;
}

/* A copy of the real build tree's top files in the fake root: its relative scripts/tools
 * links are kept working through ROOT/usr/lib/linux-kbuild-X.Y -> the real one. */
static void copy_build_tree(struct test_root *t)
{
	char real_scripts[PATH_MAX], link[PATH_MAX];
	_cleanup_free_ char *kbuild = NULL;

	assert_int_equal(test_system("cp -a '%s' '%s/usr-src-copy'", t->tree, t->path),
			 0);
	snprintf(link, sizeof(link), "%s/scripts", t->tree);
	assert_non_null(realpath(link, real_scripts));
	/* real_scripts = /usr/lib/linux-kbuild-6.1/scripts on Debian */
	kbuild = strndup(real_scripts, strlen(real_scripts) - strlen("/scripts"));
	assert_int_equal(
		test_system("rm -rf '%s/usr-src-copy/scripts' '%s/usr-src-copy/tools' && "
			    "ln -s '%s/scripts' '%s/usr-src-copy/scripts' && "
			    "ln -s '%s/tools' '%s/usr-src-copy/tools'",
			    t->path, t->path, kbuild, t->path, kbuild, t->path),
		0);
	snprintf(link, sizeof(link), "lib/modules/%s/build", t->kver);
	assert_int_equal(unlinkat(t->fd, link, 0), 0);
	snprintf(real_scripts, sizeof(real_scripts), "%s/usr-src-copy", t->path);
	assert_int_equal(symlinkat(real_scripts, t->fd, link), 0);
}

static void test_probe_real_tree(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(kbw_unrefp) struct kbw_kernel *k = probe(t, t->kver);
	const char *reason = "unset", *id;

	assert_true(kbw_kernel_complete(k, &reason));
	assert_null(reason);
	assert_string_equal(kbw_kernel_release(k), t->kver);
	assert_string_equal(kbw_kernel_build_dir(k), t->tree);
	assert_string_equal(kbw_kernel_arch(k), "x86_64");
	assert_string_equal(kbw_kernel_srcarch(k), "x86");
	assert_string_equal(kbw_kernel_config(k, "CONFIG_MODULES"), "y");
	assert_string_equal(kbw_kernel_config(k, "MODULES"), "y");
	assert_null(kbw_kernel_config(k, "CONFIG_DM2_NO_SUCH_OPTION"));
	assert_string_equal(kbw_kernel_sig_hash(k),
			    kbw_kernel_config(k, "MODULE_SIG_HASH"));
	assert_int_equal(kbw_kernel_compression(k), KBW_COMPRESSION_NONE);
	/* Debian: CC from .kernelvariables "$(if ...) $(CROSS_COMPILE)gcc-12". */
	assert_true(startswith(kbw_kernel_cc(k), "gcc"));
	assert_false(kbw_kernel_llvm(k));
	assert_true(kbw_kernel_cc_available(k));
	assert_true(startswith(kbw_kernel_cc_version_text(k), kbw_kernel_cc(k)));
	assert_true(startswith(kbw_kernel_vermagic(k), t->kver));
	assert_non_null(endswith(kbw_kernel_vermagic(k), "mod_unload modversions "));
	/* Debian's kernel.release says 6.1.NNN: the upstream version, for ranges. */
	assert_non_null(kbw_kernel_version(k));
	assert_true(startswith(t->kver, "6.1.")
			    ? startswith(kbw_kernel_version(k), "6.1.") != NULL
			    : true);
	id = kbw_kernel_identity(k);
	assert_non_null(id);
	assert_int_equal(strlen(id), 64);
}

static void test_probe_identity_changes(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(kbw_unrefp) struct kbw_kernel *real = probe(t, t->kver);
	_cleanup_(kbw_unrefp) struct kbw_kernel *copy = NULL, *changed = NULL;
	_cleanup_free_ char *real_id = strdup(kbw_kernel_identity(real));

	copy_build_tree(t);
	copy = probe(t, t->kver);
	assert_true(kbw_kernel_complete(copy, NULL));
	/* Same content, same identity, wherever the tree lives. */
	assert_string_equal(kbw_kernel_identity(copy), real_id);

	assert_int_equal(
		test_system("sed -i "
			    "'s/^CONFIG_LOCALVERSION=.*/CONFIG_LOCALVERSION=\"-dm2\"/' "
			    "'%s/usr-src-copy/.config'",
			    t->path),
		0);
	changed = probe(t, t->kver);
	assert_true(kbw_kernel_complete(changed, NULL));
	assert_string_equal(kbw_kernel_config(changed, "LOCALVERSION"), "-dm2");
	assert_string_not_equal(kbw_kernel_identity(changed), real_id);
}

static void test_probe_incomplete(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(kbw_unrefp) struct kbw_kernel *k = NULL, *nobuild = NULL,
						*dangling = NULL, *wrong = NULL;
	_cleanup_free_ char *pkg = NULL;
	const char *reason = NULL;

	copy_build_tree(t);
	assert_int_equal(test_system("rm '%s/usr-src-copy/Module.symvers'", t->path), 0);
	k = probe(t, t->kver);
	assert_false(kbw_kernel_complete(k, &reason));
	assert_non_null(strstr(reason, "Module.symvers"));
	assert_true(asprintf(&pkg, "linux-headers-%s", t->kver) > 0);
	assert_non_null(strstr(reason, pkg));
	assert_null(kbw_kernel_identity(k));

	/* No build link at all. */
	assert_int_equal(mkdir_p_at(t->fd, "lib/modules/9.9.9-nobuild", 0755), 0);
	nobuild = probe(t, "9.9.9-nobuild");
	assert_false(kbw_kernel_complete(nobuild, &reason));
	assert_non_null(strstr(reason, "build' is missing"));
	assert_non_null(strstr(reason, "linux-headers-9.9.9-nobuild"));
	assert_string_equal(kbw_kernel_version(nobuild), "9.9.9");

	/* Dangling build link. */
	assert_int_equal(mkdir_p_at(t->fd, "lib/modules/9.9.8-dangling", 0755), 0);
	assert_int_equal(symlinkat("/nonexistent/dm2-tree", t->fd,
				   "lib/modules/9.9.8-dangling/build"),
			 0);
	dangling = probe(t, "9.9.8-dangling");
	assert_false(kbw_kernel_complete(dangling, &reason));
	assert_non_null(strstr(reason, "/nonexistent/dm2-tree"));

	/* A tree whose UTS_RELEASE is another release. */
	assert_int_equal(mkdir_p_at(t->fd, "lib/modules/9.9.7-other", 0755), 0);
	assert_int_equal(symlinkat(t->tree, t->fd, "lib/modules/9.9.7-other/build"), 0);
	wrong = probe(t, "9.9.7-other");
	assert_false(kbw_kernel_complete(wrong, &reason));
	assert_non_null(strstr(reason, "UTS_RELEASE"));

	/* No modules directory: -ENOENT. */
	{
		_cleanup_free_ char *dir = modules_dir(t, "0.0.0-none");
		struct kbw_kernel *none = NULL;

		ASSERT_ERR(kbw_kernel_probe(dir, "0.0.0-none", &none), -ENOENT);
	}
}

struct build {
	struct test_root *t;
	struct kbw_kernel *k;
	struct kbw_build_params p;
	char *src, *work, *log;
	uid_t uid;
	gid_t gid;
};

static void build_init(struct build *b, struct test_root *t, const char *module,
		       const char *work)
{
	struct passwd *pw = getpwnam("nobody");

	assert_non_null(pw);
	*b = (struct build){.t = t, .uid = pw->pw_uid, .gid = pw->pw_gid};
	b->k = probe(t, t->kver);
	assert_true(asprintf(&b->src, "%s/tests/data/modules/%s",
			     getenv("DM2_SOURCE_DIR") ?: DM2_CMAKE_SOURCE_DIR,
			     module) > 0);
	assert_true(asprintf(&b->work, "%s/%s", t->path, work) > 0);
	assert_true(asprintf(&b->log, "%s/%s.log", t->path, work) > 0);
	b->p = (struct kbw_build_params){
		.source_dir = b->src,
		.work_dir = b->work,
		.log_path = b->log,
		.jobs = 2,
		.uid = b->uid,
		.gid = b->gid,
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
}

static void test_build_one(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	_cleanup_free_ char *vermagic = NULL, *license = NULL;
	char *mods[] = {"dm2_hello.ko", NULL};
	struct build b;

	build_init(&b, t, "hello", "work-hello");
	b.p.modules = mods;
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	if (!kbw_build_succeeded(res))
		test_system("cat '%s'", b.log);
	assert_true(kbw_build_succeeded(res));
	assert_null(res->reason);
	assert_int_equal(res->exit_status, 0);
	assert_int_equal(strv_length(res->modules), 1);
	assert_non_null(endswith(res->modules[0], "/work-hello/dm2_hello.ko"));
	assert_non_null(res->symvers);

	/* The release the tree reports is the one the module carries. */
	ASSERT_OK(kbw_module_vermagic(res->modules[0], &vermagic));
	assert_true(strneq(vermagic, t->kver, strlen(t->kver)) &&
		    vermagic[strlen(t->kver)] == ' ');
	assert_string_equal(vermagic, kbw_kernel_vermagic(b.k));
	ASSERT_OK(kbw_module_info(res->modules[0], "license", &license));
	assert_string_equal(license, "GPL");
	{
		char *x = NULL;

		ASSERT_ERR(kbw_module_info(res->modules[0], "dm2-no-such-key", &x),
			   -ENODATA);
	}
	/* The source tree is never written. */
	assert_int_equal(test_system("test ! -e '%s/dm2_hello.ko'", b.src), 0);
	/* A work dir that exists is refused. */
	{
		struct kbw_build_result *again = NULL;

		assert_true(kbw_build(b.k, &b.p, &again) < 0);
	}
	build_done(&b);
}

static void test_build_two_modules_and_extra_symbols(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *pair = NULL, *user = NULL,
						   *alone = NULL;
	char *mods[] = {"dm2_pair_a.ko", "dm2_pair_b.ko", NULL};
	char *user_mods[] = {"dm2_user.ko", NULL};
	struct build b, u, a;

	build_init(&b, t, "pair", "work-pair");
	b.p.modules = mods;
	ASSERT_OK(kbw_build(b.k, &b.p, &pair));
	assert_true(kbw_build_succeeded(pair));
	assert_int_equal(strv_length(pair->modules), 2);
	assert_non_null(pair->symvers);
	assert_int_equal(test_system("grep -q dm2_pair_a_answer '%s'", pair->symvers), 0);

	/* Another package linking against it through KBUILD_EXTRA_SYMBOLS. */
	char *extra[] = {pair->symvers, NULL};
	build_init(&u, t, "user", "work-user");
	u.p.modules = user_mods;
	u.p.extra_symbols = extra;
	ASSERT_OK(kbw_build(u.k, &u.p, &user));
	if (!kbw_build_succeeded(user))
		test_system("cat '%s'", u.log);
	assert_true(kbw_build_succeeded(user));

	/* Without them modpost reports the symbol as undefined. */
	build_init(&a, t, "user", "work-user-alone");
	a.p.modules = user_mods;
	ASSERT_OK(kbw_build(a.k, &a.p, &alone));
	assert_false(kbw_build_succeeded(alone));
	assert_non_null(alone->reason);
	assert_non_null(strstr(alone->reason, "dm2_pair_a_answer"));
	assert_non_null(strstr(alone->reason, "undefined!"));
	build_done(&b);
	build_done(&u);
	build_done(&a);
}

static void test_build_compile_error(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	char *mods[] = {"dm2_broken.ko", NULL};
	struct build b;

	build_init(&b, t, "broken", "work-broken");
	b.p.modules = mods;
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	assert_false(kbw_build_succeeded(res));
	assert_int_not_equal(res->exit_status, 0);
	assert_false(res->timed_out);
	assert_non_null(res->reason);
	assert_non_null(strstr(res->reason, "dm2_broken.c:"));
	/* Shown with the real work dir, not the sandbox mount point. */
	assert_true(startswith(res->reason, b.work));
	assert_non_null(strstr(res->reason, "error:"));
	assert_non_null(strstr(res->reason, "dm2_no_such_identifier"));
	assert_null(res->modules);
	build_done(&b);
}

static void test_build_missing_module(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	char *mods[] = {"dm2_hello.ko", "sub/dm2_elsewhere.ko", NULL};
	struct build b;

	build_init(&b, t, "hello", "work-missing");
	b.p.modules = mods;
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	assert_false(kbw_build_succeeded(res));
	assert_int_equal(res->exit_status, 0);
	assert_string_equal(res->reason, "module 'dm2_elsewhere.ko' was not produced");
	build_done(&b);
}

static void test_build_sandbox(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	_cleanup_free_ char *kdir_var = NULL, *port_var = NULL, *uid_text = NULL, *f = NULL;
	_cleanup_close_ int lfd = -EBADF;
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	char *mods[] = {"dm2_sandbox.ko", NULL};
	struct build b;
	int port, afd;

	/* A listener on the host's loopback: reachable from here, not from the build. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *) &sa, &sl), 0);
	port = ntohs(sa.sin_port);
	assert_true(asprintf(&port_var, "DM2_TEST_PORT=%d", port) > 0);

	build_init(&b, t, "sandbox", "work-sandbox");
	/* Control: the probe itself does reach the listener outside the sandbox. */
	assert_int_equal(test_system("python3 '%s/netprobe.py' %d | grep -qx connected",
				     b.src, port),
			 0);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	close(afd);

	assert_true(asprintf(&kdir_var, "DM2_TEST_KDIR=%s", kbw_kernel_build_dir(b.k)) >
		    0);
	char *vars[] = {port_var, kdir_var, NULL};
	b.p.modules = mods;
	b.p.make_vars = vars;
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	if (!kbw_build_succeeded(res))
		test_system("cat '%s'", b.log);
	assert_true(kbw_build_succeeded(res));
	assert_true(res->network_isolated);

	ASSERT_OK(read_full_file_at(AT_FDCWD, b.log, 0, &f, NULL));
	assert_non_null(strstr(f, "dm2-probe net failed:"));
	/* Nothing reached the listener. */
	assert_true(accept4(lfd, NULL, NULL, SOCK_CLOEXEC) < 0);
	assert_int_equal(errno, EAGAIN);

	/* The build ran as the unprivileged user, and the result says so truthfully. */
	uid_text = strdup(strstr(f, "dm2-probe uid ") + 14);
	assert_int_equal((uid_t) strtoul(uid_text, NULL, 10), res->build_uid);
	assert_int_not_equal(res->build_uid, 0);
	assert_int_equal(res->build_uid, b.uid);

	/* rlimits: address space as asked (ulimit -v is in KiB), no core dumps. */
	assert_non_null(strstr(f, "dm2-probe limits 4194304 0 \n"));

	/* The kernel build tree is read-only in the sandbox. */
	assert_null(strstr(f, "dm2-probe kdir writable"));
	build_done(&b);
}

static void test_build_timeout(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	char *mods[] = {"dm2_hang.ko", NULL};
	_cleanup_free_ char *seconds = NULL, *var = NULL;
	uint64_t start;
	struct build b;

	/* A duration no other test uses: its sleep is ours. */
	assert_true(asprintf(&seconds, "60.%d", (int) getpid()) > 0);
	assert_true(asprintf(&var, "DM2_HANG_SECONDS=%s", seconds) > 0);
	char *vars[] = {var, NULL};
	build_init(&b, t, "hang", "work-hang");
	b.p.modules = mods;
	b.p.make_vars = vars;
	b.p.timeout_usec = 2 * 1000000ULL;
	start = now_mono_usec();
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	assert_true(now_mono_usec() - start < 20 * 1000000ULL);
	assert_true(res->timed_out);
	assert_false(kbw_build_succeeded(res));
	assert_int_equal(res->exit_status, -1);
	assert_non_null(strstr(res->reason, "timed out"));
	/* Nothing of the build (the sleep) survives in its process group. */
	assert_int_not_equal(test_system("pgrep -f '^sleep %s$' >/dev/null", seconds), 0);
	build_done(&b);
}

static void test_build_command(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(resultp) struct kbw_build_result *res = NULL;
	char *mods[] = {"dm2_hello.ko", NULL};
	struct build b;

	/* DKMS MAKE[] style: a shell command with kernelver and kernel_source_dir set. */
	build_init(&b, t, "hello", "work-command");
	b.p.modules = mods;
	b.p.command = "test \"$kernelver\" = \"$KERNELRELEASE\" && "
		      "make -C \"$kernel_source_dir\" M=\"$PWD\" CC=\"$CC\" modules";
	ASSERT_OK(kbw_build(b.k, &b.p, &res));
	if (!kbw_build_succeeded(res))
		test_system("cat '%s'", b.log);
	assert_true(kbw_build_succeeded(res));
	build_done(&b);
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* Field n (1-based as in proc(5): 4 ppid, 6 session) of /proc/PID/stat, and its state. */
static long proc_stat_field(pid_t pid, int n, char *ret_state)
{
	_cleanup_free_ char *text = NULL, *path = NULL;
	char *p;
	long v = -1;

	assert_true(asprintf(&path, "/proc/%d/stat", (int) pid) > 0);
	if (read_full_file_at(AT_FDCWD, path, 0, &text, NULL) < 0)
		return -1;
	p = strrchr(text, ')'); /* the command name may hold spaces and parentheses */
	if (!p || p[1] != ' ')
		return -1;
	if (ret_state)
		*ret_state = p[2];
	p += 2; /* field 3 */
	for (int i = 3; i <= n && p; i++) {
		v = strtol(p, NULL, 10);
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return v;
}

static char *proc_comm(pid_t pid)
{
	char *text = NULL, path[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
	if (read_full_file_at(AT_FDCWD, path, 0, &text, NULL) < 0)
		return NULL;
	text[strcspn(text, "\n")] = '\0';
	return text;
}

/* Live (non-zombie) processes whose session or parent is 'id' (by 'field'); sets
 * *ret_sleep when one of them is sleep(1) and *ret_first to one of them. */
static int count_procs(int field, pid_t id, bool *ret_sleep, pid_t *ret_first)
{
	_cleanup_(closedirp) DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	if (ret_sleep)
		*ret_sleep = false;
	while ((de = readdir(d))) {
		pid_t pid = (pid_t) strtol(de->d_name, NULL, 10);
		char state = 0;

		if (pid <= 0 || proc_stat_field(pid, field, &state) != id || state == 'Z')
			continue;
		n++;
		if (ret_first)
			*ret_first = pid;
		if (ret_sleep) {
			_cleanup_free_ char *comm = proc_comm(pid);

			if (comm && streq(comm, "sleep"))
				*ret_sleep = true;
		}
	}
	return n;
}

/* Fork a process that runs the hanging build; return it once the build's $(shell sleep
 * 60) runs, with the session of the build (its guardian's pid). */
static pid_t start_hanging_build(struct build *b, void (*on_term)(int),
				 pid_t *ret_session)
{
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct kbw_build_result *res = NULL;
		uint64_t start = now_mono_usec();
		int r;

		if (on_term) {
			struct sigaction sa = {.sa_handler = on_term};

			assert_int_equal(sigaction(SIGTERM, &sa, NULL), 0);
		}
		r = kbw_build(b->k, &b->p, &res);
		/* 0: cancelled promptly, as the test wants. */
		_exit(r < 0							? 2
		      : !res->reason || !strstr(res->reason, "build cancelled") ? 3
		      : kbw_build_succeeded(res)				? 4
		      : now_mono_usec() - start > 100 * 1000000ULL		? 5
										: 0);
	}
	for (int i = 0; i < 1200; i++) {
		pid_t guardian = 0;
		bool sleeping = false;

		if (count_procs(4, pid, NULL, &guardian) == 1 &&
		    count_procs(6, guardian, &sleeping, NULL) > 0 && sleeping) {
			*ret_session = guardian;
			return pid;
		}
		usleep(100 * 1000);
	}
	(void) kill(pid, SIGKILL);
	fail_msg("the hanging build did not reach its 'sleep 60'");
	return -1;
}

/* No process of the build's session is left within a few seconds. */
static void assert_session_gone(pid_t session)
{
	int n = 0;

	for (int i = 0; i < 50; i++) {
		n = count_procs(6, session, NULL, NULL);
		if (n == 0)
			return;
		usleep(100 * 1000);
	}
	test_system("ps -o pid,ppid,sid,stat,args -s %d", (int) session);
	fail_msg("%d processes of the build (session %d) survive", n, (int) session);
}

static void test_build_dies_with_caller(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	char *mods[] = {"dm2_hang.ko", NULL};
	struct build b;
	pid_t pid, session = 0;
	int status;

	build_init(&b, t, "hang", "work-orphan");
	b.p.modules = mods;
	pid = start_hanging_build(&b, NULL, &session);
	/* As the daemon's shutdown does to a dm2 process that is building. */
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_session_gone(session);
	build_done(&b);
}

static void on_sigterm_cancel(int sig)
{
	kbw_build_cancel_all();
}

static void test_build_cancel_from_signal_handler(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	char *mods[] = {"dm2_hang.ko", NULL};
	uint64_t start;
	struct build b;
	pid_t pid, session = 0;
	int status = 0;

	build_init(&b, t, "hang", "work-cancel");
	b.p.modules = mods;
	pid = start_hanging_build(&b, on_sigterm_cancel, &session);
	assert_int_equal(kill(pid, SIGTERM), 0);
	start = now_mono_usec();
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_mono_usec() - start > 10 * 1000000ULL) {
			(void) kill(pid, SIGKILL);
			fail_msg(
				"kbw_build() did not return 10 s after the cancellation");
		}
		usleep(50 * 1000);
	}
	/* kbw_build() returned "build cancelled" (see start_hanging_build()). */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_session_gone(session);
	build_done(&b);
}

static void test_probe_identity_is_lazy(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new(.kernel = true);
	_cleanup_(kbw_unrefp) struct kbw_kernel *k = NULL;
	_cleanup_free_ char *id = NULL;

	/* A copy whose Module.symvers cannot be read after the probe: the probe does not
	 * read it (complete only checks that it exists), the identity does, once. */
	copy_build_tree(t);
	k = probe(t, t->kver);
	assert_true(kbw_kernel_complete(k, NULL));
	assert_int_equal(
		test_system("mv '%s/usr-src-copy/Module.symvers' '%s/symvers.saved' "
			    "&& mkdir '%s/usr-src-copy/Module.symvers'",
			    t->path, t->path, t->path),
		0);
	assert_null(kbw_kernel_identity(k));
	assert_int_equal(
		test_system("rmdir '%s/usr-src-copy/Module.symvers' && "
			    "mv '%s/symvers.saved' '%s/usr-src-copy/Module.symvers'",
			    t->path, t->path, t->path),
		0);
	id = strdup(kbw_kernel_identity(k));
	assert_int_equal(strlen(id), 64);
	/* Cached: the same pointer, even once the file is gone. */
	assert_int_equal(test_system("rm '%s/usr-src-copy/Module.symvers'", t->path), 0);
	assert_ptr_equal(kbw_kernel_identity(k), kbw_kernel_identity(k));
	assert_string_equal(kbw_kernel_identity(k), id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_real_tree),
		cmocka_unit_test(test_probe_identity_changes),
		cmocka_unit_test(test_probe_incomplete),
		cmocka_unit_test(test_build_one),
		cmocka_unit_test(test_build_two_modules_and_extra_symbols),
		cmocka_unit_test(test_build_compile_error),
		cmocka_unit_test(test_build_missing_module),
		cmocka_unit_test(test_build_sandbox),
		cmocka_unit_test(test_build_timeout),
		cmocka_unit_test(test_build_command),
		cmocka_unit_test(test_build_dies_with_caller),
		cmocka_unit_test(test_build_cancel_from_signal_handler),
		cmocka_unit_test(test_probe_identity_is_lazy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
