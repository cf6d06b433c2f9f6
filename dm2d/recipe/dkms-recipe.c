/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm2 dkms import --recipe: a dm2 recipe written from an evaluated dkms.conf, to start a
 * package's move from DKMS. What the recipe format cannot say (a custom MAKE, PRE_BUILD,
 * a regular expression on the release, patches in patches/) becomes a "# REVIEW:" comment
 * beside the nearest line, so the result loads and lints, and says what to check.
 */
#include <fcntl.h>
#include <fts.h>
#include <stdio.h>

#include "recipe/dkms-recipe.h"
#include "shared/fs-util.h"
#include "shared/util.h"

#define LICENSE_SCAN_MAX (1024U * 1024U)

/* The MODULE_LICENSE("...") literals of the package's C files (two levels down at most),
 * each once. A license given by a macro (jool's MODULE_LICENSE(JOOL_LICENSE)) is not
 * found: the caller says so. */
static int scan_licenses(const char *dir, char ***ret)
{
	_cleanup_strv_free_ char **found = NULL;
	char *argv[] = {(char *) dir, NULL};
	FTS *fts;
	int r = 0;

	fts = fts_open(argv, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
	if (!fts)
		return -errno;
	for (FTSENT *e; r >= 0 && (e = fts_read(fts));) {
		_cleanup_free_ char *text = NULL;

		if (e->fts_info == FTS_D && e->fts_level >= 3)
			(void) fts_set(fts, e, FTS_SKIP);
		if (e->fts_info != FTS_F || !endswith(e->fts_name, ".c"))
			continue;
		if (read_full_file_at(AT_FDCWD, e->fts_path, LICENSE_SCAN_MAX, &text,
				      NULL) < 0)
			continue;
		for (const char *p = text; (p = strstr(p, "MODULE_LICENSE(\""));) {
			const char *end;
			_cleanup_free_ char *lic = NULL;

			p += strlen("MODULE_LICENSE(\"");
			end = strchr(p, '"');
			if (!end)
				break;
			lic = strndup(p, (size_t) (end - p));
			if (!lic) {
				r = -ENOMEM;
				break;
			}
			if (!strv_contains(found, lic))
				r = strv_extend(&found, lic);
		}
	}
	fts_close(fts);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(found);
	return 0;
}

static void write_license(FILE *f, const struct dkms_conf *c)
{
	_cleanup_strv_free_ char **lic = NULL;
	_cleanup_free_ char *all = NULL;
	bool gpl = true;

	(void) scan_licenses(c->dir, &lic);
	STRV_FOREACH(l, lic)
	gpl = gpl && license_is_gpl_compatible(*l);
	all = lic ? strv_join(lic, "', '") : NULL;
	if (lic && gpl) {
		if (lic[1])
			fprintf(f, "# The sources declare MODULE_LICENSE '%s'.\n",
				strna(all));
		fprintf(f, "License=%s\n", lic[0]);
		return;
	}
	if (lic)
		fprintf(f,
			"# REVIEW: the sources declare MODULE_LICENSE '%s': dm2 builds "
			"only "
			"GPL-compatible modules.\n",
			strna(all));
	else
		fputs("# REVIEW: no MODULE_LICENSE(\"...\") literal in the sources (a "
		      "macro?): "
		      "check the license and state it here.\n",
		      f);
	fputs("License=GPL\n", f);
}

/* The directories a MAKE made of kbuild calls builds in: "make [-jN] [KERNELRELEASE=K]
 * -C KDIR M=$PWD[/SUB] [modules]" joined by "&&", one SUB each ("" for the top). NULL
 * when the command is anything else. */
static char **kbuild_dirs(const char *make_command)
{
	_cleanup_strv_free_ char **parts = NULL, **dirs = NULL;
	const char *s = make_command;

	for (const char *amp; s; s = amp ? amp + 2 : NULL) {
		_cleanup_free_ char *part = NULL;

		amp = strstr(s, "&&");
		part = amp ? strndup(s, (size_t) (amp - s)) : strdup(s);
		if (!part || strv_consume(&parts, TAKE_PTR(part)) < 0)
			return NULL;
	}
	STRV_FOREACH(p, parts)
	{
		_cleanup_strv_free_ char **w = NULL;
		const char *sub = NULL;
		bool have_c = false;

		if (strv_split(*p, " \t\n\\", &w) < 0 || !w || !streq(w[0], "make"))
			return NULL;
		for (size_t i = 1; w[i]; i++) {
			const char *rest;

			if (streq(w[i], "-C") && w[i + 1]) {
				have_c = true;
				i++;
			} else if ((rest = startswith(w[i], "M=$PWD")) &&
				   (!*rest ||
				    (rest[0] == '/' && path_is_safe_relative(rest + 1))))
				sub = rest[0] ? rest + 1 : "";
			else if (!streq(w[i], "modules") && !startswith(w[i], "-j") &&
				 !startswith(w[i], "KERNELRELEASE="))
				return NULL;
		}
		if (!have_c || !sub || strv_extend(&dirs, sub) < 0)
			return NULL;
	}
	return TAKE_PTR(dirs);
}

/* [Build] Directory= and the prefix to take off BUILT_MODULE_LOCATION, from MAKE. */
static int write_directory(FILE *f, const struct dkms_conf *c, char **ret_dir)
{
	_cleanup_strv_free_ char **dirs = NULL;
	_cleanup_free_ char *list = NULL;

	*ret_dir = NULL;
	if (!c->make_command)
		return 0; /* DKMS' default: kbuild at the top, as dm2 runs it */
	dirs = kbuild_dirs(c->make_command);
	if (dirs && strv_length(dirs) == 1) {
		if (isempty(dirs[0]))
			return 0;
		fprintf(f, "Directory=%s\n", dirs[0]);
		*ret_dir = TAKE_PTR(dirs[0]);
		return 0;
	}
	list = dirs ? strv_join(dirs, "', '") : NULL;
	if (list)
		fprintf(f,
			"# REVIEW: MAKE runs kbuild in %zu directories ('%s'); a recipe "
			"builds "
			"in one [Build] Directory=: write a recipe per directory, the "
			"later "
			"ones with Needs= on the first.\n",
			strv_length(dirs), list);
	else
		fprintf(f,
			"# REVIEW: MAKE '%s' is not translated: dm2 runs kbuild (make -C "
			"KDIR M=SOURCE modules) in [Build] Directory=; variables go in "
			"MakeVariable=KEY=VALUE.\n",
			strna(c->make));
	return 0;
}

/* BUILT_MODULE_LOCATION is relative to the top; Modules= to Directory= (sub). */
static void write_modules(FILE *f, const struct dkms_conf *c, const char *sub)
{
	size_t strip = 0;

	fputs("Modules=", f);
	for (size_t i = 0; i < c->n_modules; i++) {
		const struct dkms_module *m = &c->modules[i];
		const char *loc = m->built_location, *rest;

		if (sub && (rest = startswith(loc, sub)) && (!*rest || *rest == '/'))
			loc = *rest ? rest + 1 : "";
		fprintf(f, "%s%s%s%s", i ? " " : "", loc, *loc ? "/" : "", m->built_name);
		strip += m->strip;
	}
	fputc('\n', f);
	for (size_t i = 0; i < c->n_modules; i++)
		if (!streq(c->modules[i].dest_name, c->modules[i].built_name))
			fprintf(f,
				"# REVIEW: DEST_MODULE_NAME[%zu]='%s': a recipe installs "
				"a module under the name it is built with ('%s').\n",
				i, c->modules[i].dest_name, c->modules[i].built_name);
	if (c->n_modules > 0 && strip == 0)
		fputs("Strip=no\n", f);
	else if (strip != c->n_modules)
		fputs("# REVIEW: STRIP[] differs between modules; Strip= is for all of "
		      "them.\n",
		      f);
}

static void write_words(FILE *f, const char *key, char **l)
{
	_cleanup_free_ char *s = l ? strv_join(l, " ") : NULL;

	if (s)
		fprintf(f, "%s=%s\n", key, s);
}

static void write_build(FILE *f, const struct dkms_conf *c)
{
	_cleanup_free_ char *subdir = NULL;

	fputs("\n[Build]\n", f);
	(void) write_directory(f, c, &subdir);
	write_modules(f, c, subdir);
	write_words(f, "RequireConfig", c->exclusive_config);
	if (c->build_depends) {
		fputs("# BUILD_DEPENDS names DKMS packages: check that recipes of these "
		      "names "
		      "exist.\n",
		      f);
		write_words(f, "Needs", c->build_depends);
	}
	if (c->exclusive_arch)
		fprintf(f,
			"# REVIEW: BUILD_EXCLUSIVE_ARCH='%s' is a regular expression; "
			"Arch= lists uname -m names.\n",
			c->exclusive_arch);
	if (c->pre_build)
		fprintf(f,
			"# REVIEW: PRE_BUILD='%s' is not translated: a recipe runs no "
			"script before make; ship what it generates, as a patch.\n",
			c->pre_build);
	if (c->post_build)
		fprintf(f, "# REVIEW: POST_BUILD='%s' is not translated.\n",
			c->post_build);
	if (c->clean)
		fputs("# CLEAN is not needed: every dm2 build starts from a fresh "
		      "copy.\n",
		      f);
}

static void write_install(FILE *f, const struct dkms_conf *c)
{
	fputs("\n[Install]\nDirectory=updates/dm2\n", f);
	for (size_t i = 0; i < c->n_modules; i++) {
		const char *loc = c->modules[i].dest_location;
		_cleanup_free_ char *rel = NULL;

		if (!loc)
			continue;
		rel = strndup(loc + strspn(loc, "/"),
			      strlen(loc + strspn(loc, "/")) -
				      (endswith(loc, "/") ? 1 : 0));
		if (rel && path_is_safe_relative(rel))
			fprintf(f,
				"# DEST_MODULE_LOCATION[%zu]='%s' (Debian's DKMS "
				"installs "
				"into updates/dkms instead); to follow it: "
				"ModuleDirectory=%s "
				"%s\n",
				i, loc, c->modules[i].built_name, rel);
	}
	STRV_FOREACH(s, c->scripts)
	fprintf(f,
		"# REVIEW: %s is not translated: dm2 runs no package script as root.\n",
		*s);
	if (!c->autoinstall)
		fputs("# REVIEW: AUTOINSTALL is not yes; a recipe is built for every "
		      "kernel.\n",
		      f);
}

int dkms_recipe_write(const struct dkms_conf *c, const struct recipe *r, FILE *f)
{
	const struct recipe_source *s = r->n_sources > 0 ? &r->sources[0] : NULL;

	fprintf(f,
		"# Written by 'dm2 dkms import --recipe' from %s, as bash evaluated it "
		"for "
		"%s%s (%s).\n",
		c->path, c->kernel_release ? "kernel " : "",
		c->kernel_release ?: "no kernel", strna(c->arch));
	fputs("# Check every '# REVIEW:' line (what dm2 could not translate), then "
	      "delete it;\n"
	      "# dm2-recipe(5) describes the keys, dm2-packaging(7) the move from "
	      "DKMS.\n\n",
	      f);
	fprintf(f, "[Recipe]\nName=%s\nDescription=%s %s, from its dkms.conf\n", c->name,
		c->name, c->version);
	write_license(f, c);

	fprintf(f, "\n[Source]\nVersion=%s\nPath=%s\n", c->version, c->dir);
	if (s && s->kernel.n > 0)
		fprintf(f, "Kernel=%s\n", s->kernel.text);
	if (c->exclusive_kernel)
		fprintf(f,
			"# REVIEW: BUILD_EXCLUSIVE_KERNEL='%s' (a regular expression on "
			"the "
			"release) has no recipe equivalent: use Kernel= ranges.\n",
			c->exclusive_kernel);
	for (size_t i = 0; i < c->n_patches; i++)
		fprintf(f,
			"# REVIEW: PATCH[%zu]='%s'%s%s%s: copy %s/patches/%s beside this "
			"recipe and add Patch=%s\n",
			i, c->patches[i].file,
			c->patches[i].match ? " (PATCH_MATCH '" : "",
			strempty(c->patches[i].match), c->patches[i].match ? "')" : "",
			c->dir, c->patches[i].file, c->patches[i].file);

	write_build(f, c);
	write_install(f, c);
	return ferror(f) ? -EIO : 0;
}
