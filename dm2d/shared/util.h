/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "shared/macro.h"

/* NULL-terminated string vectors. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char *const *l);
/* Append v, taking ownership of it (also on failure). */
int strv_consume(char ***l, char *v);
/* Append a copy of v. */
int strv_extend(char ***l, const char *v);
/* Append a copy of every string of other. */
int strv_extend_strv(char ***l, char *const *other);
bool strv_contains(char *const *l, const char *s);
/* Split s at any of the characters in sep, dropping empty words. */
int strv_split(const char *s, const char *sep, char ***ret);
char *strv_join(char *const *l, const char *sep);
#define STRV_FOREACH(s, l) for (char *const *s = (l); s && *s; s++)

/* String helpers. */
char *startswith(const char *s, const char *prefix);
char *endswith(const char *s, const char *suffix);
char *strstrip(char *s);
char *strjoin_real(const char *x, ...) __attribute__((__sentinel__));
#define strjoin(a, ...) strjoin_real((a), __VA_ARGS__, NULL)
/* asprintf() that returns the string, or NULL when out of memory. */
char *strdup_printf(const char *format, ...) _printf_(1, 2);
int safe_atoi(const char *s, int *ret);
int safe_atou64(const char *s, uint64_t *ret);
int parse_size(const char *s, uint64_t *ret); /* "100", "10K", "5M", "2G" */
/* Free *p and store a copy of s (or NULL) there. */
int free_and_strdup(char **p, const char *s);
char *hexmem(const void *p, size_t l);
int unhexmem(const char *s, void **ret, size_t *ret_len);
/* Compare dotted version strings the way people expect: 6.10 > 6.9, 6.1.0-56 > 6.1.0-9. */
int version_compare(const char *a, const char *b);

/* Find an executable: a name with a slash is checked as it is, any other is looked up in
 * search_path (colon-separated directories, as $PATH). -ENOENT when there is none; the full
 * path in *ret_path if ret_path is not NULL. */
int find_program(const char *search_path, const char *name, char **ret_path);

/* Write s as a JSON string literal (NULL as null), escaping quotes, backslashes and
 * control characters (C0, DEL, C1); a byte that is not part of valid UTF-8 is written as
 * U+FFFD, so the output is valid JSON whatever s holds. */
void json_write_string(FILE *f, const char *s);
/* s is valid UTF-8 (RFC 3629). */
bool utf8_is_valid(const char *s);
/* A copy of s for a terminal: control characters (C0 but those in keep, DEL, C1) and
 * bytes that are not valid UTF-8 written as "\xNN", so that text from a build log cannot
 * move the cursor, retitle the window or clear the screen. NULL on allocation failure. */
char *escape_terminal(const char *s, const char *keep);

/* Time */
uint64_t now_usec(void);          /* CLOCK_REALTIME */
uint64_t now_mono_usec(void);     /* CLOCK_MONOTONIC */
/* "2026-11-24 10:00:00" in local time; buf at least 32 bytes. */
const char *format_timestamp(char *buf, size_t n, uint64_t usec);
