/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Recipes: loading, validation and canonical formatting. The format is dm2-recipe(5). */
#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <lzma.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "recipe/recipe-lint.h"
#include "recipe/recipe.h"
#include "shared/deb-version.h"
#include "shared/fs-util.h"
#include "shared/ini.h"
#include "shared/log.h"
#include "shared/util.h"

#define DEFAULT_INSTALL_DIR "updates/dm2"

static const char *const recipe_origin_table[_RECIPE_ORIGIN_MAX] = {
	[RECIPE_ORIGIN_ADMIN] = "admin", [RECIPE_ORIGIN_VENDOR] = "vendor",
	[RECIPE_ORIGIN_EXTRA] = "extra", [RECIPE_ORIGIN_DKMS] = "dkms",
	[RECIPE_ORIGIN_FILE] = "file",
};
DEFINE_STRING_TABLE(recipe_origin, _RECIPE_ORIGIN_MAX);

static const char *const range_op_table[_RANGE_OP_MAX] = {
	[RANGE_OP_LT] = "<",  [RANGE_OP_LE] = "<=", [RANGE_OP_GT] = ">",
	[RANGE_OP_GE] = ">=", [RANGE_OP_EQ] = "=",
};

/* ---- kernel ranges ---- */

static bool kernel_version_valid(const char *v)
{
	/* Digits separated by single dots: "6", "6.8", "5.10.120". */
	if (!isdigit((unsigned char) *v))
		return false;
	for (const char *p = v; *p; p++) {
		if (*p == '.') {
			if (!isdigit((unsigned char) p[1]))
				return false;
		} else if (!isdigit((unsigned char) *p))
			return false;
	}
	return true;
}

void kernel_range_done(struct kernel_range *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->c[i].version);
	free(r->c);
	free(r->text);
	*r = (struct kernel_range){};
}

int kernel_range_parse(const char *s, struct kernel_range *ret)
{
	_cleanup_strv_free_ char **words = NULL;
	struct kernel_range k = {};
	int r;

	r = strv_split(s, " \t", &words);
	if (r < 0)
		return r;
	if (!words || !words[0])
		return -EINVAL;

	k.text = strdup(s);
	k.c = calloc(strv_length(words), sizeof(*k.c));
	if (!k.text || !k.c) {
		kernel_range_done(&k);
		return -ENOMEM;
	}
	STRV_FOREACH(w, words)
	{
		const char *v = *w;
		enum range_op op;

		if ((v = startswith(*w, ">=")))
			op = RANGE_OP_GE;
		else if ((v = startswith(*w, "<=")))
			op = RANGE_OP_LE;
		else if ((v = startswith(*w, "==")))
			op = RANGE_OP_EQ;
		else if ((v = startswith(*w, ">")))
			op = RANGE_OP_GT;
		else if ((v = startswith(*w, "<")))
			op = RANGE_OP_LT;
		else if ((v = startswith(*w, "=")))
			op = RANGE_OP_EQ;
		else {
			kernel_range_done(&k);
			return -EINVAL;
		}
		if (!kernel_version_valid(v)) {
			kernel_range_done(&k);
			return -EINVAL;
		}
		k.c[k.n].op = op;
		k.c[k.n].version = strdup(v);
		if (!k.c[k.n].version) {
			kernel_range_done(&k);
			return -ENOMEM;
		}
		k.n++;
	}
	*ret = k;
	return 0;
}

/*
 * Compare a kernel version with a constraint's version only as far as the constraint
 * goes, so that "<=6.8" and "=6.8" include 6.8.12, and "<6.8" excludes it.
 */
static int range_version_cmp(const char *kernel, const char *bound)
{
	size_t dots = 0, i;
	char buf[128];

	for (const char *p = bound; *p; p++)
		dots += *p == '.';
	for (i = 0; kernel[i] && i < sizeof(buf) - 1; i++) {
		if (kernel[i] == '.' && dots-- == 0)
			break;
		if (kernel[i] != '.' && !isdigit((unsigned char) kernel[i]))
			break;
		buf[i] = kernel[i];
	}
	buf[i] = '\0';
	return version_compare(buf, bound);
}

bool kernel_range_match(const struct kernel_range *r, const char *kernel_version)
{
	if (!r || r->n == 0)
		return true;
	if (!kernel_version)
		return false;
	for (size_t i = 0; i < r->n; i++) {
		int c = range_version_cmp(kernel_version, r->c[i].version);
		bool ok = false;

		switch (r->c[i].op) {
		case RANGE_OP_LT:
			ok = c < 0;
			break;
		case RANGE_OP_LE:
			ok = c <= 0;
			break;
		case RANGE_OP_GT:
			ok = c > 0;
			break;
		case RANGE_OP_GE:
			ok = c >= 0;
			break;
		case RANGE_OP_EQ:
			ok = c == 0;
			break;
		case _RANGE_OP_MAX:
		case _RANGE_OP_INVALID:
			break;
		}
		if (!ok)
			return false;
	}
	return true;
}

