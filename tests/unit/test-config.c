/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2d.conf(5): defaults, every key, and one FILE:LINE error per bad line. */
#include <fcntl.h>

#include "core/config.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"
#include "tests.h"

#define CONF "etc/dm2/dm2d.conf"
#define SEC 1000000ULL

/* Every message config_load() logs, one line each, through the journal hook. */
static char *logged;

static void capture(int level, const char *file, int line, const char *func,
		    const char *message, const char *program, const char *recipe,
		    const char *kernel, const char *job)
{
	char *n = strjoin(strempty(logged), message, "\n");

	assert_non_null(n);
	free(logged);
	logged = n;
}

static int setup(void **state)
{
	log_journal = capture;
	log_set_target(LOG_TARGET_JOURNAL);
	return 0;
}

/* Load text as ROOT/etc/dm2/dm2d.conf; the log of the load is in `logged`. */
static int load(struct test_root *t, const char *text, struct dm2_config **ret)
{
	logged = mfree(logged);
	if (text)
		test_write_file(t->fd, CONF, text);
	return config_load(t->fd, NULL, ret);
}

static void assert_logged(const char *line)
{
	if (!logged || !strstr(logged, line))
		fail_msg("expected '%s' in the log, got:\n%s", line, strempty(logged));
}

static void test_defaults(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(config_freep) struct dm2_config *c = NULL;

	ASSERT_OK(load(t, NULL, &c));
	assert_null(logged);
	assert_int_equal(c->jobs, 0);
	assert_int_equal(c->settle_usec, 5 * SEC);
	assert_int_equal(c->hook_timeout_usec, 900 * SEC);
	assert_string_equal(c->build_user, "dm2-build");
	assert_int_equal(c->build_timeout_usec, 1800 * SEC);
	assert_int_equal(c->build_memory_max, 4ULL << 30);
	assert_false(c->allow_non_gpl);
	assert_int_equal(c->make_jobs, 0);
	assert_int_equal(c->build_uid_min, 60928);
	assert_int_equal(c->build_uid_max, 61183);
	assert_int_equal(c->build_processes_max, 512);
	assert_int_equal(c->build_cpu_usec, 600 * SEC);
	assert_int_equal(c->build_disk_max, 2ULL << 30);
	assert_true(c->sign);
	assert_null(c->sign_key);
	assert_null(c->sign_cert);
	assert_null(c->sign_hash);
	assert_int_equal(c->n_mirrors, 0);
	assert_null(c->ca_file);
	assert_int_equal(c->max_download_size, 512ULL << 20);
	assert_int_equal(c->connect_timeout_usec, 30 * SEC);
	assert_int_equal(c->stall_timeout_usec, 60 * SEC);
	assert_int_equal(c->retries, 3);
	assert_int_equal(c->max_unpacked_size, 2ULL << 30);
	assert_int_equal(c->max_entries, 200000);
	assert_int_equal(c->cache_max_size, 2ULL << 30);
	assert_null(c->remote_cache);
	assert_false(c->remote_push);

	/* An empty file, or only comments, is the defaults too. */
	c = config_free(c);
	ASSERT_OK(load(t, "# nothing\n; set\n\n[Daemon]\n", &c));
	assert_int_equal(c->settle_usec, 5 * SEC);
	assert_null(logged);
}

