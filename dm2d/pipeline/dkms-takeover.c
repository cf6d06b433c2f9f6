/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What DKMS installed, and replacing it with dm2's builds (dm2 dkms status|takeover). */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/dkms-takeover.h"
#include "recipe/dkms.h"
#include "pipeline/job.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

void dkms_installed_free(struct dkms_installed *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++) {
		free(l[i].module);
		free(l[i].version);
		free(l[i].kernel);
		free(l[i].arch);
		free(l[i].path);
	}
	free(l);
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Entry names of a root-relative directory (sorted), filtered by type; missing = empty.
 */
static int list_dir(int root_fd, const char *dir, mode_t type, bool follow, char ***ret)
{
	_cleanup_(closedirp) DIR *d = NULL;
	_cleanup_strv_free_ char **l = NULL;
	int fd, r;

	fd = openat(root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		*ret = NULL;
		return 0;
	}
	d = fdopendir(fd);
	if (!d) {
		safe_close(fd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) <
		    0)
			continue;
		if ((st.st_mode & S_IFMT) != type)
			continue;
		r = strv_extend(&l, de->d_name);
		if (r < 0)
			return r;
	}
	if (l)
		qsort(l, strv_length(l), sizeof(char *), cmp_str);
	*ret = TAKE_PTR(l);
	return 0;
}

/* DKMS' installed marker: <module>/kernel-<kver>-<arch> -> <version>/<kver>/<arch>. */
struct dkms_pkg {
	char *module, *version, *arch;
	bool has_file;
};

static void pkgs_free(struct dkms_pkg *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].module);
		free(p[i].version);
		free(p[i].arch);
	}
	free(p);
}

static int find_pkgs(int root_fd, const char *kver, struct dkms_pkg **ret, size_t *ret_n)
{
	_cleanup_strv_free_ char **mods = NULL;
	_cleanup_free_ char *prefix = strjoin("kernel-", kver, "-");
	struct dkms_pkg *p = NULL;
	size_t n = 0;
	int r;

	if (!prefix)
		return -ENOMEM;
	r = list_dir(root_fd, DM2_DKMS_TREE, S_IFDIR, false, &mods);
	if (r < 0)
		return r;
	STRV_FOREACH(m, mods)
	{
		_cleanup_strv_free_ char **links = NULL;
		_cleanup_free_ char *dir = strjoin(DM2_DKMS_TREE "/", *m);

		if (!dir)
			goto oom;
		r = list_dir(root_fd, dir, S_IFLNK, false, &links);
		if (r < 0)
			continue;
		STRV_FOREACH(l, links)
		{
			_cleanup_free_ char *lp = NULL;
			char target[PATH_MAX], *slash;
			const char *arch = startswith(*l, prefix);
			struct dkms_pkg *np;
			ssize_t k;

			if (isempty(arch) || strchr(arch, '-'))
				continue;
			lp = strjoin(dir, "/", *l);
			if (!lp)
				goto oom;
			k = readlinkat(root_fd, lp, target, sizeof(target) - 1);
			if (k < 0)
				continue;
			target[k] = '\0';
			slash = strchr(target, '/');
			if (slash)
				*slash = '\0';
			np = reallocarray(p, n + 1, sizeof(*p));
			if (!np)
				goto oom;
			p = np;
			p[n] = (struct dkms_pkg){
				.module = strdup(*m),
				.version = strdup(target),
				.arch = strdup(arch),
			};
			n++;
			if (!p[n - 1].module || !p[n - 1].version || !p[n - 1].arch)
				goto oom;
		}
	}
	*ret = p;
	*ret_n = n;
	return 0;
oom:
	pkgs_free(p, n);
	return -ENOMEM;
}

/* "foo-bar.ko.xz" belongs to module name "foo_bar"? The kernel treats '-' and '_' alike.
 */
static bool module_name_eq(const char *file, const char *name)
{
	size_t i;

	for (i = 0; file[i] && name[i]; i++) {
		char a = file[i] == '-' ? '_' : file[i],
		     b = name[i] == '-' ? '_' : name[i];
		if (a != b)
			return false;
	}
	return !name[i] && startswith(file + i, ".ko");
}

