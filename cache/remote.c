/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Remote cache entries, whatever the transport:
 *   the manifest of <key>      "dm2-cache-manifest 2\n", then "key", "recipe", "version",
 *                              "source", "kernel", "identity" and "arch" lines, one
 *                              "file <sha256> <size> <name>\n" per file, and last the
 *                              "signature <base64 CMS>" line (trust.c)
 *   each object <sha256>       the file's content
 * Nothing from the remote is trusted: the manifest must be signed by a trusted key for this
 * key and kernel (cache_manifest_accept()), names are checked like local ones, a download
 * stops at the size the manifest gives, and every object lands in dir/tmp, is hashed there
 * and refused unless size and sha256 match the manifest; only then may it become an
 * object. Every refusal is counted. How the bytes move is the transport's business
 * (remote-internal.h): plain HTTP(S) in remote-http.c, OCI registries in remote-oci.c.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/stat.h>

#include "remote-internal.h"
#include "shared/fs-util.h"

#define MANIFEST_MAGIC "dm2-cache-manifest 2"
#define MANIFEST_MAX_FILES 10000U

void cache_manifest_done(struct cache_manifest *m)
{
	for (size_t i = 0; i < m->n_files; i++)
		free(m->files[i].name);
	free(m->files);
	free(m->key);
	free(m->recipe);
	free(m->version);
	free(m->source_id);
	free(m->kernel_release);
	free(m->kernel_identity);
	free(m->arch);
	*m = (struct cache_manifest){};
}

