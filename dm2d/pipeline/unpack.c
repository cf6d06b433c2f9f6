/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unpacking untrusted archives. Every entry is judged here before libarchive's disk
 * writer sees it; the writer's SECURE_* flags are a second line of defence. The archive
 * is extracted into a private staging directory inside dest_dir, then its content
 * (without a shared top-level directory) is moved up, so nothing is ever created outside
 * dest_dir.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/util.h"
#include "pipeline/unpack.h"

struct link {
	char *path;
	char *target;
};

struct unpack {
	const char *name;
	uint64_t max_size, max_entries;
	uint64_t total, n_entries;
	void *files;	   /* tsearch() set of regular files so far: hardlink targets */
	void *symlink_set; /* tsearch() set of symlink paths */
	struct link *links;
	size_t n_links;
	char *reason;
};

static int refuse(struct unpack *u, const char *entry, const char *fmt, ...)
	_printf_(3, 4);
static int refuse(struct unpack *u, const char *entry, const char *fmt, ...)
{
	_cleanup_free_ char *what = NULL;
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vasprintf(&what, fmt, ap);
	va_end(ap);
	free(u->reason);
	u->reason = NULL;
	if (k < 0)
		return -ENOMEM;
	if (entry)
		k = asprintf(&u->reason, "'%s': entry '%s': %s", u->name, entry, what);
	else
		k = asprintf(&u->reason, "'%s': %s", u->name, what);
	if (k < 0) {
		u->reason = NULL;
		return -ENOMEM;
	}
	return -EBADMSG;
}

/* Over MaxUnpackedSize= or MaxEntries=: -EFBIG rather than -EBADMSG. */
#define refuse_cap(u, entry, ...)                                                        \
	({                                                                               \
		int _k_ = refuse(u, entry, __VA_ARGS__);                                 \
		_k_ == -EBADMSG ? -EFBIG : _k_;                                          \
	})

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int set_add(void **set, const char *s)
{
	char *c = strdup(s);
	char **found;

	if (!c)
		return -ENOMEM;
	found = tsearch(c, set, cmp_str);
	if (!found) {
		free(c);
		return -ENOMEM;
	}
	if (*found != c)
		free(c); /* already there */
	return 0;
}

static bool set_contains(void *const *set, const char *s)
{
	return tfind(s, set, cmp_str) != NULL;
}

/*
 * Normalize an archive path: drop "." and empty components. "" means the entry names the
 * top itself. -EBADMSG with *ret_why set for absolute paths and "..".
 */
static int normalize_path(const char *p, char **ret, const char **ret_why)
{
	_cleanup_strv_free_ char **parts = NULL;
	_cleanup_strv_free_ char **keep = NULL;
	char *j;
	int r;

	if (p[0] == '/') {
		*ret_why = "absolute path refused";
		return -EBADMSG;
	}
	r = strv_split(p, "/", &parts);
	if (r < 0)
		return r;
	STRV_FOREACH(c, parts)
	{
		if (streq(*c, "."))
			continue;
		if (streq(*c, "..")) {
			*ret_why = "path escapes the source tree";
			return -EBADMSG;
		}
		r = strv_extend(&keep, *c);
		if (r < 0)
			return r;
	}
	j = keep ? strv_join(keep, "/") : strdup("");
	if (!j)
		return -ENOMEM;
	*ret = j;
	return 0;
}

/*
 * Walk a symlink target lexically from the link's directory. Fails if it leaves the tree
 * (or, with symlinks given, if it walks through another symlink of the archive, whose own
 * target would make the lexical walk meaningless).
 */
enum {
	LINK_ESCAPES,
	LINK_INSIDE,
	LINK_THROUGH_SYMLINK,
};

/* min_depth 1: the top-level directory is stripped later, so the tree starts below it. */
static int symlink_resolves_inside(const char *link_path, const char *target,
				   void *const *symlinks, size_t min_depth)
{
	_cleanup_strv_free_ char **stack = NULL, **t = NULL;
	size_t n;
	int r;

	if (target[0] == '/')
		return LINK_ESCAPES;
	r = strv_split(link_path, "/", &stack);
	if (r < 0)
		return r;
	n = strv_length(stack);
	if (n == 0)
		return LINK_ESCAPES;
	/* Drop the link's own name: targets are relative to its directory. */
	free(stack[n - 1]);
	stack[--n] = NULL;

	r = strv_split(target, "/", &t);
	if (r < 0)
		return r;
	for (size_t i = 0; t && t[i]; i++) {
		if (streq(t[i], "."))
			continue;
		if (streq(t[i], "..")) {
			if (n <= min_depth)
				return LINK_ESCAPES;
			free(stack[n - 1]);
			stack[--n] = NULL;
			continue;
		}
		r = strv_extend(&stack, t[i]);
		if (r < 0)
			return r;
		n++;
		if (symlinks && t[i + 1]) {
			_cleanup_free_ char *prefix = strv_join(stack, "/");

			if (!prefix)
				return -ENOMEM;
			if (set_contains(symlinks, prefix))
				return LINK_THROUGH_SYMLINK;
		}
	}
	return LINK_INSIDE;
}