/* ---- licenses and names ---- */

bool license_is_gpl_compatible(const char *license)
{
	/* The kernel's own strings (include/linux/license.h) and the SPDX identifiers of
	 * the GPL family. */
	static const char *const exact[] = {
		"GPL",
		"GPL v2",
		"GPL and additional rights",
		"Dual BSD/GPL",
		"Dual MIT/GPL",
		"Dual MPL/GPL",
		"GPL-2.0",
		"GPL-2.0+",
		"GPL-2.0-only",
		"GPL-2.0-or-later",
	};

	if (isempty(license))
		return false;
	for (size_t i = 0; i < ELEMENTSOF(exact); i++)
		if (streq(license, exact[i]))
			return true;
	return startswith(license, "GPL-3.0") || startswith(license, "LGPL");
}

bool recipe_name_valid(const char *name)
{
	size_t n;

	if (isempty(name) || name[0] == '.' || name[0] == '-')
		return false;
	n = strlen(name);
	if (n > 128 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_.+-") != n)
		return false;
	return true;
}

static bool module_name_valid(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n < 56 &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567"
			    "89_-") == n;
}

static bool hex_valid(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char) s[i]))
			return false;
	return true;
}

static char *lowercase_dup(const char *s)
{
	char *d = strdup(s);

	for (char *p = d; p && *p; p++)
		*p = (char) tolower((unsigned char) *p);
	return d;
}

static bool url_valid(const char *u)
{
	const char *rest;

	if ((rest = startswith(u, "https://")) || (rest = startswith(u, "http://")))
		return rest[0] && rest[0] != '/' && !strpbrk(u, " \t");
	if ((rest = startswith(u, "file://")))
		return rest[0] == '/' && rest[1];
	return false;
}

/* ---- objects ---- */

int recipe_new(struct recipe **ret)
{
	struct recipe *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->n_ref = 1;
	r->autoinstall = true;
	*ret = r;
	return 0;
}

struct recipe *recipe_ref(struct recipe *r)
{
	if (r)
		r->n_ref++;
	return r;
}

static void recipe_source_done(struct recipe_source *s)
{
	free(s->version);
	strv_free(s->urls);
	free(s->path);
	free(s->sha256);
	free(s->git_tree);
	kernel_range_done(&s->kernel);
	for (size_t i = 0; i < s->n_patches; i++) {
		free(s->patches[i].path);
		free(s->patches[i].match);
		kernel_range_done(&s->patches[i].kernel);
	}
	free(s->patches);
}

static void recipe_module_done(struct recipe_module *m)
{
	free(m->name);
	free(m->built_location);
	free(m->dest_name);
	free(m->dest_dir);
}

struct recipe *recipe_unref(struct recipe *r)
{
	if (!r || --r->n_ref > 0)
		return NULL;
	free(r->name);
	free(r->description);
	free(r->license);
	free(r->path);
	free(r->dir);
	free(r->content_hash);
	strv_free(r->content_more);
	for (size_t i = 0; i < r->n_sources; i++)
		recipe_source_done(&r->sources[i]);
	free(r->sources);
	free(r->subdir);
	for (size_t i = 0; i < r->n_modules; i++)
		recipe_module_done(&r->modules[i]);
	free(r->modules);
	strv_free(r->make_vars);
	strv_free(r->require_config);
	strv_free(r->arches);
	strv_free(r->needs);
	free(r->install_dir);
	free(r->make_command);
	free(r->clean_command);
	free(r->dkms_pre_build);
	free(r->dkms_post_build);
	free(r->exclusive_kernel);
	free(r->exclusive_arch);
	return mfree(r);
}

/* ---- parsing ---- */

enum section {
	SECTION_NONE,
	SECTION_RECIPE,
	SECTION_SOURCE,
	SECTION_BUILD,
	SECTION_INSTALL,
	SECTION_UNKNOWN,
};

/* Where each single-valued key was first seen in the current section (0 = not yet). */
struct seen {
	unsigned name, description, license;
	unsigned version, path, sha256, git_tree, kernel, url;
	unsigned directory, strip;
	unsigned install_directory;
};

struct parser {
	struct recipe *r;
	const char *file; /* as given, for messages */
	recipe_diag_fn diag;
	void *userdata;
	unsigned n_problems;
	int error; /* fatal, e.g. -ENOMEM */

