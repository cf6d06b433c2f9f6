/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fetch_url_full() against real HTTP and HTTPS servers on 127.0.0.1 (tests/helpers). */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/context.h"
#include "pipeline/fetch.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"
#include "tests.h"

static char work[PATH_MAX];
static char www[PATH_MAX + 8];
static char good_sha[SHA256_HEX_SIZE];
static char big_sha[SHA256_HEX_SIZE];
static char *good_data;
static size_t good_size;

struct server {
	pid_t pid;
	int port;
	char log[PATH_MAX + 32];
};
static struct server plain = {.pid = -1}, tls = {.pid = -1};

static int start_server(struct server *s, const char *name, bool with_tls)
{
	_cleanup_free_ char *helper = test_source_path("tests/helpers/http-server.py");
	char port_file[PATH_MAX + 32], cert[PATH_MAX + 32], key[PATH_MAX + 32];

	snprintf(port_file, sizeof(port_file), "%s/%s.port", work, name);
	snprintf(s->log, sizeof(s->log), "%s/%s.log", work, name);
	snprintf(cert, sizeof(cert), "%s/server.pem", work);
	snprintf(key, sizeof(key), "%s/server.key", work);
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		if (with_tls)
			execlp("python3", "python3", helper, "--dir", www, "--port-file",
			       port_file, "--log", s->log, "--cert", cert, "--key", key,
			       (char *) NULL);
		else
			execlp("python3", "python3", helper, "--dir", www, "--port-file",
			       port_file, "--log", s->log, (char *) NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		_cleanup_free_ char *text = NULL;

		if (read_full_file_at(AT_FDCWD, port_file, 0, &text, NULL) >= 0 &&
		    safe_atoi(text, &s->port) >= 0)
			return 0;
		usleep(50000);
	}
	return -1;
}

static void stop_server(struct server *s)
{
	if (s->pid > 0) {
		(void) kill(s->pid, SIGTERM);
		(void) waitpid(s->pid, NULL, 0);
		s->pid = -1;
	}
}

