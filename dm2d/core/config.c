/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "shared/fs-util.h"
#include "shared/ini.h"
#include "shared/log.h"
#include "shared/url.h"
#include "shared/util.h"

/* A garbage file would otherwise print one line per line of it. */
#define CONFIG_MAX_ERRORS 5

struct config_parse {
	struct dm2_config *c;
	const char *path;
	int errors;
};

/* Logs at most CONFIG_MAX_ERRORS problems; config_load() sums up the rest in one line. */
static void config_problem(struct config_parse *p, unsigned line, const char *message)
{
	if (p->errors++ < CONFIG_MAX_ERRORS)
		log_error("%s:%u: %s", p->path, line, message);
}

/* The setters of the table below: each parses value into the field it is given. */
static int parse_string(const char *v, void *field)
{
	return free_and_strdup(field, v);
}

/* An absolute path, resolved under the root when used. */
static int parse_path(const char *v, void *field)
{
	if (v[0] != '/')
		return -EINVAL;
	return free_and_strdup(field, v);
}

/* The transports of cache/remote-internal.h. */
static int parse_remote_url(const char *v, void *field)
{
	if ((!startswith(v, "http://") && !startswith(v, "https://") &&
	     !startswith(v, "oci://") && !startswith(v, "oci+http://")) ||
	    strpbrk(v, " \t"))
		return -EINVAL;
	return free_and_strdup(field, v);
}

/* The digests sign_hash_supported() accepts; not called, so that the small dm2 front end,
 * which reads this file too, does not link the signing code and OpenSSL. */
static int parse_hash(const char *v, void *field)
{
	if (!streq(v, "sha256") && !streq(v, "sha384") && !streq(v, "sha512"))
		return -EINVAL;
	return free_and_strdup(field, v);
}

/* RemoteSigning=: who signs what comes from the remote cache (dm2d.conf(5)). */
static int parse_remote_signing(const char *v, void *field)
{
	bool *builder = field;

	if (streq(v, "resign"))
		*builder = false;
	else if (streq(v, "builder"))
		*builder = true;
	else
		return -EINVAL;
	return 0;
}

