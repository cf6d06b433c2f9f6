/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>

#include "core/config.h"
#include "shared/fs-util.h"
#include "shared/ini.h"
#include "shared/log.h"
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

static bool http_url(const char *v)
{
	return (startswith(v, "http://") || startswith(v, "https://")) &&
	       !strpbrk(v, " \t");
}

static int parse_http_url(const char *v, char **ret)
{
	if (!http_url(v))
		return -EINVAL;
	return free_and_strdup(ret, v);
}

/* The digests sign_hash_supported() accepts; not called, so that the small dm2 front end,
 * which reads this file too, does not link the signing code and OpenSSL. */
static int parse_hash(const char *v, char **ret)
{
	if (!streq(v, "sha256") && !streq(v, "sha384") && !streq(v, "sha512"))
		return -EINVAL;
	return free_and_strdup(ret, v);
}

static int parse_bool(const char *v, bool *ret)
{
	if (streq(v, "yes") || streq(v, "true") || streq(v, "1") || streq(v, "on"))
		*ret = true;
	else if (streq(v, "no") || streq(v, "false") || streq(v, "0") || streq(v, "off"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int parse_sec(const char *v, uint64_t *ret)
{
	uint64_t s;
	int r = safe_atou64(v, &s);

	if (r < 0)
		return r;
	if (s > UINT64_MAX / 1000000ULL)
		return -ERANGE; /* would wrap to a short timeout */
	*ret = s * 1000000ULL;
	return 0;
}

static int parse_unsigned(const char *v, unsigned *ret)
{
	int i, r = safe_atoi(v, &i);

	if (r < 0 || i < 0)
		return -EINVAL;
	*ret = (unsigned) i;
	return 0;
}

/* "MIN-MAX", neither 0 (root) nor beyond 2^31 - 2, MIN <= MAX. */
static int parse_uid_range(const char *v, uint32_t *ret_min, uint32_t *ret_max)
{
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
	*ret_min = (uint32_t) a;
	*ret_max = (uint32_t) b;
	return 0;
}

static void config_error(unsigned line, const char *message, void *userdata)
{
	config_problem(userdata, line, message);
}

static int config_item(const char *section, const char *key, const char *value, unsigned line,
		       void *userdata)
{
	struct config_parse *p = userdata;
	struct dm2_config *c = p->c;
	int r = 0;

	if (!key)
		return 0;

#define IS(s, k) (streq(section, s) && streq(key, k))
	if (IS("Daemon", "Jobs"))
		r = parse_unsigned(value, &c->jobs);
	else if (IS("Daemon", "SettleSec"))
		r = parse_sec(value, &c->settle_usec);
	else if (IS("Daemon", "HookTimeoutSec"))
		r = parse_sec(value, &c->hook_timeout_usec);
	else if (IS("Build", "User"))
		r = free_and_strdup(&c->build_user, value);
	else if (IS("Build", "TimeoutSec"))
		r = parse_sec(value, &c->build_timeout_usec);
	else if (IS("Build", "MemoryMax"))
		r = parse_size(value, &c->build_memory_max);
	else if (IS("Build", "AllowNonGPL"))
		r = parse_bool(value, &c->allow_non_gpl);
	else if (IS("Build", "MakeJobs"))
		r = parse_unsigned(value, &c->make_jobs);
	else if (IS("Build", "UidRange"))
		r = parse_uid_range(value, &c->build_uid_min, &c->build_uid_max);
	else if (IS("Build", "ProcessMax"))
		r = safe_atou64(value, &c->build_processes_max);
	else if (IS("Build", "CPUTimeMaxSec"))
		r = parse_sec(value, &c->build_cpu_usec);
	else if (IS("Build", "DiskMax"))
		r = parse_size(value, &c->build_disk_max);
	else if (IS("Signing", "Sign"))
		r = parse_bool(value, &c->sign);
	else if (IS("Signing", "Key"))
		r = free_and_strdup(&c->sign_key, value);
	else if (IS("Signing", "Certificate"))
		r = free_and_strdup(&c->sign_cert, value);
	else if (IS("Signing", "Hash"))
		r = parse_hash(value, &c->sign_hash);
	else if (IS("Fetch", "Mirror")) {
		_cleanup_strv_free_ char **w = NULL;
		struct mirror *m;

		r = strv_split(value, " \t", &w);
		if (r < 0)
			return r;
		if (strv_length(w) != 2 || !strstr(w[0], "://") || !strstr(w[1], "://")) {
			config_problem(p, line,
				       "Mirror= takes two URL prefixes, 'PREFIX MIRROR'");
			return 0;
		}
		m = realloc(c->mirrors, sizeof(*m) * (c->n_mirrors + 1));
		if (!m)
			return -ENOMEM;
		c->mirrors = m;
		c->mirrors[c->n_mirrors++] = (struct mirror) { .prefix = TAKE_PTR(w[0]),
							       .replace = TAKE_PTR(w[1]) };
	} else if (IS("Fetch", "CAFile"))
		r = free_and_strdup(&c->ca_file, value);
	else if (IS("Fetch", "MaxDownloadSize"))
		r = parse_size(value, &c->max_download_size);
	else if (IS("Fetch", "ConnectTimeoutSec"))
		r = parse_sec(value, &c->connect_timeout_usec);
	else if (IS("Fetch", "StallTimeoutSec"))
		r = parse_sec(value, &c->stall_timeout_usec);
	else if (IS("Fetch", "Retries"))
		r = parse_unsigned(value, &c->retries);
	else if (IS("Unpack", "MaxUnpackedSize"))
		r = parse_size(value, &c->max_unpacked_size);
	else if (IS("Unpack", "MaxEntries"))
		r = safe_atou64(value, &c->max_entries);
	else if (IS("Cache", "MaxSize"))
		r = parse_size(value, &c->cache_max_size);
	else if (IS("Cache", "Remote"))
		r = parse_http_url(value, &c->remote_cache);
	else if (IS("Cache", "Push"))
		r = parse_bool(value, &c->remote_push);
	else {
		_cleanup_free_ char *m = NULL;

		r = asprintf(&m, "unknown setting '%s' in section [%s]", key, section);
		if (r < 0)
			return -ENOMEM;
		config_problem(p, line, m);
		return 0;
	}
#undef IS
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		_cleanup_free_ char *m = NULL;

		if (asprintf(&m, "invalid value '%s' for %s=", value, key) < 0)
			return -ENOMEM;
		config_problem(p, line, m);
	}
	return 0;
}

int config_load(int root_fd, const char *path, struct dm2_config **ret)
{
	_cleanup_(config_freep) struct dm2_config *c = NULL;
	_cleanup_free_ char *text = NULL;
	int r;

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

	path = path ?: "etc/dm2/dm2d.conf";
	r = read_full_file_at(root_fd, path, 1 << 20, &text, NULL);
	if (r == -ENOENT) {
		*ret = TAKE_PTR(c);
		return 0;
	}
	if (r < 0)
		return log_error_errno(r, "Failed to read '%s': %m", path);

	struct config_parse p = { .c = c, .path = path };
	r = ini_parse_string(text, config_item, config_error, &p);
	if (r == -ENOMEM)
		return log_oom();
	if (p.errors > CONFIG_MAX_ERRORS)
		log_error("%s: %d more errors not shown.", path,
			  p.errors - CONFIG_MAX_ERRORS);
	if (r < 0 || p.errors > 0)
		return -EINVAL; /* each error was logged with its line */

	*ret = TAKE_PTR(c);
	return 0;
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
	return mfree(c);
}
