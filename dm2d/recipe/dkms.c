/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dkms.conf as a recipe; the shell subset is evaluated by dkms-eval.c. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <lzma.h>
#include <regex.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "core/context.h"
#include "recipe/dkms-eval.h"
#include "recipe/dkms.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/* Lines of the n-th override file are recorded as n * OVERRIDE_LINES + line. */
#define OVERRIDE_LINES (1U << 22)

struct conf_ctx {
	const char *path;
	char **overrides; /* override files read after path, see read_overrides() */
	char **kernel_overrides; /* see note_kernel_overrides() */
	recipe_diag_fn diag;
	void *userdata;
	struct dkms_vars *vars;
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
	if (c->diag)
		c->diag(path, line, m ?: "out of memory", c->userdata);
	else
		log_debug("%s:%u: %s", path, line, strna(m));
}

static void conf_ctx_done(struct conf_ctx *c)
{
	strv_free(c->overrides);
	strv_free(c->kernel_overrides);
}

/* Value of NAME[index] if set and not empty. */
static const char *val(struct conf_ctx *c, const char *name, size_t index)
{
	const char *v = dkms_vars_get(c->vars, name, index);

	return isempty(v) ? NULL : v;
}

static unsigned line_of(struct conf_ctx *c, const char *name, size_t index)
{
	return dkms_vars_line(c->vars, name, index)
		       ?: dkms_vars_first_line(c->vars, name);
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
	free(c->license);
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

static int set_presets(struct dkms_vars *v, const char *dir, const char *kver,
		       const char *arch, const char *ksrc, const char *module,
		       const char *module_version)
{
	const char *presets[][2] = {
		{ "kernelver", kver },
		{ "kernel_source_dir", ksrc },
		{ "dkms_tree", DKMS_TREE },
		{ "source_tree", DKMS_SOURCE_TREE },
		{ "install_tree", "/lib/modules" },
		{ "dkms_source_tree", dir },
		{ "arch", arch },
		{ "module", module },
		{ "module_version", module_version },
	};

	for (size_t i = 0; i < ELEMENTSOF(presets); i++) {
		int r = dkms_vars_set(v, presets[i][0], 0, strempty(presets[i][1]), 0);
		if (r < 0)
			return r;
	}
	return 0;
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
		unsigned l = dkms_vars_line(c->vars, module_arrays[k], i);
		if (l)
			return l;
	}
	return dkms_vars_first_line(c->vars, "BUILT_MODULE_NAME");
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

/* Record i of n (BUILT_MODULE_NAME[i], DEST_MODULE_NAME[i], ...): checked, and added to
 * conf->modules unless it has no name. */
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

static int load_make(struct conf_ctx *c, struct dkms_conf *conf, const char *ksrc,
		     unsigned nproc)
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
	cmd = replace_all(make, build, "$PWD");
	if (!cmd)
		return -ENOMEM;
	r = make_is_default(cmd, ksrc, conf->kernel_release, &def);
	if (r < 0)
		return r;
	if (def)
		return 0;

	if (startswith(cmd, "make") && (cmd[4] == '\0' || strchr(" \t", cmd[4]))) {
		char jobs[32];
		char *n2;

		/* As DKMS does: a leading "make" runs in parallel for the target
		 * kernel. */
		(void) snprintf(jobs, sizeof(jobs), "-j%u", nproc ?: 1);
		if (conf->kernel_release)
			n2 = strjoin("make ", jobs,
				     " KERNELRELEASE=", conf->kernel_release, cmd + 4);
		else
			n2 = strjoin("make ", jobs, cmd + 4);
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

static const char *const script_directives[] = {
	"PRE_BUILD",   "POST_BUILD",   "POST_ADD",
	"PRE_INSTALL", "POST_INSTALL", "POST_REMOVE",
};

static const char *const deprecated_directives[] = {
	"REMAKE_INITRD",
	"MODULES_CONF",
	"MODULES_CONF_OBSOLETES",
	"MODULES_CONF_ALIAS_TYPE",
	"MODULES_CONF_OBSOLETE_ONLY",
	"BUILD_DEPENDS_REBUILD",
};

/* BUILD_EXCLUSIVE_* and OBSOLETE_BY: which kernels, architectures and configurations the
 * package is for. */
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
static int load_scripts(struct conf_ctx *c, struct dkms_conf *conf)
{
	const char *v;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(script_directives); i++) {
		v = val(c, script_directives[i], 0);
		if (!v)
			continue;
		report(c, line_of(c, script_directives[i], 0),
		       "warning: %s '%s' is not run: dm2 does not run package scripts",
		       script_directives[i], v);
		r = strv_consume(&conf->scripts, strjoin(script_directives[i], "=", v));
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ELEMENTSOF(deprecated_directives); i++)
		if (dkms_vars_size(c->vars, deprecated_directives[i]) > 0)
			log_debug("%s:%u: %s is deprecated or not supported by dm2, "
				  "ignoring",
				  c->path, line_of(c, deprecated_directives[i], 0),
				  deprecated_directives[i]);
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

/*
 * After dkms.conf, DKMS reads the admin's overrides from /etc/dkms, later ones winning:
 * <m>.conf, <m>-<v>.conf, <m>-<v>-<k>.conf, <m>-<v>-<k>-<a>.conf, <m>--<k>.conf and
 * <m>--<k>-<a>.conf (m the package, v its version, k the kernel, a the arch). They are
 * evaluated like dkms.conf, into the same variables; the ones that exist are added to
 * c->overrides and to *crc.
 */
static int read_overrides(struct conf_ctx *c, const char *dir, const char *kernel_release,
			  const char *arch, struct dkms_eval_params *params, uint64_t *crc)
{
	/* Copies: an override may set PACKAGE_NAME or PACKAGE_VERSION again, which frees
	 * the values the file names below are made of. */
	_cleanup_free_ char *m = strdup(strempty(dkms_vars_get(c->vars, "PACKAGE_NAME", 0)));
	_cleanup_free_ char *v = strdup(strempty(dkms_vars_get(c->vars, "PACKAGE_VERSION", 0)));
	const char *k = kernel_release;
	const bool versioned = !isempty(v) && !strchr(v, '/');
	const bool want[6] = { true, versioned, versioned && k, versioned && k, k, k };
	char *names[ELEMENTSOF(want)] = {};
	int r = 0;

	if (!m || !v)
		return -ENOMEM;
	if (!dir || isempty(m) || !recipe_name_valid(m))
		return 0;
	if (want[0])
		names[0] = strjoin(m, ".conf");
	if (want[1])
		names[1] = strjoin(m, "-", v, ".conf");
	if (want[2])
		names[2] = strjoin(m, "-", v, "-", k, ".conf");
	if (want[3])
		names[3] = strjoin(m, "-", v, "-", k, "-", arch, ".conf");
	if (want[4])
		names[4] = strjoin(m, "--", k, ".conf");
	if (want[5])
		names[5] = strjoin(m, "--", k, "-", arch, ".conf");
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (want[i] && !names[i])
			r = -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(names) && r >= 0; i++) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		size_t size;
		int e;

		if (!names[i])
			continue;
		path = path_join(dir, names[i]);
		if (!path) {
			r = -ENOMEM;
			break;
		}
		e = read_full_file_at(AT_FDCWD, path, RECIPE_MAX_SIZE, &text, &size);
		if (e == -ENOENT)
			continue;
		if (e < 0) {
			_cleanup_free_ char *msg = NULL;

			if (c->diag && asprintf(&msg, "cannot read: %s", strerror(-e)) >= 0)
				c->diag(path, 0, msg, c->userdata);
			c->failed = true;
			continue;
		}
		r = strv_extend(&c->overrides, path);
		if (r < 0)
			break;
		params->line_base = strv_length(c->overrides) * OVERRIDE_LINES;
		e = dkms_eval(path, text, size, c->vars, params, c->diag, c->userdata);
		if (e == -ENOMEM)
			r = e;
		else if (e < 0)
			c->failed = true;
		*crc = recipe_crc_more(*crc, path, text, size);
	}
	params->line_base = 0;
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		free(names[i]);
	if (r >= 0 && !k)
		r = note_kernel_overrides(c, dir, m, v, crc);
	return r;
}