static int setup(void **state)
{
	_cleanup_free_ char *helper = test_source_path("tests/helpers/make-archive.py");
	char path[PATH_MAX + 64];

	snprintf(work, sizeof(work), "%s/dm2-fetch-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(work))
		return -1;
	snprintf(www, sizeof(www), "%s/www", work);
	if (mkdir(www, 0755) < 0)
		return -1;
	if (test_system("cd '%s' && python3 '%s' good www/good.tar.gz && "
			"python3 '%s' big www/big.tar 100000",
			work, helper, helper) != 0)
		return -1;
	/* A CA and a server certificate for 127.0.0.1 signed by it. */
	if (test_system(
		    "cd '%s' && exec >/dev/null 2>&1 && "
		    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		    "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=dm2-test-ca && "
		    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		    "-keyout server.key -out server.csr -subj /CN=127.0.0.1 && "
		    "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' "
		    "> ext && "
		    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
		    "-CAcreateserial -out server.pem -days 2 -extfile ext",
		    work) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/good.tar.gz", www);
	if (read_full_file_at(AT_FDCWD, path, 0, &good_data, &good_size) < 0 ||
	    sha256_file_hex_at(AT_FDCWD, path, good_sha) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/big.tar", www);
	if (sha256_file_hex_at(AT_FDCWD, path, big_sha) < 0)
		return -1;
	if (start_server(&plain, "http", false) < 0 ||
	    start_server(&tls, "https", true) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	stop_server(&plain);
	stop_server(&tls);
	free(good_data);
	(void) rm_rf_at(AT_FDCWD, work);
	return 0;
}

/* A fake root with dm2d.conf: the test CA, short timeouts, one retry, plus extra. */
static struct dm2_context *context_for(struct test_root *t, bool with_ca,
				       const char *extra)
{
	struct dm2_context *ctx = NULL;
	_cleanup_free_ char *conf = NULL, *ca = NULL;

	assert_true(asprintf(&conf,
			     "[Fetch]\nRetries=1\nConnectTimeoutSec=5\nStallTimeoutSec="
			     "2\n%s%s",
			     with_ca ? "CAFile=/etc/dm2/test-ca.pem\n" : "",
			     strempty(extra)) > 0);
	test_write_file(t->fd, "etc/dm2/dm2d.conf", conf);
	if (with_ca) {
		ca = path_join(work, "ca.pem");
		_cleanup_close_ int fd = open(ca, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(
			copy_file_atomic_at(fd, t->fd, "etc/dm2/test-ca.pem", 0644), 0);
	}
	assert_int_equal(context_new(t->path, &ctx), 0);
	return ctx;
}

static char *url(const struct server *s, const char *path)
{
	char *u = NULL;

	assert_true(asprintf(&u, "%s://127.0.0.1:%d/%s", s == &tls ? "https" : "http",
			     s->port, path) > 0);
	return u;
}

/* How many requests the server saw whose log line contains needle. */
static unsigned requests(const struct server *s, const char *needle)
{
	_cleanup_free_ char *text = NULL;
	unsigned n = 0;

	if (read_full_file_at(AT_FDCWD, s->log, 0, &text, NULL) < 0)
		return 0;
	for (char *l = text, *e; l && *l; l = e) {
		e = strchr(l, '\n');
		if (e)
			*e++ = '\0';
		if (strstr(l, needle))
			n++;
	}
	return n;
}

static int fetch1(struct dm2_context *ctx, const char *u, const char *sha, char **path,
		  char **reason)
{
	char *urls[] = {(char *) u, NULL};
	int r;

	r = fetch_url_full(ctx, urls, sha, path, reason);
	fprintf(stderr, "# %s -> %d %s\n", u, r, r < 0 ? strna(*reason) : strna(*path));
	return r;
}

static void assert_good_file(const char *path)
{
	char hex[SHA256_HEX_SIZE];

	assert_int_equal(sha256_file_hex_at(AT_FDCWD, path, hex), 0);
	assert_string_equal(hex, good_sha);
	assert_string_equal(strrchr(path, '/') + 1, good_sha);
}

static void assert_reason(int r, int expected, const char *reason, const char *needle)
{
	if (r != expected)
		fail_msg("returned %d, expected %d (%s)", r, expected, strna(reason));
	assert_non_null(reason);
	assert_null(strchr(reason, '\n'));
	if (!strstr(reason, needle))
		fail_msg("reason '%s' lacks '%s'", reason, needle);
}

static void test_http_and_cache(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, true, NULL);
	_cleanup_free_ char *u = url(&plain, "files/good.tar.gz"),
			    *bad = url(&plain, "status/404");
	_cleanup_free_ char *path = NULL, *reason = NULL, *expected = NULL;
	unsigned before = requests(&plain, "/files/good.tar.gz ");

	ASSERT_OK(fetch1(ctx, u, good_sha, &path, &reason));
	assert_good_file(path);
	assert_true(asprintf(&expected, "%s/var/cache/dm2/downloads/%s", ctx->root,
			     good_sha) > 0);
	assert_string_equal(path, expected);
	assert_int_equal(requests(&plain, "/files/good.tar.gz "), before + 1);

	/* Known hash and file present: no request at all, even to a broken URL. */
	free(path);
	path = NULL;
	ASSERT_OK(fetch1(ctx, bad, good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, "/files/good.tar.gz "), before + 1);
	assert_int_equal(requests(&plain, "/status/404"), 0);

	/* Without a hash: downloaded once, then remembered by URL. */
	free(path);
	path = NULL;
	assert_int_equal(rm_rf_at(t->fd, "var/cache/dm2/downloads"), 0);
	ASSERT_OK(fetch1(ctx, u, NULL, &path, &reason));
	assert_good_file(path);
	free(path);
	path = NULL;
	ASSERT_OK(fetch1(ctx, u, NULL, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, "/files/good.tar.gz "), before + 2);

	/* A corrupted cache file is noticed and downloaded again. */
	free(path);
	path = NULL;
	assert_int_equal(write_file_atomic_at(AT_FDCWD, expected, "junk", 4, 0644), 0);
	ASSERT_OK(fetch1(ctx, u, good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, "/files/good.tar.gz "), before + 3);
}

static void test_https(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, true, NULL);
	_cleanup_(test_root_freep) struct test_root *t2 = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx2 = context_for(t2, false, NULL);
	_cleanup_free_ char *u = url(&tls, "files/good.tar.gz");
	_cleanup_free_ char *path = NULL, *reason = NULL;
	int r;

	ASSERT_OK(fetch1(ctx, u, good_sha, &path, &reason));
	assert_good_file(path);

	/* Without the test CA the server's certificate is not trusted. */
	r = fetch1(ctx2, u, good_sha, &path, &reason);
	assert_reason(r, -EREMOTEIO, reason, "TLS verification failed");
	assert_int_equal(faccessat(t2->fd, "var/cache/dm2/downloads", F_OK, 0), 0);
	assert_int_equal(test_system("test -z \"$(ls -A '%s/var/cache/dm2/downloads')\"",
				     t2->path),
			 0);
}

static void test_404_not_retried(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, true, NULL);
	_cleanup_free_ char *u = url(&plain, "files/missing.tar.gz");
	_cleanup_free_ char *path = NULL, *reason = NULL, *msg = NULL;
	int r;

	assert_true(asprintf(&msg, "'%s': server answered HTTP 404", u) > 0);
	r = fetch1(ctx, u, NULL, &path, &reason);
	assert_reason(r, -EREMOTEIO, reason, msg);
	assert_int_equal(requests(&plain, "/files/missing.tar.gz"), 1);
}

static void test_500_then_200(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, true, NULL);
	_cleanup_free_ char *u = url(&plain, "flaky/good.tar.gz");
	_cleanup_free_ char *path = NULL, *reason = NULL;

	ASSERT_OK(fetch1(ctx, u, good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, "/flaky/good.tar.gz - 500"), 1);
	assert_int_equal(requests(&plain, "/flaky/good.tar.gz - 200"), 1);
}

static void test_protocols(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, true, NULL);
	_cleanup_free_ char *u = url(&plain, "redirect-ftp/good.tar.gz");
	_cleanup_free_ char *ok = url(&plain, "redirect/good.tar.gz");
	_cleanup_free_ char *path = NULL, *reason = NULL, *file_url = NULL;
	int r;

	r = fetch1(ctx, u, good_sha, &path, &reason);
	assert_reason(r, -EREMOTEIO, reason, "refused protocol");
	assert_int_equal(requests(&plain, "/redirect-ftp/"), 1); /* not retried */
	free(reason);
	reason = NULL;
	r = fetch1(ctx, "dict://127.0.0.1/x", good_sha, &path, &reason);
	assert_reason(r, -EREMOTEIO, reason, "'dict://127.0.0.1/x': refused protocol");

	/* An http redirect to http is fine, and file:// works as a first URL. */
	ASSERT_OK(fetch1(ctx, ok, good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(rm_rf_at(t->fd, "var/cache/dm2/downloads"), 0);
	free(path);
	path = NULL;
	assert_true(asprintf(&file_url, "file://%s/good.tar.gz", www) > 0);
	ASSERT_OK(fetch1(ctx, file_url, good_sha, &path, &reason));
	assert_good_file(path);
}

static void test_wrong_hash(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, true, NULL);
	_cleanup_free_ char *u = url(&plain, "files/good.tar.gz");
	_cleanup_free_ char *path = NULL, *reason = NULL;
	const char *wrong =
		"1111111111111111111111111111111111111111111111111111111111111111";
	int r;

	r = fetch1(ctx, u, wrong, &path, &reason);
	assert_reason(r, -EUCLEAN, reason, "SHA256 mismatch");
	assert_non_null(strstr(reason, good_sha));
	/* nothing kept under either name */
	assert_int_equal(
		test_system("test -z \"$(ls -A '%s/var/cache/dm2/downloads')\"", t->path),
		0);
}

static void test_truncated_and_stall(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx =
		context_for(t, true, "StallTimeoutSec=1\nRetries=0\n");
	_cleanup_free_ char *u = url(&plain, "truncated/good.tar.gz");
	_cleanup_free_ char *s = url(&plain, "stall/good.tar.gz");
	_cleanup_free_ char *path = NULL, *reason = NULL;
	uint64_t start;
	int r;

	r = fetch1(ctx, u, good_sha, &path, &reason);
	assert_reason(r, -EREMOTEIO, reason, u);
	free(reason);
	reason = NULL;

	start = now_mono_usec();
	r = fetch1(ctx, s, NULL, &path, &reason);
	assert_reason(r, -EREMOTEIO, reason, "stalled or timed out");
	assert_true(now_mono_usec() - start < 20 * 1000000ULL);
}

static void test_mirror(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *extra = NULL, *mirror = url(&plain, "files/");
	_cleanup_(context_freep) struct dm2_context *ctx = NULL;
	_cleanup_strv_free_ char **tries = NULL;
	_cleanup_free_ char *path = NULL, *reason = NULL;
	char *urls[] = {(char *) "http://forge.invalid/releases/good.tar.gz", NULL};
	unsigned before = requests(&plain, "/files/good.tar.gz ");

	assert_true(asprintf(&extra, "Mirror=http://forge.invalid/releases/ %s\n",
			     mirror) > 0);
	ctx = context_for(t, true, extra);
	ASSERT_OK(fetch_expand_mirrors(ctx->config, urls, &tries));
	assert_int_equal(strv_length(tries), 2);
	assert_non_null(startswith(tries[0], mirror));
	assert_string_equal(tries[1], urls[0]);

	ASSERT_OK(fetch1(ctx, urls[0], good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, "/files/good.tar.gz "), before + 1);
}

/* Put the first half of the good archive (or garbage) in place as a partial download. */
static void write_part(struct test_root *t, bool garbage)
{
	_cleanup_free_ char *p = NULL, *data = NULL;

	data = malloc(good_size / 2);
	assert_non_null(data);
	memcpy(data, good_data, good_size / 2);
	if (garbage)
		memset(data, 'G', good_size / 2);
	assert_true(asprintf(&p, "var/cache/dm2/downloads/%s.part", good_sha) > 0);
	assert_int_equal(mkdir_p_at(t->fd, "var/cache/dm2/downloads", 0755), 0);
	assert_int_equal(write_file_atomic_at(t->fd, p, data, good_size / 2, 0644), 0);
}

static void test_resume(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, true, NULL);
	_cleanup_free_ char *u = url(&plain, "files/good.tar.gz");
	_cleanup_free_ char *n = url(&plain, "norange/good.tar.gz");
	_cleanup_free_ char *b = url(&plain, "badrange/good.tar.gz");
	_cleanup_free_ char *path = NULL, *reason = NULL, *range = NULL;

	assert_true(asprintf(&range, "/files/good.tar.gz bytes=%zu- 206", good_size / 2) >
		    0);

	/* 206 with the right Content-Range: only the rest is fetched. */
	write_part(t, false);
	ASSERT_OK(fetch1(ctx, u, good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, range), 1);

	/* A server ignoring Range answers 200: the garbage partial file is replaced. */
	assert_int_equal(rm_rf_at(t->fd, "var/cache/dm2/downloads"), 0);
	write_part(t, true);
	free(path);
	path = NULL;
	ASSERT_OK(fetch1(ctx, n, good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, "/norange/good.tar.gz bytes="), 1);

	/* 206 with a Content-Range that does not start where we asked: start over. */
	assert_int_equal(rm_rf_at(t->fd, "var/cache/dm2/downloads"), 0);
	write_part(t, true);
	free(path);
	path = NULL;
	ASSERT_OK(fetch1(ctx, b, good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, "/badrange/good.tar.gz - 200"), 1);

	/* An honest 206 after a garbage partial file: the hash fails, one fresh try fixes
	 * it. */
	assert_int_equal(rm_rf_at(t->fd, "var/cache/dm2/downloads"), 0);
	write_part(t, true);
	free(path);
	path = NULL;
	ASSERT_OK(fetch1(ctx, u, good_sha, &path, &reason));
	assert_good_file(path);
}