static int pkg_for_file(int root_fd, const char *kver, const char *file,
			struct dkms_pkg *p, size_t n)
{
	/* DKMS keeps what it built: <m>/<v>/<kver>/<arch>/module/<file>. */
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *built =
			strjoin(DM2_DKMS_TREE "/", p[i].module, "/", p[i].version, "/",
				kver, "/", p[i].arch, "/module/", file);

		if (!built)
			return -ENOMEM;
		if (faccessat(root_fd, built, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			return (int) i;
	}
	for (size_t i = 0; i < n; i++)
		if (module_name_eq(file, p[i].module))
			return (int) i;
	return -ENOENT;
}

static int add_entry(struct dkms_installed **l, size_t *n, const struct dkms_pkg *p,
		     const char *kver, const char *path, bool dm2_managed)
{
	struct dkms_installed *nl = reallocarray(*l, *n + 1, sizeof(**l)), *e;

	if (!nl)
		return -ENOMEM;
	*l = nl;
	e = &nl[(*n)++];
	*e = (struct dkms_installed){.dm2_managed = dm2_managed};
	e->kernel = strdup(kver);
	if (!e->kernel || (path && !(e->path = strdup(path))))
		return -ENOMEM;
	if (p && (!(e->module = strdup(p->module)) ||
		  !(e->version = strdup(p->version)) || !(e->arch = strdup(p->arch))))
		return -ENOMEM;
	return 0;
}

static bool dm2_has(struct db *d, const char *kver, const char *recipe)
{
	struct db_installed_file *f = NULL;
	size_t n = 0;

	if (!d || !recipe || db_installed_list(d, kver, recipe, &f, &n) < 0)
		return false;
	db_installed_files_free(f, n);
	return n > 0;
}

static int scan_kernel(struct dm2_context *ctx, struct db *d, const char *kver,
		       struct dkms_installed **l, size_t *n)
{
	_cleanup_strv_free_ char **files = NULL;
	_cleanup_free_ char *dir =
		strjoin(DM2_MODULES_DIR "/", kver, "/" DKMS_INSTALL_DIR);
	struct dkms_pkg *p = NULL;
	size_t np = 0;
	int r;

	if (!dir)
		return -ENOMEM;
	r = find_pkgs(ctx->root_fd, kver, &p, &np);
	if (r < 0)
		return r;
	r = list_dir(ctx->root_fd, dir, S_IFREG, false, &files);
	if (r < 0)
		goto out;
	STRV_FOREACH(f, files)
	{
		_cleanup_free_ char *path = NULL;
		struct db_installed_file owner = {};
		int k;

		if (!strstr(*f, ".ko"))
			continue;
		path = strjoin(dir, "/", *f);
		if (!path) {
			r = -ENOMEM;
			goto out;
		}
		if (d && db_installed_owner(d, path, &owner) >= 0) {
			db_installed_file_done(&owner);
			continue; /* dm2's own file */
		}
		k = pkg_for_file(ctx->root_fd, kver, *f, p, np);
		if (k == -ENOMEM) {
			r = k;
			goto out;
		}
		if (k >= 0)
			p[k].has_file = true;
		r = add_entry(l, n, k >= 0 ? &p[k] : NULL, kver, path,
			      dm2_has(d, kver, k >= 0 ? p[k].module : NULL));
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < np; i++)
		if (!p[i].has_file) {
			r = add_entry(l, n, &p[i], kver, NULL,
				      dm2_has(d, kver, p[i].module));
			if (r < 0)
				goto out;
		}
	r = 0;
out:
	pkgs_free(p, np);
	return r;
}

static int cmp_installed(const void *a, const void *b)
{
	const struct dkms_installed *x = a, *y = b;
	int c = strcmp(x->kernel, y->kernel);

	if (c == 0)
		c = strcmp(strempty(x->module), strempty(y->module));
	if (c == 0)
		c = strcmp(strempty(x->path), strempty(y->path));
	return c;
}

int dkms_installed_modules(struct dm2_context *ctx, const char *kver,
			   struct dkms_installed **ret, size_t *ret_n)
{
	_cleanup_(db_closep) struct db *d = NULL;
	_cleanup_strv_free_ char **kernels = NULL;
	struct dkms_installed *l = NULL;
	size_t n = 0;
	int r;