	enum section section;
	unsigned recipe_line, build_line, install_line, modules_line;
	struct seen seen;
	unsigned *version_lines; /* per source */
	char *strip;		 /* Strip= value as parsed: "yes"/"no" */
	struct module_dir {
		char *module, *dir;
		unsigned line;
	} * module_dirs; /* [Install] ModuleDirectory=, applied by finish() */
	size_t n_module_dirs;
};

static void problem(struct parser *p, unsigned line, const char *format, ...)
	_printf_(3, 4);
static void problem(struct parser *p, unsigned line, const char *format, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	p->n_problems++;
	va_start(ap, format);
	if (vasprintf(&msg, format, ap) < 0) {
		va_end(ap);
		p->error = -ENOMEM;
		return;
	}
	va_end(ap);
	if (p->diag)
		p->diag(p->file, line, msg, p->userdata);
	else
		log_debug("%s:%u: %s", p->file, line, msg);
}

/* With a "did you mean" when the key is a near miss of a known one (recipe-lint.c). */
static void unknown_key(struct parser *p, unsigned line, const char *section,
			const char *key)
{
	const char *hint = recipe_suggest_key(section, key);

	if (hint)
		problem(p, line, "unknown key '%s=' in section [%s]; did you mean '%s='?",
			key, section, hint);
	else
		problem(p, line, "unknown key '%s=' in section [%s]", key, section);
}

static void on_ini_error(unsigned line, const char *message, void *userdata)
{
	problem(userdata, line, "%s", message);
}

/* A key that may appear once per section: true if this is its first occurrence. */
static bool once(struct parser *p, unsigned *seen, const char *key, unsigned line)
{
	if (*seen) {
		problem(p, line, "duplicate key '%s=' (first at line %u)", key, *seen);
		return false;
	}
	*seen = line;
	return true;
}

static int set_str(char **p, const char *v)
{
	return free_and_strdup(p, v);
}

static struct recipe_source *cur_source(struct parser *p)
{
	return &p->r->sources[p->r->n_sources - 1];
}

static int start_source(struct parser *p, unsigned line)
{
	struct recipe *r = p->r;
	struct recipe_source *s;
	unsigned *vl;

	s = reallocarray(r->sources, r->n_sources + 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r->sources = s;
	vl = reallocarray(p->version_lines, r->n_sources + 1, sizeof(*vl));
	if (!vl)
		return -ENOMEM;
	p->version_lines = vl;
	vl[r->n_sources] = 0;
	r->sources[r->n_sources++] = (struct recipe_source){.line = line};
	return 0;
}

static int parse_recipe_key(struct parser *p, const char *key, const char *value,
			    unsigned line)
{
	struct recipe *r = p->r;

	if (streq(key, "Name")) {
		if (!once(p, &p->seen.name, key, line))
			return 0;
		if (!recipe_name_valid(value))
			problem(p, line,
				"invalid Name= '%s': use letters, digits and '_.+-'",
				value);
		return set_str(&r->name, value);
	}
	if (streq(key, "Description")) {
		if (!once(p, &p->seen.description, key, line))
			return 0;
		return set_str(&r->description, value);
	}
	if (streq(key, "License")) {
		if (!once(p, &p->seen.license, key, line))
			return 0;
		if (isempty(value))
			problem(p, line, "License= is empty");
		else if (!license_is_gpl_compatible(value))
			problem(p, line, "license '%s' is not GPL-compatible", value);
		return set_str(&r->license, value);
	}
	unknown_key(p, line, "Recipe", key);
	return 0;
}

/* "Patch=FILE [RANGE]": a range limits the patch to some kernels of the source's, as an
 * API change in the kernel needs a patch of the same source from some version on. */
static int add_patch(struct parser *p, const char *value, unsigned line)
{
	struct recipe_source *s = cur_source(p);
	struct kernel_range range = {};
	_cleanup_free_ char *file = NULL;
	const char *rest;
	struct recipe_patch *np;
	struct stat st;
	char *abs;
	int r;

	file = strndup(value, strcspn(value, " \t"));
	if (!file)
		return -ENOMEM;
	rest = value + strlen(file);
	rest += strspn(rest, " \t");
	if (!path_is_safe_relative(file)) {
		problem(p, line,
			"Patch= '%s' must be a file beside the recipe (relative, no "
			"'..')",
			file);
		return 0;
	}
	if (*rest) {
		r = kernel_range_parse(rest, &range);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			problem(p, line,
				"invalid kernel range '%s' after Patch= '%s': "
				"expected e.g. 'Patch=%s >=6.8'",
				rest, file, file);
			return 0;
		}
	}
	abs = path_join(p->r->dir, file);
	if (!abs) {
		kernel_range_done(&range);
		return -ENOMEM;
	}
	if (stat(abs, &st) < 0 || !S_ISREG(st.st_mode))
		problem(p, line, "patch file '%s' not found", file);
	np = reallocarray(s->patches, s->n_patches + 1, sizeof(*np));
	if (!np) {
		free(abs);
		kernel_range_done(&range);
		return -ENOMEM;
	}
	s->patches = np;
	s->patches[s->n_patches++] = (struct recipe_patch){.path = abs, .kernel = range};
	return 0;
}

