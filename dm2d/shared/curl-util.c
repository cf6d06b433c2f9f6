/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fcntl.h>

#include "shared/curl-util.h"
#include "shared/fs-util.h"
#include "shared/util.h"

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

static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *userdata)
{
	/* Add the configured CA bundle to the system CAs libcurl already loaded. */
	X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);

	if (!store || X509_STORE_load_file(store, userdata) != 1)
		return CURLE_SSL_CACERT_BADFILE;
	return CURLE_OK;
}

static int set_ca_file(CURL *e, const char *ca_file, char **ret_reason)
{
	if (access(ca_file, R_OK) < 0) {
		int r = -errno;

		if (ret_reason)
			*ret_reason = strdup_printf("CAFile '%s' cannot be read: %s", ca_file,
						    strerror(-r));
		return r;
	}
	/* The callback reads the file when a TLS connection is set up, so the string must
	 * live as long as the handle: the caller's options do. */
	if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, ca_file) != CURLE_OK)
		return -EIO;
	return 0;
}

#define SETOPT(e, opt, val)                                            \
	do {                                                           \
		if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) \
			return -EIO;                                   \
	} while (0)

static int setup(struct http_request *h, const char *url, const struct http_options *o)
{
	uint64_t connect = o->connect_timeout_usec ?: 10000000ULL;
	uint64_t stall = o->stall_timeout_usec ?: 30000000ULL;
	CURL *e = h->easy;

	SETOPT(e, CURLOPT_URL, url);
	SETOPT(e, CURLOPT_PROTOCOLS_STR, o->protocols ?: "https,http");
	SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "https,http");
	if (o->follow_redirects) {
		SETOPT(e, CURLOPT_FOLLOWLOCATION, 1L);
		SETOPT(e, CURLOPT_MAXREDIRS, 10L);
	}
	if (o->fail_on_http_error)
		SETOPT(e, CURLOPT_FAILONERROR, 1L);
	/* We are single-threaded with our own signal handling: no SIGALRM for DNS. */
	SETOPT(e, CURLOPT_NOSIGNAL, 1L);
	SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(e, CURLOPT_USERAGENT, "dm2/" DM2_VERSION);
	SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long) MAX(connect / 1000, 1));
	SETOPT(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(e, CURLOPT_LOW_SPEED_TIME, (long) MAX(stall / 1000000, 1));
	if (o->max_size > 0)
		SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) MIN(o->max_size, INT64_MAX));
	SETOPT(e, CURLOPT_ERRORBUFFER, h->errbuf);
	return 0;
}

/* Credentials: libcurl keeps each of them to the URL's own host across redirects
 * (CURLOPT_UNRESTRICTED_AUTH stays off). */
