/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The build cache library: keys, local store, LRU gc, and the remote cache against a real
 * nginx with WebDAV on 127.0.0.1. */
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>

#include "cache.h"
#include "pipeline/sign.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/util.h"
#include "tests.h"

static const char K1[] =
	"1111111111111111111111111111111111111111111111111111111111111111";
static const char K2[] =
	"2222222222222222222222222222222222222222222222222222222222222222";
static const char K3[] =
	"3333333333333333333333333333333333333333333333333333333333333333";

static inline void cache_closepp(struct cache **c)
{
	cache_close(*c);
}
static inline void cache_entry_freepp(struct cache_entry **e)
{
	cache_entry_free(*e);
}

static struct cache *open_cache(struct test_root *t)
{
	_cleanup_free_ char *dir = path_join(t->path, "var/cache/dm2/artifacts");
	_cleanup_free_ char *db = path_join(dir, "index.db");
	struct cache *c = NULL;

	ASSERT_OK(cache_open(dir, db, &c));
	return c;
}

/* Write a file of n bytes filled from seed, return its absolute path. */
static char *make_file(struct test_root *t, const char *name, char seed, size_t n)
{
	_cleanup_free_ char *buf = malloc(n + 1);

	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = (char) (seed + i % 7);
	ASSERT_OK(mkdir_p_at(t->fd, "in", 0755));
	{
		_cleanup_free_ char *rel = path_join("in", name);

		ASSERT_OK(write_file_atomic_at(t->fd, rel, buf, n, 0644));
		return path_join(t->path, rel);
	}
}

static void assert_same_file(const char *a, const char *b)
{
	_cleanup_free_ char *x = NULL, *y = NULL;
	size_t nx, ny;

	ASSERT_OK(read_full_file_at(AT_FDCWD, a, 0, &x, &nx));
	ASSERT_OK(read_full_file_at(AT_FDCWD, b, 0, &y, &ny));
	assert_int_equal(nx, ny);
	assert_memory_equal(x, y, nx);
}

static char *object_of(struct test_root *t, const char *file)
{
	char hex[SHA256_HEX_SIZE], *p = NULL;

	ASSERT_OK(sha256_file_hex_at(AT_FDCWD, file, hex));
	assert_true(asprintf(&p, "%s/var/cache/dm2/artifacts/objects/%.2s/%s", t->path,
			     hex, hex) > 0);
	return p;
}

static void test_key(void **state)
{
	struct cache_key_input in = {
		.recipe_name = "v4l2loopback",
		.source_id = "abc",
		.build_rules = "subdir=.\nmodules=v4l2loopback\n",
		.kernel_identity = "kid",
		.arch = "x86_64",
		.format_version = CACHE_FORMAT_VERSION,
	};
	char base[CACHE_KEY_SIZE], k[CACHE_KEY_SIZE];
	const char **fields[] = {&in.recipe_name, &in.source_id, &in.build_rules,
				 &in.kernel_identity, &in.arch};

	ASSERT_OK(cache_key_compute(&in, base));
	assert_true(cache_key_valid(base));
	ASSERT_OK(cache_key_compute(&in, k));
	assert_string_equal(base, k);

	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		const char *saved = *fields[i];

		*fields[i] = "changed";
		ASSERT_OK(cache_key_compute(&in, k));
		assert_string_not_equal(base, k);
		*fields[i] = saved;
	}
	in.format_version++;
	ASSERT_OK(cache_key_compute(&in, k));
	assert_string_not_equal(base, k);
	in.format_version--;

	/* Moving a byte across a field boundary must change the key. */
	in.recipe_name = "v4l2loopbacka";
	in.source_id = "bc";
	ASSERT_OK(cache_key_compute(&in, k));
	assert_string_not_equal(base, k);

	in.arch = NULL;
	ASSERT_ERR(cache_key_compute(&in, k), -EINVAL);
	assert_false(cache_key_valid("ABC"));
	assert_false(cache_key_valid(
		"1111111111111111111111111111111111111111111111111111111111111"
		"11G"));
}

