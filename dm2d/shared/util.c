/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "shared/util.h"

char **strv_free(char **l)
{
	if (!l)
		return NULL;
	for (char **i = l; *i; i++)
		free(*i);
	free(l);
	return NULL;
}

size_t strv_length(char *const *l)
{
	size_t n = 0;

	if (l)
		while (l[n])
			n++;
	return n;
}

int strv_consume(char ***l, char *v)
{
	size_t n = strv_length(*l);
	char **c;

	if (!v)
		return -ENOMEM;
	c = realloc(*l, sizeof(char *) * (n + 2));
	if (!c) {
		free(v);
		return -ENOMEM;
	}
	c[n] = v;
	c[n + 1] = NULL;
	*l = c;
	return 0;
}

int strv_extend(char ***l, const char *v)
{
	return strv_consume(l, strdup(v));
}

int strv_extend_strv(char ***l, char *const *other)
{
	STRV_FOREACH(o, other)
		if (strv_extend(l, *o) < 0)
			return -ENOMEM;
	return 0;
}

bool strv_contains(char *const *l, const char *s)
{
	STRV_FOREACH(i, l)
		if (streq(*i, s))
			return true;
	return false;
}

int strv_split(const char *s, const char *sep, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	const char *p = s;
	int r;

	/* An empty list is an empty vector, not NULL. */
	l = calloc(1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	while (*p) {
		size_t n;

		p += strspn(p, sep);
		n = strcspn(p, sep);
		if (n == 0)
			break;
		r = strv_consume(&l, strndup(p, n));
		if (r < 0)
			return r;
		p += n;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

char *strv_join(char *const *l, const char *sep)
{
	size_t n = 1, k = strlen(sep);
	char *s, *p;

	STRV_FOREACH(i, l)
		n += strlen(*i) + k;
	s = p = malloc(n);
	if (!s)
		return NULL;
	*p = '\0';
	STRV_FOREACH(i, l) {
		if (i != l) {
			memcpy(p, sep, k);
			p += k;
		}
		size_t m = strlen(*i);
		memcpy(p, *i, m);
		p += m;
	}
	*p = '\0';
	return s;
}

char *startswith(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(s, prefix, n) != 0)
		return NULL;
	return (char *) s + n;
}

char *endswith(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	if (b > a || memcmp(s + a - b, suffix, b) != 0)
		return NULL;
	return (char *) s + a - b;
}

char *strstrip(char *s)
{
	char *e;

	while (isspace((unsigned char) *s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char) e[-1]))
		e--;
	*e = '\0';
	return s;
}

char *strjoin_real(const char *x, ...)
{
	va_list ap;
	size_t n = 0;
	char *r, *p;

	va_start(ap, x);
	for (const char *t = x; t; t = va_arg(ap, const char *))
		n += strlen(t);
	va_end(ap);

	r = p = malloc(n + 1);
	if (!r)
		return NULL;
	va_start(ap, x);
	for (const char *t = x; t; t = va_arg(ap, const char *)) {
		size_t m = strlen(t);
		memcpy(p, t, m);
		p += m;
	}
	va_end(ap);
	*p = '\0';
	return r;
}

char *strdup_printf(const char *format, ...)
{
	va_list ap;
	char *s;
	int k;

	va_start(ap, format);
	k = vasprintf(&s, format, ap);
	va_end(ap);
	return k < 0 ? NULL : s;
}

int safe_atoi(const char *s, int *ret)
{
	char *e;
	long l;

	errno = 0;
	l = strtol(s, &e, 10);
	if (errno > 0)
		return -errno;
	if (e == s || *e != '\0' || l < INT_MIN || l > INT_MAX)
		return -EINVAL;
	*ret = (int) l;
	return 0;
}

int safe_atou64(const char *s, uint64_t *ret)
{
	unsigned long long l;
	char *e;

	s += strspn(s, " \t");
	if (*s == '-')
		return -ERANGE;
	errno = 0;
	l = strtoull(s, &e, 10);
	if (errno > 0)
		return -errno;
	if (e == s || *e != '\0')
		return -EINVAL;
	*ret = l;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		char suffix;
		uint64_t factor;
	} units[] = { { 'K', 1ULL << 10 }, { 'M', 1ULL << 20 }, { 'G', 1ULL << 30 },
		      { 'T', 1ULL << 40 } };
	_cleanup_free_ char *c = strdup(s);
	uint64_t v, f = 1;
	size_t n;
	int r;

	if (!c)
		return -ENOMEM;
	n = strlen(c);
	if (n > 1 && (c[n - 1] == 'B' || c[n - 1] == 'b') && !isdigit((unsigned char) c[n - 2]))
		c[--n] = '\0';
	if (n == 0)
		return -EINVAL;
	/* One unit at most ("1MK" is not a size), and a number before it ("k" is not). */
	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (toupper((unsigned char) c[n - 1]) == units[i].suffix) {
			f = units[i].factor;
			c[--n] = '\0';
			break;
		}
	if (n == 0)
		return -EINVAL;
	r = safe_atou64(c, &v);
	if (r < 0)
		return r;
	if (v > UINT64_MAX / f)
		return -ERANGE;
	*ret = v * f;
	return 0;
}

