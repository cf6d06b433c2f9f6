/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dkms.conf as a recipe: bash evaluates it in the sandbox (dkms-run.c), this file
 * checks what it left, as DKMS' read_conf_strict does, and makes the recipe. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <lzma.h>
#include <regex.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "core/config.h"
#include "core/context.h"
#include "recipe/dkms-run.h"
#include "recipe/dkms.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/* Lines of the n-th override file are reported as n * OVERRIDE_LINES + line. */
#define OVERRIDE_LINES (1U << 22)

struct conf_ctx {
	const char *path;
	const char *text;	 /* dkms.conf, where report() finds the lines */
	char **overrides;	 /* the override files that were sourced, and their text: */
	char **override_texts;	 /* where a value they set is found */
	char **kernel_overrides; /* see note_kernel_overrides() */
	recipe_diag_fn diag;
	void *userdata;
	struct dkms_vars *vars;
	bool quiet; /* a cached evaluation: its problems were reported when it was made */
	bool failed;
};

static _printf_(3, 4) void report(struct conf_ctx *c, unsigned line, const char *format,
				  ...)
{
	_cleanup_free_ char *m = NULL;
	const char *path;
	va_list ap;
	int k;

	va_start(ap, format);
	k = vasprintf(&m, format, ap);
	va_end(ap);
	if (k < 0)
		m = NULL;
	/* One line per problem, whatever the file's values contain. */
	for (char *q = m; q && *q; q++)
		if (*q == '\n' || *q == '\t')
			*q = ' ';
	path = c->path;
	if (line >= OVERRIDE_LINES) {
		path = c->overrides[line / OVERRIDE_LINES - 1];
		line %= OVERRIDE_LINES;
	}
	if (!startswith(format, "warning: "))
		c->failed = true;
	else if (c->failed) {
		/* Warnings after errors are noise: the file is rejected anyway. */
		log_debug("%s:%u: %s", path, line, strna(m));
		return;
	}
	if (c->quiet) {
		log_debug("%s:%u: %s", path, line, strna(m));
		return;
	}
	if (c->diag)
		c->diag(path, line, m ?: "out of memory", c->userdata);
	else
		log_debug("%s:%u: %s", path, line, strna(m));
}

static void conf_ctx_done(struct conf_ctx *c)
{
	strv_free(c->kernel_overrides);
	strv_free(c->override_texts);
}

/* Value of NAME[index] if set and not empty. */
static const char *val(struct conf_ctx *c, const char *name, size_t index)
{
	const char *v = dkms_vars_get(c->vars, name, index);

	return isempty(v) ? NULL : v;
}

/* The line of text that assigns NAME[index] ("NAME[i]=", or for index 0 "NAME=" and
 * "NAME+="), after blanks at the start of a line; with !exact also any "NAME[". 0: none. */
static unsigned find_line(const char *text, const char *name, size_t index, bool exact)
{
	size_t n = strlen(name);
	unsigned line = 1;
	char idx[32];

	(void) snprintf(idx, sizeof(idx), "[%zu]", index);
	for (const char *p = text; p && *p; line++) {
		const char *e = strchr(p, '\n'), *q = p + strspn(p, " \t");

		if (strncmp(q, name, n) == 0) {
			q += n;
			if (startswith(q, idx) || (index == 0 && (*q == '=' || startswith(q, "+="))))
				return line;
			if (!exact && *q == '[')
				return line;
		}
		p = e ? e + 1 : NULL;
	}
	return 0;
}

/*
 * bash does not say where a variable got its value: look for the assignment, in the last
 * override that has one (they win), else in dkms.conf; 0 when none is found (a loop, an
 * eval). Lines of the n-th override are n * OVERRIDE_LINES + line (see report()).
 */
static unsigned line_find(struct conf_ctx *c, const char *name, size_t index, bool exact)
{
	for (size_t i = strv_length(c->override_texts); i > 0; i--) {
		unsigned l = find_line(c->override_texts[i - 1], name, index, exact);

		if (l)
			return (unsigned) i * OVERRIDE_LINES + l;
	}
	return find_line(c->text, name, index, exact);
}

static unsigned line_of(struct conf_ctx *c, const char *name, size_t index)
{
	return line_find(c, name, index, true) ?: line_find(c, name, index, false);
}

struct dkms_conf *dkms_conf_free(struct dkms_conf *c)
{
	if (!c)
		return NULL;
	free(c->path);
	free(c->dir);
	free(c->kernel_release);
	free(c->name);
	free(c->version);
	free(c->arch);
	dkms_vars_free(c->vars);
	free(c->pre_build);
	free(c->post_build);
	strv_free(c->overrides);
	strv_free(c->kernel_overrides);
	for (size_t i = 0; i < c->n_modules; i++) {
		free(c->modules[i].built_name);
		free(c->modules[i].built_location);
		free(c->modules[i].dest_name);
		free(c->modules[i].dest_location);
	}
	free(c->modules);
	free(c->make);
	free(c->make_command);
	free(c->clean);
	for (size_t i = 0; i < c->n_patches; i++) {
		free(c->patches[i].file);
		free(c->patches[i].match);
	}
	free(c->patches);
	free(c->exclusive_kernel);
	free(c->exclusive_kernel_min);
	free(c->exclusive_kernel_max);
	free(c->exclusive_arch);
	strv_free(c->exclusive_config);
	strv_free(c->build_depends);
	free(c->obsolete_by);
	strv_free(c->scripts);
	return mfree(c);
}

/* 1 match, 0 no match, -EINVAL bad expression. bash's =~ is an unanchored ERE search. */
static int ere_search(const char *re, const char *s)
{
	regex_t rx;
	int k;

	if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
		return -EINVAL;
	k = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return k;
}