static void test_every_key(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(config_freep) struct dm2_config *c = NULL;

	ASSERT_OK(load(t,
		       "[Daemon]\n"
		       "Jobs=3\n"
		       "SettleSec=7\n"
		       "HookTimeoutSec=60\n"
		       "[Build]\n"
		       "User=builder\n"
		       "TimeoutSec=120\n"
		       "MemoryMax=512M\n"
		       "AllowNonGPL=yes\n"
		       "MakeJobs=2\n"
		       "UidRange=70000-70099\n"
		       "ProcessMax=64\n"
		       "CPUTimeMaxSec=30\n"
		       "DiskMax=100M\n"
		       "[Signing]\n"
		       "Sign=no\n"
		       "Key=/etc/keys/mok.key\n"
		       "Certificate=/etc/keys/mok.der\n"
		       "Hash=sha384\n"
		       "[Fetch]\n"
		       "Mirror=https://github.com/ http://mirror.example/gh/\n"
		       "Mirror=https://a.example/  \t https://b.example/x/\n"
		       "CAFile=/etc/ssl/forge.pem\n"
		       "MaxDownloadSize=1G\n"
		       "ConnectTimeoutSec=4\n"
		       "StallTimeoutSec=9\n"
		       "Retries=0\n"
		       "[Unpack]\n"
		       "MaxUnpackedSize=64K\n"
		       "MaxEntries=1234\n"
		       "[Cache]\n"
		       "MaxSize=10G\n"
		       "Remote=https://cache.example/dm2\n"
		       "Push=true\n",
		       &c));
	assert_null(logged);
	assert_int_equal(c->jobs, 3);
	assert_int_equal(c->settle_usec, 7 * SEC);
	assert_int_equal(c->hook_timeout_usec, 60 * SEC);
	assert_string_equal(c->build_user, "builder");
	assert_int_equal(c->build_timeout_usec, 120 * SEC);
	assert_int_equal(c->build_memory_max, 512ULL << 20);
	assert_true(c->allow_non_gpl);
	assert_int_equal(c->make_jobs, 2);
	assert_int_equal(c->build_uid_min, 70000);
	assert_int_equal(c->build_uid_max, 70099);
	assert_int_equal(c->build_processes_max, 64);
	assert_int_equal(c->build_cpu_usec, 30 * SEC);
	assert_int_equal(c->build_disk_max, 100ULL << 20);
	assert_false(c->sign);
	assert_string_equal(c->sign_key, "/etc/keys/mok.key");
	assert_string_equal(c->sign_cert, "/etc/keys/mok.der");
	assert_string_equal(c->sign_hash, "sha384");
	assert_int_equal(c->n_mirrors, 2);
	assert_string_equal(c->mirrors[0].prefix, "https://github.com/");
	assert_string_equal(c->mirrors[0].replace, "http://mirror.example/gh/");
	assert_string_equal(c->mirrors[1].prefix, "https://a.example/");
	assert_string_equal(c->mirrors[1].replace, "https://b.example/x/");
	assert_string_equal(c->ca_file, "/etc/ssl/forge.pem");
	assert_int_equal(c->max_download_size, 1ULL << 30);
	assert_int_equal(c->connect_timeout_usec, 4 * SEC);
	assert_int_equal(c->stall_timeout_usec, 9 * SEC);
	assert_int_equal(c->retries, 0);
	assert_int_equal(c->max_unpacked_size, 64ULL << 10);
	assert_int_equal(c->max_entries, 1234);
	assert_int_equal(c->cache_max_size, 10ULL << 30);
	assert_string_equal(c->remote_cache, "https://cache.example/dm2");
	assert_true(c->remote_push);
}

/* The spellings of a boolean, and a repeated key: the last one wins (no leak of the first
 * under ASan). */
static void test_bools_and_repeats(void **state)
{
	static const char *const yes[] = {"yes", "true", "1", "on"};
	static const char *const no[] = {"no", "false", "0", "off"};
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		_cleanup_(config_freep) struct dm2_config *c = NULL;
		_cleanup_free_ char *text = strjoin("[Build]\nAllowNonGPL=", yes[i],
						    "\n[Signing]\nSign=", no[i], "\n");

		ASSERT_OK(load(t, text, &c));
		assert_true(c->allow_non_gpl);
		assert_false(c->sign);
	}

	_cleanup_(config_freep) struct dm2_config *c = NULL;
	ASSERT_OK(load(t,
		       "[Build]\nUser=a\nUser=b\n[Signing]\nHash=sha256\nHash=sha512\n"
		       "[Cache]\nRemote=http://one/\n[Cache]\nRemote=http://two/\n",
		       &c));
	assert_string_equal(c->build_user, "b");
	assert_string_equal(c->sign_hash, "sha512");
	assert_string_equal(c->remote_cache, "http://two/");
}

