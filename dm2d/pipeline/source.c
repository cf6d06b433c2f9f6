/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* From a recipe source to a verified, patched source tree. */
#include <assert.h>
#include <fcntl.h>
#include <regex.h>
#include <stdarg.h>

#include "pipeline/fetch.h"
#include "pipeline/gittree.h"
#include "pipeline/patch.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/url.h"
#include "shared/util.h"
#include "pipeline/source.h"
#include "pipeline/unpack.h"

char *source_display_name(const char *url)
{
	const char *e = url + strcspn(url, "?#"), *s;

	while (e > url + 1 && e[-1] == '/')
		e--;
	s = e;
	while (s > url && s[-1] != '/')
		s--;
	if (s == e)
		return strdup(url);
	return strndup(s, (size_t) (e - s));
}

static int set_reason(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static int set_reason(char **ret_reason, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (!ret_reason)
		return 0;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(*ret_reason);
	*ret_reason = s;
	return s ? 0 : -ENOMEM;
}

static int check_git_tree(const char *dir, const char *name, const char *expected,
			  char ret[41], char **reason)
{
	int r;

	r = gittree_hash_dir(AT_FDCWD, dir, ret);
	if (r < 0) {
		set_reason(reason, "'%s': cannot compute the git tree id: %s", name,
			   strerror(-r));
		return r;
	}
	if (expected && !streq(expected, ret)) {
		set_reason(reason, "'%s': GitTree mismatch: expected %s, got %s", name,
			   expected, ret);
		return -EUCLEAN;
	}
	return 0;
}

static int prepare_path(const struct recipe_source *s, const char *dest_dir,
			char **ret_base, char **reason)
{
	char tree[41];
	int r;

	r = copy_tree_at(AT_FDCWD, s->path, AT_FDCWD, dest_dir);
	if (r < 0) {
		set_reason(
			reason, "Path '%s': cannot copy the source tree into '%s': %s",
			s->path, dest_dir,
			r == -EBADMSG
				? "it holds a file that is not a regular file, directory "
				  "or symlink"
				: strerror(-r));
		return r;
	}
	r = check_git_tree(dest_dir, s->path, s->git_tree, tree, reason);
	if (r < 0)
		return r;
	*ret_base = strjoin("git:", tree);
	return *ret_base ? 0 : -ENOMEM;
}

static int prepare_url(struct dm2_context *ctx, const struct recipe_source *s,
		       const char *dest_dir, char **ret_base, char **reason)
{
	_cleanup_free_ char *path = NULL, *name = NULL;
	_cleanup_close_ int fd = -EBADF;
	char tree[41];
	int r;

	if (strv_length(s->urls) == 0) {
		set_reason(reason,
			   "source '%s' has neither URL= nor Path=", strna(s->version));
		return -EINVAL;
	}
	name = source_display_name(s->urls[0]);
	if (!name)
		return -ENOMEM;

	r = fetch_url_full(ctx, s->urls, s->sha256, &path, reason);
	if (r < 0) {
		if (reason && !*reason) {
			_cleanup_free_ char *shown = url_redact(s->urls[0]);

			set_reason(reason, "'%s': download failed: %s", strna(shown),
				   strerror(-r));
		}
		return r;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		set_reason(reason, "'%s': %s", path, strerror(-r));
		return r;
	}
	r = unpack_archive_fd(ctx, fd, name, s->sha256, dest_dir, reason);
	if (r < 0)
		return r;
	r = check_git_tree(dest_dir, name, s->git_tree, tree, reason);
	if (r < 0)
		return r;
	if (s->sha256)
		*ret_base = strjoin("sha256:", s->sha256);
	else
		*ret_base = strjoin("git:", tree);
	return *ret_base ? 0 : -ENOMEM;
}

static int patch_matches(const struct recipe_patch *p, const char *kernel_release,
			 const char *kernel_version, char **reason)
{
	regex_t re;
	int r;

	if (!recipe_patch_for_kernel(p, kernel_version))
		return 0;
	if (!p->match)
		return 1;
	r = regcomp(&re, p->match, REG_EXTENDED | REG_NOSUB);
	if (r != 0) {
		set_reason(reason, "patch '%s': invalid match expression '%s'", p->path,
			   p->match);
		return -EINVAL;
	}
	r = regexec(&re, kernel_release, 0, NULL, 0);
	regfree(&re);
	return r == 0;
}

int source_prepare(struct dm2_context *ctx, const struct recipe *rcp,
		   const struct recipe_source *s, const char *kernel_release,
		   const char *dest_dir, char **ret_content_id, char **ret_reason)
{
	return source_prepare_for(ctx, rcp, s, kernel_release, kernel_release, dest_dir,
				  ret_content_id, ret_reason);
}

int source_prepare_for(struct dm2_context *ctx, const struct recipe *rcp,
		       const struct recipe_source *s, const char *kernel_release,
		       const char *kernel_version, const char *dest_dir,
		       char **ret_content_id, char **ret_reason)
{
	_cleanup_(sha256_freep) struct sha256_ctx *patches = NULL;
	_cleanup_free_ char *base = NULL, *reason = NULL, *id = NULL;
	unsigned n_applied = 0;
	int r;

	assert(rcp && s && dest_dir);

	if (faccessat(AT_FDCWD, dest_dir, F_OK, AT_SYMLINK_NOFOLLOW) >= 0) {
		set_reason(&reason, "'%s' exists already", dest_dir);
		r = -EEXIST;
		goto fail;
	}

	if (s->path)
		r = prepare_path(s, dest_dir, &base, &reason);
	else
		r = prepare_url(ctx, s, dest_dir, &base, &reason);
	if (r < 0)
		goto fail;

	r = sha256_new(&patches);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < s->n_patches; i++) {
		const struct recipe_patch *p = &s->patches[i];
		char hex[SHA256_HEX_SIZE];

		r = patch_matches(p, strempty(kernel_release), kernel_version, &reason);
		if (r < 0)
			goto fail;
		if (r == 0) {
			log_debug("Patch '%s' does not match '%s', skipped.", p->path,
				  strempty(kernel_release));
			continue;
		}
		r = sha256_file_hex_at(AT_FDCWD, p->path, hex);
		if (r < 0) {
			set_reason(&reason, "patch '%s': %s", p->path, strerror(-r));
			goto fail;
		}
		r = patch_apply(dest_dir, p->path, &reason);
		if (r < 0)
			goto fail;
		sha256_update_str(patches, hex);
		n_applied++;
	}

	if (n_applied > 0) {
		uint8_t digest[SHA256_DIGEST_SIZE];
		char hex[SHA256_HEX_SIZE];

		sha256_finish(TAKE_PTR(patches), digest);
		sha256_to_hex(digest, hex);
		id = strjoin(base, "+patches:", hex);
	} else
		id = TAKE_PTR(base);
	if (!id) {
		r = -ENOMEM;
		goto fail;
	}
	if (ret_content_id)
		*ret_content_id = TAKE_PTR(id);
	return 0;

fail:
	if (r != -EEXIST)
		(void) rm_rf_at(AT_FDCWD, dest_dir);
	if (!reason)
		set_reason(&reason, "source of '%s': %s", rcp->name, strerror(-r));
	if (ret_reason)
		*ret_reason = TAKE_PTR(reason);
	return r;
}