	if (kver)
		r = strv_extend(&kernels, kver);
	else
		r = list_dir(ctx->root_fd, DM2_MODULES_DIR, S_IFDIR, true, &kernels);
	if (r < 0)
		return r;
	/* No state db yet: dm2 owns nothing. */
	r = db_open(ctx, false, &d);
	if (r < 0 && r != -ENOENT)
		return r;
	STRV_FOREACH(k, kernels)
	{
		r = scan_kernel(ctx, d, *k, &l, &n);
		if (r < 0) {
			dkms_installed_free(l, n);
			return r;
		}
	}
	if (n > 0)
		qsort(l, n, sizeof(*l), cmp_installed);
	*ret = l;
	*ret_n = n;
	return 0;
}

int dkms_file_owner(struct dm2_context *ctx, const char *path, char **ret_module)
{
	_cleanup_free_ char *kver = NULL;
	struct dkms_installed *l = NULL;
	const char *p = startswith(path, DM2_MODULES_DIR "/"), *e;
	size_t n = 0;
	int r = -ENOENT;

	if (!p || !(e = strchr(p, '/')))
		return -ENOENT;
	kver = strndup(p, e - p);
	if (!kver)
		return -ENOMEM;
	r = dkms_installed_modules(ctx, kver, &l, &n);
	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (l[i].module && l[i].path && streq(l[i].path, path)) {
			char *m = strdup(l[i].module);

			r = m ? 0 : -ENOMEM;
			if (m)
				*ret_module = m;
			break;
		}
	dkms_installed_free(l, n);
	return r;
}

char *dkms_explain_conflict(struct dm2_context *ctx, const char *path)
{
	_cleanup_free_ char *pkg = NULL;

	if (dkms_file_owner(ctx, path, &pkg) < 0)
		return NULL;
	return strjoin("'", path, "' was installed by DKMS (package '", pkg,
		       "'); see 'dm2 dkms takeover'");
}

void dkms_takeover_result_done(struct dkms_takeover_result *r)
{
	free(r->reason);
	strv_free(r->moved);
	strv_free(r->installed);
	*r = (struct dkms_takeover_result){};
}

static char *backup_path(const char *kver, const char *path)
{
	_cleanup_free_ char *prefix = strjoin(DM2_MODULES_DIR "/", kver, "/");
	const char *rel = prefix ? startswith(path, prefix) : NULL;

	/* Keep the layout below lib/modules/KVER so a restore is obvious by hand too. */
	return rel ? strjoin(DKMS_BACKUP_DIR "/", kver, "/", rel) : NULL;
}

static void remove_empty_parents(int root_fd, const char *path, const char *stop)
{
	_cleanup_free_ char *p = strdup(path);

	for (char *s; p && (s = strrchr(p, '/'));) {
		*s = '\0';
		if (streq(p, stop) || unlinkat(root_fd, p, AT_REMOVEDIR) < 0)
			break;
	}
}

/* Put DKMS' files back exactly (rename keeps bytes, mode, times and inode). */
static int restore(struct dm2_context *ctx, struct db *d, const char *module,
		   const char *kver, char **moved, char **reason)
{
	int ret = 0;

	STRV_FOREACH(p, moved)
	{
		_cleanup_free_ char *b = backup_path(kver, *p);
		struct db_installed_file f = {};

		if (!b)
			return -ENOMEM;
		/* dm2 got as far as writing its file there: forget it, DKMS' comes back.
		 */
		if (db_installed_owner(d, *p, &f) >= 0) {
			if (streq(f.recipe, module) && streq(f.kernel, kver))
				(void) db_installed_remove(d, *p);
			db_installed_file_done(&f);
		}
		if (renameat(ctx->root_fd, b, ctx->root_fd, *p) < 0) {
			int e = errno;

			ret = -e;
			free(*reason);
			if (asprintf(reason,
				     "restoring '%s' failed (%s); DKMS' copy is in '%s'",
				     *p, strerror(e), b) < 0)
				*reason = NULL;
			continue;
		}
		remove_empty_parents(ctx->root_fd, b, DKMS_BACKUP_DIR);
	}
	return ret;
}

/* The takeover failed: how, and DKMS' files go back. Returns 1 (the takeover ends here),
 * or -ENOMEM. */
static int fail_restore(struct dm2_context *ctx, struct db *d, const char *module,
			const char *kver, enum job_state stage, int error,
			const char *why, struct dkms_takeover_result *res)
{
	_cleanup_free_ char *restore_error = NULL;
	int r;

	r = restore(ctx, d, module, kver, res->moved, &restore_error);
	if (r == -ENOMEM)
		return r;
	res->restored = r >= 0;
	if (res->state != JOB_STATE_SKIPPED && res->state != JOB_STATE_WAITING)
		res->state = JOB_STATE_FAILED;
	res->stage = stage;
	res->error = error;
	res->reason = restore_error ? strjoin(why, "; ", restore_error) : strdup(why);
	return res->reason ? 1 : -ENOMEM;
}

static int move_aside(struct dm2_context *ctx, const char *kver, char **paths,
		      struct dkms_takeover_result *res)
{
	STRV_FOREACH(p, paths)
	{
		_cleanup_free_ char *b = backup_path(kver, *p), *parent = NULL;
		char *slash;
		int r;

		if (!b)
			return -ENOMEM;
		if (faccessat(ctx->root_fd, b, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			if (asprintf(&res->reason,
				     "'%s' exists from an interrupted takeover; put it "
				     "back "
				     "to '%s' or remove it first",
				     b, *p) < 0)
				return -ENOMEM;
			return -EEXIST;
		}
		parent = strdup(b);
		if (!parent)
			return -ENOMEM;
		slash = strrchr(parent, '/');
		*slash = '\0';
		r = mkdir_p_at(ctx->root_fd, parent, 0700);
		if (r < 0 || renameat(ctx->root_fd, *p, ctx->root_fd, b) < 0) {
			int e = r < 0 ? -r : errno;

			if (asprintf(&res->reason, "cannot move '%s' to '%s': %s", *p, b,
				     strerror(e)) < 0)
				return -ENOMEM;
			return -e;
		}
		r = strv_extend(&res->moved, *p);
		if (r < 0)
			return r;
	}
	return 0;
}

/* dm2's job for module x kver. 0: dm2's files are in place (res->installed); 1: it
 * failed, DKMS' files are back (res says how). */
static int run_job(struct dm2_context *ctx, struct db *d, const struct recipe_set *set,
		   const char *module, const char *kver, bool progress,
		   struct dkms_takeover_result *res)
{
	struct job_options o = {.progress = progress, .recipes = set};
	_cleanup_free_ char *why = NULL;
	struct db_installed_file *files = NULL;
	struct job_result jr = {};
	size_t nf = 0;
	int r;