/* ---- loading ---- */

/* Evaluate text into *vars (and c->vars). DKMS knows $module and $module_version before
 * it reads the file; dm2 learns them from it, so evaluate once quietly for
 * PACKAGE_NAME/VERSION, then for real. *ret_eval is the result of the real evaluation;
 * when it failed, c->failed is set. */
static int eval_twice(struct conf_ctx *c, const char *dir, const char *text, size_t size,
		      const char *kernel_release, const char *arch, const char *ksrc,
		      struct dkms_eval_params *params, struct dkms_vars **vars,
		      int *ret_eval)
{
	_cleanup_(dkms_vars_freep) struct dkms_vars *first = NULL;
	int r;

	r = dkms_vars_new(&first);
	if (r < 0)
		return r;
	r = set_presets(first, dir, kernel_release, arch, ksrc, NULL, NULL);
	if (r < 0)
		return r;
	(void) dkms_eval(c->path, text, size, first, params, NULL, NULL);

	r = dkms_vars_new(vars);
	if (r < 0)
		return r;
	r = set_presets(*vars, dir, kernel_release, arch, ksrc,
			dkms_vars_get(first, "PACKAGE_NAME", 0),
			dkms_vars_get(first, "PACKAGE_VERSION", 0));
	if (r < 0)
		return r;
	c->vars = *vars;
	r = dkms_eval(c->path, text, size, *vars, params, c->diag, c->userdata);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		c->failed = true;
	*ret_eval = r;
	return 0;
}