static int copy_data(struct unpack *u, struct archive *a, struct archive *w,
		     const char *entry)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int k = archive_read_data_block(a, &buf, &size, &off);

		if (k == ARCHIVE_EOF)
			return 0;
		if (k < ARCHIVE_WARN)
			return refuse(u, entry, "broken data: %s",
				      archive_error_string(a));
		u->total += size;
		if (u->total > u->max_size)
			return refuse_cap(u, entry,
					  "unpacked size exceeds MaxUnpackedSize=%" PRIu64
					  " bytes",
					  u->max_size);
		if (archive_write_data_block(w, buf, size, off) < ARCHIVE_WARN)
			return refuse(u, entry, "cannot extract: %s",
				      archive_error_string(w));
	}
}

/* A hard link may only point to an earlier regular file of the archive. */
static int accept_hardlink(struct unpack *u, struct archive_entry *e, const char *raw,
			   const char *raw_hl)
{
	_cleanup_free_ char *hl = NULL;
	const char *why = NULL;
	int r;

	r = normalize_path(raw_hl, &hl, &why);
	if (r == -EBADMSG || (r >= 0 && (isempty(hl) || !set_contains(&u->files, hl))))
		return refuse(
			u, raw,
			"hardlink to '%s' refused: not an earlier file of the archive",
			raw_hl);
	if (r < 0)
		return r;
	archive_entry_set_hardlink(e, hl);
	return 0;
}

/* A symlink must stay inside the tree; it is recorded for the checks at the end. */
static int accept_symlink(struct unpack *u, struct archive_entry *e, const char *raw,
			  const char *path)
{
	const char *target = archive_entry_symlink(e);
	struct link *l;
	int r;

	if (isempty(target))
		return refuse(u, raw, "symlink without a target refused");
	if (target[0] == '/')
		return refuse(u, raw, "symlink to absolute path '%s' refused", target);
	r = symlink_resolves_inside(path, target, NULL, 0);
	if (r < 0)
		return r;
	if (r == LINK_ESCAPES)
		return refuse(u, raw, "symlink to '%s' escapes the source tree", target);
	l = realloc(u->links, sizeof(*l) * (u->n_links + 1));
	if (!l)
		return -ENOMEM;
	u->links = l;
	l[u->n_links] = (struct link){strdup(path), strdup(target)};
	if (!l[u->n_links].path || !l[u->n_links].target) {
		free(l[u->n_links].path);
		free(l[u->n_links].target);
		return -ENOMEM;
	}
	u->n_links++;
	return set_add(&u->symlink_set, path);
}

/* Only files, directories and symlinks; the owner may always read and write them. */
static int accept_type(struct unpack *u, struct archive_entry *e, const char *raw,
		       const char *path, mode_t type, mode_t *perm)
{
	switch (type) {
	case AE_IFREG:
		*perm |= 0600;
		return 0;
	case AE_IFDIR:
		*perm |= 0700;
		return 0;
	case AE_IFLNK:
		return accept_symlink(u, e, raw, path);
	case AE_IFCHR:
	case AE_IFBLK:
		return refuse(u, raw, "device node refused");
	case AE_IFIFO:
		return refuse(u, raw, "FIFO refused");
	case AE_IFSOCK:
		return refuse(u, raw, "socket refused");
	default:
		return refuse(u, raw, "unsupported file type refused");
	}
}

static int write_entry(struct unpack *u, struct archive *a, struct archive *w,
		       struct archive_entry *e, const char *raw, const char *path,
		       mode_t type, mode_t perm)
{
	int r;

	if (type == AE_IFREG && archive_entry_size_is_set(e) &&
	    (uint64_t) archive_entry_size(e) > u->max_size - MIN(u->total, u->max_size))
		return refuse_cap(
			u, raw, "unpacked size exceeds MaxUnpackedSize=%" PRIu64 " bytes",
			u->max_size);

	archive_entry_set_pathname(e, path);
	if (type != AE_IFLNK)
		archive_entry_set_perm(e, perm); /* no setuid, setgid or sticky bit */
	archive_entry_acl_clear(e);
	archive_entry_xattr_clear(e);

	if (archive_write_header(w, e) < ARCHIVE_WARN)
		return refuse(u, raw, "cannot extract: %s", archive_error_string(w));
	if (type == AE_IFREG) {
		r = copy_data(u, a, w, raw);
		if (r < 0)
			return r;
		r = set_add(&u->files, path);
		if (r < 0)
			return r;
	}
	if (archive_write_finish_entry(w) < ARCHIVE_WARN)
		return refuse(u, raw, "cannot extract: %s", archive_error_string(w));
	return 0;
}