static void test_round_trip(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(cache_closepp) struct cache *c = open_cache(t);
	_cleanup_(cache_entry_freepp) struct cache_entry *e = NULL;
	_cleanup_free_ char *a = make_file(t, "a.ko", 'a', 5000);
	_cleanup_free_ char *b = make_file(t, "b.ko", 'b', 3000);
	_cleanup_free_ char *sv = make_file(t, "Module.symvers", 's', 100);
	char *paths[] = {a, b, NULL}, *names[] = {"a.ko", "sub/b.ko", NULL};
	struct cache_stats s;

	ASSERT_ERR(cache_lookup(c, K1, &e), -ENOENT);
	ASSERT_OK(cache_store(c, K1, paths, names, sv));
	ASSERT_OK(cache_lookup(c, K1, &e));
	assert_string_equal(e->key, K1);
	assert_int_equal(strv_length(e->files), 2);
	assert_string_equal(e->names[0], "a.ko");
	assert_string_equal(e->names[1], "sub/b.ko");
	assert_same_file(e->files[0], a);
	assert_same_file(e->files[1], b);
	assert_non_null(e->symvers);
	assert_same_file(e->symvers, sv);
	assert_int_equal(e->size, 8100);
	assert_true(e->last_used >= e->created);

	/* Idempotent: a second store of the same key changes nothing visible. */
	ASSERT_OK(cache_store(c, K1, paths, names, sv));
	ASSERT_OK(cache_stat(c, &s));
	assert_int_equal(s.entries, 1);
	assert_int_equal(s.objects, 3);
	assert_int_equal(s.bytes, 8100);

	/* Replacing the files drops the objects nobody uses any more. */
	{
		_cleanup_free_ char *obj_b = object_of(t, b);
		char *p2[] = {a, NULL}, *n2[] = {"a.ko", NULL};

		ASSERT_OK(cache_store(c, K1, p2, n2, NULL));
		assert_int_equal(access(obj_b, F_OK), -1);
		ASSERT_OK(cache_stat(c, &s));
		assert_int_equal(s.objects, 1);
	}

	/* Bad names and mismatched lists are refused. */
	{
		char *p1[] = {a, NULL}, *bad1[] = {"../x.ko", NULL},
		     *bad2[] = {"/x.ko", NULL};
		char *bad3[] = {"Module.symvers", NULL}, *bad4[] = {"a\nb.ko", NULL};
		char *two[] = {"x.ko", "y.ko", NULL};

		ASSERT_ERR(cache_store(c, K2, p1, bad1, NULL), -EINVAL);
		ASSERT_ERR(cache_store(c, K2, p1, bad2, NULL), -EINVAL);
		ASSERT_ERR(cache_store(c, K2, p1, bad3, NULL), -EINVAL);
		ASSERT_ERR(cache_store(c, K2, p1, bad4, NULL), -EINVAL);
		ASSERT_ERR(cache_store(c, K2, p1, two, NULL), -EINVAL);
		ASSERT_ERR(cache_store(c, "nothex", p1, two, NULL), -EINVAL);
		ASSERT_ERR(cache_lookup(c, K2, &e), -ENOENT);
	}
}

static void test_dedup(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(cache_closepp) struct cache *c = open_cache(t);
	_cleanup_free_ char *a = make_file(t, "a.ko", 'a', 4096);
	_cleanup_free_ char *a2 = make_file(t, "a-copy.ko", 'a', 4096);
	char *p1[] = {a, NULL}, *p2[] = {a2, a, NULL};
	char *n1[] = {"a.ko", NULL}, *n2[] = {"x.ko", "y.ko", NULL};
	struct cache_stats s;
	uint64_t dir_bytes;

	ASSERT_OK(cache_store(c, K1, p1, n1, NULL));
	ASSERT_OK(cache_store(c, K2, p2, n2, NULL));
	ASSERT_OK(cache_stat(c, &s));
	assert_int_equal(s.entries, 2);
	assert_int_equal(s.objects, 1);
	assert_int_equal(s.bytes, 4096);
	ASSERT_OK(dir_size_at(t->fd, "var/cache/dm2/artifacts/objects", &dir_bytes));
	assert_int_equal(dir_bytes, 4096);
}

