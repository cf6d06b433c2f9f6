/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Install manifests: what dm2 installed, beside the modules, to rebuild the state db. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <dlfcn.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/context.h"
#include "core/manifest.h"
#include "shared/fs-util.h"
#include "shared/hash.h"
#include "shared/log.h"
#include "shared/util.h"

#define MANIFEST_FORMAT 1

/* hash.h's hex64() would link OpenSSL into the dm2 front end (see below). */
static bool hex64(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n == SHA256_HEX_SIZE - 1 && s[n] == '\0';
}

struct manifest *manifest_free(struct manifest *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n_files; i++) {
		free(m->files[i].path);
		free(m->files[i].sha256);
		free(m->files[i].overrides_intree);
	}
	free(m->files);
	free(m->recipe);
	free(m->kernel);
	free(m->version);
	free(m->build_key);
	free(m->signer);
	return mfree(m);
}

int manifest_add_file(struct manifest *m, const char *path, const char *sha256,
		      const char *overrides_intree)
{
	struct manifest_file *nf,
		f = {
			.path = strdup(path),
			.sha256 = strdup(sha256),
			.overrides_intree =
				overrides_intree ? strdup(overrides_intree) : NULL,
		};

	nf = realloc(m->files, (m->n_files + 1) * sizeof(*nf));
	if (!f.path || !f.sha256 || (overrides_intree && !f.overrides_intree) || !nf) {
		free(f.path);
		free(f.sha256);
		free(f.overrides_intree);
		if (nf)
			m->files = nf;
		return -ENOMEM;
	}
	m->files = nf;
	m->files[m->n_files++] = f;
	return 0;
}

void manifest_truncate(struct manifest *m, size_t n)
{
	for (; m->n_files > n; m->n_files--) {
		struct manifest_file *f = &m->files[m->n_files - 1];

		free(f->path);
		free(f->sha256);
		free(f->overrides_intree);
	}
}

char *manifest_path(const char *kver, const char *recipe)
{
	return strjoin(DM2_MODULES_DIR "/", kver, "/" MANIFEST_DIR "/", recipe,
		       MANIFEST_SUFFIX);
}

/* One line of text: no newline or carriage return can hide a second key. */
static bool one_line(const char *s)
{
	return !s || !strpbrk(s, "\n\r");
}

/* A file of kernel kver, below lib/modules/KVER/. */
static bool file_path_valid(const char *kver, const char *path)
{
	_cleanup_free_ char *prefix = strjoin(DM2_MODULES_DIR "/", kver, "/");
	const char *rest = prefix ? startswith(path, prefix) : NULL;

	return rest && !isempty(rest) && path_is_safe_relative(path);
}

static bool name_valid(const char *s)
{
	return !isempty(s) && one_line(s) && !strpbrk(s, "/ \t") &&
	       path_is_safe_relative(s);
}