/* Each bad value fails the load and logs FILE:LINE, the value and the key. */
static void test_bad_values(void **state)
{
	static const struct {
		const char *section, *key, *value;
	} bad[] = {
		{"Daemon", "Jobs", "-1"},
		{"Daemon", "Jobs", "many"},
		{"Daemon", "SettleSec", "5s"},
		{"Daemon", "HookTimeoutSec", "-3"},
		{"Daemon", "SettleSec", "18446744073709551615"},
		{"Build", "TimeoutSec", ""},
		{"Build", "MemoryMax", "lots"},
		{"Build", "MemoryMax", "4Q"},
		{"Build", "AllowNonGPL", "maybe"},
		{"Build", "MakeJobs", "2.5"},
		{"Build", "UidRange", "70000"},
		{"Build", "UidRange", "0-10"},
		{"Build", "UidRange", "20-10"},
		{"Build", "UidRange", "1-2147483647"},
		{"Build", "UidRange", "a-b"},
		{"Build", "ProcessMax", "many"},
		{"Build", "CPUTimeMaxSec", "-1"},
		{"Build", "DiskMax", "big"},
		{"Signing", "Sign", "Yes please"},
		{"Signing", "Hash", "md5"},
		{"Fetch", "MaxDownloadSize", "-1"},
		{"Fetch", "ConnectTimeoutSec", "x"},
		{"Fetch", "StallTimeoutSec", "1.5"},
		{"Fetch", "Retries", "three"},
		{"Unpack", "MaxUnpackedSize", "4KiB"},
		{"Unpack", "MaxEntries", "-5"},
		{"Cache", "MaxSize", "2X"},
		{"Cache", "Remote", "ftp://cache.example/"},
		{"Cache", "Remote", "https://a b/"},
		{"Cache", "Push", "2"},
	};
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_(config_freep) struct dm2_config *c = NULL;
		_cleanup_free_ char *text = NULL, *want = NULL;

		assert_true(asprintf(&text, "# line 1\n[%s]\n%s=%s\n", bad[i].section,
				     bad[i].key, bad[i].value) > 0);
		assert_true(asprintf(&want, CONF ":3: invalid value '%s' for %s=\n",
				     bad[i].value, bad[i].key) > 0);
		if (load(t, text, &c) != -EINVAL)
			fail_msg("'%s=%s' was not refused", bad[i].key, bad[i].value);
		assert_null(c);
		assert_logged(want);
	}
}

static void test_bad_lines(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(config_freep) struct dm2_config *c = NULL;

	/* A Mirror= needs two URL prefixes. */
	ASSERT_ERR(load(t, "[Fetch]\nMirror=https://only.example/\n", &c), -EINVAL);
	assert_logged(CONF ":2: Mirror= takes two URL prefixes, 'PREFIX MIRROR'\n");
	ASSERT_ERR(load(t, "[Fetch]\nMirror=https://a/ b c\n", &c), -EINVAL);
	assert_logged(CONF ":2: Mirror= takes two URL prefixes");
	ASSERT_ERR(load(t, "[Fetch]\n\nMirror=https://a/ mirror/\n", &c), -EINVAL);
	assert_logged(CONF ":3: Mirror= takes two URL prefixes");

	/* Unknown keys and sections, and a key in the wrong section: one warning each, the
	 * rest of the file applies (a newer dm2's key must not stop dm2 status). */
	ASSERT_OK(load(t, "[Daemon]\nJobz=2\nJobs=4\n", &c));
	assert_logged(CONF ":2: unknown setting 'Jobz' in section [Daemon], ignoring\n");
	assert_int_equal(c->jobs, 4);
	c = config_free(c);
	ASSERT_OK(load(t, "[Signing]\nSign=no\n[Build]\nSign=yes\n", &c));
	assert_logged(CONF ":4: unknown setting 'Sign' in section [Build], ignoring\n");
	assert_false(c->sign);
	c = config_free(c);
	ASSERT_OK(load(t, "[Nope]\nJobs=1\n", &c));
	assert_logged(CONF ":2: unknown setting 'Jobs' in section [Nope], ignoring\n");
	assert_int_equal(c->jobs, 0);
	c = config_free(c);
	/* A bad value beside an unknown key still fails the load. */
	ASSERT_ERR(load(t, "[Daemon]\nJobz=2\nJobs=x\n", &c), -EINVAL);
	assert_logged(CONF ":3: invalid value 'x' for Jobs=\n");

	/* Syntax errors of the INI reader name their line too. */
	ASSERT_ERR(load(t, "Jobs=1\n", &c), -EINVAL);
	assert_logged(CONF ":1: assignment outside of any [Section]\n");
	ASSERT_ERR(load(t, "[Daemon]\n\nJobs\n", &c), -EINVAL);
	assert_logged(CONF ":3: expected 'Key=Value' or '[Section]'\n");
	ASSERT_ERR(load(t, "[Daemon\n", &c), -EINVAL);
	assert_logged(CONF ":1: malformed section header\n");
	assert_null(c);
}

