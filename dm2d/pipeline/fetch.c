/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Downloads: transfers set up and run by the one libcurl client (shared/curl-util.h), the
 * results kept in a flat content-addressed store (shared/cas.h) in DM2_DOWNLOAD_DIR. What
 * is fetch's own: resuming .part files, mirrors, retries, and the reasons people read.
 */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "pipeline/fetch.h"
#include "shared/cas.h"
#include "shared/curl-util.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/url.h"
#include "shared/util.h"

/* Files at least this large get a progress line when stderr is a terminal. */
#define PROGRESS_MIN_SIZE (4ULL << 20)

struct transfer {
	struct http_request req;
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
	char *ca_file; /* read by libcurl while the transfer runs */
};

static void transfer_done(struct transfer *t)
{
	http_request_done(&t->req);
	t->ca_file = mfree(t->ca_file);
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
		(void) curl_easy_getinfo(t->req.easy, CURLINFO_RESPONSE_CODE, &code);
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

static bool url_is_http(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
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

/* Resume what the .part file holds (http only), or start it over. *ret_range: the range to
 * ask for, NULL for all. */
static int part_prepare(struct transfer *t, const char *url, char **ret_range)
{
	struct stat st;

	if (fstat(t->fd, &st) < 0)
		return -errno;
	t->written = (uint64_t) st.st_size;
	t->is_http = url_is_http(url);
	*ret_range = NULL;
	if (t->is_http && t->written > 0) {
		t->offset = t->written;
		t->range_requested = true;
		*ret_range = strdup_printf("%" PRIu64 "-", t->offset);
		if (!*ret_range)
			return -ENOMEM;
		if (lseek(t->fd, 0, SEEK_END) < 0)
			return -errno;
		return 0;
	}
	if (ftruncate(t->fd, 0) < 0 || lseek(t->fd, 0, SEEK_SET) < 0)
		return -errno;
	t->written = 0;
	return 0;
}

/* The transfer of url into t->fd, set up by the one client plus fetch's callbacks. With a
 * reason (the CA file is unreadable) the URL cannot be tried at all. */
static int transfer_setup(struct dm2_context *ctx, struct transfer *t, const char *url,
			  const char *range, char **ret_reason)
{
	const struct dm2_config *c = ctx->config;
	_cleanup_free_ char *ca = NULL;
	struct http_options o = {
		.protocols = "https,http,file",
		.follow_redirects = true,
		/* An error page must not land in the .part file. */
		.fail_on_http_error = true,
		.connect_timeout_usec = c->connect_timeout_usec,
		.stall_timeout_usec = c->stall_timeout_usec,
		.max_size = c->max_download_size,
	};
	CURL *e;
	int r;

	if (c->ca_file) {
		ca = context_path(ctx, c->ca_file);
		if (!ca)
			return -ENOMEM;
		o.ca_file = ca;
	}
	r = http_request_init(&t->req, url, &o, ret_reason);
	if (r < 0)
		return r;
	/* The CA file is read at connection time: the handle takes the string along. */
	t->ca_file = TAKE_PTR(ca);
	e = t->req.easy;
	if (curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, t) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_XFERINFODATA, t) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
	    (range && curl_easy_setopt(e, CURLOPT_RANGE, range) != CURLE_OK))
		return -EIO;
	return 0;
}

static bool curl_transient(CURLcode cc)
{
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
		return true;
	default:
		return false;
	}
}