static int parse_bool(const char *v, void *field)
{
	bool *ret = field;

	if (streq(v, "yes") || streq(v, "true") || streq(v, "1") || streq(v, "on"))
		*ret = true;
	else if (streq(v, "no") || streq(v, "false") || streq(v, "0") || streq(v, "off"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int parse_sec(const char *v, void *field)
{
	uint64_t s, *ret = field;
	int r = safe_atou64(v, &s);

	if (r < 0)
		return r;
	if (s > UINT64_MAX / 1000000ULL)
		return -ERANGE; /* would wrap to a short timeout */
	*ret = s * 1000000ULL;
	return 0;
}

static int parse_unsigned(const char *v, void *field)
{
	unsigned *ret = field;
	int i, r = safe_atoi(v, &i);

	if (r < 0 || i < 0)
		return -EINVAL;
	*ret = (unsigned) i;
	return 0;
}

static int parse_u64(const char *v, void *field)
{
	return safe_atou64(v, field);
}

static int parse_bytes(const char *v, void *field)
{
	return parse_size(v, field);
}

/* "MIN-MAX", neither 0 (root) nor beyond 2^31 - 2, MIN <= MAX; two fields, so it gets the
 * whole config (offset 0 in the table). */
static int parse_uid_range(const char *v, void *config)
{
	struct dm2_config *c = config;
	_cleanup_free_ char *lo = NULL;
	const char *dash = strchr(v, '-');
	uint64_t a, b;

	if (!dash)
		return -EINVAL;
	lo = strndup(v, (size_t) (dash - v));
	if (!lo)
		return -ENOMEM;
	if (safe_atou64(lo, &a) < 0 || safe_atou64(dash + 1, &b) < 0 || a == 0 || a > b ||
	    b > 0x7ffffffeULL)
		return -EINVAL;
	c->build_uid_min = (uint32_t) a;
	c->build_uid_max = (uint32_t) b;
	return 0;
}

#define FIELD(f) offsetof(struct dm2_config, f)
static const struct config_setting {
	const char *section, *key;
	int (*parse)(const char *value, void *field);
	size_t offset;
} settings[] = {
	{ "Daemon", "Jobs", parse_unsigned, FIELD(jobs) },
	{ "Daemon", "SettleSec", parse_sec, FIELD(settle_usec) },
	{ "Daemon", "HookTimeoutSec", parse_sec, FIELD(hook_timeout_usec) },
	{ "Build", "User", parse_string, FIELD(build_user) },
	{ "Build", "TimeoutSec", parse_sec, FIELD(build_timeout_usec) },
	{ "Build", "MemoryMax", parse_bytes, FIELD(build_memory_max) },
	{ "Build", "AllowNonGPL", parse_bool, FIELD(allow_non_gpl) },
	{ "Build", "MakeJobs", parse_unsigned, FIELD(make_jobs) },
	{ "Build", "UidRange", parse_uid_range, 0 },
	{ "Build", "ProcessMax", parse_u64, FIELD(build_processes_max) },
	{ "Build", "CPUTimeMaxSec", parse_sec, FIELD(build_cpu_usec) },
	{ "Build", "DiskMax", parse_bytes, FIELD(build_disk_max) },
	{ "Signing", "Sign", parse_bool, FIELD(sign) },
	{ "Signing", "Key", parse_string, FIELD(sign_key) },
	{ "Signing", "Certificate", parse_string, FIELD(sign_cert) },
	{ "Signing", "Hash", parse_hash, FIELD(sign_hash) },
	{ "Fetch", "CAFile", parse_string, FIELD(ca_file) },
	{ "Fetch", "MaxDownloadSize", parse_bytes, FIELD(max_download_size) },
	{ "Fetch", "ConnectTimeoutSec", parse_sec, FIELD(connect_timeout_usec) },
	{ "Fetch", "StallTimeoutSec", parse_sec, FIELD(stall_timeout_usec) },
	{ "Fetch", "Retries", parse_unsigned, FIELD(retries) },
	{ "Unpack", "MaxUnpackedSize", parse_bytes, FIELD(max_unpacked_size) },
	{ "Unpack", "MaxEntries", parse_u64, FIELD(max_entries) },
	{ "Cache", "MaxSize", parse_bytes, FIELD(cache_max_size) },
	{ "Cache", "Remote", parse_remote_url, FIELD(remote_cache) },
	{ "Cache", "Push", parse_bool, FIELD(remote_push) },
	{ "Cache", "NetrcFile", parse_path, FIELD(remote_netrc_file) },
	{ "Cache", "BearerTokenFile", parse_path, FIELD(remote_token_file) },
	{ "Cache", "HeaderFile", parse_path, FIELD(remote_header_file) },
	{ "Cache", "ClientCertificate", parse_path, FIELD(remote_client_cert) },
	{ "Cache", "ClientKey", parse_path, FIELD(remote_client_key) },
	{ "Cache", "CAFile", parse_path, FIELD(remote_ca_file) },
	{ "Cache", "TrustedKeys", parse_string, FIELD(trusted_keys) },
	{ "Cache", "RemoteSigning", parse_remote_signing, FIELD(remote_signing_builder) },
};
#undef FIELD

static void config_error(unsigned line, const char *message, void *userdata)
{
	config_problem(userdata, line, message);
}

/* Mirror=PREFIX MIRROR, repeatable, with its own message. */
static int config_add_mirror(struct config_parse *p, const char *value, unsigned line)
{
	_cleanup_strv_free_ char **w = NULL;
	struct dm2_config *c = p->c;
	struct mirror *m;
	int r;

	r = strv_split(value, " \t", &w);
	if (r < 0)
		return r;
	if (strv_length(w) != 2 || !strstr(w[0], "://") || !strstr(w[1], "://")) {
		config_problem(p, line, "Mirror= takes two URL prefixes, 'PREFIX MIRROR'");
		return 0;
	}
	m = realloc(c->mirrors, sizeof(*m) * (c->n_mirrors + 1));
	if (!m)
		return -ENOMEM;
	c->mirrors = m;
	c->mirrors[c->n_mirrors++] = (struct mirror) { .prefix = TAKE_PTR(w[0]),
						       .replace = TAKE_PTR(w[1]) };
	return 0;
}

static int config_item(const char *section, const char *key, const char *value, unsigned line,
		       void *userdata)
{
	struct config_parse *p = userdata;
	_cleanup_free_ char *m = NULL;
	int r;

	if (!key)
		return 0;
	if (streq(section, "Fetch") && streq(key, "Mirror"))
		return config_add_mirror(p, value, line);

	for (size_t i = 0; i < ELEMENTSOF(settings); i++) {
		const struct config_setting *s = &settings[i];

		if (!streq(section, s->section) || !streq(key, s->key))
			continue;
		r = s->parse(value, (uint8_t *) p->c + s->offset);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			/* A URL may carry a password: never show it. */
			_cleanup_free_ char *shown = url_redact(value);

			if (!shown || asprintf(&m, "invalid value '%s' for %s=", shown, key) < 0)
				return -ENOMEM;
			config_problem(p, line, m);
		}
		return 0;
	}

	/* A key from a newer dm2 (or a typo) must not stop every command, dm2 status included:
	 * it is named and skipped. */
	log_warning("%s:%u: unknown setting '%s' in section [%s], ignoring", p->path, line, key,
		    section);
	return 0;
}

static int config_new(struct dm2_config **ret)
{
	_cleanup_(config_freep) struct dm2_config *c = NULL;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct dm2_config) {
		.settle_usec = 5 * 1000000ULL,
		.hook_timeout_usec = 900 * 1000000ULL,
		.build_user = strdup("dm2-build"),
		.build_timeout_usec = 1800 * 1000000ULL,
		.build_memory_max = 4ULL << 30,
		.build_uid_min = 60928, /* systemd's UIDS-GIDS.md: 60578-61183 is unused */
		.build_uid_max = 61183,
		.build_processes_max = 512,
		.build_cpu_usec = 600 * 1000000ULL,
		.build_disk_max = 2ULL << 30,
		.sign = true,
		.max_download_size = 512ULL << 20,
		.connect_timeout_usec = 30 * 1000000ULL,
		.stall_timeout_usec = 60 * 1000000ULL,
		.retries = 3,
		.max_unpacked_size = 2ULL << 30,
		.max_entries = 200000,
		.cache_max_size = 2ULL << 30,
	};
	if (!c->build_user)
		return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

/* One file into c; a missing one is no error (a drop-in may be gone since readdir). Returns
 * the number of errors it logged, or < 0 when it could not be read. */
static int config_parse_file(struct dm2_config *c, int root_fd, const char *root,
			     const char *path)
{
	_cleanup_free_ char *text = NULL, *shown = NULL;
	int r;

	/* Messages name the file as it is on the machine: with --root, the real path. */
	shown = root ? path_join(root, path) : strdup(path);
	if (!shown)
		return log_oom();

	r = read_full_file_at(root_fd, path, 1 << 20, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return log_error_errno(r, "Failed to read '%s': %m", shown);

	struct config_parse p = { .c = c, .path = shown };
	r = ini_parse_string(text, config_item, config_error, &p);
	if (r == -ENOMEM)
		return log_oom();
	if (p.errors > CONFIG_MAX_ERRORS)
		log_error("%s: %d more errors not shown.", shown,
			  p.errors - CONFIG_MAX_ERRORS);
	return p.errors > 0 ? p.errors : (r < 0 ? 1 : 0);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The names of PATH.d/ *.conf (regular files, not hidden), sorted bytewise. */
static int config_dropins(int root_fd, const char *dir, char ***ret)
{
	_cleanup_strv_free_ char **names = NULL;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	fd = openat(root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			*ret = NULL;
			return 0;
		}
		return -errno;
	}
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		(void) close(fd);
		return r;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.' || !endswith(de->d_name, ".conf"))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = strv_extend(&names, de->d_name);
		if (r < 0)
			break;
	}
	(void) closedir(d);
	if (r < 0)
		return r;
	if (names)
		qsort(names, strv_length(names), sizeof(char *), cmp_names);
	*ret = TAKE_PTR(names);
	return 0;
}

int config_load_root(int root_fd, const char *root, const char *path, struct dm2_config **ret)
{
	_cleanup_(config_freep) struct dm2_config *c = NULL;
	_cleanup_strv_free_ char **dropins = NULL;
	_cleanup_free_ char *dir = NULL;
	int r, errors;

	r = config_new(&c);
	if (r < 0)
		return log_oom();

	path = path ?: "etc/dm2/dm2d.conf";
	errors = config_parse_file(c, root_fd, root, path);
	if (errors < 0)
		return errors;

	/* Drop-ins after the main file, in name order: a later assignment wins. */
	dir = strjoin(path, ".d");
	if (!dir)
		return log_oom();
	r = config_dropins(root_fd, dir, &dropins);
	if (r < 0) {
		_cleanup_free_ char *shown = root ? path_join(root, dir) : strdup(dir);
		return log_error_errno(r, "Failed to read '%s': %m", strempty(shown));
	}
	STRV_FOREACH(n, dropins) {
		_cleanup_free_ char *f = path_join(dir, *n);

		if (!f)
			return log_oom();
		r = config_parse_file(c, root_fd, root, f);
		if (r < 0)
			return r;
		errors += r;
	}
	if (errors > 0)
		return -EINVAL; /* each error was logged with its line */

	*ret = TAKE_PTR(c);
	return 0;
}

int config_load(int root_fd, const char *path, struct dm2_config **ret)
{
	return config_load_root(root_fd, NULL, path, ret);
}

struct dm2_config *config_free(struct dm2_config *c)
{
	if (!c)
		return NULL;
	free(c->build_user);
	free(c->sign_key);
	free(c->sign_cert);
	free(c->sign_hash);
	for (size_t i = 0; i < c->n_mirrors; i++) {
		free(c->mirrors[i].prefix);
		free(c->mirrors[i].replace);
	}
	free(c->mirrors);
	free(c->ca_file);
	free(c->remote_cache);
	free(c->remote_netrc_file);
	free(c->remote_token_file);
	free(c->remote_header_file);
	free(c->remote_client_cert);
	free(c->remote_client_key);
	free(c->remote_ca_file);
	free(c->trusted_keys);
	return mfree(c);
}