bool recipe_patch_for_kernel(const struct recipe_patch *p, const char *kernel_version)
{
	return kernel_range_match(&p->kernel, kernel_version);
}

static int parse_source_path(struct parser *p, struct recipe_source *s, const char *key,
			     const char *value, unsigned line)
{
	struct stat st;

	if (!once(p, &p->seen.path, key, line))
		return 0;
	if (p->seen.url)
		problem(p, line, "URL= and Path= exclude each other (URL= at line %u)",
			p->seen.url);
	if (isempty(value)) {
		problem(p, line, "Path= is empty");
		return 0;
	}
	if (value[0] == '/')
		return set_str(&s->path, value);
	if (!path_is_safe_relative(value) && !streq(value, ".")) {
		problem(p, line,
			"relative Path= '%s' must stay below the recipe's "
			"directory",
			value);
		return 0;
	}
	free(s->path);
	s->path = streq(value, ".") ? strdup(p->r->dir) : path_join(p->r->dir, value);
	if (!s->path)
		return -ENOMEM;
	/* An absolute one may be installed later (/usr/src/NAME-VER); a relative
	 * one ships with the recipe, so its absence is a packaging mistake. */
	if (stat(s->path, &st) < 0 || !S_ISDIR(st.st_mode))
		problem(p, line, "Path= directory '%s' not found beside the recipe",
			value);
	return 0;
}

/* SHA256= and GitTree=: n hexadecimal digits, kept in lowercase. */
static int parse_source_hex(struct parser *p, unsigned *seen, const char *key,
			    const char *value, unsigned line, size_t n, char **field)
{
	if (!once(p, seen, key, line))
		return 0;
	if (!hex_valid(value, n)) {
		problem(p, line, "%s= must be %zu hexadecimal digits, got '%s'", key, n,
			value);
		return 0;
	}
	free(*field);
	*field = lowercase_dup(value);
	return *field ? 0 : -ENOMEM;
}

static int parse_source_key(struct parser *p, const char *key, const char *value,
			    unsigned line)
{
	struct recipe_source *s = cur_source(p);
	int r;

	if (streq(key, "Version")) {
		if (!once(p, &p->seen.version, key, line))
			return 0;
		if (isempty(value) || strpbrk(value, " \t/"))
			problem(p, line, "invalid Version= '%s'", value);
		p->version_lines[p->r->n_sources - 1] = line;
		return set_str(&s->version, value);
	}
	if (streq(key, "URL")) {
		if (p->seen.path)
			problem(p, line,
				"URL= and Path= exclude each other (Path= at line %u)",
				p->seen.path);
		if (!p->seen.url)
			p->seen.url = line;
		if (!url_valid(value))
			problem(p, line,
				"URL '%s' is not an https://, http:// or file:// URL",
				value);
		return strv_extend(&s->urls, value);
	}
	if (streq(key, "Path"))
		return parse_source_path(p, s, key, value, line);
	if (streq(key, "SHA256"))
		return parse_source_hex(p, &p->seen.sha256, key, value, line, 64,
					&s->sha256);
	if (streq(key, "GitTree"))
		return parse_source_hex(p, &p->seen.git_tree, key, value, line, 40,
					&s->git_tree);
	if (streq(key, "Kernel")) {
		if (!once(p, &p->seen.kernel, key, line))
			return 0;
		r = kernel_range_parse(value, &s->kernel);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			problem(p, line,
				"invalid kernel range '%s': expected e.g. '>=6.8', "
				"'<6.8' or "
				"'>=5.10 <6.8'",
				value);
		return 0;
	}
	if (streq(key, "Patch"))
		return add_patch(p, value, line);

	unknown_key(p, line, "Source", key);
	return 0;
}