static void test_corrupt_object(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(cache_closepp) struct cache *c = open_cache(t);
	_cleanup_(cache_entry_freepp) struct cache_entry *e = NULL;
	_cleanup_free_ char *a = make_file(t, "a.ko", 'a', 2000);
	_cleanup_free_ char *b = make_file(t, "b.ko", 'b', 2000);
	_cleanup_free_ char *obj = object_of(t, a), *obj_b = object_of(t, b);
	char *paths[] = {a, b, NULL}, *names[] = {"a.ko", "b.ko", NULL};
	struct cache_stats s;
	int fd;

	ASSERT_OK(cache_store(c, K1, paths, names, NULL));
	/* Same size, one byte flipped: only the hash can tell. */
	fd = open(obj, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 10), 1);
	close(fd);

	ASSERT_ERR(cache_lookup(c, K1, &e), -ENOENT);
	assert_null(e);
	ASSERT_OK(cache_stat(c, &s));
	assert_int_equal(s.entries, 0);
	assert_int_equal(s.objects, 0);
	assert_int_equal(access(obj, F_OK), -1);
	assert_int_equal(access(obj_b, F_OK), -1);
	ASSERT_ERR(cache_lookup(c, K1, &e), -ENOENT);

	/* Storing again heals it. */
	ASSERT_OK(cache_store(c, K1, paths, names, NULL));
	ASSERT_OK(cache_lookup(c, K1, &e));
	assert_same_file(e->files[0], a);
}

static void test_missing_object(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(cache_closepp) struct cache *c = open_cache(t);
	_cleanup_(cache_entry_freepp) struct cache_entry *e = NULL;
	_cleanup_free_ char *a = make_file(t, "a.ko", 'a', 2000);
	_cleanup_free_ char *sv = make_file(t, "Module.symvers", 's', 50);
	_cleanup_free_ char *obj = object_of(t, sv);
	char *paths[] = {a, NULL}, *names[] = {"a.ko", NULL};
	struct cache_stats s;

	ASSERT_OK(cache_store(c, K1, paths, names, sv));
	assert_int_equal(unlink(obj), 0);
	ASSERT_ERR(cache_lookup(c, K1, &e), -ENOENT);
	ASSERT_OK(cache_stat(c, &s));
	assert_int_equal(s.entries, 0);
}

static void test_gc_lru(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(cache_closepp) struct cache *c = open_cache(t);
	_cleanup_(cache_entry_freepp) struct cache_entry *e = NULL;
	_cleanup_free_ char *fa = make_file(t, "a", 'a', 1000),
			    *fb = make_file(t, "b", 'b', 1000);
	_cleanup_free_ char *fc = make_file(t, "c", 'c', 1000),
			    *fs = make_file(t, "s", 's', 1000);
	_cleanup_free_ char *oa = object_of(t, fa), *ob = object_of(t, fb);
	_cleanup_free_ char *oc = object_of(t, fc), *os = object_of(t, fs);
	char *p1[] = {fa, fs, NULL}, *p2[] = {fb, NULL}, *p3[] = {fc, fs, NULL};
	char *n1[] = {"a.ko", "s.ko", NULL}, *n2[] = {"b.ko", NULL};
	char *n3[] = {"c.ko", "s.ko", NULL};
	_cleanup_strv_free_ char **keys = NULL;
	struct cache_stats s;
	uint64_t freed = 0;

	/* K1 {a, s}, K2 {b}, K3 {c, s}; then K1 is used, so the LRU order is K2, K3, K1.
	 */
	ASSERT_OK(cache_store(c, K1, p1, n1, NULL));
	ASSERT_OK(cache_store(c, K2, p2, n2, NULL));
	ASSERT_OK(cache_store(c, K3, p3, n3, NULL));
	ASSERT_OK(cache_lookup(c, K1, &e));
	e = cache_entry_free(e);
	ASSERT_OK(cache_list(c, &keys));
	assert_int_equal(strv_length(keys), 3);
	assert_string_equal(keys[0], K2);
	assert_string_equal(keys[1], K3);
	assert_string_equal(keys[2], K1);

	/* Nothing to do under the limit. */
	assert_int_equal(ASSERT_OK(cache_gc(c, 4000, &freed)), 0);
	assert_int_equal(freed, 0);

	/* 4000 bytes > 2500: evict K2 (frees b: 3000 left), then K3 (frees c but not s,
	 * which K1 still uses: 2000 left). */
	assert_int_equal(ASSERT_OK(cache_gc(c, 2500, &freed)), 2);
	assert_int_equal(freed, 2000);
	ASSERT_OK(cache_lookup(c, K1, &e));
	e = cache_entry_free(e);
	ASSERT_ERR(cache_lookup(c, K2, &e), -ENOENT);
	ASSERT_ERR(cache_lookup(c, K3, &e), -ENOENT);
	assert_int_equal(access(oa, F_OK), 0);
	assert_int_equal(access(os, F_OK), 0);
	assert_int_equal(access(ob, F_OK), -1);
	assert_int_equal(access(oc, F_OK), -1);
	ASSERT_OK(cache_stat(c, &s));
	assert_int_equal(s.entries, 1);
	assert_int_equal(s.objects, 2);
	assert_int_equal(s.bytes, 2000);

	/* A stray object (crash between rename and commit) goes too. */
	ASSERT_OK(mkdir_p_at(t->fd, "var/cache/dm2/artifacts/objects/ff", 0755));
	ASSERT_OK(write_file_atomic_at(
		t->fd,
		"var/cache/dm2/artifacts/objects/ff/ffffffffffffffffffffffff"
		"ffffffffffffffffffffffffffffffffffffffff",
		"x", 1, 0644));
	assert_int_equal(ASSERT_OK(cache_gc(c, 0, &freed)), 1);
	assert_int_equal(freed, 2001);
	ASSERT_OK(cache_stat(c, &s));
	assert_int_equal(s.entries, 0);
	assert_int_equal(s.bytes, 0);
	assert_int_equal(access(oa, F_OK), -1);
}