static bool ere_valid(const char *re)
{
	return ere_search(re, "") >= 0;
}

static bool path_has_dotdot(const char *p)
{
	for (const char *s = p; s; s = strchr(s, '/'), s = s ? s + 1 : NULL)
		if (startswith(s, "..") && (s[2] == '/' || s[2] == '\0'))
			return true;
	return false;
}

static int dup_opt(char **dst, const char *s)
{
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : -ENOMEM;
}

/* ---- modules ---- */

static const char *const module_arrays[] = {
	"BUILT_MODULE_NAME",
	"BUILT_MODULE_LOCATION",
	"DEST_MODULE_NAME",
	"DEST_MODULE_LOCATION",
};

static unsigned record_line(struct conf_ctx *c, size_t i)
{
	for (size_t k = 0; k < ELEMENTSOF(module_arrays); k++) {
		unsigned l = line_find(c, module_arrays[k], i, true);
		if (l)
			return l;
	}
	return line_of(c, "BUILT_MODULE_NAME", i);
}

static int parse_strip(struct conf_ctx *c, size_t i, bool *ret)
{
	const char *s = val(c, "STRIP", i), *def = val(c, "STRIP", 0);

	if (!s)
		s = def ?: "yes";
	if (s[0] == 'y' || s[0] == 'Y')
		*ret = true;
	else if (s[0] == 'n' || s[0] == 'N')
		*ret = false;
	else {
		report(c, line_of(c, "STRIP", i),
		       "STRIP[%zu] must be 'yes' or 'no', not '%s'", i, s);
		*ret = true;
	}
	return 0;
}

static int load_module(struct conf_ctx *c, struct dkms_conf *conf, size_t i, size_t n)
{
	struct dkms_module *m = &conf->modules[conf->n_modules];
	const char *bn = val(c, "BUILT_MODULE_NAME", i),
		   *dn = val(c, "DEST_MODULE_NAME", i);
	const char *loc = val(c, "BUILT_MODULE_LOCATION", i);
	const char *dl = val(c, "DEST_MODULE_LOCATION", i);
	unsigned line = record_line(c, i);
	_cleanup_free_ char *l = NULL;
	int r;

	if (!bn && n == 1)
		bn = conf->name;
	if (!bn) {
		report(c, line,
		       "no BUILT_MODULE_NAME for record #%zu (required when the "
		       "package has more than one module)",
		       i);
		return 0;
	}
	if (endswith(bn, ".ko") || endswith(bn, ".o"))
		report(c, line_of(c, "BUILT_MODULE_NAME", i),
		       "BUILT_MODULE_NAME[%zu] '%s' must be given without '.ko' "
		       "or '.o'",
		       i, bn);
	if (dn && (endswith(dn, ".ko") || endswith(dn, ".o")))
		report(c, line_of(c, "DEST_MODULE_NAME", i),
		       "DEST_MODULE_NAME[%zu] '%s' must be given without '.ko' "
		       "or '.o'",
		       i, dn);
	if (strchr(bn, '/') || (dn && strchr(dn, '/')))
		report(c, line, "module names of record #%zu must not contain '/'", i);

	l = strdup(loc ?: "");
	if (!l)
		return -ENOMEM;
	while (startswith(l, "./"))
		memmove(l, l + 2, strlen(l + 2) + 1);
	while (*l && endswith(l, "/"))
		l[strlen(l) - 1] = '\0';
	if (streq(l, "."))
		l[0] = '\0';
	if (*l && !path_is_safe_relative(l))
		report(c, line_of(c, "BUILT_MODULE_LOCATION", i),
		       "BUILT_MODULE_LOCATION[%zu] '%s' must be a directory "
		       "inside the "
		       "package",
		       i, loc);
	if (dl && !startswith(dl, "/kernel") && !startswith(dl, "/updates") &&
	    !startswith(dl, "/extra"))
		report(c, line_of(c, "DEST_MODULE_LOCATION", i),
		       "DEST_MODULE_LOCATION[%zu] '%s' must begin with "
		       "'/kernel', "
		       "'/updates' or '/extra'",
		       i, dl);

	m->built_name = strdup(bn);
	m->dest_name = strdup(dn ?: bn);
	m->built_location = TAKE_PTR(l);
	if (!m->built_name || !m->dest_name)
		return -ENOMEM;
	r = dup_opt(&m->dest_location, dl);
	if (r < 0)
		return r;
	r = parse_strip(c, i, &m->strip);
	if (r < 0)
		return r;
	conf->n_modules++;
	return 0;
}

static void check_duplicate_modules(struct conf_ctx *c, const struct dkms_conf *conf)
{
	for (size_t i = 0; i < conf->n_modules; i++)
		for (size_t j = 0; j < i; j++) {
			if (streq(conf->modules[i].built_name,
				  conf->modules[j].built_name) &&
			    streq(conf->modules[i].built_location,
				  conf->modules[j].built_location))
				report(c, record_line(c, i),
				       "duplicate BUILT_MODULE_NAME '%s'",
				       conf->modules[i].built_name);
			if (streq(conf->modules[i].dest_name, conf->modules[j].dest_name))
				report(c, record_line(c, i),
				       "duplicate DEST_MODULE_NAME '%s'",
				       conf->modules[i].dest_name);
		}
}