/* PACKAGE_NAME and PACKAGE_VERSION, both required; evaluated says the file could be
 * evaluated, so that an empty result means it has no directives. */
static int load_package(struct conf_ctx *c, struct dkms_conf *conf, bool evaluated)
{
	if (dkms_vars_first_line(c->vars, "PACKAGE_NAME") == 0 &&
	    dkms_vars_first_line(c->vars, "PACKAGE_VERSION") == 0 && evaluated) {
		report(c, 1,
		       "file has no directives (PACKAGE_NAME and PACKAGE_VERSION are "
		       "required)");
		return -EBADMSG;
	}
	if (dup_opt(&conf->name, val(c, "PACKAGE_NAME", 0)) < 0 ||
	    dup_opt(&conf->version, val(c, "PACKAGE_VERSION", 0)) < 0)
		return -ENOMEM;
	if (!conf->name)
		report(c, dkms_vars_first_line(c->vars, "PACKAGE_NAME"),
		       "PACKAGE_NAME is not set (required)");
	else if (!recipe_name_valid(conf->name))
		report(c, line_of(c, "PACKAGE_NAME", 0),
		       "PACKAGE_NAME '%s' is not a valid name ([a-zA-Z0-9_.+-], not "
		       "starting "
		       "with '.' or '-')",
		       conf->name);
	if (!conf->version)
		report(c, dkms_vars_first_line(c->vars, "PACKAGE_VERSION"),
		       "PACKAGE_VERSION is not set (required)");
	if (!conf->name || !conf->version)
		return -EBADMSG;
	return 0;
}

