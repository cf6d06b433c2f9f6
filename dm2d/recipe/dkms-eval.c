/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Evaluate the bash subset dkms.conf files use, without a shell. DKMS itself sources the
 * file as root on every status call; dm2 reads it like data, so nothing in it can run.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdarg.h>

#include "recipe/dkms-eval.h"
#include "shared/log.h"
#include "shared/util.h"

/* ---- growing strings ---- */

struct sbuf {
	char *p;
	size_t n, cap;
};

static int sbuf_putn(struct sbuf *b, const char *s, size_t n)
{
	if (n > DKMS_EVAL_VALUE_MAX - b->n)
		return -E2BIG; /* dkms_eval() names the line */
	if (b->n + n + 1 > b->cap) {
		size_t cap = MAX(b->cap * 2, b->n + n + 64);
		char *p = realloc(b->p, cap);

		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

static int sbuf_puts(struct sbuf *b, const char *s)
{
	return sbuf_putn(b, s, strlen(s));
}

static int sbuf_putc(struct sbuf *b, char c)
{
	return sbuf_putn(b, &c, 1);
}

/* Take the string out (an empty string if nothing was added). */
static char *sbuf_take(struct sbuf *b)
{
	char *p = b->p ?: strdup("");

	*b = (struct sbuf){};
	return p;
}

/* ---- the parser ---- */

struct parser {
	const char *path;
	const char *s;
	size_t n, i;
	unsigned line;
	bool fatal;	  /* stop: the rest of the file cannot be resynchronised */
	unsigned depth;	  /* of expand_text() calls */
	uint64_t *budget; /* work left of DKMS_EVAL_WORK_MAX, shared with sub-parsers */
	struct dkms_vars *vars;
	const struct dkms_eval_params *params;
	recipe_diag_fn diag;
	void *userdata;
};

/* A word being built; in array context unquoted expansions are split into several. */
struct word {
	struct sbuf cur;
	bool have;
	bool split;
	char **words;
};

static void word_done(struct word *w)
{
	free(w->cur.p);
	strv_free(w->words);
}

static int word_push(struct word *w)
{
	int r;

	if (strv_length(w->words) >= DKMS_VARS_MAX)
		return -ENOSPC; /* dkms_eval() names the line */
	r = strv_consume(&w->words, sbuf_take(&w->cur));

	w->have = false;
	return r;
}

static _printf_(3, 4) int fail(struct parser *p, unsigned line, const char *format, ...)
{
	_cleanup_free_ char *m = NULL;
	va_list ap;
	int k;

	va_start(ap, format);
	k = vasprintf(&m, format, ap);
	va_end(ap);
	if (k < 0)
		return -ENOMEM;
	/* One line per problem, whatever the file's values contain. */
	for (char *q = m; *q; q++)
		if (*q == '\n' || *q == '\t')
			*q = ' ';
	if (p->diag)
		p->diag(p->path, line, m, p->userdata);
	else
		log_debug("%s:%u: %s", p->path, line, m);
	return -EBADMSG;
}

/* Count units of work (bytes looked up, pattern steps) against the file's budget. */
static int charge(struct parser *p, uint64_t units)
{
	if (*p->budget > units) { /* never 0 but when exhausted */
		*p->budget -= units;
		return 0;
	}
	*p->budget = 0; /* dkms_eval() stops at the end of this statement */
	return fail(
		p, p->line,
		"expansions take more than %u MiB of work; the file cannot be evaluated "
		"safely",
		DKMS_EVAL_WORK_MAX >> 20);
}

static char peek_at(const struct parser *p, size_t k)
{
	return p->i + k < p->n ? p->s[p->i + k] : '\0';
}

static char peek(const struct parser *p)
{
	return peek_at(p, 0);
}

static bool is_name_start(char c)
{
	return c == '_' || isalpha((unsigned char) c);
}

static bool is_name_char(char c)
{
	return c == '_' || isalnum((unsigned char) c);
}

/* The rest of the current line, shortened, for messages. */
static char *line_snippet(const struct parser *p)
{
	size_t e = p->i;

	while (e < p->n && p->s[e] != '\n')
		e++;
	return strndup(p->s + p->i, MIN(e - p->i, (size_t) 60));
}

static int parse_word(struct parser *p, bool raw, struct word *w);

/* Find the index of the character closing an opening one at p->i + skip, honouring
 * quotes, backslashes and nesting. */
static int find_close(struct parser *p, size_t skip, char open, char close, size_t *ret)
{
	unsigned depth = 1;

	for (size_t k = p->i + skip; k < p->n; k++) {
		char c = p->s[k];

		if (c == '\\') {
			k++;
			continue;
		}
		if (c == '\'' && open != '`') {
			const char *e = memchr(p->s + k + 1, '\'', p->n - k - 1);

			if (!e)
				break;
			k = e - p->s;
			continue;
		}
		if (c == close && --depth == 0) {
			*ret = k;
			return 0;
		}
		if (c == open && open != close)
			depth++;
	}
	p->fatal = true;
	return fail(p, p->line, "unterminated '%c'", open);
}

static unsigned count_lines(const char *s, size_t n)
{
	unsigned l = 0;

	for (size_t k = 0; k < n; k++)
		l += s[k] == '\n';
	return l;
}

static int eval_command(struct parser *p, const char *text, bool backtick, char **ret)
{
	_cleanup_strv_free_ char **w = NULL;
	_cleanup_free_ char *norm = NULL;
	const char *v = NULL;
	char num[32];
	int r;

	r = strv_split(text, " \t\n", &w);
	if (r < 0)
		return r;
	norm = strv_join(w, " ");
	if (!norm)
		return -ENOMEM;

	if (streq(norm, "nproc") || streq(norm, "nproc --all") ||
	    streq(norm, "getconf _NPROCESSORS_ONLN")) {
		(void) snprintf(num, sizeof(num), "%u", p->params->nproc ?: 1);
		v = num;
	} else if (streq(norm, "uname -r"))
		/* The kernel being built for, never the running one. */
		v = strempty(p->params->kernelver);
	else if (streq(norm, "uname -m"))
		v = strempty(p->params->arch);
	if (!v) {
		/* One line, however the command was spread out. */
		bool cut = strlen(norm) > 60;

		if (cut)
			norm[57] = '\0';
		return fail(p, p->line,
			    "command substitution '%s%s%s%s' cannot be evaluated safely",
			    backtick ? "`" : "$(", norm, cut ? "..." : "",
			    backtick ? "`" : ")");
	}
	*ret = strdup(v);
	return *ret ? 0 : -ENOMEM;
}

/* Expand a piece of text (the operand of ${x:-word} and the like) with quotes and $. */
static int expand_text(struct parser *p, const char *s, size_t n, char **ret)
{
	struct parser sub = *p;
	struct word w = {};
	int r;

	/* The one recursion of the parser: parse_word() -> parse_dollar() -> eval_brace()
	 * -> expand_text() -> parse_word(). */
	if (p->depth >= DKMS_EVAL_DEPTH_MAX)
		return fail(
			p, p->line,
			"expansions nested more than %u deep cannot be evaluated safely",
			DKMS_EVAL_DEPTH_MAX);
	sub.s = s;
	sub.n = n;
	sub.i = 0;
	sub.depth = p->depth + 1;
	r = parse_word(&sub, true, &w);
	if (r < 0) {
		word_done(&w);
		return r;
	}
	*ret = sbuf_take(&w.cur);
	word_done(&w);
	return *ret ? 0 : -ENOMEM;
}

/* ---- patterns ----
 *
 * ${v#p} and the like match bash patterns. fnmatch() tries every position again for each
 * '*', exponential in their number ("*a*a*a*a*b"), so the matching is done here: a
 * pattern is compiled once into tokens, and matching returns only to the last '*', at
 * most len(s) * len(pattern) steps. Bracket expressions are left to fnmatch() on one
 * character.
 */

enum glob_kind {
	GLOB_CHAR,
	GLOB_ANY,
	GLOB_STAR,
	GLOB_SET,
};

struct glob_token {
	enum glob_kind kind;
	char c;		/* GLOB_CHAR */
	char *set;	/* GLOB_SET: "[...]" as written */
	size_t set_len; /* what one fnmatch() of it costs */
};

struct glob {
	struct glob_token *t;
	size_t n, cap;
};

static void glob_done(struct glob *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->t[i].set);
	free(g->t);
	*g = (struct glob){};
}

/* p is at '['; the index of the ']' closing the bracket expression, 0 if there is none
 * (then '[' is literal, as in fnmatch()). *ret_scanned: how far it looked. */
static size_t bracket_end(const char *p, size_t *ret_scanned)
{
	size_t k = 1, e = 0;

	if (p[k] == '!' || p[k] == '^')
		k++;
	if (p[k] == ']')
		k++;
	for (; p[k]; k++) {
		if (p[k] == '\\' && p[k + 1]) {
			k++;
			continue;
		}
		if (p[k] == '[' && p[k + 1] && strchr(":=.", p[k + 1])) {
			const char close[] = {p[k + 1], ']', '\0'};
			const char *c = strstr(p + k + 2, close);

			if (!c) {
				k += strlen(p + k);
				break;
			}
			k = c - p + 1;
			continue;
		}
		if (p[k] == ']') {
			e = k;
			break;
		}
	}
	*ret_scanned = k;
	return e;
}

static int glob_compile(struct parser *parser, const char *pat, struct glob *ret)
{
	struct glob g = {};
	int r;

	for (const char *p = pat; *p;) {
		struct glob_token t = {.kind = GLOB_CHAR, .c = *p};
		size_t len = 1, scanned;

		if (*p == '\\' && p[1]) {
			t.c = p[1];
			len = 2;
		} else if (*p == '?')
			t.kind = GLOB_ANY;
		else if (*p == '*')
			t.kind = GLOB_STAR;
		else if (*p == '[') {
			size_t e = bracket_end(p, &scanned);

			/* "[[[[..." without a ']' is a scan to the end for each '['. */
			r = charge(parser, scanned);
			if (r < 0)
				goto fail;
			if (e > 0) {
				t.kind = GLOB_SET;
				len = t.set_len = e + 1;
				t.set = strndup(p, len);
				if (!t.set) {
					r = -ENOMEM;
					goto fail;
				}
			}
		}
		p += len;
		if (t.kind == GLOB_STAR && g.n > 0 && g.t[g.n - 1].kind == GLOB_STAR)
			continue; /* "**" is "*" */
		if (g.n == g.cap) {
			size_t cap = MAX(g.cap * 2, (size_t) 16);
			struct glob_token *nt = reallocarray(g.t, cap, sizeof(*nt));

			if (!nt) {
				free(t.set);
				r = -ENOMEM;
				goto fail;
			}
			g.t = nt;
			g.cap = cap;
		}
		g.t[g.n++] = t;
	}
	*ret = g;
	return 0;
fail:
	glob_done(&g);
	return r;
}

static bool glob_token_matches(const struct glob_token *t, char c)
{
	switch (t->kind) {
	case GLOB_CHAR:
		return t->c == c;
	case GLOB_ANY:
		return true;
	case GLOB_SET:
		return fnmatch(t->set, (const char[]){c, '\0'}, 0) == 0;
	case GLOB_STAR:
		break;
	}
	return false;
}

/* 1 if g matches all of s[0..n), 0 if not; each step is charged to the budget. */
static int glob_match(struct parser *p, const struct glob *g, const char *s, size_t n)
{
	size_t ti = 0, si = 0, star_t = SIZE_MAX, star_s = 0;
	uint64_t steps = 1;
	int r;

	while (si < n) {
		/* A call is up to (n + 1) * (g->n + 1) steps: charged as it goes. */
		if (steps > 4096) {
			r = charge(p, steps);
			if (r < 0)
				return r;
			steps = 0;
		}
		steps++;
		if (ti < g->n && g->t[ti].kind == GLOB_STAR) {
			star_t = ++ti;
			star_s = si;
			continue;
		}
		if (ti < g->n) {
			steps += g->t[ti].set_len;
			if (glob_token_matches(&g->t[ti], s[si])) {
				ti++;
				si++;
				continue;
			}
		}
		if (star_t == SIZE_MAX)
			break;
		ti = star_t;
		si = ++star_s;
	}
	r = charge(p, steps);
	if (r < 0)
		return r;
	if (si < n)
		return 0;
	while (ti < g->n && g->t[ti].kind == GLOB_STAR)
		ti++;
	return ti == g->n;
}

/* ${v#p} ${v##p} ${v%p} ${v%%p} */
static int trim_pattern(struct parser *p, const char *v, const struct glob *g,
			bool prefix, bool longest, char **ret)
{
	size_t len = strlen(v);

	for (size_t step = 0; step <= len; step++) {
		size_t k = longest ? len - step : step; /* length of the part removed */
		int m = glob_match(p, g, prefix ? v : v + len - k, k);

		if (m < 0)
			return m;
		if (m > 0) {
			*ret = prefix ? strdup(v + k) : strndup(v, len - k);
			return *ret ? 0 : -ENOMEM;
		}
	}
	*ret = strdup(v);
	return *ret ? 0 : -ENOMEM;
}

/* ${v/p/s} and ${v//p/s}: longest match at the leftmost position, as bash does. */
static int replace_pattern(struct parser *p, const char *v, const struct glob *g,
			   const char *rep, bool all, char **ret)
{
	struct sbuf b = {};
	size_t len = strlen(v), i = 0;
	bool done = false;
	int r = 0;

	while (i < len) {
		size_t j = len + 1;
		bool try = !done && g->n > 0;

		/* Most patterns start with a character: no match starts where it differs.
		 */
		if (try && g->t[0].kind != GLOB_STAR) {
			r = charge(p, 1 + g->t[0].set_len);
			if (r < 0)
				break;
			if (!glob_token_matches(&g->t[0], v[i])) {
				j = i;
				try = false;
			}
		}
		if (try)
			for (j = len; j > i; j--) {
				r = glob_match(p, g, v + i, j - i);
				if (r != 0)
					break;
			}
		if (r < 0)
			break;
		if (!done && g->n > 0 && j > i) {
			r = sbuf_puts(&b, rep);
			if (r < 0)
				break;
			i = j;
			done = !all;
			continue;
		}
		r = sbuf_putc(&b, v[i++]);
		if (r < 0)
			break;
	}
	if (r < 0) {
		free(b.p);
		return r;
	}
	*ret = sbuf_take(&b);
	return *ret ? 0 : -ENOMEM;
}

static int lookup(struct parser *p, const char *name, const char *idx, char **ret)
{
	const char *v;
	int r;

	if (idx && (streq(idx, "@") || streq(idx, "*"))) {
		struct sbuf b = {};
		size_t n = dkms_vars_size(p->vars, name);

		for (size_t k = 0; k < n; k++) {
			v = dkms_vars_get(p->vars, name, k);
			r = charge(p, 1 + strlen(strempty(v)));
			if (r >= 0 && v && b.n > 0)
				r = sbuf_putc(&b, ' ');
			if (r >= 0 && v)
				r = sbuf_puts(&b, v);
			if (r < 0) {
				free(b.p);
				return r;
			}
		}
		*ret = sbuf_take(&b);
		return *ret ? 0 : -ENOMEM;
	}
	if (idx) {
		uint64_t k;

		if (safe_atou64(idx, &k) < 0)
			return fail(p, p->line,
				    "array index '%s' cannot be evaluated safely", idx);
		v = dkms_vars_get(p->vars, name, k);
	} else
		v = dkms_vars_get(p->vars, name, 0);
	r = charge(p, 1 + strlen(strempty(v)));
	if (r < 0)
		return r;
	/* Unknown variables expand to nothing, as in bash. */
	*ret = strdup(strempty(v));
	return *ret ? 0 : -ENOMEM;
}

/* ${#name}, ${#name[i]}: the length of the value; ${#name[@]}: the number of elements. */
static int brace_length(struct parser *p, const char *name, const char *idx, char **ret)
{
	_cleanup_free_ char *val = NULL;
	int r;

	if (idx && (streq(idx, "@") || streq(idx, "*"))) {
		size_t n = 0, size = dkms_vars_size(p->vars, name);

		for (size_t j = 0; j < size; j++)
			n += !!dkms_vars_get(p->vars, name, j);
		r = asprintf(ret, "%zu", n);
	} else {
		r = lookup(p, name, idx, &val);
		if (r < 0)
			return r;
		r = asprintf(ret, "%zu", strlen(val));
	}
	return r < 0 ? -ENOMEM : 0;
}

/* ${name<op>word}: the default, alternative, trim and replace operators on val. */
static int brace_op(struct parser *p, const char *content, const char *name,
		    const char *val, const char *op, char **ret)
{
	_cleanup_free_ char *arg = NULL;
	int r;

	if (startswith(op, ":-") || startswith(op, ":=") || startswith(op, ":+")) {
		bool set = !isempty(val);

		r = expand_text(p, op + 2, strlen(op + 2), &arg);
		if (r < 0)
			return r;
		if (op[1] == '+')
			*ret = strdup(set ? arg : "");
		else
			*ret = strdup(set ? val : arg);
	} else if (op[0] == '-' || op[0] == '+' || op[0] == '=') {
		bool set = !!dkms_vars_get(p->vars, name, 0);

		r = expand_text(p, op + 1, strlen(op + 1), &arg);
		if (r < 0)
			return r;
		if (op[0] == '+')
			*ret = strdup(set ? arg : "");
		else
			*ret = strdup(set ? val : arg);
	} else if (op[0] == '#' || op[0] == '%') {
		_cleanup_(glob_done) struct glob g = {};
		bool longest = op[1] == op[0];
		const char *pat = op + 1 + longest;

		r = expand_text(p, pat, strlen(pat), &arg);
		if (r < 0)
			return r;
		r = glob_compile(p, arg, &g);
		if (r < 0)
			return r;
		return trim_pattern(p, val, &g, op[0] == '#', longest, ret);
	} else if (op[0] == '/') {
		_cleanup_(glob_done) struct glob g = {};
		_cleanup_free_ char *rep = NULL;
		bool all = op[1] == '/';
		const char *pat = op + 1 + all, *slash = strchr(pat, '/');
		size_t plen = slash ? (size_t) (slash - pat) : strlen(pat);

		r = expand_text(p, pat, plen, &arg);
		if (r < 0)
			return r;
		r = expand_text(p, slash ? slash + 1 : "", slash ? strlen(slash + 1) : 0,
				&rep);
		if (r < 0)
			return r;
		r = glob_compile(p, arg, &g);
		if (r < 0)
			return r;
		return replace_pattern(p, val, &g, rep, all, ret);
	} else
		return fail(p, p->line, "substitution '${%s}' cannot be evaluated safely",
			    content);
	return *ret ? 0 : -ENOMEM;
}

/* ${...}: content is what is between the braces. */
static int eval_brace(struct parser *p, const char *content, char **ret)
{
	_cleanup_free_ char *name = NULL, *idx = NULL, *val = NULL;
	const char *s = content;
	bool length = false;
	size_t k = 0;
	int r;

	if (s[0] == '#' && is_name_start(s[1])) {
		length = true;
		s++;
	}
	if (!is_name_start(s[0])) {
		if (s[0] && strchr("0123456789@*#?$!-", s[0]))
			return fail(
				p, p->line,
				"special parameter '${%s}' cannot be evaluated safely",
				content);
		return fail(p, p->line, "bad substitution '${%s}'", content);
	}
	while (is_name_char(s[k]))
		k++;
	name = strndup(s, k);
	if (!name)
		return -ENOMEM;
	s += k;
	if (*s == '[') {
		const char *e = strchr(s, ']');

		if (!e)
			return fail(p, p->line, "bad substitution '${%s}'", content);
		idx = strndup(s + 1, e - s - 1);
		if (!idx)
			return -ENOMEM;
		s = e + 1;
	}

	if (length) {
		if (*s)
			return fail(p, p->line, "bad substitution '${%s}'", content);
		return brace_length(p, name, idx, ret);
	}
	r = lookup(p, name, idx, &val);
	if (r < 0)
		return r;
	if (!*s) {
		*ret = TAKE_PTR(val);
		return 0;
	}

	return brace_op(p, content, name, val, s, ret);
}

/* At '$'. */
static int parse_dollar(struct parser *p, char **ret)
{
	char c = peek_at(p, 1);
	size_t e;
	int r;

	if (c == '{') {
		_cleanup_free_ char *content = NULL;

		r = find_close(p, 2, '{', '}', &e);
		if (r < 0)
			return r;
		content = strndup(p->s + p->i + 2, e - p->i - 2);
		if (!content)
			return -ENOMEM;
		r = eval_brace(p, content, ret);
		p->line += count_lines(p->s + p->i, e - p->i);
		p->i = e + 1;
		return r;
	}
	if (c == '(') {
		_cleanup_free_ char *text = NULL;

		if (peek_at(p, 2) == '(')
			return fail(p, p->line,
				    "arithmetic expansion '$((...))' cannot be evaluated "
				    "safely");
		r = find_close(p, 2, '(', ')', &e);
		if (r < 0)
			return r;
		text = strndup(p->s + p->i + 2, e - p->i - 2);
		if (!text)
			return -ENOMEM;
		r = eval_command(p, text, false, ret);
		p->line += count_lines(p->s + p->i, e - p->i);
		p->i = e + 1;
		return r;
	}
	if (is_name_start(c)) {
		_cleanup_free_ char *name = NULL;
		size_t k = p->i + 1;

		while (k < p->n && is_name_char(p->s[k]))
			k++;
		name = strndup(p->s + p->i + 1, k - p->i - 1);
		if (!name)
			return -ENOMEM;
		p->i = k;
		return lookup(p, name, NULL, ret);
	}
	if (c && strchr("0123456789@*#?$!-", c))
		return fail(p, p->line,
			    "special parameter '$%c' cannot be evaluated safely", c);
	/* A lone '$' is literal. */
	p->i++;
	*ret = strdup("$");
	return *ret ? 0 : -ENOMEM;
}

static int parse_backtick(struct parser *p, char **ret)
{
	_cleanup_free_ char *text = NULL;
	size_t e;
	int r;

	r = find_close(p, 1, '`', '`', &e);
	if (r < 0)
		return r;
	text = strndup(p->s + p->i + 1, e - p->i - 1);
	if (!text)
		return -ENOMEM;
	r = eval_command(p, text, true, ret);
	p->line += count_lines(p->s + p->i, e - p->i);
	p->i = e + 1;
	return r;
}

static int word_add_expansion(struct word *w, const char *v, bool quoted)
{
	int r;

	if (!w->split || quoted) {
		w->have = true;
		return sbuf_puts(&w->cur, v);
	}
	/* Unquoted in an array: bash splits the result into words. */
	for (; *v; v++) {
		if (strchr(" \t\n", *v)) {
			if (w->have) {
				r = word_push(w);
				if (r < 0)
					return r;
			}
			continue;
		}
		r = sbuf_putc(&w->cur, *v);
		if (r < 0)
			return r;
		w->have = true;
	}
	return 0;
}

static int parse_dquote(struct parser *p, struct word *w)
{
	unsigned start = p->line;
	int r;

	p->i++;
	w->have = true;
	for (;;) {
		char c = peek(p);

		if (p->i >= p->n) {
			p->fatal = true;
			return fail(p, start, "unterminated double quote");
		}
		if (c == '"') {
			p->i++;
			return 0;
		}
		if (c == '\\') {
			char d = peek_at(p, 1);

			if (d == '\n') {
				p->line++;
				p->i += 2;
				continue;
			}
			if (d && strchr("$`\"\\", d)) {
				r = sbuf_putc(&w->cur, d);
				p->i += 2;
			} else {
				r = sbuf_putc(&w->cur, c);
				p->i++;
			}
			if (r < 0)
				return r;
			continue;
		}
		if (c == '$' || c == '`') {
			_cleanup_free_ char *v = NULL;

			r = c == '$' ? parse_dollar(p, &v) : parse_backtick(p, &v);
			if (r < 0)
				return r;
			r = word_add_expansion(w, v, true);
			if (r < 0)
				return r;
			continue;
		}
		if (c == '\n')
			p->line++;
		r = sbuf_putc(&w->cur, c);
		if (r < 0)
			return r;
		p->i++;
	}
}

/* One shell word. raw: whitespace and operators are part of it (operands of ${x:-...}).
 */
static int parse_word(struct parser *p, bool raw, struct word *w)
{
	int r;

	while (p->i < p->n) {
		char c = peek(p);

		if (!raw && strchr(" \t\n;&|<>()", c))
			return 0;
		if (c == '\\') {
			char d = peek_at(p, 1);

			p->i += p->i + 1 < p->n ? 2 : 1;
			if (d == '\n') {
				p->line++;
				continue;
			}
			r = sbuf_putc(&w->cur, d ?: '\\');
			if (r < 0)
				return r;
			w->have = true;
			continue;
		}
		if (c == '\'') {
			const char *e = memchr(p->s + p->i + 1, '\'', p->n - p->i - 1);

			if (!e) {
				p->fatal = true;
				return fail(p, p->line, "unterminated single quote");
			}
			r = sbuf_putn(&w->cur, p->s + p->i + 1, e - p->s - p->i - 1);
			if (r < 0)
				return r;
			p->line += count_lines(p->s + p->i, e - p->s - p->i);
			p->i = e - p->s + 1;
			w->have = true;
			continue;
		}
		if (c == '"') {
			r = parse_dquote(p, w);
			if (r < 0)
				return r;
			continue;
		}
		if (c == '$' || c == '`') {
			_cleanup_free_ char *v = NULL;

			r = c == '$' ? parse_dollar(p, &v) : parse_backtick(p, &v);
			if (r < 0)
				return r;
			r = word_add_expansion(w, v, false);
			if (r < 0)
				return r;
			continue;
		}
		if (c == '\n')
			p->line++;
		r = sbuf_putc(&w->cur, c);
		if (r < 0)
			return r;
		w->have = true;
		p->i++;
	}
	return 0;
}

static void skip_blanks(struct parser *p, bool newlines)
{
	while (p->i < p->n) {
		char c = peek(p);

		if (c == ' ' || c == '\t')
			p->i++;
		else if (c == '\\' && peek_at(p, 1) == '\n') {
			p->i += 2;
			p->line++;
		} else if (newlines && c == '\n') {
			p->i++;
			p->line++;
		} else if (newlines && c == '#') {
			while (p->i < p->n && peek(p) != '\n')
				p->i++;
		} else
			break;
	}
}

/* Is there "NAME=", "NAME+=" or "NAME[...]=" at the current position? */
static bool at_assignment(const struct parser *p)
{
	size_t k = p->i;

	if (k >= p->n || !is_name_start(p->s[k]))
		return false;
	while (k < p->n && is_name_char(p->s[k]))
		k++;
	if (k < p->n && p->s[k] == '[') {
		while (k < p->n && p->s[k] != ']' && p->s[k] != '\n')
			k++;
		if (k >= p->n || p->s[k] != ']')
			return false;
		k++;
	}
	if (k < p->n && p->s[k] == '+')
		k++;
	return k < p->n && p->s[k] == '=';
}

static int parse_array(struct parser *p, const char *name, bool append, unsigned line)
{
	_cleanup_strv_free_ char **items = NULL;
	size_t base = append ? dkms_vars_size(p->vars, name) : 0;
	int r;

	p->i++; /* '(' */
	for (;;) {
		struct word w = {.split = true};
		char c;

		skip_blanks(p, true);
		if (p->i >= p->n) {
			p->fatal = true;
			return fail(p, line, "unterminated array assignment '%s=('",
				    name);
		}
		if (peek(p) == ')') {
			p->i++;
			break;
		}
		r = parse_word(p, false, &w);
		if (r >= 0 && w.have)
			r = word_push(&w);
		if (r >= 0)
			for (char **s = w.words; s && *s; s++) {
				r = strv_length(items) >= DKMS_VARS_MAX
					    ? -ENOSPC
					    : strv_extend(&items, *s);
				if (r < 0)
					break;
			}
		word_done(&w);
		if (r < 0)
			return r;
		c = peek(p);
		if (c && strchr(";&|<>(", c))
			return fail(p, p->line,
				    "'%c' inside an array assignment cannot be evaluated "
				    "safely",
				    c);
	}
	if (!append)
		dkms_vars_unset(p->vars, name);
	for (size_t k = 0; items && items[k]; k++) {
		r = dkms_vars_set(p->vars, name, base + k, items[k],
				  p->params->line_base + line);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_assignment(struct parser *p)
{
	_cleanup_free_ char *name = NULL;
	unsigned line = p->line;
	bool append = false;
	uint64_t index = 0;
	size_t k = p->i;
	struct word w = {};
	char *v;
	int r;

	while (is_name_char(p->s[k]))
		k++;
	name = strndup(p->s + p->i, k - p->i);
	if (!name)
		return -ENOMEM;
	p->i = k;
	if (peek(p) == '[') {
		_cleanup_free_ char *idx = NULL, *t = NULL;
		const char *e = memchr(p->s + p->i, ']', p->n - p->i);

		idx = strndup(p->s + p->i + 1, e - p->s - p->i - 1);
		if (!idx)
			return -ENOMEM;
		/* Indexes may be written as variables ("X[$i]"); only plain numbers are
		 * safe. */
		r = expand_text(p, idx, strlen(idx), &t);
		if (r < 0)
			return r;
		if (safe_atou64(strstrip(t), &index) < 0 || index > 4096)
			return fail(p, line,
				    "array index '%s' of '%s' cannot be evaluated safely",
				    idx, name);
		p->i = e - p->s + 1;
	}
	if (peek(p) == '+') {
		append = true;
		p->i++;
	}
	p->i++; /* '=' */

	if (peek(p) == '(')
		return parse_array(p, name, append, line);

	r = parse_word(p, false, &w);
	if (r < 0) {
		word_done(&w);
		return r;
	}
	v = sbuf_take(&w.cur);
	word_done(&w);
	if (!v)
		return -ENOMEM;
	if (append) {
		const char *old = strempty(dkms_vars_get(p->vars, name, index));
		char *j;

		if (strlen(old) + strlen(v) > DKMS_EVAL_VALUE_MAX) {
			free(v);
			return -E2BIG;
		}
		j = strjoin(old, v);
		free(v);
		if (!j)
			return -ENOMEM;
		v = j;
	}
	r = dkms_vars_set(p->vars, name, index, v, p->params->line_base + line);
	free(v);
	return r;
}

static const char *const shell_keywords[] = {
	"if", "then", "else", "elif", "fi",	  "for",    "while", "until",
	"do", "done", "case", "esac", "function", "select", "time",
};

static const char *const declaration_words[] = {
	"export", "readonly", "declare", "typeset", "local", NULL,
};

static int parse_statement(struct parser *p)
{
	unsigned line = p->line;
	bool declaration = false;
	int r;

	for (;;) {
		char c;

		skip_blanks(p, false);
		c = peek(p);
		if (p->i >= p->n || c == '\n' || c == ';' || c == '#')
			return 0;
		if (strchr("&|<>()", c))
			return fail(p, p->line,
				    "'%c' (pipes, redirections, subshells, background "
				    "jobs) cannot be evaluated safely",
				    c);

		if (at_assignment(p)) {
			r = parse_assignment(p);
			if (r < 0)
				return r;
			continue;
		}

		if (is_name_start(c)) {
			_cleanup_free_ char *name = NULL;
			size_t k = p->i;

			while (k < p->n && is_name_char(p->s[k]))
				k++;
			name = strndup(p->s + p->i, k - p->i);
			if (!name)
				return -ENOMEM;
			if (declaration) {
				/* "export FOO": nothing to evaluate. */
				p->i = k;
				continue;
			}
			if (strv_contains((char **) declaration_words, name)) {
				declaration = true;
				p->i = k;
				skip_blanks(p, false);
				/* Options such as "declare -a". */
				while (peek(p) == '-') {
					while (p->i < p->n && !strchr(" \t\n;", peek(p)))
						p->i++;
					skip_blanks(p, false);
				}
				continue;
			}
			for (size_t j = 0; j < ELEMENTSOF(shell_keywords); j++)
				if (streq(name, shell_keywords[j]))
					return fail(p, line,
						    "shell construct '%s' cannot be "
						    "evaluated safely",
						    name);
			p->i = k;
			skip_blanks(p, false);
			if (peek(p) == '(')
				return fail(p, line,
					    "function definition '%s()' cannot be "
					    "evaluated safely",
					    name);
			return fail(p, line,
				    "command '%s' cannot be run: dm2 evaluates dkms.conf "
				    "without a shell",
				    name);
		}

		{
			_cleanup_free_ char *snip = line_snippet(p);

			return fail(p, line,
				    "shell syntax '%s' cannot be evaluated safely",
				    strna(snip));
		}
	}
}

/* The bounds that helpers deep down report as an errno, with the statement's line. */
static int report_bound(struct parser *p, unsigned line, int r)
{
	if (r == -E2BIG)
		return fail(p, line,
			    "a value longer than %u bytes cannot be evaluated safely",
			    DKMS_EVAL_VALUE_MAX);
	if (r == -ENOSPC)
		return fail(p, line,
			    "more than %u variables, array elements or words cannot be "
			    "evaluated safely",
			    DKMS_VARS_MAX);
	return r;
}

int dkms_eval(const char *path, const char *text, size_t size, struct dkms_vars *vars,
	      const struct dkms_eval_params *params, recipe_diag_fn diag, void *userdata)
{
	_cleanup_free_ char *buf = NULL;
	uint64_t budget = DKMS_EVAL_WORK_MAX;
	struct parser p = {
		.path = path,
		.line = 1,
		.vars = vars,
		.params = params,
		.diag = diag,
		.userdata = userdata,
		.budget = &budget,
	};
	bool failed = false;
	size_t n = 0;
	int r;

	if (memchr(text, '\0', size))
		return fail(&p, 0, "contains a NUL byte; not a dkms.conf text file");

	/* CRLF files: DKMS strips the '\r' of every value; drop it before each newline.
	 */
	buf = malloc(size + 1);
	if (!buf)
		return -ENOMEM;
	for (size_t k = 0; k < size; k++)
		if (!(text[k] == '\r' && (k + 1 == size || text[k + 1] == '\n')))
			buf[n++] = text[k];
	buf[n] = '\0';
	p.s = buf;
	p.n = n;

	while (p.i < p.n && !p.fatal && budget > 0) {
		unsigned line;
		char c;

		skip_blanks(&p, false);
		c = peek(&p);
		if (p.i >= p.n)
			break;
		if (c == '\n') {
			p.i++;
			p.line++;
			continue;
		}
		if (c == ';') {
			p.i++;
			continue;
		}
		if (c == '#') {
			while (p.i < p.n && peek(&p) != '\n')
				p.i++;
			continue;
		}
		line = p.line;
		r = report_bound(&p, line, parse_statement(&p));
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			failed = true;
			while (p.i < p.n && peek(&p) != '\n')
				p.i++;
		}
	}
	return failed ? -EBADMSG : 0;
}