static void test_size_cap(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx =
		context_for(t, true, "MaxDownloadSize=10K\n");
	_cleanup_free_ char *u = url(&plain, "files/big.tar"),
			    *n = url(&plain, "nolength/big.tar");
	_cleanup_free_ char *path = NULL, *reason = NULL;
	int r;

	r = fetch1(ctx, u, big_sha, &path, &reason);
	assert_reason(r, -EREMOTEIO, reason, "larger than MaxDownloadSize=10240 bytes");
	free(reason);
	reason = NULL;
	/* Without Content-Length the write callback enforces it. */
	r = fetch1(ctx, n, big_sha, &path, &reason);
	assert_reason(r, -EREMOTEIO, reason, "larger than MaxDownloadSize=10240 bytes");
	assert_int_equal(requests(&plain, "/nolength/big.tar"), 1);
}

static void test_url_list(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(context_freep) struct dm2_context *ctx = context_for(t, true, NULL);
	_cleanup_free_ char *a = url(&plain, "status/404"),
			    *b = url(&tls, "files/good.tar.gz");
	_cleanup_free_ char *path = NULL, *reason = NULL;
	char *urls[] = {a, b, NULL};

	ASSERT_OK(fetch_url_full(ctx, urls, good_sha, &path, &reason));
	assert_good_file(path);
	assert_int_equal(requests(&plain, "/status/404"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_and_cache),
		cmocka_unit_test(test_https),
		cmocka_unit_test(test_404_not_retried),
		cmocka_unit_test(test_500_then_200),
		cmocka_unit_test(test_protocols),
		cmocka_unit_test(test_wrong_hash),
		cmocka_unit_test(test_truncated_and_stall),
		cmocka_unit_test(test_mirror),
		cmocka_unit_test(test_resume),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_url_list),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
