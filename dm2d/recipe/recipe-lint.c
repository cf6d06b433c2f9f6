/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm2 recipe lint: the loader's errors, then checks of what a loadable recipe can still
 * get wrong. The file is read a second time with the INI reader so that every finding has
 * the line and column of the key it is about, whether or not the recipe loaded.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "recipe/recipe-lint.h"
#include "recipe/recipe.h"
#include "shared/fs-util.h"
#include "shared/ini.h"
#include "shared/util.h"

static const char *const lint_severity_table[_LINT_SEVERITY_MAX] = {
	[LINT_ERROR] = "error",
	[LINT_WARNING] = "warning",
};
DEFINE_STRING_TABLE(lint_severity, _LINT_SEVERITY_MAX);

/* ---- did you mean ---- */

static const char *const recipe_keys[] = {"Name", "Description", "License", NULL};
static const char *const source_keys[] = {"Version", "URL",    "Path",	"SHA256",
					  "GitTree", "Kernel", "Patch", NULL};
static const char *const build_keys[] = {"Directory",	  "Modules", "MakeVariable",
					 "RequireConfig", "Arch",    "Needs",
					 "Strip",	  NULL};
static const char *const install_keys[] = {"Directory", "ModuleDirectory", NULL};
static const char *const sections[] = {"Recipe", "Source", "Build", "Install", NULL};

/* Levenshtein distance, ignoring case; SIZE_MAX for words too long to be a typo. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			bool same = tolower((unsigned char) a[i - 1]) ==
				    tolower((unsigned char) b[j - 1]);
			size_t best = diag + (same ? 0 : 1);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* The closest word at most two edits away (and fewer edits than the word is long). */
static const char *closest(const char *const *words, const char *w)
{
	const char *best = NULL;
	size_t best_d = 3;

	if (isempty(w))
		return NULL;
	for (size_t i = 0; words[i]; i++) {
		size_t d = edit_distance(w, words[i]);

		if (d < best_d && d < strlen(w)) {
			best = words[i];
			best_d = d;
		}
	}
	return best;
}

const char *recipe_suggest_key(const char *section, const char *key)
{
	if (streq(section, "Recipe"))
		return closest(recipe_keys, key);
	if (streq(section, "Source"))
		return closest(source_keys, key);
	if (streq(section, "Build"))
		return closest(build_keys, key);
	if (streq(section, "Install"))
		return closest(install_keys, key);
	return NULL;
}

const char *recipe_suggest_section(const char *section)
{
	return closest(sections, section);
}

/* ---- findings ---- */

struct lint_source {
	unsigned line; /* of its [Source] header */
	char *version;
	char *kernel;
	unsigned kernel_line;
	char *url; /* the first http(s):// URL= */
	unsigned url_line;
	bool verified; /* SHA256= or GitTree= */
	char *path;
	unsigned path_line;
	/* From Kernel=: the kernels it matches as [lo, hi) (see kv_parse()). */
	bool ranged, range_ok;
	uint64_t lo, hi;
};

struct linter {
	const char *file;
	char *text;   /* the file, split into lines in place */
	char **lines; /* lines[i] is line i + 1 (borrowed from text) */
	size_t n_lines;
	struct lint_result *res;
	struct lint_source *sources;
	size_t n_sources;
	bool in_source;
	int error;
};

static void add(struct linter *l, unsigned line, unsigned column, enum lint_severity sev,
		const char *format, ...) _printf_(5, 6);
static void add(struct linter *l, unsigned line, unsigned column, enum lint_severity sev,
		const char *format, ...)
{
	struct lint_result *res = l->res;
	struct lint_diag *d;
	char *msg = NULL;
	va_list ap;

	va_start(ap, format);
	if (vasprintf(&msg, format, ap) < 0)
		msg = NULL;
	va_end(ap);
	d = msg ? reallocarray(res->diags, res->n + 1, sizeof(*d)) : NULL;
	if (!d) {
		free(msg);
		l->error = -ENOMEM;
		return;
	}
	res->diags = d;
	d[res->n] = (struct lint_diag){.file = strdup(l->file),
				       .line = line,
				       .column = column,
				       .severity = sev,
				       .message = msg};
	if (!d[res->n].file) {
		free(msg);
		l->error = -ENOMEM;
		return;
	}
	res->n++;
	if (sev == LINT_ERROR)
		res->n_errors++;
	else
		res->n_warnings++;
}

static const char *line_text(struct linter *l, unsigned line)
{
	return line > 0 && line <= l->n_lines ? l->lines[line - 1] : NULL;
}