static int setup_auth(struct http_request *h, const struct http_options *o)
{
	CURL *e = h->easy;

	if (o->netrc_file) {
		SETOPT(e, CURLOPT_NETRC, (long) CURL_NETRC_OPTIONAL);
		SETOPT(e, CURLOPT_NETRC_FILE, o->netrc_file);
	}
	if (o->bearer_token) {
		SETOPT(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BEARER);
		SETOPT(e, CURLOPT_XOAUTH2_BEARER, o->bearer_token);
	}
	if (o->client_cert) {
		SETOPT(e, CURLOPT_SSLCERT, o->client_cert);
		SETOPT(e, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (o->client_key) {
		SETOPT(e, CURLOPT_SSLKEY, o->client_key);
		SETOPT(e, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (o->headers)
		SETOPT(e, CURLOPT_HTTPHEADER, (struct curl_slist *) o->headers);
	return 0;
}

#undef SETOPT

int http_request_init(struct http_request *h, const char *url, const struct http_options *o,
		      char **ret_reason)
{
	int r;

	*h = (struct http_request){};
	r = curl_init_once();
	if (r < 0)
		return r;
	h->easy = curl_easy_init();
	if (!h->easy)
		return -ENOMEM;
	r = setup(h, url, o);
	if (r >= 0)
		r = setup_auth(h, o);
	if (r >= 0 && o->ca_file)
		r = set_ca_file(h->easy, o->ca_file, ret_reason);
	if (r < 0) {
		http_request_done(h);
		return r;
	}
	return 0;
}

void http_request_done(struct http_request *h)
{
	if (h->easy)
		curl_easy_cleanup(h->easy);
	h->easy = NULL;
}

/* Drive m until nothing runs any more. */
static int multi_run(CURLM *m)
{
	int running = 1;

	while (running) {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			return -EIO;
		if (running && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
			return -EIO;
	}
	return 0;
}

int http_request_perform(struct http_request *h, CURLcode *ret_result)
{
	CURLcode result = CURLE_FAILED_INIT;
	CURLM *m;
	CURLMsg *msg;
	int left, r;

	h->errbuf[0] = '\0';
	m = curl_multi_init();
	if (!m)
		return -ENOMEM;
	if (curl_multi_add_handle(m, h->easy) != CURLM_OK) {
		curl_multi_cleanup(m);
		return -EIO;
	}
	r = multi_run(m);
	while ((msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == h->easy)
			result = msg->data.result;
	(void) curl_multi_remove_handle(m, h->easy);
	curl_multi_cleanup(m);
	if (r < 0)
		return r;
	*ret_result = result;
	return 0;
}

long http_request_status(struct http_request *h)
{
	long code = 0;

	(void) curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

const char *http_request_error(const struct http_request *h, CURLcode cc)
{
	return h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);
}

static int file_problem(char **ret_reason, const char *what, const char *path,
			unsigned line, int r, const char *problem)
{
	if (!ret_reason)
		return r;
	if (line > 0)
		*ret_reason = strdup_printf("%s '%s' line %u: %s", what, path, line, problem);
	else
		*ret_reason = strdup_printf("%s '%s': %s", what, path, problem);
	return r;
}

/* A header line we send as it is: "Name: value", the name a token (RFC 9110), nothing
 * that could end the line or start another header. */
static bool header_line_valid(const char *l)
{
	const char *colon = strchr(l, ':');

	if (!colon || colon == l)
		return false;
	for (const char *p = l; p < colon; p++)
		if (!strchr("!#$%&'*+-.^_`|~", *p) && !(*p >= '0' && *p <= '9') &&
		    !((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
			return false;
	for (const char *p = colon; *p; p++)
		if ((unsigned char) *p < ' ' && *p != '\t')
			return false;
	return true;
}

int http_header_file_load(const char *path, struct curl_slist **ret, char **ret_reason)
{
	_cleanup_free_ char *text = NULL;
	struct curl_slist *list = NULL;
	unsigned line = 0;
	int r;

	r = read_full_file_at(AT_FDCWD, path, 64 * 1024, &text, NULL);
	if (r < 0)
		return file_problem(ret_reason, "HeaderFile", path, 0, r, strerror(-r));
	for (char *l = text, *next; l; l = next) {
		next = strchr(l, '\n');
		if (next)
			*next++ = '\0';
		line++;
		l = strstrip(l);
		if (*l == '\0' || *l == '#')
			continue;
		if (!header_line_valid(l)) {
			curl_slist_free_all(list);
			return file_problem(ret_reason, "HeaderFile", path, line, -EINVAL,
					    "not a 'Name: value' header");
		}
		struct curl_slist *n = curl_slist_append(list, l);
		if (!n) {
			curl_slist_free_all(list);
			return -ENOMEM;
		}
		list = n;
	}
	*ret = list;
	return 0;
}

int http_token_file_load(const char *path, char **ret, char **ret_reason)
{
	_cleanup_free_ char *text = NULL;
	char *t, *nl;
	int r;

	r = read_full_file_at(AT_FDCWD, path, 64 * 1024, &text, NULL);
	if (r < 0)
		return file_problem(ret_reason, "BearerTokenFile", path, 0, r, strerror(-r));
	nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	t = strstrip(text);
	if (*t == '\0')
		return file_problem(ret_reason, "BearerTokenFile", path, 0, -EINVAL,
				    "the first line holds no token");
	for (const char *p = t; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
			return file_problem(ret_reason, "BearerTokenFile", path, 0, -EINVAL,
					    "the token contains a space or control character");
	t = strdup(t);
	if (!t)
		return -ENOMEM;
	*ret = t;
	return 0;
}

int http_curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_FILESIZE_EXCEEDED:
		return -EFBIG;
	default:
		return -EIO;
	}
}
