/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/manifest.h"
#include "pipeline/install.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/spawn.h"
#include "shared/util.h"

static char *module_dir(const char *kver)
{
	return strjoin(DM2_MODULES_DIR "/", kver);
}

static char *item_path(const char *kver, const struct install_item *it)
{
	return strjoin(DM2_MODULES_DIR "/", kver, "/", it->dir, "/", it->name);
}

/* "foo-bar.ko.xz" -> "foo_bar" */
static char *module_base(const char *name)
{
	const char *slash = strrchr(name, '/');
	char *b, *dot;

	b = strdup(slash ? slash + 1 : name);
	if (!b)
		return NULL;
	dot = strstr(b, ".ko");
	if (dot)
		*dot = '\0';
	for (char *p = b; *p; p++)
		if (*p == '-')
			*p = '_';
	return b;
}

static int find_in_dir(int dir_fd, const char *rel, const char *base, char **ret)
{
	_cleanup_close_ int fd = -EBADF;
	DIR *dir;
	struct dirent *de;
	int r = -ENOENT;

	fd = openat(dir_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -ENOENT;
	dir = fdopendir(fd);
	if (!dir)
		return -errno;
	TAKE_FD(fd);
	while (r == -ENOENT && (de = readdir(dir))) {
		_cleanup_free_ char *child = NULL, *b = NULL;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		child = strjoin(rel, "/", de->d_name);
		if (!child) {
			r = -ENOMEM;
			break;
		}
		if (de->d_type == DT_DIR) {
			r = find_in_dir(dir_fd, child, base, ret);
			continue;
		}
		if (!strstr(de->d_name, ".ko"))
			continue;
		b = module_base(de->d_name);
		if (!b) {
			r = -ENOMEM;
			break;
		}
		if (streq(b, base)) {
			*ret = TAKE_PTR(child);
			r = 0;
		}
	}
	closedir(dir);
	return r;
}

int install_find_intree(struct dm2_context *ctx, const char *kver, const char *name,
			char **ret)
{
	_cleanup_free_ char *base = NULL, *kdir = NULL, *builtin = NULL, *text = NULL;
	_cleanup_strv_free_ char **lines = NULL;
	int r;

	base = module_base(name);
	kdir = strjoin(DM2_MODULES_DIR "/", kver, "/kernel");
	builtin = strjoin(DM2_MODULES_DIR "/", kver, "/modules.builtin");
	if (!base || !kdir || !builtin)
		return -ENOMEM;

	r = find_in_dir(ctx->root_fd, kdir, base, ret);
	if (r != -ENOENT)
		return r;

	r = read_full_file_at(ctx->root_fd, builtin, 0, &text, NULL);
	if (r < 0)
		return -ENOENT;
	r = strv_split(text, "\n", &lines);
	if (r < 0)
		return r;
	STRV_FOREACH(l, lines)
	{
		_cleanup_free_ char *b = module_base(*l);

		if (!b)
			return -ENOMEM;
		if (streq(b, base)) {
			char *s = strdup("builtin");
			if (!s)
				return -ENOMEM;
			*ret = s;
			return 0;
		}
	}
	return -ENOENT;
}

/* The file at path belongs to recipe x kver, or does not exist. */
static int check_ownership(struct db *d, int root_fd, const char *path,
			   const char *recipe, const char *kver)
{
	struct db_installed_file f = {};
	struct stat st;
	bool ok;
	int r;

	if (fstatat(root_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode))
		return -EEXIST;
	r = db_installed_owner(d, path, &f);
	if (r == -ENOENT)
		return -EEXIST;
	if (r < 0)
		return r;
	ok = streq(f.recipe, recipe) && streq(f.kernel, kver);
	db_installed_file_done(&f);
	return ok ? 0 : -EEXIST;
}

static bool path_in_items(const char *path, char **paths)
{
	return strv_contains(paths, path);
}

/* Remove the empty directories above path, up to lib/modules/KVER (kept): the install dir
 * (updates/dm2) goes with its last module, so removing a kernel leaves nothing of ours. */
static void remove_empty_parents(int root_fd, const char *path)
{
	_cleanup_free_ char *p = strdup(path);
	const char *rel = p ? startswith(p, DM2_MODULES_DIR "/") : NULL;
	const char *kver_end = rel ? strchr(rel, '/') : NULL;

	for (char *s; kver_end && (s = strrchr(p, '/')) && s > kver_end;) {
		*s = '\0';
		if (unlinkat(root_fd, p, AT_REMOVEDIR) < 0)
			break;
	}
}

/* Remove path if its content still hashes to sha256. 1: removed or already gone, 0: kept.
 */
static int remove_if_ours(int root_fd, const char *path, const char *sha256)
{
	char hex[SHA256_HEX_SIZE];
	int r;

	r = sha256_file_hex_at(root_fd, path, hex);
	if (r == -ENOENT)
		return 1;
	if (r < 0)
		return r;
	if (!streq(hex, sha256))
		return 0;
	if (unlinkat(root_fd, path, 0) < 0 && errno != ENOENT)
		return -errno;
	remove_empty_parents(root_fd, path);
	return 1;
}

static void unlink_staged(int root_fd, char **staged)
{
	STRV_FOREACH(t, staged)
		(void) unlinkat(root_fd, *t, 0);
}

/* The target of every item, each checked before any is written, so a conflict changes
 * nothing. */
static int item_paths(struct db *d, int root_fd, const char *recipe, const char *kver,
		      const struct install_item *items, size_t n, char ***ret,
		      char **ret_conflict)
{
	_cleanup_strv_free_ char **paths = NULL;
	int r;

	for (size_t i = 0; i < n; i++) {
		char *p;

		if (!path_is_safe_relative(items[i].dir) || strchr(items[i].name, '/') ||
		    !path_is_safe_relative(items[i].name))
			return -EINVAL;
		p = item_path(kver, &items[i]);
		if (!p)
			return -ENOMEM;
		r = strv_consume(&paths, p);
		if (r < 0)
			return r;
		r = check_ownership(d, root_fd, p, recipe, kver);
		if (r == -EEXIST && ret_conflict) {
			*ret_conflict = strdup(p);
			if (!*ret_conflict)
				return -ENOMEM;
		}
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(paths);
	return 0;
}

/* Every new file is written to a temporary file beside its target before any replaces an
 * old one: a full disk or an I/O error on the last module leaves the earlier install
 * whole, not a mix. */
static int stage_items(int root_fd, const char *kver, const struct install_item *items,
		       size_t n, char **paths, char ***ret_staged, size_t *ret_failed)
{
	_cleanup_strv_free_ char **staged = NULL;
	int r;

	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *dir = NULL;
		char *tmp = NULL;

		dir = strjoin(DM2_MODULES_DIR "/", kver, "/", items[i].dir);
		if (!dir)
			r = -ENOMEM;
		else
			r = mkdir_p_at(root_fd, dir, 0755);
		if (r >= 0)
			r = stage_file_at(root_fd, paths[i], items[i].data, items[i].size,
					  0644, &tmp);
		if (r >= 0)
			r = strv_consume(&staged, tmp);
		if (r < 0) {
			unlink_staged(root_fd, staged);
			*ret_failed = i;
			return r;
		}
	}
	*ret_staged = TAKE_PTR(staged);
	return 0;
}

static int commit_items(int root_fd, size_t n, char **staged, char **paths,
			size_t *ret_failed)
{
	for (size_t i = 0; i < n; i++) {
		int r = commit_staged_at(root_fd, staged[i], paths[i]);
		if (r < 0) {
			unlink_staged(root_fd, staged + i);
			*ret_failed = i;
			return r;
		}
	}
	return 0;
}

/* What the db will say about this install, as a manifest (manifest.h). */
static int manifest_new(struct dm2_context *ctx, const char *recipe, const char *kver,
			const struct install_meta *meta, const struct install_item *items,
			size_t n, char **paths, struct manifest **ret)
{
	_cleanup_(manifest_freep) struct manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->recipe = strdup(recipe);
	m->kernel = strdup(kver);
	if (!m->recipe || !m->kernel)
		return -ENOMEM;
	if (meta && (free_and_strdup(&m->version, meta->version) < 0 ||
		     free_and_strdup(&m->build_key, meta->build_key) < 0 ||
		     free_and_strdup(&m->signer, meta->signer) < 0))
		return -ENOMEM;
	m->from_cache = meta && meta->from_cache;
	m->installed = now_usec();
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *intree = NULL;
		char hex[SHA256_HEX_SIZE];
		int r;

		sha256_buf_hex(items[i].data, items[i].size, hex);
		r = install_find_intree(ctx, kver, items[i].name, &intree);
		if (r < 0 && r != -ENOENT)
			log_debug_errno(r,
					"Failed to look for in-tree '%s', ignoring: %m",
					items[i].name);
		/* A name the manifest cannot carry is only a note, not worth an install. */
		if (intree && strpbrk(intree, " \t\n\r"))
			intree = mfree(intree);
		r = manifest_add_file(m, paths[i], hex, intree);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(m);
	return 0;
}

/* The manifest while the new files replace the old ones: it claims both, so a crash in
 * between leaves no file of ours unclaimed (the rebuild keeps whichever still matches). */
static int manifest_write_both(struct db *d, int root_fd, struct manifest *m)
{
	struct db_installed_file *old = NULL;
	size_t n_old = 0;
	int r;

	r = db_installed_list(d, m->kernel, m->recipe, &old, &n_old);
	for (size_t i = 0; r >= 0 && i < n_old; i++)
		r = manifest_add_file(m, old[i].path, old[i].sha256, old[i].overrides_intree);
	if (r >= 0)
		r = manifest_write(root_fd, m);
	db_installed_files_free(old, n_old);
	return r;
}

static int record_items(struct db *d, const struct manifest *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = db_installed_add(d, m->kernel, m->recipe, m->files[i].path,
					 m->files[i].sha256, m->files[i].overrides_intree);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Files of an earlier install that this one no longer has (another compression, a module
 * dropped from the recipe). */
static int remove_old(struct db *d, int root_fd, const char *recipe, const char *kver,
		      char **paths)
{
	struct db_installed_file *old = NULL;
	size_t n_old = 0;
	int r;

	r = db_installed_list(d, kver, recipe, &old, &n_old);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_old; i++) {
		if (path_in_items(old[i].path, paths))
			continue;
		r = remove_if_ours(root_fd, old[i].path, old[i].sha256);
		if (r == 0)
			log_warning("'%s' was changed since dm2 installed it; leaving it "
				    "in place.",
				    old[i].path);
		else if (r < 0)
			log_warning_errno(r, "Failed to remove old '%s', ignoring: %m",
					  old[i].path);
		r = db_installed_remove(d, old[i].path);
		if (r < 0)
			break;
	}
	db_installed_files_free(old, n_old);
	return MIN(r, 0);
}

/* The directory of a root-relative path, for the one line that says where a write failed
 * (a full disk: which one). */
static void set_where(char **ret_where, const char *path)
{
	const char *slash = strrchr(path, '/');

	if (ret_where && !*ret_where)
		*ret_where = slash ? strndup(path, slash - path) : strdup(path);
}

/* The manifest goes first: whatever the db records afterwards, a rebuild finds it. */
static int write_and_record(struct dm2_context *ctx, struct db *d, struct manifest *m,
			    const struct install_item *items, size_t n, char **paths,
			    char **ret_where)
{
	_cleanup_strv_free_ char **staged = NULL;
	_cleanup_free_ char *mpath = NULL;
	size_t failed = 0;
	int r;

	r = stage_items(ctx->root_fd, m->kernel, items, n, paths, &staged, &failed);
	if (r < 0)
		return set_where(ret_where, paths[failed]), r;
	r = manifest_write_both(d, ctx->root_fd, m);
	if (r < 0) {
		unlink_staged(ctx->root_fd, staged);
		mpath = manifest_path(m->kernel, m->recipe);
		if (mpath)
			set_where(ret_where, mpath);
		return r;
	}
	r = commit_items(ctx->root_fd, n, staged, paths, &failed);
	if (r < 0)
		return set_where(ret_where, paths[failed]), r;
	r = record_items(d, m, n);
	if (r >= 0)
		r = remove_old(d, ctx->root_fd, m->recipe, m->kernel, paths);
	if (r < 0)
		return r;
	manifest_truncate(m, n);
	r = manifest_write(ctx->root_fd, m);
	if (r < 0)
		log_warning_errno(r,
				  "Failed to drop the replaced files from the manifest of '%s' "
				  "for '%s', ignoring: %m",
				  m->recipe, m->kernel);
	return 0;
}

int install_files(struct dm2_context *ctx, struct db *d, const char *recipe,
		  const char *kver, const struct install_item *items, size_t n,
		  const struct install_meta *meta, char **ret_where)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_strv_free_ char **paths = NULL;
	int r;

	r = item_paths(d, ctx->root_fd, recipe, kver, items, n, &paths, ret_where);
	if (r >= 0)
		r = manifest_new(ctx, recipe, kver, meta, items, n, paths, &m);
	if (r >= 0)
		r = write_and_record(ctx, d, m, items, n, paths, ret_where);
	return r;
}