/* Column of the first character of the line that is not white space. */
static unsigned key_column(struct linter *l, unsigned line)
{
	const char *t = line_text(l, line);

	return t ? (unsigned) strspn(t, " \t") + 1 : 0;
}

/* Column of word in the value of a "Key=value" line (of the value if word is NULL). */
static unsigned value_column(struct linter *l, unsigned line, const char *word)
{
	const char *t = line_text(l, line), *eq, *w;

	if (!t || !(eq = strchr(t, '=')))
		return key_column(l, line);
	eq++;
	eq += strspn(eq, " \t");
	w = word ? strstr(eq, word) : NULL;
	return (unsigned) ((w ?: eq) - t) + 1;
}

static void on_load_problem(const char *file, unsigned line, const char *message,
			    void *userdata)
{
	struct linter *l = userdata;

	add(l, line, key_column(l, line), LINT_ERROR, "%s", message);
}

static int split_lines(struct linter *l)
{
	size_t n = 1;

	for (const char *p = l->text; *p; p++)
		n += *p == '\n';
	l->lines = calloc(n, sizeof(char *));
	if (!l->lines)
		return -ENOMEM;
	for (char *p = l->text; p;) {
		char *nl = strchr(p, '\n');

		l->lines[l->n_lines++] = p;
		if (nl)
			*nl++ = '\0';
		p = nl;
	}
	return 0;
}

/* ---- collecting [Source] facts ---- */