static int extract_entry(struct unpack *u, struct archive *a, struct archive *w,
			 struct archive_entry *e)
{
	_cleanup_free_ char *path = NULL;
	const char *raw = archive_entry_pathname(e), *why = NULL, *raw_hl;
	mode_t type = archive_entry_filetype(e);
	mode_t perm = archive_entry_perm(e) & 0777;
	int r;

	if (!raw)
		return refuse(u, "", "entry without a name refused");
	if (++u->n_entries > u->max_entries)
		return refuse_cap(u, raw, "more than MaxEntries=%" PRIu64 " entries",
				  u->max_entries);
	r = normalize_path(raw, &path, &why);
	if (r == -EBADMSG)
		return refuse(u, raw, "%s", why);
	if (r < 0)
		return r;
	if (isempty(path)) {
		if (type != AE_IFDIR)
			return refuse(u, raw, "path names the top of the source tree");
		return 0; /* "./" itself */
	}

	raw_hl = archive_entry_hardlink(e);
	if (raw_hl) {
		r = accept_hardlink(u, e, raw, raw_hl);
		type = AE_IFREG;
	} else
		r = accept_type(u, e, raw, path, type, &perm);
	if (r < 0)
		return r;
	return write_entry(u, a, w, e, raw, path, type, perm);
}

static void archive_read_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static void archive_write_freep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