/* Stores, lookups and gc from several processes at once never corrupt the store: a lookup
 * either misses or returns intact files, and no operation fails with anything but a miss.
 */
static int hammer(struct test_root *t, const char *key, char **paths, char **names,
		  bool gc)
{
	struct cache *c = NULL;
	int bad = 0;

	{
		_cleanup_free_ char *dir = path_join(t->path, "var/cache/dm2/artifacts");
		_cleanup_free_ char *db = path_join(dir, "index.db");

		if (cache_open(dir, db, &c) < 0)
			return 2;
	}
	for (int i = 0; i < 40 && !bad; i++) {
		struct cache_entry *e = NULL;
		int r;

		if (cache_store(c, key, paths, names, NULL) < 0)
			bad = 3;
		r = cache_lookup(c, key, &e);
		if (r == 0) {
			for (size_t k = 0; e->files[k]; k++) {
				char h1[SHA256_HEX_SIZE], h2[SHA256_HEX_SIZE];

				if (sha256_file_hex_at(AT_FDCWD, e->files[k], h1) < 0 ||
				    sha256_file_hex_at(AT_FDCWD, paths[k], h2) < 0 ||
				    !streq(h1, h2))
					/* gc in another process may delete between lookup
					 * and read; then the file is gone, never wrong.
					 */
					if (access(e->files[k], F_OK) == 0)
						bad = 4;
			}
		} else if (r != -ENOENT)
			bad = 5;
		cache_entry_free(e);
		if (gc && cache_gc(c, 0, NULL) < 0)
			bad = 6;
	}
	cache_close(c);
	return bad;
}

static void test_concurrent(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(cache_closepp) struct cache *c = open_cache(t);
	_cleanup_free_ char *a = make_file(t, "a.ko", 'a', 30000);
	_cleanup_free_ char *b = make_file(t, "b.ko", 'b', 30000);
	char *p1[] = {a, NULL}, *n1[] = {"a.ko", NULL};
	char *p2[] = {a, b, NULL}, *n2[] = {"a.ko", "b.ko", NULL}; /* name order */
	pid_t pids[3];
	struct cache_stats s;

	for (int i = 0; i < 3; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0)
			_exit(i == 0   ? hammer(t, K1, p1, n1, true)
			      : i == 1 ? hammer(t, K2, p2, n2, false)
				       : hammer(t, K3, p1, n1, false));
	}
	for (int i = 0; i < 3; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	/* Afterwards the index and the objects agree: every remaining entry verifies. */
	ASSERT_OK(cache_stat(c, &s));
	for (const char *const *k = (const char *const[]){K1, K2, K3, NULL}; *k; k++) {
		struct cache_entry *e = NULL;
		int r = cache_lookup(c, *k, &e);

		assert_true(r == 0 || r == -ENOENT);
		cache_entry_free(e);
	}
	assert_int_equal(ASSERT_OK(cache_gc(c, 0, NULL)) >= 0, 1);
	ASSERT_OK(cache_stat(c, &s));
	assert_int_equal(s.entries, 0);
	{
		uint64_t bytes;

		ASSERT_OK(dir_size_at(t->fd, "var/cache/dm2/artifacts/objects", &bytes));
		assert_int_equal(bytes, 0);
	}
}

