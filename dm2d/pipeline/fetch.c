/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Downloads with libcurl. Each transfer is driven through a CURLM multi handle
 * (curl_multi_perform + curl_multi_poll), never curl_easy_perform(), so the same transfer
 * setup can be driven by an sd-event loop later.
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "pipeline/fetch.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/util.h"

/* Files at least this large get a progress line when stderr is a terminal. */
#define PROGRESS_MIN_SIZE (4ULL << 20)

struct transfer {
	CURL *easy;
	int fd;
	bool is_http;
	uint64_t
		offset; /* bytes already in the .part file when the range was requested */
	uint64_t written; /* bytes in the .part file now */
	uint64_t max_size;
	bool range_requested;
	bool checked; /* the first body bytes were seen and the range answer judged */
	bool range_mismatch; /* 206 with a Content-Range that does not start at offset */
	bool too_large;
	int write_error;
	int64_t content_range_start;
	const char *name;
	bool progress;
	bool progress_printed;
	uint64_t progress_last;
	char errbuf[CURL_ERROR_SIZE];
};

static bool curl_initialized;

static int curl_init_once(void)
{
	if (curl_initialized)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	curl_initialized = true;
	return 0;
}

static void __attribute__((__destructor__)) curl_fini(void)
{
	if (curl_initialized)
		curl_global_cleanup();
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * n;
	char line[256];
	char *v;

	snprintf(line, sizeof(line), "%.*s", (int) MIN(len, sizeof(line) - 1), data);
	if (strneq(line, "HTTP/", 5))
		t->content_range_start = -1; /* a new response (after a redirect) */
	else if (strncasecmp(line, "Content-Range:", 14) == 0) {
		uint64_t start;

		v = line + 14;
		v += strspn(v, " \t");
		if (strncasecmp(v, "bytes ", 6) == 0 &&
		    sscanf(v + 6, "%" SCNu64 "-", &start) == 1 && start <= INT64_MAX)
			t->content_range_start = (int64_t) start;
	}
	return len;
}

static size_t on_write(char *data, size_t size, size_t n, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * n, done = 0;

	if (!t->checked) {
		long code = 0;

		t->checked = true;
		(void) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
		if (t->range_requested && code == 206) {
			if (t->content_range_start != (int64_t) t->offset) {
				t->range_mismatch = true;
				return 0;
			}
		} else if (t->range_requested || t->written > 0) {
			/* The server ignored the range and sent everything: restart. */
			if (ftruncate(t->fd, 0) < 0 || lseek(t->fd, 0, SEEK_SET) < 0) {
				t->write_error = -errno;
				return 0;
			}
			t->written = 0;
		}
	}

	if (t->written + len > t->max_size) {
		t->too_large = true;
		return 0;
	}
	while (done < len) {
		ssize_t k = write(t->fd, data + done, len - done);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			t->write_error = -errno;
			return 0;
		}
		done += (size_t) k;
	}
	t->written += len;
	return len;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct transfer *t = userdata;
	uint64_t now = now_mono_usec();
	double total = (double) ((uint64_t) dltotal + t->offset) / (1 << 20);
	double cur = (double) ((uint64_t) dlnow + t->offset) / (1 << 20);

	if (!t->progress || (uint64_t) dltotal + t->offset < PROGRESS_MIN_SIZE)
		return 0;
	if (now - t->progress_last < 200000 && dlnow != dltotal)
		return 0;
	t->progress_last = now;
	t->progress_printed = true;
	fprintf(stderr, "\rDownloading '%s': %.1f/%.1f MiB ", t->name, cur, total);
	return 0;
}

static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *userdata)
{
	/* Add the configured CA bundle to the system CAs libcurl already loaded. */
	X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);

	if (!store || X509_STORE_load_file(store, userdata) != 1)
		return CURLE_SSL_CACERT_BADFILE;
	return CURLE_OK;
}