	r = job_run(ctx, d, module, kver, &o, &jr);
	if (r < 0) /* job_run() logged why. */
		return fail_restore(ctx, d, module, kver, JOB_STATE_QUEUED, r,
				    "dm2 could not run the job (see above)", res);
	if (jr.state != JOB_STATE_INSTALLED) {
		const char *stage = jr.state == JOB_STATE_FAILED
					    ? job_state_to_string(jr.stage)
					    : NULL;

		res->state = jr.state;
		why = strjoin(job_state_to_string(jr.state), stage ? " while " : "",
			      strempty(stage), ": ", strna(jr.reason));
		r = why ? fail_restore(ctx, d, module, kver, jr.stage, jr.error, why, res)
			: -ENOMEM;
		job_result_done(&jr);
		return r;
	}
	job_result_done(&jr);

	/* Only when dm2's files are really there does DKMS' copy go. */
	r = db_installed_list(d, kver, module, &files, &nf);
	if (r < 0)
		return log_error_errno(r, "Failed to read the state db: %m");
	for (size_t i = 0; i < nf && r >= 0; i++) {
		struct stat st;

		if (fstatat(ctx->root_fd, files[i].path, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
		    S_ISREG(st.st_mode))
			r = strv_extend(&res->installed, files[i].path);
	}
	db_installed_files_free(files, nf);
	if (r < 0)
		return r;
	if (!res->installed)
		return fail_restore(
			ctx, d, module, kver, JOB_STATE_INSTALLING, -ENOENT,
			"dm2 reported the job installed but none of its files "
			"is in place",
			res);
	return 0;
}

/* DKMS' copies and its "installed" mark go. */
static int forget_dkms(struct dm2_context *ctx, const char *module, const char *kver,
		       const char *arch, char **moved)
{
	_cleanup_free_ char *link = NULL;

	STRV_FOREACH(p, moved)
	{
		_cleanup_free_ char *b = backup_path(kver, *p);

		if (!b)
			return -ENOMEM;
		if (unlinkat(ctx->root_fd, b, 0) < 0)
			log_warning_errno(
				errno,
				"Failed to remove DKMS' old copy '%s', ignoring: %m", b);
		remove_empty_parents(ctx->root_fd, b, DKMS_BACKUP_DIR);
	}
	/* DKMS' "installed" state is this link alone; its build stays as "built". */
	link = strjoin(DM2_DKMS_TREE "/", module, "/kernel-", kver, "-", arch);
	if (!link)
		return -ENOMEM;
	if (unlinkat(ctx->root_fd, link, 0) < 0 && errno != ENOENT)
		log_warning_errno(
			errno,
			"Failed to remove '%s', ignoring: 'dkms status' will still "
			"show the module installed: %m",
			link);
	return 0;
}

int dkms_takeover(struct dm2_context *ctx, struct db *d, const struct recipe_set *set,
		  const char *module, const char *kver, const char *arch, char **paths,
		  bool progress, struct dkms_takeover_result *ret)
{
	_cleanup_(dkms_takeover_result_done) struct dkms_takeover_result res = {};
	int r;

	r = move_aside(ctx, kver, paths, &res);
	if (r < 0 && r != -ENOMEM) {
		_cleanup_free_ char *why = TAKE_PTR(res.reason);

		r = fail_restore(ctx, d, module, kver, JOB_STATE_INSTALLING, r, why,
				 &res);
	}
	if (r == 0)
		r = run_job(ctx, d, set, module, kver, progress, &res);
	if (r == 0)
		r = forget_dkms(ctx, module, kver, arch, res.moved);
	if (r == -ENOMEM)
		return log_oom();
	if (r < 0)
		return r;
	if (r == 0) {
		res.taken_over = true;
		res.state = JOB_STATE_INSTALLED;
	}
	*ret = res;
	res = (struct dkms_takeover_result){};
	return 0;
}

/* DKMS' kernel hooks run before dm2's (run-parts order): left on, they would build a package
 * dm2 took over first, and dm2 would then refuse their files. dkms 3.0's hooks and package
 * postinst skip every package while etc/dkms/no-autoinstall exists. A per-package
 * AUTOINSTALL="no" in etc/dkms/<module>.conf is no choice: dm2 reads those overrides too
 * and would stop building the package itself. 1: created, 0: it was there. */
int dkms_disable_autoinstall(struct dm2_context *ctx, const struct recipe_set *set,
			     char ***ret_unbuilt)
{
	static const char note[] =
		"# Created by 'dm2 dkms takeover': dm2 builds DKMS' packages for new kernels,\n"
		"# so DKMS' own kernel hooks must not (dkms(8) skips them while this exists).\n"
		"# Delete this file to give the packages back to DKMS.\n";
	_cleanup_strv_free_ char **mods = NULL, **unbuilt = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = list_dir(ctx->root_fd, DM2_DKMS_TREE, S_IFDIR, false, &mods);
	if (r < 0)
		return r;
	STRV_FOREACH(m, mods)
	{
		const struct recipe *rc = recipe_set_find(set, *m);

		if ((!rc || !recipe_autoinstall(rc)) && strv_extend(&unbuilt, *m) < 0)
			return -ENOMEM;
	}
	if (mkdirat(ctx->root_fd, DM2_DKMS_ETC_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(ctx->root_fd, DM2_DKMS_ETC_DIR "/no-autoinstall",
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 && errno != EEXIST)
		return -errno;
	if (fd >= 0 && write(fd, note, sizeof(note) - 1) != (ssize_t) (sizeof(note) - 1))
		return errno > 0 ? -errno : -EIO;
	*ret_unbuilt = TAKE_PTR(unbuilt);
	return fd >= 0;
}
