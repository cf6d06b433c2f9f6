/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/url.h"
#include "shared/util.h"

/* The query "a=1&b&c=3" as "a=***&b&c=***". */
static void redact_query(FILE *f, const char *q, size_t len)
{
	const char *end = q + len;

	while (q < end) {
		const char *amp = memchr(q, '&', (size_t) (end - q)) ?: end;
		const char *eq = memchr(q, '=', (size_t) (amp - q));

		if (eq) {
			fwrite(q, 1, (size_t) (eq - q), f);
			fputs("=***", f);
		} else
			fwrite(q, 1, (size_t) (amp - q), f);
		if (amp < end)
			fputc('&', f);
		q = amp + 1;
	}
}

char *url_redact(const char *url)
{
	const char *auth, *auth_end, *at = NULL, *q, *frag;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	url = url ?: "";
	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	/* The authority runs from "//" to the first '/', '?' or '#'; the userinfo ends at
	 * its last '@' (a password may hold an '@' of its own). */
	auth = strstr(url, "://");
	auth = auth ? auth + 3 : url;
	auth_end = auth + strcspn(auth, "/?#");
	for (const char *p = auth; p < auth_end; p++)
		if (*p == '@')
			at = p;
	if (at) {
		fwrite(url, 1, (size_t) (auth - url), f);
		fputs("***", f);
		url = at;
	}
	frag = url + strcspn(url, "#");
	q = memchr(url, '?', (size_t) (frag - url));
	fwrite(url, 1, (size_t) ((q ?: frag) - url), f);
	if (q) {
		fputc('?', f);
		redact_query(f, q + 1, (size_t) (frag - q - 1));
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