/* Run one transfer to completion through a multi handle. */
static int transfer_perform(CURL *easy, CURLcode *ret)
{
	CURLM *m = curl_multi_init();
	CURLcode result = CURLE_FAILED_INIT;
	CURLMsg *msg;
	int running = 1, left, r = 0;

	if (!m)
		return -ENOMEM;
	if (curl_multi_add_handle(m, easy) != CURLM_OK) {
		curl_multi_cleanup(m);
		return -EIO;
	}
	while (running) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			r = -EIO;
			break;
		}
		if (running && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK) {
			r = -EIO;
			break;
		}
	}
	while ((msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy)
			result = msg->data.result;
	(void) curl_multi_remove_handle(m, easy);
	curl_multi_cleanup(m);
	if (r < 0)
		return r;
	*ret = result;
	return 0;
}

static bool url_is_http(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 ||
	       strncasecmp(url, "https://", 8) == 0;
}

static bool url_allowed(const char *url)
{
	return url_is_http(url) || strncasecmp(url, "file://", 7) == 0;
}

enum attempt_result {
	ATTEMPT_OK,
	ATTEMPT_TRANSIENT, /* worth retrying the same URL */
	ATTEMPT_FATAL,	   /* try the next URL */
	ATTEMPT_RESTART,   /* partial data unusable: truncate and try again at once */
};

/* One try of one URL into fd. Local I/O errors are returned as -errno. */
static int attempt(struct dm2_context *ctx, const char *url, const char *name, int fd,
		   enum attempt_result *ret_result, char **ret_reason)
{
	const struct dm2_config *c = ctx->config;
	struct transfer t = {.fd = fd,
			     .max_size = c->max_download_size,
			     .name = name,
			     .content_range_start = -1,
			     .is_http = url_is_http(url)};
	_cleanup_free_ char *ca = NULL;
	_cleanup_free_ char *range = NULL;
	CURLcode cc = CURLE_OK;
	long code = 0;
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	t.written = (uint64_t) st.st_size;
	if (t.is_http && t.written > 0) {
		t.offset = t.written;
		t.range_requested = true;
		range = strdup_printf("%" PRIu64 "-", t.offset);
		if (!range)
			return -ENOMEM;
		if (lseek(fd, 0, SEEK_END) < 0)
			return -errno;
	} else {
		if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
			return -errno;
		t.written = 0;
	}
	t.progress = isatty(STDERR_FILENO);

	if (c->ca_file) {
		ca = context_path(ctx, c->ca_file);
		if (!ca)
			return -ENOMEM;
		if (access(ca, R_OK) < 0) {
			r = -errno;
			*ret_reason = strdup_printf("CAFile '%s' cannot be read: %s", ca,
						    strerror(-r));
			*ret_result = ATTEMPT_FATAL;
			return 0;
		}
	}

