/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* shared/curl-util.c, the one libcurl client, against real HTTP and HTTPS servers on
 * 127.0.0.1 (tests/helpers/http-server.py). */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>

#include "shared/curl-util.h"
#include "shared/fs-util.h"
#include "shared/spawn.h"
#include "shared/util.h"
#include "tests.h"

static char work[PATH_MAX];

struct server {
	pid_t pid;
	int port;
};
static struct server plain = {.pid = -1}, tls = {.pid = -1};

static int start_server(struct server *s, const char *name, bool with_tls)
{
	_cleanup_free_ char *helper = test_source_path("tests/helpers/http-server.py");
	_cleanup_free_ char *www = path_join(work, "www"), *port_file = NULL, *log = NULL;
	_cleanup_free_ char *cert = path_join(work, "server.pem"), *key = path_join(work, "server.key");
	char *argv[] = {(char *) "python3", helper, (char *) "--dir", www, (char *) "--port-file",
			NULL, (char *) "--log", NULL, (char *) "--cert", cert, (char *) "--key",
			key, NULL};

	port_file = strdup_printf("%s/%s.port", work, name);
	log = strdup_printf("%s/%s.log", work, name);
	argv[5] = port_file;
	argv[7] = log;
	if (!with_tls)
		argv[8] = NULL;
	if (spawn(&(const struct spawn_options){.argv = argv,
						.stdin_fd = SPAWN_NULL,
						.stdout_fd = SPAWN_NULL,
						.stderr_fd = SPAWN_INHERIT,
						.death_signal = SIGKILL},
		  &s->pid) < 0)
		return -1;
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
		(void) spawn_wait(s->pid, NULL);
		s->pid = -1;
	}
}