int manifest_format(const struct manifest *m, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	FILE *f;

	if (!name_valid(m->recipe) || !name_valid(m->kernel) || !one_line(m->version) ||
	    !one_line(m->build_key) || !one_line(m->signer))
		return -EINVAL;
	for (size_t i = 0; i < m->n_files; i++) {
		const char *o = m->files[i].overrides_intree;

		if (!file_path_valid(m->kernel, m->files[i].path) ||
		    !one_line(m->files[i].path) || !hex64(m->files[i].sha256) ||
		    (o && (isempty(o) || strpbrk(o, " \t\n\r"))))
			return -EINVAL;
	}
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	fprintf(f,
		"# What dm2 installed for one recipe on one kernel; the state db is "
		"rebuilt from it (dm2d(8)).\n"
		"Manifest=%d\nRecipe=%s\nKernel=%s\n",
		MANIFEST_FORMAT, m->recipe, m->kernel);
	if (m->version)
		fprintf(f, "Version=%s\n", m->version);
	if (m->build_key)
		fprintf(f, "BuildKey=%s\n", m->build_key);
	if (m->signer)
		fprintf(f, "Signer=%s\n", m->signer);
	fprintf(f, "FromCache=%s\nInstalled=%" PRIu64 "\n", m->from_cache ? "yes" : "no",
		m->installed);
	for (size_t i = 0; i < m->n_files; i++)
		fprintf(f, "File=%s %s %s\n", m->files[i].sha256,
			m->files[i].overrides_intree ?: "-", m->files[i].path);
	if (fclose(f) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(buf);
	return 0;
}

/* "File=<sha256> <intree|-> <path>" */
static int parse_file_line(struct manifest *m, char *v, const char **why)
{
	char *intree, *path;

	intree = strchr(v, ' ');
	path = intree ? strchr(intree + 1, ' ') : NULL;
	if (!path) {
		*why = "File= needs '<sha256> <in-tree module or -> <path>'";
		return -EBADMSG;
	}
	*intree++ = '\0';
	*path++ = '\0';
	if (!hex64(v)) {
		*why = "File= does not start with a sha256";
		return -EBADMSG;
	}
	if (!m->kernel || !file_path_valid(m->kernel, path)) {
		*why = "File= names a path outside lib/modules/KVER of Kernel=";
		return -EBADMSG;
	}
	return manifest_add_file(m, path, v, streq(intree, "-") ? NULL : intree);
}

static int parse_line(struct manifest *m, char *line, int *format, const char **why)
{
	char *eq = strchr(line, '=');
	const char *k = line;
	char *v;

	if (!eq) {
		*why = "not a 'Key=Value' line";
		return -EBADMSG;
	}
	*eq = '\0';
	v = eq + 1;
	if (streq(k, "Manifest")) {
		if (safe_atoi(v, format) < 0 || *format < 1) {
			*why = "Manifest= is not a format number";
			return -EBADMSG;
		}
		return *format > MANIFEST_FORMAT ? -EPROTO : 0;
	}
	if (*format == 0) {
		*why = "does not start with Manifest=";
		return -EBADMSG;
	}
	if (streq(k, "File"))
		return parse_file_line(m, v, why);
	if (streq(k, "FromCache")) {
		if (!streq(v, "yes") && !streq(v, "no")) {
			*why = "FromCache= is neither yes nor no";
			return -EBADMSG;
		}
		m->from_cache = streq(v, "yes");
		return 0;
	}
	if (streq(k, "Installed")) {
		if (safe_atou64(v, &m->installed) < 0) {
			*why = "Installed= is not a number";
			return -EBADMSG;
		}
		return 0;
	}
	char **field = streq(k, "Recipe")     ? &m->recipe
		       : streq(k, "Kernel")   ? &m->kernel
		       : streq(k, "Version")  ? &m->version
		       : streq(k, "BuildKey") ? &m->build_key
		       : streq(k, "Signer")   ? &m->signer
					      : NULL;
	if (!field) {
		*why = "unknown key";
		return -EBADMSG;
	}
	if (*field) {
		*why = "key given twice";
		return -EBADMSG;
	}
	if ((field == &m->recipe || field == &m->kernel) && !name_valid(v)) {
		*why = "Recipe= or Kernel= is not a plain name";
		return -EBADMSG;
	}
	return free_and_strdup(field, v);
}

int manifest_parse(const char *text, struct manifest **ret, unsigned *ret_line,
		   const char **ret_why)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_free_ char *copy = strdup(text);
	const char *why = NULL;
	unsigned line = 0;
	int format = 0, r;

	m = calloc(1, sizeof(*m));
	if (!m || !copy)
		return -ENOMEM;
	for (char *p = copy, *nl; p && *p; p = nl) {
		nl = strchr(p, '\n');
		if (nl)
			*nl++ = '\0';
		line++;
		if (*p == '#' || *p == '\0')
			continue;
		r = parse_line(m, p, &format, &why);
		if (r < 0) {
			*ret_line = line;
			*ret_why =
				why ?: (r == -EPROTO ? "written by a newer dm2" : NULL);
			return r;
		}
	}
	if (!m->recipe || !m->kernel) {
		*ret_line = line;
		*ret_why = format == 0 ? "does not start with Manifest="
				       : "Recipe= or Kernel= is missing";
		return -EBADMSG;
	}
	*ret = TAKE_PTR(m);
	return 0;
}

int manifest_write(int root_fd, const struct manifest *m)
{
	_cleanup_free_ char *text = NULL, *path = NULL, *dir = NULL;
	int r;

	r = manifest_format(m, &text);
	if (r < 0)
		return r;
	path = manifest_path(m->kernel, m->recipe);
	dir = strjoin(DM2_MODULES_DIR "/", m->kernel, "/" MANIFEST_DIR);
	if (!path || !dir)
		return -ENOMEM;
	r = mkdir_p_at(root_fd, dir, 0755);
	if (r < 0)
		return r;
	return write_file_atomic_at(root_fd, path, text, strlen(text), 0644);
}