/* Extract into the current directory (libarchive's disk writer works relative to it). */
static int extract_all(struct unpack *u, int fd)
{
	_cleanup_(archive_read_freep) struct archive *a = NULL;
	_cleanup_(archive_write_freep) struct archive *w = NULL;
	struct archive_entry *e;
	int r;

	a = archive_read_new();
	w = archive_write_disk_new();
	if (!a || !w)
		return -ENOMEM;
	/* Only what source archives use: fewer parsers, less attack surface. */
	if (archive_read_support_filter_gzip(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_xz(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_zstd(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_bzip2(a) < ARCHIVE_WARN ||
	    archive_read_support_format_tar(a) < ARCHIVE_WARN ||
	    archive_read_support_format_zip(a) < ARCHIVE_WARN)
		return refuse(u, NULL, "libarchive lacks a format: %s",
			      archive_error_string(a));
	if (archive_write_disk_set_options(
		    w, ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
			       ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
			       ARCHIVE_EXTRACT_NO_OVERWRITE) != ARCHIVE_OK)
		return -EIO;
	if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK)
		return refuse(u, NULL, "not a tar or zip archive: %s",
			      archive_error_string(a));

	for (;;) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return refuse(u, NULL, "%s: %s",
				      u->n_entries == 0 ? "not a tar or zip archive"
							: "broken archive",
				      archive_error_string(a));
		r = extract_entry(u, a, w, e);
		if (r < 0)
			return r;
	}
	if (archive_write_close(w) < ARCHIVE_WARN)
		return refuse(u, NULL, "cannot extract: %s", archive_error_string(w));

	return 0;
}

/* Now that all symlinks and the stripping are known, check every symlink again. */
static int check_links(struct unpack *u, bool strip_top)
{
	int r;

	for (size_t i = 0; i < u->n_links; i++) {
		const struct link *l = &u->links[i];

		r = symlink_resolves_inside(l->path, l->target, &u->symlink_set,
					    strip_top ? 1 : 0);
		if (r < 0)
			return r;
		if (r == LINK_ESCAPES)
			return refuse(u, l->path,
				      "symlink to '%s' escapes the source tree",
				      l->target);
		if (r == LINK_THROUGH_SYMLINK)
			return refuse(u, l->path,
				      "symlink to '%s' leads through another symlink",
				      l->target);
	}
	return 0;
}

/* The name of the only entry of the staging directory, if it is a directory. */
static int single_top_dir(int staging_fd, char **ret)
{
	_cleanup_free_ char *only = NULL;
	struct dirent *de;
	unsigned n = 0;
	struct stat st;
	DIR *d;

	d = fdopendir(openat(staging_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
			n++;
			if (!only)
				only = strdup(de->d_name);
		}
	closedir(d);
	if (n >= 1 && !only)
		return -ENOMEM;
	if (n == 1 && fstatat(staging_fd, only, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
	    S_ISDIR(st.st_mode))
		*ret = TAKE_PTR(only);
	else
		*ret = NULL;
	return 0;
}

/* Move the staged content into dest, without a single shared top-level directory. */
static int flatten(int dest_fd, const char *staging, int staging_fd, const char *top)
{
	_cleanup_close_ int src_fd = -EBADF;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (top)
		src_fd = openat(staging_fd, top,
				O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	else
		src_fd = openat(staging_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src_fd < 0)
		return -errno;

	d = fdopendir(fcntl(src_fd, F_DUPFD_CLOEXEC, 3));
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (renameat(src_fd, de->d_name, dest_fd, de->d_name) < 0) {
			r = -errno;
			break;
		}
	}
	closedir(d);
	if (r < 0)
		return r;
	return rm_rf_at(dest_fd, staging);
}

/* The hash is checked on the very fd libarchive will read, before it reads a byte. */
static int verify_sha256(int archive_fd, const char *display_name, const char *sha256,
			 char **ret_reason)
{
	char hex[SHA256_HEX_SIZE];
	int r;

	if (lseek(archive_fd, 0, SEEK_SET) < 0)
		return -errno;
	r = sha256_fd_hex(archive_fd, hex);
	if (r < 0)
		return r;
	if (!streq(hex, sha256)) {
		if (ret_reason &&
		    asprintf(ret_reason, "'%s': SHA256 mismatch: expected %s, got %s",
			     display_name, sha256, hex) < 0)
			return -ENOMEM;
		return -EUCLEAN;
	}
	return 0;
}

/* Extract into a staging directory below dest_fd (with it as the working directory, so
 * that nothing resolves outside), check the links, then move the tree up into dest. */
static int unpack_staged(struct unpack *u, int archive_fd, int dest_fd)
{
	_cleanup_close_ int staging_fd = -EBADF, cwd_fd = -EBADF;
	_cleanup_free_ char *staging = NULL, *top = NULL;
	int r;

	r = mkdtemp_at(dest_fd, ".dm2-unpack-", &staging);
	if (r < 0)
		return r;
	staging_fd =
		openat(dest_fd, staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (staging_fd < 0 || cwd_fd < 0)
		return -errno;
	if (fchdir(staging_fd) < 0)
		return -errno;
	r = extract_all(u, archive_fd);
	if (fchdir(cwd_fd) < 0 && r >= 0)
		r = -errno;
	if (r >= 0)
		r = single_top_dir(staging_fd, &top);
	if (r >= 0)
		r = check_links(u, top);
	if (r >= 0)
		r = flatten(dest_fd, staging, staging_fd, top);
	return r;
}

static void unpack_done(struct unpack *u)
{
	tdestroy(u->files, free);
	tdestroy(u->symlink_set, free);
	for (size_t i = 0; i < u->n_links; i++) {
		free(u->links[i].path);
		free(u->links[i].target);
	}
	free(u->links);
	free(u->reason);
}

int unpack_archive_fd(struct dm2_context *ctx, int archive_fd, const char *display_name,
		      const char *sha256, const char *dest_dir, char **ret_reason)
{
	struct unpack u = {.name = display_name,
			   .max_size = ctx->config->max_unpacked_size,
			   .max_entries = ctx->config->max_entries};
	_cleanup_close_ int dest_fd = -EBADF;
	int r;

	if (sha256) {
		r = verify_sha256(archive_fd, display_name, sha256, ret_reason);
		if (r < 0)
			return r;
	}
	if (lseek(archive_fd, 0, SEEK_SET) < 0)
		return -errno;

	if (mkdir(dest_dir, 0755) < 0)
		return -errno;
	dest_fd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dest_fd < 0)
		r = -errno;
	else
		r = unpack_staged(&u, archive_fd, dest_fd);
	if (r < 0) {
		(void) rm_rf_at(AT_FDCWD, dest_dir);
		if (ret_reason && u.reason)
			*ret_reason = TAKE_PTR(u.reason);
		else if (ret_reason && asprintf(ret_reason, "'%s': unpacking failed: %s",
						display_name, strerror(-r)) < 0)
			*ret_reason = NULL;
	}
	unpack_done(&u);
	return r < 0 ? r : 0;
}

int unpack_archive(struct dm2_context *ctx, const char *archive, const char *dest_dir)
{
	_cleanup_free_ char *reason = NULL;
	_cleanup_close_ int fd = -EBADF;
	const char *name = strrchr(archive, '/');
	int r;

	fd = open(archive, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = unpack_archive_fd(ctx, fd, name ? name + 1 : archive, NULL, dest_dir,
			      &reason);
	if (r < 0 && reason)
		log_debug("%s", reason);
	return r;
}