int free_and_strdup(char **p, const char *s)
{
	char *c = NULL;

	if (s) {
		c = strdup(s);
		if (!c)
			return -ENOMEM;
	}
	free(*p);
	*p = c;
	return 0;
}

char *hexmem(const void *p, size_t l)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *b = p;
	char *r = malloc(l * 2 + 1);

	if (!r)
		return NULL;
	for (size_t i = 0; i < l; i++) {
		r[i * 2] = hex[b[i] >> 4];
		r[i * 2 + 1] = hex[b[i] & 15];
	}
	r[l * 2] = '\0';
	return r;
}

static int unhexchar(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -EINVAL;
}

int unhexmem(const char *s, void **ret, size_t *ret_len)
{
	size_t n = strlen(s);
	_cleanup_free_ uint8_t *b = NULL;

	if (n % 2)
		return -EINVAL;
	b = malloc(n / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = unhexchar(s[i * 2]), lo = unhexchar(s[i * 2 + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		b[i] = (uint8_t) (hi << 4 | lo);
	}
	*ret = TAKE_PTR(b);
	if (ret_len)
		*ret_len = n / 2;
	return 0;
}

int version_compare(const char *a, const char *b)
{
	/* Runs of digits compare numerically, everything else byte by byte. */
	while (*a || *b) {
		if (isdigit((unsigned char) *a) && isdigit((unsigned char) *b)) {
			while (*a == '0')
				a++;
			while (*b == '0')
				b++;
			size_t na = strspn(a, "0123456789"), nb = strspn(b, "0123456789");
			if (na != nb)
				return na < nb ? -1 : 1;
			int c = strncmp(a, b, na);
			if (c != 0)
				return c < 0 ? -1 : 1;
			a += na;
			b += nb;
			continue;
		}
		if (*a != *b) {
			/* End of string sorts before anything else. */
			if (!*a)
				return -1;
			if (!*b)
				return 1;
			return (unsigned char) *a < (unsigned char) *b ? -1 : 1;
		}
		a++;
		b++;
	}
	return 0;
}

/* 0 for a regular file we may execute (access() alone says yes to directories). */
static int check_executable(const char *path)
{
	struct stat st;

	if (access(path, X_OK) < 0)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISREG(st.st_mode) ? 0 : -EACCES;
}

int find_program(const char *search_path, const char *name, char **ret_path)
{
	const char *p = search_path;

	if (isempty(name))
		return -EINVAL;
	if (strchr(name, '/')) {
		int r = check_executable(name);

		if (r < 0)
			return r;
		if (ret_path) {
			*ret_path = strdup(name);
			if (!*ret_path)
				return -ENOMEM;
		}
		return 0;
	}
	while (p && *p) {
		size_t n = strcspn(p, ":");
		_cleanup_free_ char *f = NULL;

		/* An empty entry means the current directory in $PATH; we never want that. */
		if (n > 0) {
			f = strdup_printf("%.*s/%s", (int) n, p, name);
			if (!f)
				return -ENOMEM;
			if (check_executable(f) >= 0) {
				if (ret_path)
					*ret_path = TAKE_PTR(f);
				return 0;
			}
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return -ENOENT;
}

/* The length of the UTF-8 sequence at p (RFC 3629: no overlong forms, no surrogates, at
 * most U+10FFFF) and its code point, or 0 if p does not start one. */
static size_t utf8_sequence(const unsigned char *p, uint32_t *ret_cp)
{
	uint32_t cp;
	size_t n;

	if (p[0] < 0x80) {
		*ret_cp = p[0];
		return 1;
	}
	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0; /* a continuation byte, an overlong lead, or beyond U+10FFFF */
	n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	cp = p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also at the terminating NUL */
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret_cp = cp;
	return n;
}

bool utf8_is_valid(const char *s)
{
	uint32_t cp;

	for (const unsigned char *p = (const unsigned char *) s; *p;) {
		size_t n = utf8_sequence(p, &cp);

		if (n == 0)
			return false;
		p += n;
	}
	return true;
}

/* C0, DEL and C1: what a terminal may take for the start of a control sequence. */
static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

char *escape_terminal(const char *s, const char *keep)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *) s;
	char *r, *o;

	/* Every byte grows to "\xNN" at most. */
	r = o = malloc(strlen(s) * 4 + 1);
	if (!r)
		return NULL;
	while (*p) {
		uint32_t cp = 0;
		size_t n = utf8_sequence(p, &cp);

		if (n > 0 && (!is_control(cp) || (cp < 0x80 && strchr(keep, (int) cp)))) {
			memcpy(o, p, n);
			o += n;
			p += n;
			continue;
		}
		/* Escape the lead byte alone: what follows may be valid again. */
		for (size_t i = 0; i < MAX(n, (size_t) 1); i++, p++) {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return r;
}

/* The escape JSON needs for the character at p (n bytes, code point cp), or NULL when it
 * is written as it is. buf holds a \u escape. */
static const char *json_escape(const unsigned char *p, size_t n, uint32_t cp, char buf[8])
{
	if (n == 0) /* JSON is UTF-8: another byte becomes U+FFFD, as in decoders. */
		return "\\ufffd";
	switch (*p) {
	case '"':
		return "\\\"";
	case '\\':
		return "\\\\";
	case '\n':
		return "\\n";
	case '\r':
		return "\\r";
	case '\t':
		return "\\t";
	}
	if (!is_control(cp)) /* DEL and C1 too: --json may go to a terminal */
		return NULL;
	(void) snprintf(buf, 8, "\\u%04x", (unsigned) cp);
	return buf;
}

void json_write_string(FILE *f, const char *s)
{
	const unsigned char *run;

	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	/* Plain text goes out in runs: status --json writes thousands of strings. */
	run = (const unsigned char *) s;
	for (const unsigned char *p = run; *p;) {
		uint32_t cp = 0;
		size_t n = utf8_sequence(p, &cp);
		char buf[8];
		const char *esc = json_escape(p, n, cp, buf);

		if (!esc) {
			p += n;
			continue;
		}
		fwrite(run, 1, (size_t) (p - run), f);
		fputs(esc, f);
		p += n ?: 1;
		run = p;
	}
	fputs((const char *) run, f);
	fputc('"', f);
}

static uint64_t clock_usec(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

uint64_t now_usec(void)
{
	return clock_usec(CLOCK_REALTIME);
}

uint64_t now_mono_usec(void)
{
	return clock_usec(CLOCK_MONOTONIC);
}

const char *format_timestamp(char *buf, size_t n, uint64_t usec)
{
	time_t t = (time_t) (usec / 1000000ULL);
	struct tm tm;

	if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, n, "-");
	return buf;
}