int manifest_remove(int root_fd, const char *kver, const char *recipe)
{
	_cleanup_free_ char *path = manifest_path(kver, recipe);
	_cleanup_free_ char *dir = strjoin(DM2_MODULES_DIR "/", kver, "/" MANIFEST_DIR);

	if (!path || !dir)
		return -ENOMEM;
	if (unlinkat(root_fd, path, 0) < 0 && errno != ENOENT)
		return -errno;
	/* The kernel's directory should not stay behind for an empty one of ours. */
	(void) unlinkat(root_fd, dir, AT_REMOVEDIR);
	return 0;
}

/* Call fn for every ROOT/lib/modules/KVER/.dm2/NAME.manifest. */
typedef int (*manifest_fn)(int root_fd, const char *kver, const char *file, void *ud);

static int for_each_in_kernel(int root_fd, const char *kver, manifest_fn fn, void *ud)
{
	_cleanup_free_ char *dir = strjoin(DM2_MODULES_DIR "/", kver, "/" MANIFEST_DIR);
	_cleanup_close_ int fd = -EBADF;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (!dir)
		return -ENOMEM;
	fd = openat(root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	d = fdopendir(fd);
	if (!d)
		return -errno;
	TAKE_FD(fd);
	while (r >= 0 && (de = readdir(d))) {
		_cleanup_free_ char *rel = NULL;

		if (de->d_name[0] == '.' || !endswith(de->d_name, MANIFEST_SUFFIX))
			continue;
		rel = strjoin(dir, "/", de->d_name);
		r = rel ? fn(root_fd, kver, rel, ud) : -ENOMEM;
	}
	closedir(d);
	return r;
}

static int for_each_manifest(int root_fd, manifest_fn fn, void *ud)
{
	_cleanup_close_ int fd = -EBADF;
	struct dirent *de;
	DIR *d;
	int r = 0;

	fd = openat(root_fd, DM2_MODULES_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d)
		return -errno;
	TAKE_FD(fd);
	while (r >= 0 && (de = readdir(d)))
		if (de->d_name[0] != '.')
			r = for_each_in_kernel(root_fd, de->d_name, fn, ud);
	closedir(d);
	return r;
}

static int count_one(int root_fd, const char *kver, const char *file, void *ud)
{
	(*(unsigned *) ud)++;
	return 0;
}

int manifest_count(int root_fd, unsigned *ret)
{
	unsigned n = 0;
	int r = for_each_manifest(root_fd, count_one, &n);

	if (r < 0)
		return r;
	*ret = n;
	return 0;
}

/* The manifest in file, checked against the place it was found in. */
static int manifest_load(int root_fd, const char *kver, const char *file,
			 struct manifest **ret)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_free_ char *text = NULL, *expect = NULL;
	const char *why = NULL;
	unsigned line = 0;
	int r;

	r = read_full_file_at(root_fd, file, MANIFEST_MAX_SIZE, &text, NULL);
	if (r < 0)
		return log_warning_errno(r, "Cannot read '%s', ignoring: %m", file);
	r = manifest_parse(text, &m, &line, &why);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		log_warning("%s:%u: %s, ignoring the manifest.", file, line, strna(why));
		return -EBADMSG;
	}
	expect = manifest_path(m->kernel, m->recipe);
	if (!expect)
		return -ENOMEM;
	if (!streq(m->kernel, kver) || !streq(expect, file)) {
		log_warning("%s: Recipe=%s and Kernel=%s belong in '%s', ignoring the "
			    "manifest.",
			    file, m->recipe, m->kernel, expect);
		return -EBADMSG;
	}
	*ret = TAKE_PTR(m);
	return 0;
}

/*
 * OpenSSL's sha256, loaded when a rebuild first needs it. A rebuild is the only hashing
 * that dm2d and the dm2 front end ever do, and neither links OpenSSL: dm2d stays small
 * while idle (test-daemon-footprint), `dm2 status` starts in a few ms. In dm2-engine,
 * which links it, dlopen() returns the copy already loaded. Never unloaded: libcrypto
 * pins itself in memory anyway.
 */
static struct {
	EVP_MD_CTX *(*ctx_new)(void);
	void (*ctx_free)(EVP_MD_CTX *c);
	const EVP_MD *(*sha256)(void);
	int (*init)(EVP_MD_CTX *c, const EVP_MD *md, ENGINE *e);
	int (*update)(EVP_MD_CTX *c, const void *d, size_t n);
	int (*final)(EVP_MD_CTX *c, unsigned char *md, unsigned *n);
} evp;