int install_remove(struct dm2_context *ctx, struct db *d, const char *recipe,
		   const char *kver, char ***ret_kept)
{
	_cleanup_strv_free_ char **kept = NULL;
	struct db_installed_file *files = NULL;
	size_t n = 0;
	int r;

	r = db_installed_list(d, kver, recipe, &files, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		r = remove_if_ours(ctx->root_fd, files[i].path, files[i].sha256);
		if (r < 0)
			goto finish;
		if (r == 0) {
			r = strv_extend(&kept, files[i].path);
			if (r < 0)
				goto finish;
		}
	}
	r = db_job_forget(d, recipe, kver);
	if (r < 0)
		goto finish;
	/* After the db forgot it: a crash in between leaves a manifest whose files are
	 * gone, which a rebuild ignores. */
	r = manifest_remove(ctx->root_fd, kver, recipe);
	if (r < 0)
		log_warning_errno(r, "Failed to remove the manifest of '%s' for '%s', "
				  "ignoring: %m", recipe, kver);
	if (ret_kept)
		*ret_kept = TAKE_PTR(kept);
	r = 0;
finish:
	db_installed_files_free(files, n);
	return r;
}

int install_remove_kernel(struct dm2_context *ctx, struct db *d, const char *kver)
{
	return db_kernel_remove(d, kver);
}