/* Every bad line is reported (up to five), then one line with how many more. */
static void test_many_errors(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(config_freep) struct dm2_config *c = NULL;

	ASSERT_ERR(load(t, "[Daemon]\nJobs=a\nJobs=b\n", &c), -EINVAL);
	assert_logged(CONF ":2: invalid value 'a' for Jobs=\n" CONF
			   ":3: invalid value 'b' for Jobs=\n");

	ASSERT_ERR(load(t,
			"[Daemon]\nJobs=A\nJobs=B\nJobs=C\nJobs=D\nJobs=E\nJobs=F\nJobs=G\n"
			"Jobs=H\nJobs=x\n",
			&c),
		   -EINVAL);
	assert_logged(CONF ":6: invalid value 'E' for Jobs=\n" CONF
			   ": 4 more errors not shown.\n");
	assert_null(strstr(logged, "'F'"));
	assert_null(c);
}

static void test_unreadable(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(config_freep) struct dm2_config *c = NULL;

	/* Another path than the default, relative to the root. */
	test_write_file(t->fd, "other.conf", "[Daemon]\nJobs=5\n");
	ASSERT_OK(config_load(t->fd, "other.conf", &c));
	assert_int_equal(c->jobs, 5);
	c = config_free(c);

	ASSERT_OK(mkdir_p_at(t->fd, CONF, 0755));
	logged = mfree(logged);
	ASSERT_ERR(config_load(t->fd, NULL, &c), -EISDIR);
	assert_logged("Failed to read '" CONF "': Is a directory\n");
	assert_null(c);
}

/* dm2d.conf.d/ *.conf after the main file, in name order, a later one winning; other names
 * and hidden files are not read; a drop-in's errors name the drop-in. */
static void test_dropins(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(config_freep) struct dm2_config *c = NULL;

	test_write_file(t->fd, CONF ".d/20-late.conf", "[Daemon]\nJobs=7\n");
	test_write_file(t->fd, CONF ".d/10-early.conf",
			"[Daemon]\nJobs=2\nSettleSec=9\n[Fetch]\nMirror=https://a/ https://b/\n");
	test_write_file(t->fd, CONF ".d/30-off.conf.disabled", "[Daemon]\nJobs=99\n");
	test_write_file(t->fd, CONF ".d/.hidden.conf", "[Daemon]\nJobs=98\n");
	ASSERT_OK(mkdir_p_at(t->fd, CONF ".d/40-dir.conf", 0755));

	/* Drop-ins alone, without a main file. */
	ASSERT_OK(load(t, NULL, &c));
	assert_int_equal(c->jobs, 7);
	assert_int_equal(c->settle_usec, 9 * SEC);
	assert_int_equal(c->n_mirrors, 1);
	c = config_free(c);

	/* The main file first: the drop-ins override it, keys they leave alone stay. */
	ASSERT_OK(load(t, "[Daemon]\nJobs=1\nHookTimeoutSec=5\n[Fetch]\nMirror=https://c/ https://d/\n",
		       &c));
	assert_int_equal(c->jobs, 7);
	assert_int_equal(c->hook_timeout_usec, 5 * SEC);
	assert_int_equal(c->n_mirrors, 2);
	assert_string_equal(c->mirrors[0].prefix, "https://c/");
	c = config_free(c);

	test_write_file(t->fd, CONF ".d/50-bad.conf", "[Build]\n\nTimeoutSec=soon\nFoo=1\n");
	ASSERT_ERR(load(t, NULL, &c), -EINVAL);
	assert_logged(CONF ".d/50-bad.conf:3: invalid value 'soon' for TimeoutSec=\n");
	assert_logged(CONF ".d/50-bad.conf:4: unknown setting 'Foo' in section [Build], ignoring\n");
	assert_null(c);
}

/* With a root, messages name the file as it is on the machine, not relative to the root. */
static void test_root_path_in_messages(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(config_freep) struct dm2_config *c = NULL;
	_cleanup_free_ char *want = NULL;

	test_write_file(t->fd, CONF, "[Daemon]\nJobs=x\n");
	logged = mfree(logged);
	ASSERT_ERR(config_load_root(t->fd, "/some/root", NULL, &c), -EINVAL);
	assert_logged("/some/root/" CONF ":2: invalid value 'x' for Jobs=\n");
	logged = mfree(logged);
	ASSERT_ERR(config_load_root(t->fd, "/", NULL, &c), -EINVAL);
	assert_true(startswith(logged, "/" CONF ":2:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_bools_and_repeats),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_many_errors),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_dropins),
		cmocka_unit_test(test_root_path_in_messages),
	};
	int r = cmocka_run_group_tests(tests, setup, NULL);

	free(logged);
	return r;
}
