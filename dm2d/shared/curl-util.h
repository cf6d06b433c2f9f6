/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one libcurl client of dm2: downloads (pipeline/fetch.c) and the remote build cache
 * (cache/remote.c) set up their transfers here, so TLS verification, protocols, timeouts and
 * size caps are the same everywhere. The caller adds its own callbacks (where the body goes)
 * with curl_easy_setopt() on .easy.
 *
 * Transfers run through a multi handle, never curl_easy_perform() (STYLE.md): the same setup
 * can be driven by an sd-event loop.
 */

#include <curl/curl.h>
#include <stdint.h>

#include "shared/macro.h"

struct http_options {
	/* Protocols the URL may use (CURLOPT_PROTOCOLS_STR); NULL: "https,http". */
	const char *protocols;
	/* Follow up to 10 redirects, to https:// and http:// only: a server must never be
	 * able to send us to a local file. */
	bool follow_redirects;
	/* An HTTP status >= 400 ends the transfer as CURLE_HTTP_RETURNED_ERROR, before any of
	 * the error page reaches the write callback. */
	bool fail_on_http_error;
	/* CA bundle trusted in addition to the system's (not instead: a mirror on the public
	 * internet keeps working); NULL: the system's only. TLS is always verified. */
	const char *ca_file;
	uint64_t connect_timeout_usec; /* 0: 10 s */
	uint64_t stall_timeout_usec;   /* slower than 1 byte/s for this long aborts; 0: 30 s */
	/* A body announced or found larger aborts with CURLE_FILESIZE_EXCEEDED; 0: no cap. */
	uint64_t max_size;

	/* Authentication, all optional. libcurl sends credentials only to the host of the
	 * URL, never to a host a redirect points at. None of these is ever printed. */
	const char *netrc_file;	 /* user and password per host (CURLOPT_NETRC_FILE) */
	const char *bearer_token; /* "Authorization: Bearer TOKEN" */
	const char *client_cert; /* TLS client certificate, PEM */
	const char *client_key;	 /* its key, PEM; NULL: in client_cert */
	/* Extra request headers, "Name: value" each. Sent on every request of this transfer,
	 * redirects included; libcurl drops a custom Authorization: on another host. */
	const struct curl_slist *headers;
};

/* One transfer: an easy handle set up for one URL. Embedded in the caller's object. */
struct http_request {
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
};

/* Set up a transfer of url. On failure *ret_reason (if not NULL) gets a one-line reason,
 * e.g. that the CA file cannot be read. */
int http_request_init(struct http_request *h, const char *url, const struct http_options *o,
		      char **ret_reason);
void http_request_done(struct http_request *h);

/* Run the transfer to its end (synchronously, via a multi handle). Returns a negative errno
 * only when it could not be run at all; how it went is in *ret_result. */
int http_request_perform(struct http_request *h, CURLcode *ret_result);
/* The HTTP status of the last response, 0 if there was none (file://, no connection). */
long http_request_status(struct http_request *h);
/* What went wrong, in one line: libcurl's detailed message for this transfer, or the
 * generic text of cc. */
const char *http_request_error(const struct http_request *h, CURLcode cc);

/* Read a file of extra request headers: "Name: value" per line, blank lines and lines
 * starting with '#' ignored. A bad line gives -EINVAL and a reason naming the file and the
 * line number, never its content (it holds secrets). */
int http_header_file_load(const char *path, struct curl_slist **ret, char **ret_reason);
/* Read a bearer token file: its first line, surrounding whitespace removed; -EINVAL for
 * an empty token or one with control characters or spaces inside. */
int http_token_file_load(const char *path, char **ret, char **ret_reason);

/* A failed transfer as a negative errno: -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT, -EFBIG,
 * -EINVAL (bad URL or protocol), -ENOMEM, else -EIO. */
int http_curl_errno(CURLcode cc);