/* How a finished transfer went: worth a retry or not, and why, in one line. */
static int attempt_judge(const struct dm2_config *c, struct transfer *t, const char *url,
			 CURLcode cc, long code, enum attempt_result *ret_result,
			 char **ret_reason)
{
	const char *err = http_request_error(&t->req, cc);
	char *reason;

	*ret_result = ATTEMPT_FATAL;
	if (cc == CURLE_OK) {
		*ret_result = ATTEMPT_OK;
		return 0;
	}
	if (t->range_mismatch || (t->range_requested && code == 416)) {
		*ret_result = ATTEMPT_RESTART;
		reason = strdup_printf("'%s': unusable answer to a resume request", url);
	} else if (t->too_large || cc == CURLE_FILESIZE_EXCEEDED)
		reason = strdup_printf("'%s': larger than MaxDownloadSize=%" PRIu64 " bytes", url,
				       c->max_download_size);
	else if (cc == CURLE_HTTP_RETURNED_ERROR) {
		if (code >= 500 || code == 408 || code == 429)
			*ret_result = ATTEMPT_TRANSIENT;
		reason = strdup_printf("'%s': server answered HTTP %ld", url, code);
	} else if (cc == CURLE_UNSUPPORTED_PROTOCOL)
		reason = strdup_printf("'%s': refused protocol (dm2 fetches https://, http:// "
				       "and file://, and follows redirects only to https:// "
				       "and http://): %s",
				       url, err);
	else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
		reason = strdup_printf("'%s': TLS verification failed: %s", url, err);
	else {
		if (curl_transient(cc))
			*ret_result = ATTEMPT_TRANSIENT;
		reason = strdup_printf("'%s': %s%s", url,
				       cc == CURLE_OPERATION_TIMEDOUT ? "stalled or timed out: " : "",
				       err);
	}
	if (!reason)
		return -ENOMEM;
	*ret_reason = reason;
	return 0;
}

/* One try of one URL into fd. Local I/O errors are returned as -errno; otherwise
 * *ret_result says how it went and *ret_reason (unless OK) why, naming the URL as shown
 * (url_redact()). */
static int attempt(struct dm2_context *ctx, const char *url, const char *shown,
		   const char *name, int fd, enum attempt_result *ret_result, char **ret_reason)
{
	_cleanup_(transfer_done) struct transfer t = {
		.fd = fd,
		.max_size = ctx->config->max_download_size,
		.name = name,
		.content_range_start = -1,
		.progress = isatty(STDERR_FILENO),
	};
	_cleanup_free_ char *range = NULL, *why = NULL;
	CURLcode cc = CURLE_OK;
	long code;
	int r;

	r = part_prepare(&t, url, &range);
	if (r < 0)
		return r;
	r = transfer_setup(ctx, &t, url, range, &why);
	if (r < 0 && why) {
		*ret_result = ATTEMPT_FATAL;
		*ret_reason = TAKE_PTR(why);
		return 0;
	}
	if (r < 0)
		return r;

	r = http_request_perform(&t.req, &cc);
	code = http_request_status(&t.req);
	if (t.progress_printed)
		fputc('\n', stderr);
	if (r < 0)
		return r;
	if (t.write_error < 0)
		return t.write_error;
	return attempt_judge(ctx->config, &t, shown, cc, code, ret_result, ret_reason);
}