static int load_modules(struct conf_ctx *c, struct dkms_conf *conf)
{
	size_t n = 0;
	int r;

	for (size_t k = 0; k < ELEMENTSOF(module_arrays); k++)
		n = MAX(n, dkms_vars_size(c->vars, module_arrays[k]));
	if (n == 0) {
		report(c, 0,
		       "warning: no BUILT_MODULE_NAME: the package installs no modules");
		return 0;
	}
	conf->modules = calloc(n, sizeof(*conf->modules));
	if (!conf->modules)
		return -ENOMEM;

	for (size_t i = 0; i < n; i++) {
		r = load_module(c, conf, i, n);
		if (r < 0)
			return r;
	}
	check_duplicate_modules(c, conf);
	return 0;
}

/* ---- MAKE ---- */

/* Is cmd DKMS' own default, "make -C $kernel_source_dir M=<build dir>", perhaps with -jN,
 * KERNELRELEASE=$kernelver or the target "modules"? Then dm2's kbuild call does the same.
 */
static int make_is_default(const char *cmd, const char *ksrc, const char *kver, bool *ret)
{
	_cleanup_strv_free_ char **w = NULL;
	_cleanup_free_ char *std = NULL, *krel = NULL;
	bool have_c = false, have_m = false;
	int r;

	r = strv_split(cmd, " \t\n", &w);
	if (r < 0)
		return r;
	std = strjoin("/lib/modules/", strempty(kver), "/build");
	krel = strjoin("KERNELRELEASE=", strempty(kver));
	if (!std || !krel)
		return -ENOMEM;
	*ret = false;
	if (!w || !streq(w[0], "make"))
		return 0;
	for (size_t i = 1; w[i]; i++) {
		if (streq(w[i], "-C") && w[i + 1] &&
		    (streq(w[i + 1], ksrc) || streq(w[i + 1], std))) {
			have_c = true;
			i++;
		} else if (streq(w[i], "M=$PWD"))
			have_m = true;
		else if (!streq(w[i], "modules") && !streq(w[i], krel) &&
			 !(startswith(w[i], "-j") &&
			   strspn(w[i] + 2, "0123456789") == strlen(w[i] + 2)))
			return 0;
	}
	*ret = have_c && have_m;
	return 0;
}

static char *replace_all(const char *s, const char *what, const char *with)
{
	size_t wl = strlen(what);
	char *out = strdup(""), *n;

	for (const char *p; out && (p = strstr(s, what)); s = p + wl) {
		_cleanup_free_ char *head = strndup(s, p - s);

		n = head ? strjoin(out, head, with) : NULL;
		free(out);
		out = n;
	}
	if (!out)
		return NULL;
	n = strjoin(out, s);
	free(out);
	return n;
}

/* DKMS' build dir, and the package's own directory (west-chamber builds in
 * M=${PSRC}/extensions), are dm2's copy of the sources: "$PWD" of the command. */
static char *package_dirs_to_pwd(const struct dkms_conf *conf, const char *make,
				 const char *build)
{
	_cleanup_free_ char *src = strjoin(DKMS_SOURCE_TREE "/", conf->name, "-", conf->version);
	_cleanup_free_ char *link = strjoin(DKMS_TREE "/", conf->name, "/", conf->version,
					    "/source");
	_cleanup_free_ char *a = replace_all(make, build, "$PWD");
	_cleanup_free_ char *b = a && src ? replace_all(a, src, "$PWD") : NULL;

	return b && link ? replace_all(b, link, "$PWD") : NULL;
}

static int load_make(struct conf_ctx *c, struct dkms_conf *conf, const char *ksrc,
		     unsigned fixed_jobs)
{
	_cleanup_free_ char *build = NULL, *cmd = NULL;
	size_t n = MAX(dkms_vars_size(c->vars, "MAKE"),
		       dkms_vars_size(c->vars, "MAKE_MATCH"));
	const char *make = NULL;
	bool def;
	int r;

	if (!val(c, "MAKE_MATCH", 0))
		make = val(c, "MAKE", 0);
	for (size_t i = 0; i < n; i++) {
		const char *m = val(c, "MAKE", i), *re = val(c, "MAKE_MATCH", i);
		int k;

		if (!re)
			continue;
		k = ere_search(re, strempty(conf->kernel_release));
		if (k < 0) {
			report(c, line_of(c, "MAKE_MATCH", i),
			       "MAKE_MATCH[%zu] '%s' is not a valid extended regular "
			       "expression",
			       i, re);
			continue;
		}
		/* The kernel-independent view shows MAKE[0]; the last match wins
		 * otherwise. */
		if (m && k && conf->kernel_release)
			make = m;
	}
	if (!make)
		return 0;
	conf->make = strdup(make);
	if (!conf->make)
		return -ENOMEM;

	/* dm2 builds in its own copy of the sources, the command's working directory:
	 * DKMS' build directory becomes "$PWD" there. */
	build = strjoin(DKMS_TREE "/", conf->name, "/", conf->version, "/build");
	if (!build)
		return -ENOMEM;
	cmd = package_dirs_to_pwd(conf, make, build);
	if (!cmd)
		return -ENOMEM;
	r = make_is_default(cmd, ksrc, conf->kernel_release, &def);
	if (r < 0)
		return r;
	if (def)
		return 0;

	if (startswith(cmd, "make") && (cmd[4] == '\0' || strchr(" \t", cmd[4]))) {
		_cleanup_free_ char *jobs = NULL;
		char *n2;

		/* As DKMS does: a leading "make" runs in parallel for the target kernel.
		 * DKMS writes -j$(nproc); dm2's builds share one jobserver that MAKEFLAGS
		 * names, and a -jN of its own would make this make leave it ("-jN forced
		 * in submake: resetting jobserver mode") and run N jobs besides every
		 * other build's. So -jN only when MakeJobs= fixes one (no jobserver). */
		jobs = fixed_jobs > 0 ? strdup_printf(" -j%u", fixed_jobs) : strdup("");
		if (!jobs)
			return -ENOMEM;
		if (conf->kernel_release)
			n2 = strjoin("make", jobs, " KERNELRELEASE=", conf->kernel_release,
				     cmd + 4);
		else
			n2 = strjoin("make", jobs, cmd + 4);
		if (!n2)
			return -ENOMEM;
		free(cmd);
		cmd = n2;
	}
	conf->make_command = TAKE_PTR(cmd);
	return 0;
}