static int conf_new(const char *path, const char *dir, const char *kernel_release,
		    uint64_t crc, struct dkms_conf **ret)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *conf = calloc(1, sizeof(*conf));

	if (!conf)
		return -ENOMEM;
	conf->path = strdup(path);
	conf->dir = strdup(dir);
	if (!conf->path || !conf->dir ||
	    dup_opt(&conf->kernel_release, kernel_release) < 0)
		return -ENOMEM;
	conf->content_crc = crc;
	*ret = TAKE_PTR(conf);
	return 0;
}

int dkms_conf_load(const char *dir, const char *kernel_release, const char *arch,
		   const char *kernel_build_dir, const char *overrides_dir, recipe_diag_fn diag,
		   void *userdata, struct dkms_conf **ret)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *conf = NULL;
	_cleanup_(dkms_vars_freep) struct dkms_vars *vars = NULL;
	_cleanup_free_ char *path = NULL, *text = NULL, *ksrc = NULL;
	_cleanup_(conf_ctx_done) struct conf_ctx c = { .diag = diag, .userdata = userdata };
	struct dkms_eval_params params = {};
	struct utsname u;
	uint64_t crc;
	long np;
	size_t size;
	int r, k;

	path = path_join(dir, "dkms.conf");
	if (!path)
		return -ENOMEM;
	c.path = path;
	r = read_full_file_at(AT_FDCWD, path, RECIPE_MAX_SIZE, &text, &size);
	if (r < 0) {
		report(&c, 0, "cannot read: %s", strerror(-r));
		return r;
	}

	if (!arch) {
		if (uname(&u) < 0)
			return -errno;
		arch = u.machine;
	}
	/* $kernel_source_dir */
	ksrc = kernel_build_dir
		       ? strdup(kernel_build_dir)
		       : strjoin("/lib/modules/", strempty(kernel_release), "/build");
	if (!ksrc)
		return -ENOMEM;
	np = sysconf(_SC_NPROCESSORS_ONLN);
	params = (struct dkms_eval_params){
		.kernelver = kernel_release,
		.arch = arch,
		.nproc = np > 0 ? (unsigned) np : 1,
	};

	k = eval_twice(&c, dir, text, size, kernel_release, arch, ksrc, &params, &vars,
		       &r);
	if (k < 0)
		return k;
	crc = lzma_crc64((const uint8_t *) text, size, 0);
	k = read_overrides(&c, overrides_dir, kernel_release, arch, &params, &crc);
	if (k < 0)
		return k;

	k = conf_new(path, dir, kernel_release, crc, &conf);
	if (k < 0)
		return k;
	r = load_package(&c, conf, r >= 0); /* r: whether dkms.conf could be evaluated */
	if (r < 0)
		return r;

	r = load_modules(&c, conf);
	if (r >= 0)
		r = load_make(&c, conf, ksrc, params.nproc);
	if (r >= 0)
		r = load_patches(&c, conf);
	if (r >= 0)
		r = load_rest(&c, conf);
	if (r < 0)
		return r;
	if (c.failed)
		return -EBADMSG;

	r = dkms_find_license(dir, &conf->license);
	if (r == -ENOMEM)
		return r;

	/* Only now: report() names the override files by their place in c.overrides. */
	conf->overrides = TAKE_PTR(c.overrides);
	conf->kernel_overrides = TAKE_PTR(c.kernel_overrides);
	*ret = TAKE_PTR(conf);
	return 0;
}

/* Debian's DKMS installs every module into updates/dkms, whatever DEST_MODULE_LOCATION
 * says; the description tells when a package asked for another place. */
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
	if (dup_opt(&r->license, c->license) < 0 ||
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

int dkms_recipe_load(const char *dir, const char *kernel_release, const char *arch,
		     const char *kernel_build_dir, const char *overrides_dir, recipe_diag_fn diag,
		     void *userdata, struct recipe **ret)
{
	_cleanup_(dkms_conf_freep) struct dkms_conf *c = NULL;
	int r;

	r = dkms_conf_load(dir, kernel_release, arch, kernel_build_dir, overrides_dir, diag,
			   userdata, &c);
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
