/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "shared/deb-version.h"

/* A piece of a version: [p, p + n). */
struct span {
	const char *p;
	size_t n;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* dpkg's order(): '~' first, then the end of the string and digits, then letters, then
 * everything else. */
static int order(const char *p, const char *end)
{
	if (p >= end || is_digit(*p))
		return 0;
	if (is_alpha(*p))
		return (unsigned char) *p;
	if (*p == '~')
		return -1;
	return (unsigned char) *p + 256;
}

/* dpkg's verrevcmp() over two spans. */
static int verrevcmp(struct span x, struct span y)
{
	const char *a = x.p, *ae = x.p + x.n, *b = y.p, *be = y.p + y.n;

	while (a < ae || b < be) {
		int first_diff = 0;

		while ((a < ae && !is_digit(*a)) || (b < be && !is_digit(*b))) {
			int ac = order(a, ae), bc = order(b, be);

			if (ac != bc)
				return ac - bc;
			a++;
			b++;
		}
		while (a < ae && *a == '0')
			a++;
		while (b < be && *b == '0')
			b++;
		while (a < ae && b < be && is_digit(*a) && is_digit(*b)) {
			if (!first_diff)
				first_diff = *a - *b;
			a++;
			b++;
		}
		if (a < ae && is_digit(*a))
			return 1;
		if (b < be && is_digit(*b))
			return -1;
		if (first_diff)
			return first_diff;
	}
	return 0;
}

struct deb_version {
	struct span epoch, upstream, revision;
};

static struct deb_version split(const char *s)
{
	struct deb_version v = {};
	const char *colon = strchr(s, ':'), *dash;

	/* An epoch only when all before the first ':' are digits (dpkg refuses the rest).
	 */
	if (colon && colon > s && strspn(s, "0123456789") == (size_t) (colon - s)) {
		v.epoch = (struct span){s, (size_t) (colon - s)};
		s = colon + 1;
	}
	dash = strrchr(s, '-');
	v.upstream = (struct span){s, dash ? (size_t) (dash - s) : strlen(s)};
	if (dash)
		v.revision = (struct span){dash + 1, strlen(dash + 1)};
	return v;
}

/* Epochs are numbers: compare without leading zeros, by length and then digit by digit,
 * so no epoch can overflow. */
static int epoch_cmp(struct span a, struct span b)
{
	int c;

	while (a.n > 0 && *a.p == '0')
		a.p++, a.n--;
	while (b.n > 0 && *b.p == '0')
		b.p++, b.n--;
	if (a.n != b.n)
		return a.n < b.n ? -1 : 1;
	c = a.n ? memcmp(a.p, b.p, a.n) : 0;
	return c;
}

int deb_version_compare(const char *a, const char *b)
{
	struct deb_version x = split(a), y = split(b);
	int r;

	r = epoch_cmp(x.epoch, y.epoch);
	if (r == 0)
		r = verrevcmp(x.upstream, y.upstream);
	if (r == 0)
		r = verrevcmp(x.revision, y.revision);
	return r < 0 ? -1 : r > 0;
}