static bool field_value_valid(const char *v)
{
	if (!v || !*v || strlen(v) > 4096)
		return false;
	for (; *v; v++)
		if ((unsigned char) *v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

/* "file <sha256> <size> <name>": 0 parsed, -EBADMSG not one, -ENOMEM. */
static int parse_file_line(const char *l, struct cache_manifest *m)
{
	struct cache_manifest_file *f;
	char *end, *name;

	if (strlen(l) <= 5 + 64 + 1 || l[5 + 64] != ' ' || m->n_files >= MANIFEST_MAX_FILES)
		return -EBADMSG;
	f = realloc(m->files, (m->n_files + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	m->files = f;
	f = &m->files[m->n_files];
	*f = (struct cache_manifest_file){};
	memcpy(f->sha256, l + 5, 64);
	f->sha256[64] = '\0';
	errno = 0;
	f->size = strtoull(l + 5 + 65, &end, 10);
	if (!sha256_hex_canonical(f->sha256) || errno != 0 || end == l + 5 + 65 ||
	    *end != ' ' || !cache_name_valid(end + 1))
		return -EBADMSG;
	for (size_t i = 0; i < m->n_files; i++)
		if (streq(m->files[i].name, end + 1))
			return -EBADMSG;
	name = strdup(end + 1);
	if (!name)
		return -ENOMEM;
	f->name = name;
	m->n_files++;
	return 0;
}

/* One header line: 1 if it was one, 0 if not, -EBADMSG repeated or bad, -ENOMEM. */
static int parse_field_line(const char *l, struct cache_manifest *m)
{
	const struct {
		const char *name;
		char **value;
	} fields[] = {
		{"key", &m->key},	       {"recipe", &m->recipe},
		{"version", &m->version},      {"source", &m->source_id},
		{"kernel", &m->kernel_release}, {"identity", &m->kernel_identity},
		{"arch", &m->arch},
	};

	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		const char *v = startswith(l, fields[i].name);

		if (!v || *v != ' ')
			continue;
		if (*fields[i].value || !field_value_valid(v + 1) || m->n_files > 0)
			return -EBADMSG;
		*fields[i].value = strdup(v + 1);
		return *fields[i].value ? 1 : -ENOMEM;
	}
	return 0;
}

int cache_manifest_parse(char *text, const char *url, struct cache_manifest *ret,
			 char **reason)
{
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	unsigned line = 0;
	char *save = NULL;
	int r;

	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		line++;
		if (line == 1)
			r = streq(l, MANIFEST_MAGIC) ? 1 : -EBADMSG;
		else if (startswith(l, "file "))
			r = parse_file_line(l, &m);
		else
			r = parse_field_line(l, &m) ?: -EBADMSG;
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			cache_set_reason(reason, "Manifest '%s' line %u is malformed, refusing it",
					 url, line);
			return -EBADMSG;
		}
	}
	if (!m.key || !cache_key_valid(m.key) || !m.recipe || !m.version || !m.source_id ||
	    !m.kernel_release || !m.kernel_identity || !m.arch || m.n_files == 0) {
		cache_set_reason(reason,
				 "Manifest '%s' lacks its key, origin or files, refusing it",
				 url);
		return -EBADMSG;
	}
	*ret = m;
	m = (struct cache_manifest){};
	return 0;
}

int cache_manifest_format_header(FILE *f, const char *key, const struct cache_entry_info *i)
{
	const char *values[] = {key,		   i->recipe,	       i->version, i->source_id,
				i->kernel_release, i->kernel_identity, i->arch};
	const char *names[] = {"key", "recipe", "version", "source", "kernel", "identity", "arch"};

	fputs(MANIFEST_MAGIC "\n", f);
	for (size_t k = 0; k < ELEMENTSOF(values); k++) {
		if (!field_value_valid(values[k]))
			return -EINVAL;
		fprintf(f, "%s %s\n", names[k], values[k]);
	}
	return 0;
}

/* GET one object of the manifest into dir/tmp, then check that it is what the manifest
 * says before it may go further. */
static int download_object(struct cache *c, struct remote *rm,
			   const struct cache_manifest_file *f,
			   const struct cache_remote_options *o, struct cache_staged *ret,
			   enum cache_refusal *ret_why, char **reason)
{
	_cleanup_free_ char *where = NULL, *tmp = NULL, *name = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint64_t max = o && o->max_object_size ? o->max_object_size : (1ULL << 30);
	uint64_t size = 0;
	char hex[SHA256_HEX_SIZE];
	int r;

	if (f->size > max) {
		set_reason(reason, "Object '%s' is %" PRIu64 " bytes, over the limit of %" PRIu64,
			   f->sha256, f->size, max);
		return -EFBIG;
	}
	where = rm->ops->where(rm, NULL, f->sha256);
	name = strdup(f->name);
	if (!where || !name)
		return -ENOMEM;
	r = cas_tmp_new(c->tmp_fd, &fd, &tmp);
	if (r < 0)
		return r;

	r = rm->ops->get_object(rm, f->sha256, fd, f->size, reason);
	if (r == -EFBIG) {
		*reason = mfree(*reason);
		*ret_why = CACHE_REFUSAL_OBJECT_MISMATCH;
		set_reason(reason, "Object '%s' is larger than the manifest says, refusing it",
			   where);
		r = -EBADMSG;
	} else if (r >= 0)
		r = cas_seal(fd, hex, &size);
	if (r >= 0)
		r = cache_object_check(f, hex, size, where, ret_why, reason);
	if (r < 0) {
		(void) unlinkat(c->tmp_fd, tmp, 0);
		return r;
	}
	memcpy(ret->sha256, hex, sizeof(hex));
	ret->size = size;
	ret->name = TAKE_PTR(name);
	ret->tmp = TAKE_PTR(tmp);
	return 0;
}

/* Fetch the manifest of key and accept it (trust.c) or say why not. */
static int get_manifest(struct remote *rm, const char *key,
			const struct cache_remote_options *o, struct cache_manifest *ret,
			enum cache_refusal *ret_why, char **reason)
{
	_cleanup_free_ char *text = NULL, *where = NULL;
	size_t len = 0;
	int r;

	where = rm->ops->where(rm, key, NULL);
	if (!where)
		return -ENOMEM;
	r = rm->ops->get_manifest(rm, key, &text, &len, reason);
	if (r < 0)
		return r;
	return cache_manifest_accept(text, len, key, o, where, ret, ret_why, reason);
}

int cache_remote_pull(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cleanup_(remote_closep) struct remote *rm = NULL;
	_cleanup_free_ char *reason = NULL;
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	enum cache_refusal why = _CACHE_REFUSAL_INVALID;
	struct cache_staged *staged = NULL;
	size_t k = 0;
	int r;

	if (!c || !cache_key_valid(key)) {
		set_reason(&reason, "'%s' is not a cache key (64 hex digits)", key ?: "");
		r = -EINVAL;
		goto finish;
	}
	r = remote_open(base_url, o, &rm, &reason);
	if (r >= 0)
		r = get_manifest(rm, key, o, &m, &why, &reason);
	if (r < 0)
		goto finish;

	staged = calloc(m.n_files, sizeof(*staged));
	if (!staged) {
		r = -ENOMEM;
		goto finish;
	}
	for (k = 0; k < m.n_files; k++) {
		r = download_object(c, rm, &m.files[k], o, &staged[k], &why, &reason);
		if (r < 0)
			goto finish;
	}
	r = cache_commit_accepted(c, &m, staged, &reason);
finish:
	if (staged)
		cache_staged_done(c, staged, k);
	free(staged);
	if (r < 0 && why != _CACHE_REFUSAL_INVALID)
		cache_refusal_note(c, why);
	if (r < 0 && ret_reason)
		*ret_reason = TAKE_PTR(reason);
	return r;
}

/* One file of the entry: its object uploaded unless already there. */
static int push_object(struct cache *c, struct remote *rm, const struct cache_manifest_file *f,
		       char **reason)
{
	_cleanup_free_ char *rel = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = cas_object_path(&c->objects, f->sha256, &rel);
	if (r < 0)
		return r;
	if (rm->ops->has_object(rm, f->sha256, f->size) > 0)
		return 0;
	fd = openat(c->objects.dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		set_reason(reason, "Object '%s' vanished from the local cache", f->sha256);
		return r;
	}
	return rm->ops->put_object(rm, f->sha256, fd, f->size, reason);
}

/* Every object of the entry uploaded, and the list of them for the transport (a registry
 * keeps only what a manifest references). */
static int push_objects(struct cache *c, struct remote *rm, const struct cache_manifest *m,
			struct remote_object **ret, char **reason)
{
	_cleanup_free_ struct remote_object *objects = NULL;
	int r;

	objects = calloc(m->n_files, sizeof(*objects));
	if (!objects)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_files; i++) {
		r = push_object(c, rm, &m->files[i], reason);
		if (r < 0)
			return r;
		memcpy(objects[i].sha256, m->files[i].sha256, SHA256_HEX_SIZE);
		objects[i].size = m->files[i].size;
	}
	*ret = TAKE_PTR(objects);
	return 0;
}