static const char *depmod_binary(void)
{
	static const char *const candidates[] = {"/usr/sbin/depmod", "/sbin/depmod",
						 "/usr/bin/depmod", "/bin/depmod"};

	for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
		if (access(candidates[i], X_OK) >= 0)
			return candidates[i];
	return NULL;
}

/* depmod -a -b ROOT KVER: its stderr (at most the first 64 KiB) in *ret_out, its wait
 * status in *ret_status. */
static int run_depmod(const char *bin, const char *root, const char *kver, char **ret_out,
		      int *ret_status)
{
	return spawn_run(&(const struct spawn_options){
				 .program = bin,
				 .argv = (char *const[]){(char *) "depmod", (char *) "-a",
							 (char *) "-b", (char *) root,
							 (char *) kver, NULL},
				 .stdin_fd = SPAWN_NULL,
				 .stdout_fd = SPAWN_NULL,
				 .stderr_fd = SPAWN_CAPTURE,
			 },
			 65536, ret_out, ret_status);
}

int install_depmod(struct dm2_context *ctx, const char *kver, char **ret_reason)
{
	_cleanup_free_ char *mdir = NULL, *out = NULL;
	const char *bin;
	struct stat st;
	int status, r;

	mdir = module_dir(kver);
	if (!mdir)
		return -ENOMEM;
	if (fstatat(ctx->root_fd, mdir, &st, 0) < 0 || !S_ISDIR(st.st_mode))
		return -ENOENT;
	bin = depmod_binary();
	if (!bin)
		return -ENOEXEC;
	r = run_depmod(bin, ctx->root, kver, &out, &status);
	if (r < 0)
		return r;

	if (out) {
		_cleanup_strv_free_ char **lines = NULL;

		if (strv_split(out, "\n", &lines) >= 0)
			STRV_FOREACH(l, lines)
		log_debug("depmod %s: %s", kver, *l);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (ret_reason) {
			char *nl = out ? strchr(out, '\n') : NULL;
			if (nl)
				*nl = '\0';
			*ret_reason =
				isempty(out) ? strdup("depmod failed") : TAKE_PTR(out);
		}
		return -EPROTO;
	}
	return 0;
}