	t.easy = curl_easy_init();
	if (!t.easy)
		return -ENOMEM;

#define SETOPT(opt, val)                                                                 \
	do {                                                                             \
		if (curl_easy_setopt(t.easy, opt, val) != CURLE_OK) {                    \
			curl_easy_cleanup(t.easy);                                       \
			return -EIO;                                                     \
		}                                                                        \
	} while (0)

	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "https,http,file");
	/* A server must not be able to send us to a local file. */
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https,http");
	SETOPT(CURLOPT_FOLLOWLOCATION, 1L);
	SETOPT(CURLOPT_MAXREDIRS, 10L);
	SETOPT(CURLOPT_FAILONERROR, 1L);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_USERAGENT, "dm2/" DM2_VERSION);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long) MAX(c->connect_timeout_usec / 1000, 1));
	SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(CURLOPT_LOW_SPEED_TIME, (long) MAX(c->stall_timeout_usec / 1000000, 1));
	SETOPT(CURLOPT_MAXFILESIZE_LARGE,
	       (curl_off_t) MIN(c->max_download_size, INT64_MAX));
	SETOPT(CURLOPT_ERRORBUFFER, t.errbuf);
	SETOPT(CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(CURLOPT_HEADERDATA, &t);
	SETOPT(CURLOPT_WRITEFUNCTION, on_write);
	SETOPT(CURLOPT_WRITEDATA, &t);
	SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
	SETOPT(CURLOPT_XFERINFODATA, &t);
	SETOPT(CURLOPT_NOPROGRESS, 0L);
	if (range)
		SETOPT(CURLOPT_RANGE, range);
	if (ca) {
		SETOPT(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		SETOPT(CURLOPT_SSL_CTX_DATA, ca);
	}
#undef SETOPT

	r = transfer_perform(t.easy, &cc);
	(void) curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(t.easy);
	if (t.progress_printed)
		fputc('\n', stderr);
	if (r < 0)
		return r;
	if (t.write_error < 0)
		return t.write_error;

	*ret_result = ATTEMPT_FATAL;
	if (cc == CURLE_OK) {
		*ret_result = ATTEMPT_OK;
		return 0;
	}
	if (t.range_mismatch || (t.range_requested && code == 416)) {
		*ret_result = ATTEMPT_RESTART;
		*ret_reason =
			strdup_printf("'%s': unusable answer to a resume request", url);
	} else if (t.too_large || cc == CURLE_FILESIZE_EXCEEDED)
		*ret_reason = strdup_printf("'%s': larger than MaxDownloadSize=%" PRIu64
					    " bytes",
					    url, c->max_download_size);
	else if (cc == CURLE_HTTP_RETURNED_ERROR) {
		if (code >= 500 || code == 408 || code == 429)
			*ret_result = ATTEMPT_TRANSIENT;
		*ret_reason = strdup_printf("'%s': server answered HTTP %ld", url, code);
	} else if (cc == CURLE_UNSUPPORTED_PROTOCOL)
		*ret_reason = strdup_printf(
			"'%s': refused protocol (dm2 fetches https://, http:// "
			"and file://, and follows redirects only to https:// "
			"and http://): %s",
			url, t.errbuf[0] ? t.errbuf : curl_easy_strerror(cc));
	else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
		*ret_reason =
			strdup_printf("'%s': TLS verification failed: %s", url,
				      t.errbuf[0] ? t.errbuf : curl_easy_strerror(cc));
	else {
		switch (cc) {
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_PARTIAL_FILE:
		case CURLE_GOT_NOTHING:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			*ret_result = ATTEMPT_TRANSIENT;
			break;
		default:
			break;
		}
		*ret_reason = strdup_printf(
			"'%s': %s%s", url,
			cc == CURLE_OPERATION_TIMEDOUT ? "stalled or timed out: " : "",
			t.errbuf[0] ? t.errbuf : curl_easy_strerror(cc));
	}
	if (!*ret_reason)
		return -ENOMEM;
	return 0;
}

int fetch_expand_mirrors(const struct dm2_config *c, char **urls, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	int r;

	STRV_FOREACH(u, urls)
	{
		for (size_t i = 0; i < c->n_mirrors; i++) {
			const char *rest = startswith(*u, c->mirrors[i].prefix);

			if (!rest)
				continue;
			r = strv_consume(&l, strjoin(c->mirrors[i].replace, rest));
			if (r < 0)
				return r;
		}
		r = strv_extend(&l, *u);
		if (r < 0)
			return r;
	}
	if (!l)
		return -EINVAL;
	*ret = TAKE_PTR(l);
	return 0;
}

static char *url_name(const char *url)
{
	const char *e = url + strcspn(url, "?#"), *s = e;

	while (s > url && s[-1] != '/')
		s--;
	if (s == e)
		return strdup(url);
	return strndup(s, (size_t) (e - s));
}

/* Is downloads/<sha256> present with that content? Removes it if it is corrupt. */
static int cached_file_ok(int dir_fd, const char *sha256)
{
	char hex[SHA256_HEX_SIZE];
	int r;

	r = sha256_file_hex_at(dir_fd, sha256, hex);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (streq(hex, sha256))
		return 1;
	log_warning("Cached download '%s' is corrupt, removing it.", sha256);
	if (unlinkat(dir_fd, sha256, 0) < 0)
		return -errno;
	return 0;
}

static int remember_url(int dir_fd, const char *link, const char *sha256)
{
	_cleanup_free_ char *tmp = strjoin(link, ".tmp");

	if (!tmp)
		return -ENOMEM;
	(void) unlinkat(dir_fd, tmp, 0);
	if (symlinkat(sha256, dir_fd, tmp) < 0)
		return -errno;
	if (renameat(dir_fd, tmp, dir_fd, link) < 0) {
		int r = -errno;
		(void) unlinkat(dir_fd, tmp, 0);
		return r;
	}
	return 0;
}

static int append_reason(char **all, const char *reason)
{
	char *n;

	if (!reason)
		return 0;
	n = *all ? strjoin(*all, "; ", reason) : strdup(reason);
	if (!n)
		return -ENOMEM;
	free(*all);
	*all = n;
	return 0;
}

int fetch_url_full(struct dm2_context *ctx, char **urls, const char *sha256,
		   char **ret_path, char **ret_reason)
{
	_cleanup_strv_free_ char **tries = NULL;
	_cleanup_free_ char *reasons = NULL, *part = NULL, *url_link = NULL, *name = NULL;
	_cleanup_close_ int dir_fd = -EBADF, fd = -EBADF;
	char url_hash[SHA256_HEX_SIZE], hex[SHA256_HEX_SIZE];
	bool done = false;
	int r;

	if (strv_length(urls) == 0 || (sha256 && !sha256_hex_valid(sha256)))
		return -EINVAL;
	r = curl_init_once();
	if (r < 0)
		return r;

	r = mkdir_p_at(ctx->root_fd, DM2_DOWNLOAD_DIR, 0755);
	if (r < 0)
		return r;
	dir_fd = openat(ctx->root_fd, DM2_DOWNLOAD_DIR,
			O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;

	sha256_buf_hex(urls[0], strlen(urls[0]), url_hash);
	url_link = strjoin("url-", url_hash);
	name = url_name(urls[0]);
	if (!url_link || !name)
		return -ENOMEM;

	/* Content known and already here: no download at all. */
	if (sha256) {
		r = cached_file_ok(dir_fd, sha256);
		if (r < 0)
			return r;
		if (r > 0)
			goto found;
		part = strjoin(sha256, ".part");
	} else {
		char target[SHA256_HEX_SIZE + 1];
		ssize_t k = readlinkat(dir_fd, url_link, target, sizeof(target) - 1);

		if (k == SHA256_HEX_SIZE - 1) {
			target[k] = '\0';
			if (sha256_hex_valid(target) &&
			    faccessat(dir_fd, target, F_OK, 0) >= 0) {
				memcpy(hex, target, sizeof(hex));
				sha256 = hex;
				goto found;
			}
		}
		part = strjoin(url_link, ".part");
	}
	if (!part)
		return -ENOMEM;

	r = fetch_expand_mirrors(ctx->config, urls, &tries);
	if (r < 0)
		return r;

	/* Another dm2 downloading the same thing: wait for it, then maybe use its result.
	 * A .part file removed by the one before us is opened again. */
	for (;;) {
		struct stat a, b;

		fd = openat(dir_fd, part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			    0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX) < 0)
			return -errno;
		if (fstat(fd, &a) < 0)
			return -errno;
		if (fstatat(dir_fd, part, &b, AT_SYMLINK_NOFOLLOW) >= 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			break;
		fd = safe_close(fd);
	}
	if (sha256) {
		r = cached_file_ok(dir_fd, sha256);
		if (r < 0)
			return r;
		if (r > 0) {
			(void) unlinkat(dir_fd, part, 0);
			goto found;
		}
	}

	STRV_FOREACH(u, tries)
	{
		bool restarted = false;

		if (!url_allowed(*u)) {
			_cleanup_free_ char *m =
				strdup_printf("'%s': refused protocol (dm2 fetches "
					      "https://, http:// and file://)",
					      *u);
			if (!m || append_reason(&reasons, m) < 0)
				return -ENOMEM;
			continue;
		}

		for (unsigned i = 0; i <= ctx->config->retries; i++) {
			_cleanup_free_ char *reason = NULL;
			/* attempt() sets it whenever it returns >= 0; the initializer is
			 * for gcc -O2, which cannot see that. */
			enum attempt_result res = ATTEMPT_FATAL;

			if (i > 0) {
				uint64_t wait = MIN(250000ULL << (i - 1), 8000000ULL);
				log_debug("Retrying '%s' in %" PRIu64 " ms", *u,
					  wait / 1000);
				(void) usleep((useconds_t) wait);
			}
			log_debug("Downloading '%s'", *u);
			r = attempt(ctx, *u, name, fd, &res, &reason);
			if (r < 0)
				return r;
			if (res == ATTEMPT_RESTART && !restarted) {
				restarted = true;
				if (ftruncate(fd, 0) < 0)
					return -errno;
				i--; /* does not count as a try */
				continue;
			}
			if (res == ATTEMPT_OK) {
				if (lseek(fd, 0, SEEK_SET) < 0)
					return -errno;
				r = sha256_fd_hex(fd, hex);
				if (r < 0)
					return r;
				if (!sha256 || streq(hex, sha256)) {
					done = true;
					break;
				}
				/* Possibly a stale partial file from elsewhere: once more
				 * from scratch, then give up on this URL. */
				if (ftruncate(fd, 0) < 0)
					return -errno;
				reason = strdup_printf(
					"'%s': SHA256 mismatch: expected %s, got %s", *u,
					sha256, hex);
				if (!reason)
					return -ENOMEM;
				log_debug("%s", reason);
				if (!restarted) {
					restarted = true;
					i--;
					continue;
				}
				r = append_reason(&reasons, reason);
				if (r < 0)
					return r;
				break;
			}
			log_debug("%s", reason);
			if (res != ATTEMPT_TRANSIENT || i == ctx->config->retries) {
				r = append_reason(&reasons, reason);
				if (r < 0)
					return r;
				break;
			}
		}
		if (done)
			break;
	}

	if (!done) {
		struct stat st;
		bool mismatch;

		/* Keep a partial download for a later resume, drop an empty one. */
		if (fstat(fd, &st) >= 0 && st.st_size == 0)
			(void) unlinkat(dir_fd, part, 0);
		mismatch = reasons && strstr(reasons, "SHA256 mismatch");

		if (ret_reason)
			*ret_reason = TAKE_PTR(reasons);
		return mismatch ? -EUCLEAN : -EREMOTEIO;
	}

	if (fsync(fd) < 0)
		return -errno;
	if (renameat(dir_fd, part, dir_fd, hex) < 0)
		return -errno;
	(void) fsync(dir_fd);
	if (!sha256) {
		r = remember_url(dir_fd, url_link, hex);
		if (r < 0)
			log_debug_errno(r,
					"Failed to remember '%s' as '%s', ignoring: %m",
					urls[0], hex);
		sha256 = hex;
	}

found:
	if (ret_path) {
		_cleanup_free_ char *rel = path_join(DM2_DOWNLOAD_DIR, sha256);
		char *p = rel ? context_path(ctx, rel) : NULL;

		if (!p)
			return -ENOMEM;
		*ret_path = p;
	}
	return 0;
}

int fetch_url(struct dm2_context *ctx, char **urls, const char *sha256, char **ret_path)
{
	_cleanup_free_ char *reason = NULL;
	int r;

	r = fetch_url_full(ctx, urls, sha256, ret_path, &reason);
	if (r < 0 && reason)
		log_debug("%s", reason);
	return r;
}