/* ---- patches ---- */

static int load_patches(struct conf_ctx *c, struct dkms_conf *conf)
{
	size_t n = MAX(dkms_vars_size(c->vars, "PATCH"),
		       dkms_vars_size(c->vars, "PATCH_MATCH"));

	if (n == 0)
		return 0;
	conf->patches = calloc(n, sizeof(*conf->patches));
	if (!conf->patches)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *p = val(c, "PATCH", i), *m = val(c, "PATCH_MATCH", i);
		unsigned line = line_of(c, "PATCH", i);
		_cleanup_free_ char *full = NULL;
		struct stat st;

		if (!p) {
			if (m)
				report(c, line_of(c, "PATCH_MATCH", i),
				       "PATCH_MATCH[%zu] is set but PATCH[%zu] is not", i,
				       i);
			continue;
		}
		if (p[0] == '/' || path_has_dotdot(p)) {
			report(c, line,
			       "PATCH[%zu] '%s' must name a file in the package's "
			       "patches/ "
			       "directory (no absolute path, no '..')",
			       i, p);
			continue;
		}
		if (m && !ere_valid(m))
			report(c, line_of(c, "PATCH_MATCH", i),
			       "PATCH_MATCH[%zu] '%s' is not a valid extended regular "
			       "expression",
			       i, m);
		full = strjoin(conf->dir, "/patches/", p);
		if (!full)
			return -ENOMEM;
		if (stat(full, &st) < 0 || !S_ISREG(st.st_mode))
			report(c, line, "PATCH[%zu] '%s' not found in '%s/patches'", i, p,
			       conf->dir);

		conf->patches[conf->n_patches].file = strdup(p);
		if (!conf->patches[conf->n_patches].file)
			return -ENOMEM;
		if (dup_opt(&conf->patches[conf->n_patches].match, m) < 0)
			return -ENOMEM;
		conf->n_patches++;
	}
	return 0;
}

/* ---- the rest ---- */