#define LIBCRYPTO_SONAME "libcrypto.so." STRINGIFY(OPENSSL_VERSION_MAJOR)
#define STRINGIFY(x) STRINGIFY2(x)
#define STRINGIFY2(x) #x

static int evp_load(void)
{
	void *h;

	if (evp.final)
		return 0;
	h = dlopen(LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return log_debug("Cannot load " LIBCRYPTO_SONAME ": %s", dlerror()),
		       -ENOPKG;
	*(void **) &evp.ctx_new = dlsym(h, "EVP_MD_CTX_new");
	*(void **) &evp.ctx_free = dlsym(h, "EVP_MD_CTX_free");
	*(void **) &evp.sha256 = dlsym(h, "EVP_sha256");
	*(void **) &evp.init = dlsym(h, "EVP_DigestInit_ex");
	*(void **) &evp.update = dlsym(h, "EVP_DigestUpdate");
	*(void **) &evp.final = dlsym(h, "EVP_DigestFinal_ex");
	if (!evp.ctx_new || !evp.ctx_free || !evp.sha256 || !evp.init || !evp.update ||
	    !evp.final) {
		evp.final = NULL;
		return -ENOPKG;
	}
	return 0;
}

static int sha256_fd(int fd, uint8_t digest[SHA256_DIGEST_SIZE])
{
	EVP_MD_CTX *c;
	char buf[65536];
	unsigned len = 0;
	ssize_t n;
	int r = 0;

	c = evp.ctx_new();
	if (!c)
		return -ENOMEM;
	if (evp.init(c, evp.sha256(), NULL) != 1)
		r = -EIO;
	while (r >= 0 && (n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		else if (evp.update(c, buf, (size_t) n) != 1)
			r = -EIO;
	}
	if (r >= 0 && (evp.final(c, digest, &len) != 1 || len != SHA256_DIGEST_SIZE))
		r = -EIO;
	evp.ctx_free(c);
	return r;
}

static int sha256_file_at(int root_fd, const char *path, char hex[SHA256_HEX_SIZE])
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *h = NULL;
	uint8_t digest[SHA256_DIGEST_SIZE];
	int r;

	r = evp_load();
	if (r < 0)
		return r;
	fd = openat(root_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	r = sha256_fd(fd, digest);
	if (r < 0)
		return r;
	h = hexmem(digest, sizeof(digest));
	if (!h)
		return -ENOMEM;
	memcpy(hex, h, SHA256_HEX_SIZE);
	return 0;
}

/* The files of m whose content is still what the manifest says; -ENOENT for none. */
static int import_files(struct db *d, int root_fd, const struct manifest *m,
			unsigned *n_files)
{
	unsigned n = 0;
	int r;

	for (size_t i = 0; i < m->n_files; i++) {
		const struct manifest_file *f = &m->files[i];
		char hex[SHA256_HEX_SIZE];

		r = sha256_file_at(root_fd, f->path, hex);
		if (r == -ENOENT || (r >= 0 && !streq(hex, f->sha256)))
			continue;
		if (r < 0)
			return r;
		r = db_installed_add(d, m->kernel, m->recipe, f->path, f->sha256,
				     f->overrides_intree);
		if (r < 0)
			return r;
		n++;
	}
	*n_files += n;
	return n > 0 ? 0 : -ENOENT;
}

struct import_ctx {
	struct db *d;
	struct manifest_import_stats *st;
};

static int import_one(int root_fd, const char *kver, const char *file, void *ud)
{
	struct import_ctx *c = ud;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	int r;

	c->st->manifests++;
	r = manifest_load(root_fd, kver, file, &m);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		c->st->skipped++;
		return 0;
	}
	r = import_files(c->d, root_fd, m, &c->st->files);
	if (r == -ENOENT) {
		log_info("%s: no file it lists is still in place, ignoring the manifest.",
			 file);
		c->st->skipped++;
		return 0;
	}
	if (r < 0)
		return r;
	r = db_job_import(c->d, m->recipe, m->kernel, m->version, m->build_key,
			  m->from_cache, m->signer, m->installed);
	if (r < 0)
		return r;
	c->st->imported++;
	return 0;
}

int manifest_import_all(struct db *d, int root_fd, struct manifest_import_stats *ret)
{
	struct manifest_import_stats st = {};
	struct import_ctx c = {d, &st};
	int r;

	r = for_each_manifest(root_fd, import_one, &c);
	if (r < 0)
		return r;
	*ret = st;
	return 0;
}
