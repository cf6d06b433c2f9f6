/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * URLs as dm2 shows them. A URL may carry secrets: "user:password@" before the host, and
 * tokens or signatures in its query ("?token=...", "X-Amz-Signature=..."). Every URL that
 * reaches a message, a log line or --json goes through url_redact() first.
 */

/* A copy of url with the userinfo replaced by "***" and every query value by "***" (the
 * names stay, so the reader still sees which parameter was there); the fragment is dropped.
 * Works on any string, well-formed URL or not, so an error about a malformed URL can show
 * it too. NULL only when out of memory; url NULL gives "". */
char *url_redact(const char *url);