/* ---- remote cache against a real nginx ---- */

static struct {
	pid_t pid;
	char *prefix;
	char *url;
	int port;
} nginx = {.pid = -1};

static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;

	close(fd);
	return ok;
}

static int nginx_start(void **state)
{
	_cleanup_free_ char *tmpl_path = test_source_path("tests/helpers/nginx-dav.conf");
	_cleanup_free_ char *tmpl = NULL;
	char p[] = "/tmp/dm2-nginx-XXXXXX";

	assert_non_null(mkdtemp(p));
	nginx.prefix = strdup(p);
	ASSERT_OK(read_full_file_at(AT_FDCWD, tmpl_path, 0, &tmpl, NULL));
	for (int attempt = 0; attempt < 5; attempt++) {
		_cleanup_free_ char *conf = NULL, *conf_path = NULL, *errlog = NULL;
		int status;

		nginx.port = free_port();
		/* Substitute @PREFIX@ and @PORT@ with sed rather than by hand. */
		conf_path = path_join(nginx.prefix, "nginx.conf");
		assert_int_equal(
			test_system("mkdir -p '%s/www' && sed -e 's|@PREFIX@|%s|g' "
				    "-e 's|@PORT@|%d|g' '%s' > '%s'",
				    nginx.prefix, nginx.prefix, nginx.port, tmpl_path,
				    conf_path),
			0);
		errlog = path_join(nginx.prefix, "error.log");
		nginx.pid = fork();
		assert_true(nginx.pid >= 0);
		if (nginx.pid == 0) {
			/* Dies with us, whatever happens to the test. */
			(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
			execlp("nginx", "nginx", "-e", errlog, "-p", nginx.prefix, "-c",
			       conf_path, NULL);
			execl("/usr/sbin/nginx", "nginx", "-e", errlog, "-p",
			      nginx.prefix, "-c", conf_path, NULL);
			_exit(127);
		}
		for (int i = 0; i < 100; i++) {
			if (port_open(nginx.port)) {
				assert_true(asprintf(&nginx.url,
						     "http://127.0.0.1:%d/fleet/",
						     nginx.port) > 0);
				return 0;
			}
			if (waitpid(nginx.pid, &status, WNOHANG) == nginx.pid)
				break;
			usleep(50000);
		}
		(void) kill(nginx.pid, SIGKILL);
		(void) waitpid(nginx.pid, NULL, 0);
		nginx.pid = -1;
		(void) test_system("cat '%s' >&2", errlog);
	}
	fail_msg("could not start nginx");
	return -1;
}

static int nginx_stop(void **state)
{
	if (nginx.pid > 0) {
		(void) kill(nginx.pid, SIGTERM);
		(void) waitpid(nginx.pid, NULL, 0);
		nginx.pid = -1;
	}
	if (nginx.prefix && !getenv("DM2_TEST_KEEP"))
		(void) rm_rf_at(AT_FDCWD, nginx.prefix);
	nginx.prefix = mfree(nginx.prefix);
	nginx.url = mfree(nginx.url);
	return 0;
}

/* A signing pair made by openssl in the nginx prefix: key.pem, cert.pem. */
static struct sign_key *make_signer(struct cache_trust **ret_trust)
{
	_cleanup_free_ char *key = path_join(nginx.prefix, "key.pem");
	_cleanup_free_ char *cert = path_join(nginx.prefix, "cert.pem");
	struct sign_key *k = NULL;

	assert_int_equal(test_system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
				     "-subj '/CN=dm2 test builder' -keyout '%s' -out '%s' "
				     "2>/dev/null",
				     key, cert),
			 0);
	ASSERT_OK(sign_key_load(key, cert, &k));
	ASSERT_OK(cache_trust_new(ret_trust));
	ASSERT_OK(cache_trust_add_file(*ret_trust, cert, NULL));
	return k;
}

static int sign_cb(const void *data, size_t len, void **ret, size_t *ret_len, void *k)
{
	return sign_data(k, "sha256", data, len, ret, ret_len);
}