static int setup(void **state)
{
	char big[100000];

	snprintf(work, sizeof(work), "%s/dm2-curl-XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(work))
		return -1;
	memset(big, 'b', sizeof(big));
	if (test_system("mkdir -p '%s/www' && printf 'hello world\\n' > '%s/www/hello'", work,
			work) != 0)
		return -1;
	{
		_cleanup_free_ char *p = path_join(work, "www/big");
		if (write_file_atomic_at(AT_FDCWD, p, big, sizeof(big), 0644) < 0)
			return -1;
	}
	/* A CA and a server certificate for 127.0.0.1 signed by it. */
	if (test_system("cd '%s' && exec >/dev/null 2>&1 && "
			"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
			"-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=dm2-test-ca && "
			"openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
			"-keyout server.key -out server.csr -subj /CN=127.0.0.1 && "
			"printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext && "
			"openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
			"-CAcreateserial -out server.pem -days 2 -extfile ext",
			work) != 0)
		return -1;
	if (start_server(&plain, "http", false) < 0 || start_server(&tls, "https", true) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	stop_server(&plain);
	stop_server(&tls);
	(void) rm_rf_at(AT_FDCWD, work);
	return 0;
}

/* The body, into memory. */
struct sink {
	char buf[256];
	size_t len, total;
};

static size_t on_write(char *p, size_t size, size_t n, void *userdata)
{
	struct sink *s = userdata;
	size_t len = size * n, c = MIN(len, sizeof(s->buf) - 1 - s->len);

	memcpy(s->buf + s->len, p, c);
	s->len += c;
	s->buf[s->len] = '\0';
	s->total += len;
	return len;
}

static char *url(const struct server *s, const char *path)
{
	return strdup_printf("%s://127.0.0.1:%d/%s", s == &tls ? "https" : "http", s->port, path);
}

/* GET u with o; the transfer's result, its HTTP status and the body seen. */
static CURLcode get(const char *u, const struct http_options *o, long *ret_status,
		    struct sink *ret_body, int *ret_errno)
{
	struct http_request h;
	CURLcode cc = CURLE_OK;

	*ret_body = (struct sink){};
	ASSERT_OK(http_request_init(&h, u, o, NULL));
	assert_int_equal(curl_easy_setopt(h.easy, CURLOPT_WRITEFUNCTION, on_write), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h.easy, CURLOPT_WRITEDATA, ret_body), CURLE_OK);
	ASSERT_OK(http_request_perform(&h, &cc));
	*ret_status = http_request_status(&h);
	if (ret_errno)
		*ret_errno = http_curl_errno(cc);
	fprintf(stderr, "# %s -> %d (%s), HTTP %ld\n", u, cc,
		cc ? http_request_error(&h, cc) : "ok", *ret_status);
	http_request_done(&h);
	return cc;
}

static void test_get(void **state)
{
	_cleanup_free_ char *u = url(&plain, "files/hello");
	struct http_options o = {};
	struct sink body;
	long status;

	assert_int_equal(get(u, &o, &status, &body, NULL), CURLE_OK);
	assert_int_equal(status, 200);
	assert_string_equal(body.buf, "hello world\n");
}

static void test_http_errors(void **state)
{
	_cleanup_free_ char *u = url(&plain, "status/404");
	struct http_options o = {};
	struct sink body;
	long status;

	/* Without fail_on_http_error the caller sees the status and the error page... */
	assert_int_equal(get(u, &o, &status, &body, NULL), CURLE_OK);
	assert_int_equal(status, 404);
	assert_string_equal(body.buf, "status\n");
	/* ... with it, the transfer fails before any of the page is written. */
	o.fail_on_http_error = true;
	assert_int_equal(get(u, &o, &status, &body, NULL), CURLE_HTTP_RETURNED_ERROR);
	assert_int_equal(status, 404);
	assert_int_equal(body.total, 0);
}

static void test_redirects(void **state)
{
	_cleanup_free_ char *u = url(&plain, "redirect/hello"), *ftp = url(&plain, "redirect-ftp/x");
	struct http_options o = {};
	struct sink body;
	long status;

	assert_int_equal(get(u, &o, &status, &body, NULL), CURLE_OK);
	assert_int_equal(status, 302);
	o.follow_redirects = true;
	assert_int_equal(get(u, &o, &status, &body, NULL), CURLE_OK);
	assert_int_equal(status, 200);
	assert_string_equal(body.buf, "hello world\n");
	/* Redirects lead to https:// and http:// only, whatever the URL itself may use. */
	o.protocols = "https,http,file,ftp";
	assert_int_equal(get(ftp, &o, &status, &body, NULL), CURLE_UNSUPPORTED_PROTOCOL);
}

static void test_protocols(void **state)
{
	_cleanup_free_ char *file = strjoin("file://", work, "/www/hello");
	struct http_options o = {};
	struct sink body;
	long status;
	int e;

	assert_int_equal(get(file, &o, &status, &body, &e), CURLE_UNSUPPORTED_PROTOCOL);
	assert_int_equal(e, -EINVAL);
	o.protocols = "https,http,file";
	assert_int_equal(get(file, &o, &status, &body, NULL), CURLE_OK);
	assert_string_equal(body.buf, "hello world\n");
}

static void test_size_cap(void **state)
{
	_cleanup_free_ char *u = url(&plain, "files/big");
	struct http_options o = {.max_size = 1000};
	struct sink body;
	long status;
	int e;

	assert_int_equal(get(u, &o, &status, &body, &e), CURLE_FILESIZE_EXCEEDED);
	assert_int_equal(e, -EFBIG);
	o.max_size = 100000;
	assert_int_equal(get(u, &o, &status, &body, NULL), CURLE_OK);
	assert_int_equal(body.total, 100000);
}

static void test_stall(void **state)
{
	_cleanup_free_ char *u = url(&plain, "stall/big");
	struct http_options o = {.stall_timeout_usec = 1000000};
	uint64_t start = now_mono_usec();
	struct sink body;
	long status;
	int e;

	assert_int_equal(get(u, &o, &status, &body, &e), CURLE_OPERATION_TIMEDOUT);
	assert_int_equal(e, -ETIMEDOUT);
	/* Half of it came, then the server went quiet: given up after about a second. */
	assert_int_equal(body.total, 50000);
	assert_true(now_mono_usec() - start < 10000000);
}

static void test_refused(void **state)
{
	struct http_options o = {.connect_timeout_usec = 2000000};
	struct sink body;
	long status;
	int e;

	/* Port 1 on 127.0.0.1: nothing listens there. */
	assert_int_equal(get("http://127.0.0.1:1/x", &o, &status, &body, &e), CURLE_COULDNT_CONNECT);
	assert_int_equal(e, -ECONNREFUSED);
	assert_int_equal(status, 0);
}

static void test_tls(void **state)
{
	_cleanup_free_ char *u = url(&tls, "files/hello"), *ca = path_join(work, "ca.pem");
	_cleanup_free_ char *missing = path_join(work, "no-such-ca.pem"), *reason = NULL;
	struct http_options o = {};
	struct http_request h;
	struct sink body;
	long status;

	/* Always verified: a server our CAs do not know is refused... */
	assert_int_equal(get(u, &o, &status, &body, NULL), CURLE_PEER_FAILED_VERIFICATION);
	/* ... and trusted once its CA is added to them. */
	o.ca_file = ca;
	assert_int_equal(get(u, &o, &status, &body, NULL), CURLE_OK);
	assert_string_equal(body.buf, "hello world\n");
	/* A CA file that cannot be read is said before any connection. */
	o.ca_file = missing;
	ASSERT_ERR(http_request_init(&h, u, &o, &reason), -ENOENT);
	assert_non_null(reason);
	if (!strstr(reason, "no-such-ca.pem") || strchr(reason, '\n'))
		fail_msg("reason: %s", reason);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_redirects),
		cmocka_unit_test(test_protocols),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_stall),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_tls),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