static int add_modules(struct parser *p, const char *value, unsigned line)
{
	_cleanup_strv_free_ char **words = NULL;
	struct recipe *r = p->r;
	int k;

	k = strv_split(value, " \t", &words);
	if (k < 0)
		return k;
	if (strv_length(words) == 0) {
		problem(p, line, "Modules= is empty");
		return 0;
	}
	STRV_FOREACH(w, words)
	{
		const char *slash = strrchr(*w, '/');
		const char *name = slash ? slash + 1 : *w;
		_cleanup_free_ char *loc =
			slash ? strndup(*w, (size_t) (slash - *w)) : strdup("");
		struct recipe_module *m;

		if (!loc)
			return -ENOMEM;
		if (endswith(name, ".ko")) {
			problem(p, line, "module '%s': write the name without '.ko'", *w);
			continue;
		}
		if (!module_name_valid(name) || (slash && !path_is_safe_relative(loc))) {
			problem(p, line, "invalid module '%s': expected NAME or DIR/NAME",
				*w);
			continue;
		}
		for (size_t i = 0; i < r->n_modules; i++)
			if (streq(r->modules[i].name, name)) {
				problem(p, line, "module '%s' listed twice", name);
				goto next;
			}
		m = reallocarray(r->modules, r->n_modules + 1, sizeof(*m));
		if (!m)
			return -ENOMEM;
		r->modules = m;
		m = &r->modules[r->n_modules];
		*m = (struct recipe_module){.name = strdup(name),
					    .dest_name = strdup(name),
					    .built_location = TAKE_PTR(loc)};
		r->n_modules++;
		if (!m->name || !m->dest_name)
			return -ENOMEM;
	next:;
	}
	return 0;
}