static int on_item(const char *section, const char *key, const char *value, unsigned line,
		   void *userdata)
{
	struct linter *l = userdata;
	struct lint_source *s;

	if (!key) {
		l->in_source = streq(section, "Source");
		if (!l->in_source)
			return 0;
		s = reallocarray(l->sources, l->n_sources + 1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		l->sources = s;
		s[l->n_sources++] = (struct lint_source){.line = line};
		return 0;
	}
	if (!l->in_source)
		return 0;
	s = &l->sources[l->n_sources - 1];
	if (streq(key, "Version") && !s->version)
		return free_and_strdup(&s->version, value);
	if (streq(key, "Kernel") && !s->kernel) {
		s->kernel_line = line;
		return free_and_strdup(&s->kernel, value);
	}
	if (streq(key, "URL") && !s->url &&
	    (startswith(value, "http://") || startswith(value, "https://"))) {
		s->url_line = line;
		return free_and_strdup(&s->url, value);
	}
	if (streq(key, "SHA256") || streq(key, "GitTree"))
		s->verified = true;
	if (streq(key, "Path") && !s->path) {
		s->path_line = line;
		return free_and_strdup(&s->path, value);
	}
	return 0;
}

/* ---- kernel ranges as intervals ---- */

/* A kernel version of up to three numbers as one comparable integer, 20 bits a number. */
#define KV_BITS 20
#define KV_NUM_MAX ((1U << KV_BITS) - 1)

static int kv_parse(const char *v, uint64_t *ret, unsigned *ret_n)
{
	uint64_t nums[3] = {};
	unsigned n = 0;

	for (const char *p = v; *p;) {
		uint64_t x = 0;

		if (n == 3)
			return -ERANGE;
		for (; isdigit((unsigned char) *p); p++)
			x = x < KV_NUM_MAX ? x * 10 + (uint64_t) (*p - '0') : KV_NUM_MAX;
		nums[n++] = x > KV_NUM_MAX ? KV_NUM_MAX : x;
		if (*p == '.')
			p++;
	}
	*ret = nums[0] << (2 * KV_BITS) | nums[1] << KV_BITS | nums[2];
	*ret_n = n;
	return 0;
}

/* The first version after every one that starts with the n numbers of v. */
static uint64_t kv_next(uint64_t v, unsigned n)
{
	return v + (UINT64_C(1) << (KV_BITS * (3 - n)));
}

static char *kv_format(uint64_t v)
{
	unsigned a = (unsigned) (v >> (2 * KV_BITS)), b = (v >> KV_BITS) & KV_NUM_MAX,
		 c = v & KV_NUM_MAX;

	return c ? strdup_printf("%u.%u.%u", a, b, c) : strdup_printf("%u.%u", a, b);
}

/* [lo, hi) as a Kernel= value. */
static char *interval_format(uint64_t lo, uint64_t hi)
{
	_cleanup_free_ char *a = lo ? kv_format(lo) : NULL;
	_cleanup_free_ char *b = hi != UINT64_MAX ? kv_format(hi) : NULL;

	if (a && b)
		return strjoin(">=", a, " <", b);
	if (a)
		return strjoin(">=", a);
	if (b)
		return strjoin("<", b);
	return strdup("any");
}

/* Each constraint as an interval, intersected; mirrors kernel_range_match(), which
 * compares a kernel only as far as the constraint's version goes ("<=6.8" takes 6.8.12).
 */
static void source_interval(struct linter *l, struct lint_source *s)
{
	struct kernel_range k = {};
	uint64_t lo = 0, hi = UINT64_MAX;

	s->ranged = s->kernel != NULL;
	if (!s->kernel || kernel_range_parse(s->kernel, &k) < 0)
		return; /* no range, or a syntax error the loader reports */
	for (size_t i = 0; i < k.n; i++) {
		uint64_t v;
		unsigned n;

		if (kv_parse(k.c[i].version, &v, &n) < 0) {
			add(l, s->kernel_line,
			    value_column(l, s->kernel_line, k.c[i].version), LINT_ERROR,
			    "kernel version '%s' has more than three numbers: a kernel "
			    "version is MAJOR.MINOR or MAJOR.MINOR.PATCH",
			    k.c[i].version);
			kernel_range_done(&k);
			return;
		}
		switch (k.c[i].op) {
		case RANGE_OP_LT:
			hi = MIN(hi, v);
			break;
		case RANGE_OP_LE:
			hi = MIN(hi, kv_next(v, n));
			break;
		case RANGE_OP_GT:
			lo = MAX(lo, kv_next(v, n));
			break;
		case RANGE_OP_GE:
			lo = MAX(lo, v);
			break;
		case RANGE_OP_EQ:
			lo = MAX(lo, v);
			hi = MIN(hi, kv_next(v, n));
			break;
		case _RANGE_OP_MAX:
		case _RANGE_OP_INVALID:
			break;
		}
	}
	kernel_range_done(&k);
	if (lo >= hi) {
		add(l, s->kernel_line, value_column(l, s->kernel_line, NULL), LINT_ERROR,
		    "Kernel= '%s' matches no kernel: its bounds exclude each other",
		    s->kernel);
		return;
	}
	s->lo = lo;
	s->hi = hi;
	s->range_ok = true;
}

/* Two sources whose kernels overlap: the newer Version= is chosen there, so the older
 * one is dead (all its kernels taken) or the overlap is probably a typo'd bound. An
 * older source without Kernel= is a fallback (or kept for --version): no finding. */
static void check_pair(struct linter *l, struct lint_source *a, struct lint_source *b)
{
	struct lint_source *old, *new;
	uint64_t lo, hi;
	int c;

	if (!a->version || !b->version || (a->ranged && !a->range_ok) ||
	    (b->ranged && !b->range_ok))
		return;
	c = version_compare(a->version, b->version);
	if (c == 0)
		return; /* a duplicate Version=: the loader reports it */
	old = c < 0 ? a : b;
	new = c < 0 ? b : a;
	if (!old->ranged)
		return;
	lo = new->ranged ? MAX(old->lo, new->lo) : old->lo;
	hi = new->ranged ? MIN(old->hi, new->hi) : old->hi;
	if (lo >= hi)
		return;
	if (lo == old->lo && hi == old->hi) {
		add(l, old->kernel_line, value_column(l, old->kernel_line, NULL),
		    LINT_WARNING,
		    "[Source] Version=%s is never chosen: Version=%s (line %u) is newer "
		    "and matches every kernel its Kernel= matches",
		    old->version, new->version, new->line);
		return;
	}

	_cleanup_free_ char *both = interval_format(lo, hi);
	struct lint_source *later = a->line > b->line ? a : b;
	struct lint_source *other = later == a ? b : a;

	if (!both) {
		l->error = -ENOMEM;
		return;
	}
	add(l, later->kernel_line, value_column(l, later->kernel_line, NULL),
	    LINT_WARNING,
	    "Kernel= overlaps that of the [Source] at line %u for kernels %s: Version=%s "
	    "is "
	    "chosen there",
	    other->line, both, new->version);
}

/* Kernels between two sources' ranges that no source covers (before the first and after
 * the last are a recipe's support window, not a gap). */
static void check_gaps(struct linter *l)
{
	_cleanup_free_ struct lint_source **v = calloc(l->n_sources + 1, sizeof(*v));
	size_t n = 0;
	uint64_t end;

	if (!v) {
		l->error = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < l->n_sources; i++) {
		struct lint_source *s = &l->sources[i];

		if (!s->ranged)
			return; /* one source takes every kernel */
		if (!s->range_ok)
			continue;
		/* Insertion sort by lower bound: a handful of sources. */
		size_t j = n++;
		while (j > 0 && v[j - 1]->lo > s->lo) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = s;
	}
	if (n == 0)
		return;
	end = v[0]->hi;
	for (size_t i = 1; i < n; i++) {
		if (v[i]->lo > end) {
			_cleanup_free_ char *gap = interval_format(end, v[i]->lo);

			if (!gap) {
				l->error = -ENOMEM;
				return;
			}
			add(l, v[i]->kernel_line,
			    value_column(l, v[i]->kernel_line, NULL), LINT_WARNING,
			    "no [Source] matches kernels %s: the Kernel= ranges leave a "
			    "gap "
			    "there",
			    gap);
		}
		end = MAX(end, v[i]->hi);
	}
}

static void check_source(struct linter *l, struct lint_source *s)
{
	struct stat st;

	/* Plain http can be changed on the way; https only by the server. */
	if (s->url && !s->verified)
		add(l, s->url_line, value_column(l, s->url_line, NULL),
		    startswith(s->url, "http://") ? LINT_ERROR : LINT_WARNING,
		    "unverified download: URL= '%s' has neither SHA256= nor GitTree= "
		    "('dm2 recipe hash URL' prints both)",
		    s->url);
	/* A relative Path= is the loader's (an error); an absolute one may be a package
	 * still to install, so its absence is worth a warning only. */
	if (s->path && s->path[0] == '/' &&
	    (stat(s->path, &st) < 0 || !S_ISDIR(st.st_mode)))
		add(l, s->path_line, value_column(l, s->path_line, NULL), LINT_WARNING,
		    "Path= directory '%s' does not exist", s->path);
}

static void check_sources(struct linter *l)
{
	for (size_t i = 0; i < l->n_sources; i++) {
		check_source(l, &l->sources[i]);
		source_interval(l, &l->sources[i]);
	}
	for (size_t i = 0; i < l->n_sources; i++)
		for (size_t j = i + 1; j < l->n_sources; j++)
			check_pair(l, &l->sources[i], &l->sources[j]);
	check_gaps(l);
}

/* ---- the whole ---- */

static void sort_block(struct lint_diag *d, size_t n)
{
	/* Insertion sort: stable, so findings on one column keep the order found. */
	for (size_t i = 1; i < n; i++) {
		struct lint_diag x = d[i];
		size_t j = i;

		while (j > 0 &&
		       (d[j - 1].line > x.line ||
			(d[j - 1].line == x.line && d[j - 1].column > x.column))) {
			d[j] = d[j - 1];
			j--;
		}
		d[j] = x;
	}
}

static void linter_done(struct linter *l)
{
	for (size_t i = 0; i < l->n_sources; i++) {
		free(l->sources[i].version);
		free(l->sources[i].kernel);
		free(l->sources[i].url);
		free(l->sources[i].path);
	}
	free(l->sources);
	free(l->lines);
	free(l->text);
}

int recipe_lint_file(const char *path, struct lint_result *res)
{
	_cleanup_(recipe_unrefp) struct recipe *rcp = NULL;
	_cleanup_free_ char *text = NULL;
	struct linter l = {.file = path, .res = res};
	size_t first = res->n, size;
	int r;

	r = read_full_file_at(AT_FDCWD, path, RECIPE_MAX_SIZE, &text, &size);
	if (r < 0)
		return r;
	l.text = strdup(text); /* split_lines() cuts it */
	r = l.text ? split_lines(&l) : -ENOMEM;
	if (r < 0)
		goto finish;
	r = recipe_load(path, RECIPE_ORIGIN_FILE, on_load_problem, &l, &rcp);
	if (r < 0 && r != -EBADMSG)
		goto finish;
	/* A file with NUL bytes is not text: the loader said so, nothing more to see. */
	if (!memchr(text, '\0', size)) {
		r = ini_parse_string(text, on_item, NULL, &l);
		if (r < 0 && r != -EBADMSG)
			goto finish;
		check_sources(&l);
	}
	r = l.error;
	sort_block(res->diags + first, res->n - first);
finish:
	linter_done(&l);
	return r < 0 ? r : 0;
}

void lint_result_done(struct lint_result *res)
{
	for (size_t i = 0; i < res->n; i++) {
		free(res->diags[i].file);
		free(res->diags[i].message);
	}
	free(res->diags);
	*res = (struct lint_result){};
}