int fetch_expand_mirrors(const struct dm2_config *c, char **urls, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	int r;

	STRV_FOREACH(u, urls) {
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
static int cached_file_ok(const struct cas *store, const char *sha256)
{
	_cleanup_free_ char *rel = NULL;
	int r;

	r = cas_verify(store, sha256, CAS_SIZE_ANY);
	if (r == 0)
		return 1;
	if (r == -ENOENT)
		return 0;
	if (r != -EBADMSG)
		return r;
	log_warning("Cached download '%s' is corrupt, removing it.", sha256);
	r = cas_object_path(store, sha256, &rel);
	if (r < 0)
		return r;
	if (unlinkat(store->dir_fd, rel, 0) < 0)
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

/* A download without a known hash that was made before: its content name, via url-<hash>. */
static bool remembered_url(const struct cas *store, const char *url_link,
			   char ret_sha256[SHA256_HEX_SIZE])
{
	char target[SHA256_HEX_SIZE + 1];
	ssize_t k = readlinkat(store->dir_fd, url_link, target, sizeof(target) - 1);

	if (k != SHA256_HEX_SIZE - 1)
		return false;
	target[k] = '\0';
	if (!sha256_hex_canonical(target) || faccessat(store->dir_fd, target, F_OK, 0) < 0)
		return false;
	memcpy(ret_sha256, target, SHA256_HEX_SIZE);
	return true;
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

/* The .part file, locked: another dm2 downloading the same thing finishes first (and we
 * may use its result). A .part file removed by the one before us is opened again. */
static int part_lock(int dir_fd, const char *part, int *ret_fd)
{
	for (;;) {
		_cleanup_close_ int fd = -EBADF;
		struct stat a, b;

		fd = openat(dir_fd, part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX) < 0)
			return -errno;
		if (fstat(fd, &a) < 0)
			return -errno;
		if (fstatat(dir_fd, part, &b, AT_SYMLINK_NOFOLLOW) >= 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
			*ret_fd = TAKE_FD(fd);
			return 0;
		}
	}
}

/* What one fetch_url_full() call works on. */
struct fetch {
	struct dm2_context *ctx;
	struct cas store;     /* DM2_DOWNLOAD_DIR */
	const char *name;     /* for the progress line */
	const char *sha256;   /* expected, lowercase, or NULL */
	int fd;		      /* the locked .part file */
	char hex[SHA256_HEX_SIZE]; /* the content's sha256 once it is in */
	uint64_t size;
	char *reasons;	      /* "; "-joined, one per URL given up */
};

/* The .part file holds a complete transfer: is it what we want? 1 if yes, 0 to try again. */
static int check_content(struct fetch *f, const char *url, bool *restarted, char **reason)
{
	int r;

	r = cas_seal(f->fd, f->hex, &f->size);
	if (r < 0)
		return r;
	if (!f->sha256 || streq(f->hex, f->sha256))
		return 1;
	/* Possibly a stale partial file from elsewhere: once more from scratch, then give
	 * up on this URL. */
	if (ftruncate(f->fd, 0) < 0)
		return -errno;
	*reason = strdup_printf("'%s': SHA256 mismatch: expected %s, got %s", url, f->sha256,
				f->hex);
	if (!*reason)
		return -ENOMEM;
	log_debug("%s", *reason);
	if (*restarted)
		return append_reason(&f->reasons, *reason);
	*restarted = true;
	return 0;
}

/* 1 + Retries= tries of one URL with exponential backoff: 1 once the content is in, 0 if
 * this URL was given up (its reason appended to f->reasons). */
static int try_url(struct fetch *f, const char *url)
{
	const unsigned retries = f->ctx->config->retries;
	/* A mirror's URL may carry credentials: messages get it without them. */
	_cleanup_free_ char *shown = url_redact(url);
	bool restarted = false;
	int r;

	if (!shown)
		return -ENOMEM;

	for (unsigned i = 0; i <= retries; i++) {
		_cleanup_free_ char *reason = NULL;
		/* attempt() sets it whenever it returns >= 0; gcc -O2 cannot see that. */
		enum attempt_result res = ATTEMPT_FATAL;

		if (i > 0) {
			uint64_t wait = MIN(250000ULL << (i - 1), 8000000ULL);
			log_debug("Retrying '%s' in %" PRIu64 " ms", shown, wait / 1000);
			(void) usleep((useconds_t) wait);
		}
		log_debug("Downloading '%s'", shown);
		r = attempt(f->ctx, url, shown, f->name, f->fd, &res, &reason);
		if (r < 0)
			return r;
		if (res == ATTEMPT_RESTART && !restarted) {
			restarted = true;
			if (ftruncate(f->fd, 0) < 0)
				return -errno;
			i--; /* does not count as a try */
			continue;
		}
		if (res == ATTEMPT_OK) {
			bool was_restarted = restarted;

			r = check_content(f, shown, &restarted, &reason);
			if (r != 0)
				return r;
			if (restarted && !was_restarted)
				i--; /* the fresh start does not count as a try either */
			else
				return 0;
			continue;
		}
		log_debug("%s", reason);
		if (res != ATTEMPT_TRANSIENT || i == retries)
			return append_reason(&f->reasons, reason);
	}
	return 0;
}

/* Every URL in turn until one delivers: 1, or 0 with the reasons in f->reasons. */
static int try_urls(struct fetch *f, char **tries)
{
	STRV_FOREACH(u, tries) {
		int r;

		if (!url_allowed(*u)) {
			_cleanup_free_ char *m = strdup_printf(
				"'%s': refused protocol (dm2 fetches https://, http:// and file://)",
				*u);
			if (!m || append_reason(&f->reasons, m) < 0)
				return -ENOMEM;
			continue;
		}
		r = try_url(f, *u);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Download into the locked .part file and commit it to the store. */
static int download(struct fetch *f, char **urls, const char *part, const char *url_link,
		    char **ret_reason)
{
	_cleanup_strv_free_ char **tries = NULL;
	int r;

	r = fetch_expand_mirrors(f->ctx->config, urls, &tries);
	if (r < 0)
		return r;
	r = try_urls(f, tries);
	if (r < 0)
		return r;
	if (r == 0) {
		struct stat st;
		bool mismatch = f->reasons && strstr(f->reasons, "SHA256 mismatch");

		/* Keep a partial download for a later resume, drop an empty one. */
		if (fstat(f->fd, &st) >= 0 && st.st_size == 0)
			(void) unlinkat(f->store.dir_fd, part, 0);
		if (ret_reason)
			*ret_reason = TAKE_PTR(f->reasons);
		return mismatch ? -EUCLEAN : -EREMOTEIO;
	}
	r = cas_commit(&f->store, f->store.dir_fd, part, f->hex, f->size);
	if (r < 0)
		return r;
	if (!f->sha256) {
		r = remember_url(f->store.dir_fd, url_link, f->hex);
		if (r < 0) {
			_cleanup_free_ char *shown = url_redact(urls[0]);

			log_debug_errno(r, "Failed to remember '%s' as '%s', ignoring: %m",
					strna(shown), f->hex);
		}
	}
	return 0;
}

static void fetch_done(struct fetch *f)
{
	cas_close(&f->store);
	f->fd = safe_close(f->fd);
	f->reasons = mfree(f->reasons);
}

/* Already here, by content or by URL? 1 with f->hex set, else 0. */
static int find_cached(struct fetch *f, const char *url_link)
{
	int r;

	if (!f->sha256)
		return remembered_url(&f->store, url_link, f->hex);
	r = cached_file_ok(&f->store, f->sha256);
	if (r > 0)
		memcpy(f->hex, f->sha256, SHA256_HEX_SIZE);
	return r;
}

int fetch_url_full(struct dm2_context *ctx, char **urls, const char *sha256,
		   char **ret_path, char **ret_reason)
{
	_cleanup_(fetch_done) struct fetch f = {.ctx = ctx, .store.dir_fd = -EBADF, .fd = -EBADF};
	_cleanup_free_ char *part = NULL, *url_link = NULL, *name = NULL, *rel = NULL;
	char url_hash[SHA256_HEX_SIZE], want[SHA256_HEX_SIZE];
	int r;

	if (strv_length(urls) == 0 || (sha256 && !sha256_hex_valid(sha256)))
		return -EINVAL;
	if (sha256) {
		/* The store names content in lowercase; people may write either. */
		for (size_t i = 0; i < SHA256_HEX_SIZE; i++)
			want[i] = (char) tolower((unsigned char) sha256[i]);
		f.sha256 = want;
	}
	r = cas_open_at(&f.store, ctx->root_fd, DM2_DOWNLOAD_DIR, false);
	if (r < 0)
		return r;
	sha256_buf_hex(urls[0], strlen(urls[0]), url_hash);
	url_link = strjoin("url-", url_hash);
	name = url_name(urls[0]);
	part = strjoin(f.sha256 ?: url_link, ".part");
	if (!url_link || !name || !part)
		return -ENOMEM;
	f.name = name;

	/* Content known and already here: no download at all. */
	r = find_cached(&f, url_link);
	if (r == 0) {
		r = part_lock(f.store.dir_fd, part, &f.fd);
		if (r < 0)
			return r;
		/* Whoever held the lock before us may have finished it. */
		r = f.sha256 ? cached_file_ok(&f.store, f.sha256) : 0;
		if (r > 0) {
			memcpy(f.hex, f.sha256, SHA256_HEX_SIZE);
			(void) unlinkat(f.store.dir_fd, part, 0);
		} else if (r == 0)
			r = download(&f, urls, part, url_link, ret_reason);
	}
	if (r < 0)
		return r;

	if (ret_path) {
		rel = path_join(DM2_DOWNLOAD_DIR, f.hex);
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