static int add_words(struct parser *p, char ***list, const char *key, const char *value,
		     unsigned line, bool (*valid)(const char *), const char *what)
{
	_cleanup_strv_free_ char **words = NULL;
	int r;

	r = strv_split(value, " \t", &words);
	if (r < 0)
		return r;
	if (strv_length(words) == 0)
		problem(p, line, "%s= is empty", key);
	STRV_FOREACH(w, words)
	{
		if (!valid(*w)) {
			problem(p, line, "%s= entry '%s' is not %s", key, *w, what);
			continue;
		}
		if (strv_contains(*list, *w))
			continue;
		r = strv_extend(list, *w);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool config_word_valid(const char *w)
{
	const char *n = w[0] == '!' ? w + 1 : w;
	const char *rest = startswith(n, "CONFIG_");

	return rest && rest[0] &&
	       strspn(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz01234567"
			    "89_") == strlen(rest);
}

static bool arch_valid(const char *w)
{
	return strspn(w, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(w);
}

static bool make_var_valid(const char *kv, const char **ret_reason)
{
	const char *eq = strchr(kv, '=');
	size_t n;

	if (!eq || eq == kv || (!isalpha((unsigned char) kv[0]) && kv[0] != '_')) {
		*ret_reason = "expected KEY=VALUE";
		return false;
	}
	n = (size_t) (eq - kv);
	if (strspn(kv,
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
	    n) {
		*ret_reason = "expected KEY=VALUE";
		return false;
	}
	/* dm2 itself passes these; a recipe overriding them would build elsewhere. */
	if ((n == 1 && (kv[0] == 'M' || kv[0] == 'O')) ||
	    (n == 2 && strneq(kv, "MO", 2)) ||
	    (n == 13 && strneq(kv, "KERNELRELEASE", 13))) {
		*ret_reason = "this variable is set by dm2";
		return false;
	}
	return true;
}

static int parse_build_key(struct parser *p, const char *key, const char *value,
			   unsigned line)
{
	struct recipe *r = p->r;
	const char *reason;

	if (streq(key, "Directory")) {
		if (!once(p, &p->seen.directory, key, line))
			return 0;
		if (streq(value, ".") || isempty(value))
			return set_str(&r->subdir, NULL);
		if (!path_is_safe_relative(value)) {
			problem(p, line, "Directory= '%s' must be relative, without '..'",
				value);
			return 0;
		}
		return set_str(&r->subdir, value);
	}
	if (streq(key, "Modules")) {
		if (!p->modules_line)
			p->modules_line = line;
		return add_modules(p, value, line);
	}
	if (streq(key, "MakeVariable")) {
		if (!make_var_valid(value, &reason)) {
			problem(p, line, "invalid MakeVariable= '%s': %s", value, reason);
			return 0;
		}
		return strv_extend(&r->make_vars, value);
	}
	if (streq(key, "RequireConfig"))
		return add_words(p, &r->require_config, key, value, line,
				 config_word_valid, "CONFIG_NAME or !CONFIG_NAME");
	if (streq(key, "Arch"))
		return add_words(p, &r->arches, key, value, line, arch_valid,
				 "an architecture name as uname -m prints it");
	if (streq(key, "Needs"))
		return add_words(p, &r->needs, key, value, line, recipe_name_valid,
				 "a recipe name");
	if (streq(key, "Strip")) {
		if (!once(p, &p->seen.strip, key, line))
			return 0;
		if (streq(value, "yes") || streq(value, "true") || streq(value, "1"))
			return set_str(&p->strip, "yes");
		if (streq(value, "no") || streq(value, "false") || streq(value, "0"))
			return set_str(&p->strip, "no");
		problem(p, line, "Strip= must be 'yes' or 'no', got '%s'", value);
		return 0;
	}
	unknown_key(p, line, "Build", key);
	return 0;
}

/* ModuleDirectory=MODULE DIR: one module installed apart from Directory= (DKMS'
 * DEST_MODULE_LOCATION). */
static int add_module_dir(struct parser *p, const char *value, unsigned line)
{
	_cleanup_strv_free_ char **w = NULL;
	struct module_dir *d;
	int r;

	r = strv_split(value, " \t", &w);
	if (r < 0)
		return r;
	if (strv_length(w) != 2 || !module_name_valid(w[0]) ||
	    !path_is_safe_relative(w[1])) {
		problem(p, line,
			"invalid ModuleDirectory= '%s': expected MODULE DIR, DIR "
			"relative to "
			"lib/modules/KVER without '..'",
			value);
		return 0;
	}
	for (size_t i = 0; i < p->n_module_dirs; i++)
		if (streq(p->module_dirs[i].module, w[0])) {
			problem(p, line,
				"ModuleDirectory= for '%s' again (first at line %u)",
				w[0], p->module_dirs[i].line);
			return 0;
		}
	d = reallocarray(p->module_dirs, p->n_module_dirs + 1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	p->module_dirs = d;
	d[p->n_module_dirs++] = (struct module_dir){
		.module = TAKE_PTR(w[0]), .dir = TAKE_PTR(w[1]), .line = line};
	return 0;
}

static int parse_install_key(struct parser *p, const char *key, const char *value,
			     unsigned line)
{
	if (streq(key, "ModuleDirectory"))
		return add_module_dir(p, value, line);
	if (streq(key, "Directory")) {
		if (!once(p, &p->seen.install_directory, key, line))
			return 0;
		if (!path_is_safe_relative(value)) {
			problem(p, line,
				"Directory= '%s' must be relative to lib/modules/KVER, "
				"without '..'",
				value);
			return 0;
		}
		return set_str(&p->r->install_dir, value);
	}
	unknown_key(p, line, "Install", key);
	return 0;
}

static void end_source(struct parser *p)
{
	struct recipe_source *s;

	if (p->section != SECTION_SOURCE)
		return;
	s = cur_source(p);
	if (!s->version)
		problem(p, s->line, "[Source] has no Version=");
	if (!s->urls && !s->path && !p->seen.path)
		problem(p, s->line, "[Source] has neither URL= nor Path=");
}

static int section_once(struct parser *p, unsigned *seen, const char *name, unsigned line)
{
	if (*seen) {
		problem(p, line, "section [%s] appears again (first at line %u)", name,
			*seen);
		return 0;
	}
	*seen = line;
	return 0;
}

static int on_ini_item(const char *section, const char *key, const char *value,
		       unsigned line, void *userdata)
{
	struct parser *p = userdata;
	int r = 0;

	if (!key) {
		end_source(p);
		p->seen = (struct seen){};
		if (streq(section, "Recipe")) {
			p->section = SECTION_RECIPE;
			r = section_once(p, &p->recipe_line, section, line);
		} else if (streq(section, "Source")) {
			p->section = SECTION_SOURCE;
			r = start_source(p, line);
		} else if (streq(section, "Build")) {
			p->section = SECTION_BUILD;
			r = section_once(p, &p->build_line, section, line);
		} else if (streq(section, "Install")) {
			p->section = SECTION_INSTALL;
			r = section_once(p, &p->install_line, section, line);
		} else {
			const char *hint = recipe_suggest_section(section);

			p->section = SECTION_UNKNOWN;
			if (hint)
				problem(p, line,
					"unknown section [%s]; did you mean [%s]?",
					section, hint);
			else
				problem(p, line, "unknown section [%s]", section);
		}
		return r;
	}

	/* Values end up in --json and on terminals: they must be text. */
	if (!utf8_is_valid(key) || !utf8_is_valid(value)) {
		if (utf8_is_valid(key))
			problem(p, line, "%s= is not valid UTF-8", key);
		else
			problem(p, line, "key is not valid UTF-8");
		return 0;
	}

	switch (p->section) {
	case SECTION_RECIPE:
		r = parse_recipe_key(p, key, value, line);
		break;
	case SECTION_SOURCE:
		r = parse_source_key(p, key, value, line);
		break;
	case SECTION_BUILD:
		r = parse_build_key(p, key, value, line);
		break;
	case SECTION_INSTALL:
		r = parse_install_key(p, key, value, line);
		break;
	case SECTION_UNKNOWN:
		/* Already reported at the section header. */
		break;
	case SECTION_NONE:
		break;
	}
	if (p->error < 0)
		return p->error;
	return r;
}

static void check_whole(struct parser *p)
{
	struct recipe *r = p->r;

	if (!p->recipe_line)
		problem(p, 1, "missing section [Recipe]");
	else {
		if (!r->name)
			problem(p, p->recipe_line, "[Recipe] has no Name=");
		if (!r->license)
			problem(p, p->recipe_line, "[Recipe] has no License=");
	}
	if (r->n_sources == 0)
		problem(p, 1, "missing section [Source]");
	for (size_t i = 0; i < r->n_sources; i++)
		for (size_t j = 0; j < i; j++)
			if (r->sources[i].version && r->sources[j].version &&
			    streq(r->sources[i].version, r->sources[j].version)) {
				problem(p, p->version_lines[i],
					"duplicate source Version= '%s' (first at line "
					"%u)",
					r->sources[i].version, p->version_lines[j]);
				break;
			}
	if (!p->build_line)
		problem(p, 1, "missing section [Build] with Modules=");
	else if (!p->modules_line)
		problem(p, p->build_line, "[Build] has no Modules=");
	if (r->name && strv_contains(r->needs, r->name))
		problem(p, p->build_line, "Needs= names the recipe itself");
	for (size_t i = 0; i < p->n_module_dirs; i++) {
		bool found = false;

		for (size_t j = 0; j < r->n_modules && !found; j++)
			found = streq(r->modules[j].name, p->module_dirs[i].module);
		if (!found && p->modules_line)
			problem(p, p->module_dirs[i].line,
				"ModuleDirectory= names module '%s', which Modules= does "
				"not "
				"list",
				p->module_dirs[i].module);
	}
}

static const char *module_dir(const struct parser *p, const char *module)
{
	for (size_t i = 0; i < p->n_module_dirs; i++)
		if (streq(p->module_dirs[i].module, module))
			return p->module_dirs[i].dir;
	return NULL;
}

static int finish(struct parser *p)
{
	struct recipe *r = p->r;
	bool strip = !p->strip || streq(p->strip, "yes");

	if (!r->install_dir) {
		r->install_dir = strdup(DEFAULT_INSTALL_DIR);
		if (!r->install_dir)
			return -ENOMEM;
	}
	for (size_t i = 0; i < r->n_modules; i++) {
		r->modules[i].strip = strip;
		r->modules[i].dest_dir =
			strdup(module_dir(p, r->modules[i].name) ?: r->install_dir);
		if (!r->modules[i].dest_dir)
			return -ENOMEM;
	}
	return 0;
}

static void module_dirs_free(struct parser *p)
{
	for (size_t i = 0; i < p->n_module_dirs; i++) {
		free(p->module_dirs[i].module);
		free(p->module_dirs[i].dir);
	}
	free(p->module_dirs);
}

uint64_t recipe_crc_more(uint64_t crc, const char *path, const char *text, size_t size)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;

	crc = lzma_crc64((const uint8_t *) name, strlen(name) + 1, crc);
	return lzma_crc64((const uint8_t *) text, size, crc);
}

int recipe_load(const char *path, enum recipe_origin origin, recipe_diag_fn diag,
		void *userdata, struct recipe **ret)
{
	_cleanup_(recipe_unrefp) struct recipe *rcp = NULL;
	_cleanup_free_ char *text = NULL, *abs = NULL, *dircopy = NULL, *strip = NULL;
	_cleanup_free_ unsigned *version_lines = NULL;
	size_t size;
	int r;

	r = read_full_file_at(AT_FDCWD, path, RECIPE_MAX_SIZE, &text, &size);
	if (r < 0)
		return r;
	if (memchr(text, '\0', size)) {
		if (diag)
			diag(path, 1, "not a text file (contains NUL bytes)", userdata);
		return -EBADMSG;
	}

	r = recipe_new(&rcp);
	if (r < 0)
		return r;
	rcp->origin = origin;
	abs = realpath(path, NULL);
	if (!abs)
		return -errno;
	dircopy = strdup(abs);
	if (!dircopy)
		return -ENOMEM;
	rcp->dir = strdup(dirname(dircopy));
	rcp->path = TAKE_PTR(abs);
	if (!rcp->dir)
		return -ENOMEM;
	rcp->content_crc = lzma_crc64((const uint8_t *) text, size, 0);

	_cleanup_(module_dirs_free) struct parser p = {
		.r = rcp, .file = path, .diag = diag, .userdata = userdata};
	r = ini_parse_string(text, on_ini_item, on_ini_error, &p);
	version_lines = p.version_lines;
	strip = p.strip;
	if (r < 0 && r != -EBADMSG)
		return r;
	if (p.error < 0)
		return p.error;
	end_source(&p);
	check_whole(&p);
	if (p.error < 0)
		return p.error;
	if (p.n_problems > 0)
		return -EBADMSG;

	r = finish(&p);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(rcp);
	return 0;
}

/* ---- queries ---- */

const struct recipe_source *recipe_pick_source(const struct recipe *r,
					       const char *kernel_version)
{
	const struct recipe_source *best = NULL;

	for (size_t i = 0; i < r->n_sources; i++) {
		const struct recipe_source *s = &r->sources[i];

		if (!kernel_range_match(&s->kernel, kernel_version))
			continue;
		if (!best || deb_version_compare(s->version, best->version) > 0)
			best = s;
	}
	return best;
}

const struct recipe_source *recipe_find_source(const struct recipe *r,
					       const char *version)
{
	for (size_t i = 0; i < r->n_sources; i++)
		if (streq(r->sources[i].version, version))
			return &r->sources[i];
	return NULL;
}

const char *recipe_latest_version(const struct recipe *r)
{
	const char *best = NULL;

	for (size_t i = 0; i < r->n_sources; i++)
		if (!best || deb_version_compare(r->sources[i].version, best) > 0)
			best = r->sources[i].version;
	return best;
}

/* ---- canonical text ---- */

static void write_range(FILE *f, const struct kernel_range *range)
{
	for (size_t k = 0; k < range->n; k++)
		fprintf(f, "%s%s%s", k ? " " : "", range_op_table[range->c[k].op],
			range->c[k].version);
}

static void write_words(FILE *f, const char *key, char **l)
{
	if (!l || !l[0])
		return;
	fprintf(f, "%s=", key);
	STRV_FOREACH(w, l)
	fprintf(f, "%s%s", w == l ? "" : " ", *w);
	fputc('\n', f);
}

int recipe_write(const struct recipe *r, FILE *f)
{
	fprintf(f, "[Recipe]\nName=%s\n", strempty(r->name));
	if (r->description)
		fprintf(f, "Description=%s\n", r->description);
	fprintf(f, "License=%s\n", strempty(r->license));

	for (size_t i = 0; i < r->n_sources; i++) {
		const struct recipe_source *s = &r->sources[i];

		fprintf(f, "\n[Source]\nVersion=%s\n", strempty(s->version));
		STRV_FOREACH(u, s->urls)
		fprintf(f, "URL=%s\n", *u);
		if (s->path)
			fprintf(f, "Path=%s\n", s->path);
		if (s->sha256)
			fprintf(f, "SHA256=%s\n", s->sha256);
		if (s->git_tree)
			fprintf(f, "GitTree=%s\n", s->git_tree);
		if (s->kernel.n > 0) {
			fputs("Kernel=", f);
			write_range(f, &s->kernel);
			fputc('\n', f);
		}
		for (size_t k = 0; k < s->n_patches; k++) {
			const char *rel =
				r->dir ? startswith(s->patches[k].path, r->dir) : NULL;

			if (rel && rel[0] == '/')
				rel++;
			else
				rel = s->patches[k].path;
			fprintf(f, "Patch=%s", rel);
			if (s->patches[k].kernel.n > 0)
				fputc(' ', f);
			write_range(f, &s->patches[k].kernel);
			fputc('\n', f);
		}
	}

	fputs("\n[Build]\n", f);
	if (r->subdir)
		fprintf(f, "Directory=%s\n", r->subdir);
	fputs("Modules=", f);
	for (size_t i = 0; i < r->n_modules; i++) {
		const struct recipe_module *m = &r->modules[i];

		fprintf(f, "%s%s%s%s", i ? " " : "", strempty(m->built_location),
			isempty(m->built_location) ? "" : "/", m->name);
	}
	fputc('\n', f);
	STRV_FOREACH(v, r->make_vars)
	fprintf(f, "MakeVariable=%s\n", *v);
	write_words(f, "RequireConfig", r->require_config);
	write_words(f, "Arch", r->arches);
	write_words(f, "Needs", r->needs);
	fprintf(f, "Strip=%s\n", r->n_modules > 0 && !r->modules[0].strip ? "no" : "yes");

	fprintf(f, "\n[Install]\nDirectory=%s\n", r->install_dir ?: DEFAULT_INSTALL_DIR);
	for (size_t i = 0; i < r->n_modules; i++)
		if (r->modules[i].dest_dir && r->install_dir &&
		    !streq(r->modules[i].dest_dir, r->install_dir))
			fprintf(f, "ModuleDirectory=%s %s\n", r->modules[i].name,
				r->modules[i].dest_dir);
	return ferror(f) ? -EIO : 0;
}

int recipe_format(const struct recipe *r, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;
	int k;

	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	k = recipe_write(r, f);
	if (fclose(f) != 0 && k >= 0)
		k = -ENOMEM;
	if (k < 0)
		return k;
	*ret = TAKE_PTR(buf);
	return 0;
}