/* What a server holding K1 (pushed from file b and manifest) may serve wrongly: tampered,
 * longer objects and a malformed manifest are refused, and nothing enters cc. */
static void check_remote_refusals(struct test_root *tc, struct cache *cc, const char *b,
				  const char *manifest,
				  const struct cache_remote_options *o)
{
	_cleanup_free_ char *reason = NULL, *obj = NULL;
	char hex[SHA256_HEX_SIZE];
	struct cache_stats s;
	uint64_t tmp_bytes;

	/* A tampered object on the server is refused and nothing enters the local store.
	 */
	ASSERT_OK(sha256_file_hex_at(AT_FDCWD, b, hex));
	assert_true(asprintf(&obj, "%s/www/fleet/v1/objects/%s", nginx.prefix, hex) > 0);
	assert_int_equal(
		test_system("printf X | dd of='%s' bs=1 seek=5 conv=notrunc status=none",
			    obj),
		0);
	ASSERT_ERR(cache_remote_pull(cc, nginx.url, K1, o, &reason), -EBADMSG);
	assert_non_null(reason);
	assert_non_null(strstr(reason, "tampered"));
	assert_non_null(strstr(reason, hex));
	reason = mfree(reason);
	ASSERT_OK(cache_stat(cc, &s));
	assert_int_equal(s.entries, 0);
	assert_int_equal(s.objects, 0);
	ASSERT_OK(dir_size_at(tc->fd, "var/cache/dm2/artifacts/tmp", &tmp_bytes));
	assert_int_equal(tmp_bytes, 0);
	ASSERT_OK(dir_size_at(tc->fd, "var/cache/dm2/artifacts/objects", &tmp_bytes));
	assert_int_equal(tmp_bytes, 0);

	/* A longer object is cut off and refused too. */
	assert_int_equal(test_system("printf XYZ >> '%s'", obj), 0);
	ASSERT_ERR(cache_remote_pull(cc, nginx.url, K1, o, &reason), -EBADMSG);
	reason = mfree(reason);

	/* A malformed manifest, even one signed by the trusted key, is refused, naming the
	 * line. */
	assert_int_equal(
		test_system("cd '%s' && printf 'dm2-cache-manifest 2\\nkey %s\\nfile ../../etc 1 "
			    "x\\n' > body && { cat body; printf 'signature '; openssl cms -sign "
			    "-binary -noattr -nocerts -md sha256 -signer cert.pem -inkey key.pem "
			    "-outform DER -in body | base64 -w0; echo; } > '%s'",
			    nginx.prefix, K1, manifest),
		0);
	ASSERT_ERR(cache_remote_pull(cc, nginx.url, K1, o, &reason), -EBADMSG);
	assert_non_null(strstr(reason, "line 3"));
	reason = mfree(reason);

	/* Unsigned: refused before anything else is believed. */
	assert_int_equal(test_system("head -n 3 '%s' > '%s.x' && mv '%s.x' '%s'", manifest,
				     manifest, manifest, manifest),
			 0);
	ASSERT_ERR(cache_remote_pull(cc, nginx.url, K1, o, &reason), -EKEYREJECTED);
	assert_non_null(strstr(reason, "is not signed"));
	reason = mfree(reason);

	/* Only http and https. */
	ASSERT_ERR(cache_remote_pull(cc, "ftp://127.0.0.1/x", K1, o, &reason), -EINVAL);
	reason = mfree(reason);
	ASSERT_ERR(cache_remote_pull(cc, "file:///etc", K1, o, &reason), -EINVAL);
	reason = mfree(reason);
}