static int split_all(struct conf_ctx *c, const char *name, char ***ret)
{
	size_t n = dkms_vars_size(c->vars, name);

	for (size_t i = 0; i < n; i++) {
		_cleanup_strv_free_ char **w = NULL;
		const char *v = val(c, name, i);
		int r;

		if (!v)
			continue;
		r = strv_split(v, " \t\n", &w);
		if (r < 0)
			return r;
		STRV_FOREACH(s, w) {
			r = strv_extend(ret, *s);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static bool config_word_valid(const char *w)
{
	const char *s = startswith(w, "!") ?: w;

	s = startswith(s, "CONFIG_");
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

/* DKMS runs these as root in the package's source directory around add, install and
 * remove. None of Debian 12's *-dkms packages sets one; dm2 never runs them (a module
 * source may be hostile, and dm2 runs nothing of it as root) and says so. */
static const char *const root_script_directives[] = {
	"POST_ADD",
	"PRE_INSTALL",
	"POST_INSTALL",
	"POST_REMOVE",
};

static const char *const deprecated_directives[] = {
	"REMAKE_INITRD",
	"MODULES_CONF",
	"MODULES_CONF_OBSOLETES",
	"MODULES_CONF_ALIAS_TYPE",
	"MODULES_CONF_OBSOLETE_ONLY",
	"BUILD_DEPENDS_REBUILD",
	"NO_WEAK_MODULES",
};

static int load_exclusive(struct conf_ctx *c, struct dkms_conf *conf)
{
	const char *v;
	int r;

	v = val(c, "BUILD_EXCLUSIVE_KERNEL", 0);
	if (v && !ere_valid(v))
		report(c, line_of(c, "BUILD_EXCLUSIVE_KERNEL", 0),
		       "BUILD_EXCLUSIVE_KERNEL '%s' is not a valid extended regular "
		       "expression",
		       v);
	if (dup_opt(&conf->exclusive_kernel, v) < 0)
		return -ENOMEM;
	v = val(c, "BUILD_EXCLUSIVE_ARCH", 0);
	if (v && !ere_valid(v))
		report(c, line_of(c, "BUILD_EXCLUSIVE_ARCH", 0),
		       "BUILD_EXCLUSIVE_ARCH '%s' is not a valid extended regular "
		       "expression",
		       v);
	if (dup_opt(&conf->exclusive_arch, v) < 0)
		return -ENOMEM;

	if (dup_opt(&conf->obsolete_by, val(c, "OBSOLETE_BY", 0)) < 0 ||
	    dup_opt(&conf->exclusive_kernel_min,
		    val(c, "BUILD_EXCLUSIVE_KERNEL_MIN", 0)) < 0 ||
	    dup_opt(&conf->exclusive_kernel_max,
		    val(c, "BUILD_EXCLUSIVE_KERNEL_MAX", 0) ?: conf->obsolete_by) < 0)
		return -ENOMEM;
	if (conf->exclusive_kernel_min &&
	    !isdigit((unsigned char) conf->exclusive_kernel_min[0]))
		report(c, line_of(c, "BUILD_EXCLUSIVE_KERNEL_MIN", 0),
		       "BUILD_EXCLUSIVE_KERNEL_MIN '%s' is not a kernel version",
		       conf->exclusive_kernel_min);
	if (conf->exclusive_kernel_max &&
	    !isdigit((unsigned char) conf->exclusive_kernel_max[0]))
		report(c,
		       val(c, "BUILD_EXCLUSIVE_KERNEL_MAX", 0)
			       ? line_of(c, "BUILD_EXCLUSIVE_KERNEL_MAX", 0)
			       : line_of(c, "OBSOLETE_BY", 0),
		       "kernel version '%s' (BUILD_EXCLUSIVE_KERNEL_MAX or OBSOLETE_BY) "
		       "is not a "
		       "kernel version",
		       conf->exclusive_kernel_max);

	r = split_all(c, "BUILD_EXCLUSIVE_CONFIG", &conf->exclusive_config);
	if (r < 0)
		return r;
	STRV_FOREACH(w, conf->exclusive_config)
		if (!config_word_valid(*w))
			report(c, line_of(c, "BUILD_EXCLUSIVE_CONFIG", 0),
			       "BUILD_EXCLUSIVE_CONFIG entry '%s' is not 'CONFIG_NAME' "
			       "or "
			       "'!CONFIG_NAME'",
			       *w);
	return 0;
}

/* The package's scripts are reported (not run); deprecated directives are ignored. */
static int load_build_scripts(struct conf_ctx *c, struct dkms_conf *conf);

static int load_scripts(struct conf_ctx *c, struct dkms_conf *conf)
{
	const char *v;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(root_script_directives); i++) {
		v = val(c, root_script_directives[i], 0);
		if (!v)
			continue;
		report(c, line_of(c, root_script_directives[i], 0),
		       "warning: %s '%s' is not run: dm2 runs no package script as root",
		       root_script_directives[i], v);
		r = strv_consume(&conf->scripts, strjoin(root_script_directives[i], "=", v));
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ELEMENTSOF(deprecated_directives); i++)
		if (dkms_vars_size(c->vars, deprecated_directives[i]) > 0)
			log_debug("%s:%u: %s is deprecated or not supported by dm2, "
				  "ignoring",
				  c->path, line_of(c, deprecated_directives[i], 0),
				  deprecated_directives[i]);
	return load_build_scripts(c, conf);
}

/* PRE_BUILD and POST_BUILD run in the build sandbox, in the build dir, as DKMS runs them
 * there: "SCRIPT ARGS", SCRIPT relative to the package. */
static int load_build_scripts(struct conf_ctx *c, struct dkms_conf *conf)
{
	const char *names[] = {"PRE_BUILD", "POST_BUILD"};
	char **dst[] = {&conf->pre_build, &conf->post_build};

	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		const char *v = val(c, names[i], 0);
		_cleanup_free_ char *first = NULL;

		if (!v)
			continue;
		first = strndup(v, strcspn(v, " \t"));
		if (!first)
			return -ENOMEM;
		if (first[0] == '/' || path_has_dotdot(first))
			report(c, line_of(c, names[i], 0),
			       "%s '%s' must name a script inside the package", names[i], v);
		if (dup_opt(dst[i], v) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int load_rest(struct conf_ctx *c, struct dkms_conf *conf)
{
	const char *v;
	int r;

	v = dkms_vars_get(c->vars, "AUTOINSTALL", 0);
	if (!isempty(v) && strcasecmp(v, "yes") != 0 && strcasecmp(v, "no") != 0)
		report(c, line_of(c, "AUTOINSTALL", 0),
		       "AUTOINSTALL must be 'yes', 'no' or empty, not '%s'", v);
	conf->autoinstall = v && strcasecmp(v, "yes") == 0;

	r = dup_opt(&conf->clean, val(c, "CLEAN", 0));
	if (r < 0)
		return r;

	r = load_exclusive(c, conf);
	if (r < 0)
		return r;
	r = split_all(c, "BUILD_DEPENDS", &conf->build_depends);
	if (r < 0)
		return r;

	v = val(c, "NO_WEAK_MODULES", 0);
	conf->no_weak_modules = v && (v[0] == 'y' || v[0] == 'Y');

	return load_scripts(c, conf);
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/*
 * The kernel-independent view (what dm2d diffs) evaluates no kernel-specific override, but
 * they are part of the package's content all the same: editing <m>-<v>-<k>.conf must
 * rebuild the package for k. Their names and bytes go into *crc, in name order, and the
 * files into c->kernel_overrides.
 */
static int note_kernel_overrides(struct conf_ctx *c, const char *dir, const char *m,
				 const char *v, uint64_t *crc)
{
	_cleanup_free_ char *with_version = strjoin(m, "-", strempty(v), "-");
	_cleanup_free_ char *any_version = strjoin(m, "--");
	struct dirent **list = NULL;
	int n, r = 0;

	if (!with_version || !any_version)
		return -ENOMEM;
	if (!dir)
		return 0;
	n = scandir(dir, &list, NULL, name_cmp);
	if (n < 0)
		return 0; /* no /etc/dkms: nothing to note */
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		_cleanup_free_ char *path = NULL, *text = NULL;
		size_t size;

		if (r < 0 || !endswith(name, ".conf") ||
		    !((!isempty(v) && startswith(name, with_version)) ||
		      startswith(name, any_version)))
			continue;
		path = path_join(dir, name);
		if (!path) {
			r = -ENOMEM;
			continue;
		}
		if (read_full_file_at(AT_FDCWD, path, RECIPE_MAX_SIZE, &text, &size) < 0)
			continue; /* read (and reported) when building for its kernel */
		*crc = recipe_crc_more(*crc, path, text, size);
		r = strv_extend(&c->kernel_overrides, path);
	}
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return r;
}

/* ---- loading ---- */

/* DKMS' $parallel_jobs when dm2d.conf's MakeJobs= fixes it; 0 otherwise: the builds'
 * jobserver (MAKEFLAGS) decides, see load_make(). */
static unsigned fixed_make_jobs(const struct dm2_context *ctx)
{
	return ctx && ctx->config && ctx->config->make_jobs > 0 ? ctx->config->make_jobs : 0;
}

/* PACKAGE_NAME and PACKAGE_VERSION are there and valid. */
static int check_identity(struct conf_ctx *c, struct dkms_conf *conf)
{
	if (!dkms_vars_get(c->vars, "PACKAGE_NAME", 0) &&
	    !dkms_vars_get(c->vars, "PACKAGE_VERSION", 0)) {
		report(c, 1,
		       "file sets no directives (PACKAGE_NAME and PACKAGE_VERSION are "
		       "required)");
		return -EBADMSG;
	}
	if (dup_opt(&conf->name, val(c, "PACKAGE_NAME", 0)) < 0 ||
	    dup_opt(&conf->version, val(c, "PACKAGE_VERSION", 0)) < 0)
		return -ENOMEM;
	if (!conf->name)
		report(c, line_of(c, "PACKAGE_NAME", 0), "PACKAGE_NAME is not set (required)");
	else if (!recipe_name_valid(conf->name))
		report(c, line_of(c, "PACKAGE_NAME", 0),
		       "PACKAGE_NAME '%s' is not a valid name ([a-zA-Z0-9_.+-], not "
		       "starting with '.' or '-')",
		       conf->name);
	if (!conf->version)
		report(c, line_of(c, "PACKAGE_VERSION", 0),
		       "PACKAGE_VERSION is not set (required)");
	if (!conf->name || !conf->version || c->failed)
		return -EBADMSG;
	return 0;
}

/* bash's complaints ("dkms.conf: line 3: foo: command not found") are the package's
 * business, as under DKMS: notes, at most a few. */
static void report_bash_errors(struct conf_ctx *c, const char *errors)
{
	unsigned n = 0;

	for (const char *p = errors; p && *p && n < 5;) {
		const char *e = strchr(p, '\n');
		_cleanup_free_ char *line = e ? strndup(p, (size_t) (e - p)) : strdup(p);

		if (line && *line) {
			report(c, 0, "warning: bash: %s", line);
			n++;
		}
		p = e ? e + 1 : NULL;
	}
}

static int evaluate(struct conf_ctx *c, const struct dkms_load_params *p, const char *text,
		    size_t size, const char *ksrc, struct dkms_eval_result *ret)
{
	_cleanup_free_ char *reason = NULL;
	int r;

	r = dkms_evaluate(
		&(struct dkms_eval_input){
			.ctx = p->ctx,
			.dir = p->dir,
			.conf_text = text,
			.conf_size = size,
			.kernel_release = p->kernel_release,
			.arch = p->arch,
			.kernel_source_dir = ksrc,
			.kernel = p->kernel,
			.overrides_dir = p->overrides_dir,
			.fresh = p->fresh,
		},
		ret, &reason);
	if (r == -EPROTO) {
		report(c, 0, "cannot be evaluated: %s", strna(reason));
		return -EBADMSG;
	}
	if (r < 0) {
		report(c, 0, "cannot be evaluated: %s", strerror(-r));
		return r == -ENOMEM ? r : -EBADMSG;
	}
	return 0;
}

static int conf_new(const struct dkms_load_params *p, const char *path, uint64_t crc,
		    struct dkms_conf **ret)
{
	struct dkms_conf *conf = calloc(1, sizeof(*conf));

	if (!conf)
		return -ENOMEM;
	*ret = conf;
	conf->path = strdup(path);
	conf->dir = strdup(p->dir);
	conf->content_crc = crc;
	if (!conf->path || !conf->dir || dup_opt(&conf->kernel_release, p->kernel_release) < 0 ||
	    dup_opt(&conf->arch, p->arch) < 0)
		return -ENOMEM;
	return 0;
}

/* The overrides that were sourced, into conf, content_crc and c (for line numbers). */
static int add_overrides(struct conf_ctx *c, struct dkms_conf *conf, char **overrides)
{
	STRV_FOREACH(o, overrides) {
		_cleanup_free_ char *text = NULL;
		size_t size;

		if (read_full_file_at(AT_FDCWD, *o, RECIPE_MAX_SIZE, &text, &size) < 0)
			continue;
		conf->content_crc = recipe_crc_more(conf->content_crc, *o, text, size);
		if (strv_extend(&conf->overrides, *o) < 0 ||
		    strv_consume(&c->override_texts, TAKE_PTR(text)) < 0)
			return -ENOMEM;
	}
	c->overrides = conf->overrides;
	return 0;
}

/* DKMS' read_conf_strict over what bash left: into conf, problems through c. */
static int check_vars(struct conf_ctx *c, const struct dkms_load_params *p, const char *ksrc,
		      struct dkms_eval_result *ev, struct dkms_conf *conf)
{
	int r;

	c->vars = ev->vars;
	c->quiet = ev->cached;
	report_bash_errors(c, ev->errors);
	r = add_overrides(c, conf, ev->overrides);
	if (r < 0)
		return r;
	r = check_identity(c, conf);
	if (r >= 0)
		r = load_modules(c, conf);
	if (r >= 0)
		r = load_make(c, conf, ksrc, fixed_make_jobs(p->ctx));
	if (r >= 0)
		r = load_patches(c, conf);
	if (r >= 0)
		r = load_rest(c, conf);
	if (r >= 0 && !p->kernel_release)
		r = note_kernel_overrides(c, p->overrides_dir,
					  dkms_vars_get(c->vars, "dm2_module", 0) ?: conf->name,
					  dkms_vars_get(c->vars, "dm2_module_version", 0)
						  ?: conf->version,
					  &conf->content_crc);
	if (r < 0)
		return r;
	if (c->failed)
		return -EBADMSG;
	conf->kernel_overrides = TAKE_PTR(c->kernel_overrides);
	conf->vars = TAKE_PTR(ev->vars);
	return 0;
}

/* Either evaluate text with bash (ev NULL) or take ev as what bash left. */
static int load_text(const struct dkms_load_params *p, const char *text, size_t size,
		     struct dkms_eval_result *ev_in, recipe_diag_fn diag, void *userdata,
		     struct dkms_conf **ret)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *conf = NULL;
	_cleanup_(dkms_eval_result_done) struct dkms_eval_result ev = {};
	_cleanup_free_ char *path = NULL, *ksrc = NULL;
	_cleanup_(conf_ctx_done) struct conf_ctx c = { .diag = diag, .userdata = userdata };
	struct dkms_load_params params = *p;
	struct utsname u;
	int r;

	path = path_join(p->dir, "dkms.conf");
	if (!path)
		return -ENOMEM;
	c.path = path;
	c.text = text;
	if (!params.arch) {
		if (uname(&u) < 0)
			return -errno;
		params.arch = u.machine;
	}
	ksrc = p->kernel_build_dir ? strdup(p->kernel_build_dir)
				   : strjoin("/lib/modules/", strempty(p->kernel_release),
					     "/build");
	if (!ksrc)
		return -ENOMEM;
	r = conf_new(&params, path, lzma_crc64((const uint8_t *) text, size, 0), &conf);
	if (r < 0)
		return r;
	if (ev_in) {
		ev = *ev_in;
		*ev_in = (struct dkms_eval_result){};
	} else {
		r = evaluate(&c, &params, text, size, ksrc, &ev);
		if (r < 0)
			return r;
	}
	r = check_vars(&c, &params, ksrc, &ev, conf);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(conf);
	return 0;
}

int dkms_conf_load_with(const struct dkms_load_params *p, recipe_diag_fn diag,
			void *userdata, struct dkms_conf **ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	size_t size;
	int r;

	path = path_join(p->dir, "dkms.conf");
	if (!path)
		return -ENOMEM;
	r = read_full_file_at(AT_FDCWD, path, RECIPE_MAX_SIZE, &text, &size);
	if (r < 0) {
		_cleanup_free_ char *m = strdup_printf("cannot read: %s", strerror(-r));

		if (diag)
			diag(path, 0, m ?: "cannot read", userdata);
		return r;
	}
	return load_text(p, text, size, NULL, diag, userdata, ret);
}

int dkms_conf_from_dump(const struct dkms_load_params *p, const char *text, size_t size,
			const void *dump, size_t dump_size, recipe_diag_fn diag,
			void *userdata, struct dkms_conf **ret)
{
	_cleanup_(dkms_eval_result_done) struct dkms_eval_result ev = {};
	_cleanup_free_ char *error = NULL;
	int r;

	r = dkms_vars_parse(dump, dump_size, &ev.vars, &error);
	if (r < 0)
		return r;
	return load_text(p, text, size, &ev, diag, userdata, ret);
}

int dkms_conf_load(struct dm2_context *ctx, const char *dir, const char *kernel_release,
		   const char *arch, const char *kernel_build_dir, const char *overrides_dir,
		   recipe_diag_fn diag, void *userdata, struct dkms_conf **ret)
{
	return dkms_conf_load_with(&(struct dkms_load_params){
					   .ctx = ctx,
					   .dir = dir,
					   .kernel_release = kernel_release,
					   .arch = arch,
					   .kernel_build_dir = kernel_build_dir,
					   .overrides_dir = overrides_dir,
				   },
				   diag, userdata, ret);
}

static int recipe_description(const struct dkms_conf *c, char **ret)
{
	const char *asked = NULL;
	int k;

	for (size_t i = 0; i < c->n_modules; i++)
		if (c->modules[i].dest_location &&
		    !streq(c->modules[i].dest_location, "/updates/dkms"))
			asked = c->modules[i].dest_location;
	if (asked)
		k = asprintf(ret,
			     "DKMS package %s %s (dkms.conf asks for "
			     "DEST_MODULE_LOCATION '%s'; "
			     "installed into %s as DKMS does on Debian)",
			     c->name, c->version, asked, DKMS_INSTALL_DIR);
	else
		k = asprintf(ret, "DKMS package %s %s", c->name, c->version);
	if (k < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The one source: the package directory, its kernel range and patches. */
static int source_from_conf(const struct dkms_conf *c, struct recipe *r)
{
	struct recipe_source *s;
	int k;

	r->sources = calloc(1, sizeof(*r->sources));
	if (!r->sources)
		return -ENOMEM;
	r->n_sources = 1;
	s = &r->sources[0];
	s->version = strdup(c->version);
	s->path = strdup(c->dir);
	if (!s->version || !s->path)
		return -ENOMEM;
	if (c->exclusive_kernel_min || c->exclusive_kernel_max) {
		_cleanup_free_ char *text = NULL, *lo = NULL, *hi = NULL;

		/* Ranges take plain versions: "5.4.0-42" bounds as "5.4.0". */
		if (c->exclusive_kernel_min)
			lo = strndup(c->exclusive_kernel_min,
				     strspn(c->exclusive_kernel_min, "0123456789."));
		if (c->exclusive_kernel_max)
			hi = strndup(c->exclusive_kernel_max,
				     strspn(c->exclusive_kernel_max, "0123456789."));
		text = strjoin(lo ? ">=" : "", strempty(lo), lo && hi ? " " : "",
			       hi ? "<=" : "", strempty(hi));
		if (!text || (c->exclusive_kernel_min && !lo) ||
		    (c->exclusive_kernel_max && !hi))
			return -ENOMEM;
		k = kernel_range_parse(text, &s->kernel);
		if (k < 0)
			return k;
	}
	if (c->n_patches > 0) {
		s->patches = calloc(c->n_patches, sizeof(*s->patches));
		if (!s->patches)
			return -ENOMEM;
		for (size_t i = 0; i < c->n_patches; i++) {
			s->patches[i].path =
				strjoin(c->dir, "/patches/", c->patches[i].file);
			s->n_patches++;
			if (!s->patches[i].path ||
			    dup_opt(&s->patches[i].match, c->patches[i].match) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static int modules_from_conf(const struct dkms_conf *c, struct recipe *r)
{
	if (c->n_modules > 0) {
		r->modules = calloc(c->n_modules, sizeof(*r->modules));
		if (!r->modules)
			return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_modules; i++) {
		struct recipe_module *m = &r->modules[i];

		r->n_modules++;
		m->name = strdup(c->modules[i].built_name);
		m->built_location = strdup(c->modules[i].built_location);
		m->dest_name = strdup(c->modules[i].dest_name);
		m->dest_dir = strdup(DKMS_INSTALL_DIR);
		m->strip = c->modules[i].strip;
		if (!m->name || !m->built_location || !m->dest_name || !m->dest_dir)
			return -ENOMEM;
	}
	return 0;
}

int dkms_conf_to_recipe(const struct dkms_conf *c, struct recipe **ret)
{
	_cleanup_(recipe_unrefp) struct recipe *r = NULL;
	int k;

	k = recipe_new(&r);
	if (k < 0)
		return k;
	r->origin = RECIPE_ORIGIN_DKMS;
	r->name = strdup(c->name);
	r->path = strdup(c->path);
	r->dir = strdup(c->dir);
	r->content_crc = c->content_crc;
	/* In the order their bytes went into content_crc. */
	if (strv_extend_strv(&r->content_more, c->overrides) < 0 ||
	    strv_extend_strv(&r->content_more, c->kernel_overrides) < 0)
		return -ENOMEM;
	r->install_dir = strdup(DKMS_INSTALL_DIR);
	if (!r->name || !r->path || !r->dir || !r->install_dir)
		return -ENOMEM;
	if (dup_opt(&r->dkms_pre_build, c->pre_build) < 0 ||
	    dup_opt(&r->dkms_post_build, c->post_build) < 0 ||
	    dup_opt(&r->make_command, c->make_command) < 0 ||
	    dup_opt(&r->clean_command, c->clean) < 0 ||
	    dup_opt(&r->exclusive_kernel, c->exclusive_kernel) < 0 ||
	    dup_opt(&r->exclusive_arch, c->exclusive_arch) < 0)
		return -ENOMEM;
	r->autoinstall = c->autoinstall;

	k = recipe_description(c, &r->description);
	if (k < 0)
		return k;
	k = source_from_conf(c, r);
	if (k < 0)
		return k;
	k = modules_from_conf(c, r);
	if (k < 0)
		return k;
	if (strv_extend_strv(&r->require_config, c->exclusive_config) < 0 ||
	    strv_extend_strv(&r->needs, c->build_depends) < 0)
		return -ENOMEM;

	*ret = TAKE_PTR(r);
	return 0;
}

int dkms_recipe_load(const struct dkms_load_params *p, recipe_diag_fn diag, void *userdata,
		     struct recipe **ret)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	int r;

	r = dkms_conf_load_with(p, diag, userdata, &c);
	if (r < 0)
		return r;
	return dkms_conf_to_recipe(c, ret);
}

bool dkms_applies(const struct recipe *r, const char *kernel_release,
		  const char *kernel_version, const char *arch, char **ret_reason)
{
	char *reason = NULL;
	int k;

#define SET_REASON(...)                                                                  \
	do {                                                                             \
		if (asprintf(&reason, __VA_ARGS__) < 0)                                  \
			reason = NULL;                                                   \
	} while (0)

	if (r->exclusive_kernel && kernel_release) {
		k = ere_search(r->exclusive_kernel, kernel_release);
		if (k <= 0) {
			SET_REASON("kernel %s does not match BUILD_EXCLUSIVE_KERNEL '%s'",
				   kernel_release, r->exclusive_kernel);
			goto no;
		}
	}
	if (r->exclusive_arch && arch) {
		k = ere_search(r->exclusive_arch, arch);
		if (k <= 0) {
			SET_REASON("architecture %s does not match BUILD_EXCLUSIVE_ARCH "
				   "'%s'",
				   arch, r->exclusive_arch);
			goto no;
		}
	}
	if (r->origin == RECIPE_ORIGIN_DKMS && r->n_sources > 0 &&
	    r->sources[0].kernel.n > 0) {
		const char *v = kernel_version ?: kernel_release;

		if (v && !kernel_range_match(&r->sources[0].kernel, v)) {
			SET_REASON("kernel %s is outside BUILD_EXCLUSIVE_KERNEL_MIN/MAX "
				   "(%s)",
				   v, r->sources[0].kernel.text);
			goto no;
		}
	}
	return true;
no:
	if (ret_reason)
		*ret_reason = reason;
	else
		free(reason);
	return false;
}