int cache_remote_push(struct cache *c, const char *base_url, const char *key,
		      const struct cache_remote_options *o, char **ret_reason)
{
	_cleanup_(remote_closep) struct remote *rm = NULL;
	_cleanup_free_ char *reason = NULL, *manifest = NULL;
	_cleanup_free_ struct remote_object *objects = NULL;
	_cleanup_(cache_manifest_done) struct cache_manifest m = {};
	struct cache_entry *e = NULL;
	size_t len = 0;
	int r;

	if (!c || !cache_key_valid(key)) {
		set_reason(&reason, "'%s' is not a cache key (64 hex digits)", key ?: "");
		r = -EINVAL;
		goto finish;
	}
	r = remote_open(base_url, o, &rm, &reason);
	if (r < 0)
		goto finish;
	/* Verifies every object, so we never spread a corrupt one. */
	r = cache_lookup(c, key, &e);
	if (r == -ENOENT)
		set_reason(&reason, "Cache entry '%s' is not in the local cache", key);
	if (r >= 0)
		r = cache_manifest_build(c, key, o, &manifest, &len, &m, &reason);
	if (r >= 0)
		r = push_objects(c, rm, &m, &objects, &reason);
	if (r < 0)
		goto finish;
	/* Last: only now may readers see the entry. */
	r = rm->ops->put_manifest(rm, key, manifest, len, objects, m.n_files, &reason);
finish:
	cache_entry_free(e);
	if (r < 0 && ret_reason)
		*ret_reason = TAKE_PTR(reason);
	return r;
}