static void test_remote(void **state)
{
	_cleanup_(test_root_freep) struct test_root *ta = test_root_new();
	_cleanup_(test_root_freep) struct test_root *tb = test_root_new();
	_cleanup_(test_root_freep) struct test_root *tc = test_root_new();
	_cleanup_(cache_closepp) struct cache *ca = open_cache(ta);
	_cleanup_(cache_closepp) struct cache *cb = open_cache(tb);
	_cleanup_(cache_closepp) struct cache *cc = open_cache(tc);
	_cleanup_(cache_entry_freepp) struct cache_entry *e = NULL;
	_cleanup_free_ char *a = make_file(ta, "a.ko", 'a', 200000);
	_cleanup_free_ char *b = make_file(ta, "b.ko", 'b', 3000);
	_cleanup_free_ char *sv = make_file(ta, "Module.symvers", 's', 100);
	_cleanup_free_ char *reason = NULL, *manifest = NULL;
	char *paths[] = {a, b, NULL}, *names[] = {"a.ko", "b.ko", NULL};
	struct cache_trust *trust = NULL;
	_cleanup_(sign_key_freep) struct sign_key *k = make_signer(&trust);
	struct cache_remote_options o = {
		.connect_timeout_usec = 5000000,
		.trust = trust,
		.sign = sign_cb,
		.sign_userdata = k,
	};
	const struct cache_entry_info info = {"demo", "1.0", K2, "6.1.0-test", K2, "x86_64"};

	ASSERT_OK(cache_store(ca, K1, paths, names, sv));
	/* Nothing unsigned, nothing of unknown origin is published. */
	ASSERT_ERR(cache_remote_push(ca, nginx.url, K1,
				     &(struct cache_remote_options){.trust = trust}, &reason),
		   -ENOKEY);
	reason = mfree(reason);
	ASSERT_ERR(cache_remote_push(ca, nginx.url, K1, &o, &reason), -ENOENT);
	assert_non_null(strstr(reason, "no recorded origin"));
	reason = mfree(reason);
	ASSERT_OK(cache_info_set(ca, K1, &info));
	ASSERT_OK(cache_remote_push(ca, nginx.url, K1, &o, &reason));
	/* Pushing again is harmless (objects already there are not sent again). */
	ASSERT_OK(cache_remote_push(ca, nginx.url, K1, &o, &reason));

	assert_true(asprintf(&manifest, "%s/www/fleet/v1/%s/manifest", nginx.prefix, K1) >
		    0);
	assert_int_equal(access(manifest, F_OK), 0);
	/* Objects first, the manifest last; the second push sent no object again. */
	assert_int_equal(
		test_system("awk '/\"PUT \\/fleet\\/v1\\/objects\\//{o=NR; n++} "
			    "/\"PUT \\/fleet\\/v1\\/%s\\/manifest/{if (!m) m=NR} "
			    "END{exit !(o && m > o && n == 3)}' '%s/access.log'",
			    K1, nginx.prefix),
		0);

	/* Pull into a fresh root: identical files. */
	ASSERT_OK(cache_remote_pull(cb, nginx.url, K1, &o, &reason));
	ASSERT_OK(cache_lookup(cb, K1, &e));
	assert_int_equal(strv_length(e->files), 2);
	assert_string_equal(e->names[0], "a.ko");
	assert_same_file(e->files[0], a);
	assert_same_file(e->files[1], b);
	assert_same_file(e->symvers, sv);
	e = cache_entry_free(e);

	/* Missing key: -ENOENT with a clear reason. */
	ASSERT_ERR(cache_remote_pull(cc, nginx.url, K2, &o, &reason), -ENOENT);
	assert_non_null(reason);
	assert_non_null(strstr(reason, "No cache entry"));
	reason = mfree(reason);
	ASSERT_ERR(cache_remote_push(cc, nginx.url, K2, &o, &reason), -ENOENT);
	reason = mfree(reason);

	check_remote_refusals(tc, cc, b, manifest, &o);
	cache_trust_free(trust);
}

static void test_remote_unreachable(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_(cache_closepp) struct cache *c = open_cache(t);
	_cleanup_free_ char *url = NULL, *reason = NULL;
	struct cache_remote_options o = {.connect_timeout_usec = 2000000};

	assert_true(asprintf(&url, "http://127.0.0.1:%d/", free_port()) > 0);
	ASSERT_ERR(cache_remote_pull(c, url, K1, &o, &reason), -ECONNREFUSED);
	assert_non_null(reason);
	assert_non_null(strstr(reason, "127.0.0.1"));
}

int main(void)
{
	const struct CMUnitTest local[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_dedup),
		cmocka_unit_test(test_corrupt_object),
		cmocka_unit_test(test_missing_object),
		cmocka_unit_test(test_gc_lru),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_remote_unreachable),
	};
	const struct CMUnitTest remote[] = {
		cmocka_unit_test(test_remote),
	};
	int r;

	r = cmocka_run_group_tests_name("cache-local", local, NULL, NULL);
	r += cmocka_run_group_tests_name("cache-remote", remote, nginx_start, nginx_stop);
	return r;
}
