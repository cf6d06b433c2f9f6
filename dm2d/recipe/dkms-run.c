/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bash sources dkms.conf in the build sandbox; see dkms-run.h. */
#include <fcntl.h>
#include <inttypes.h>
#include <lzma.h>
#include <stdio.h>
#include <sys/stat.h>

#include "core/build-user.h"
#include "recipe/dkms-run.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/*
 * $1 dkms.conf, $2 its directory, $3 kernelver, $4 arch, $5 kernel_source_dir, $6 the
 * overrides directory ("" for none), all as the sandbox sees them. As DKMS' read_conf:
 * the variables set, CC & co unset, umask 022, the directives cleared, the file sourced
 * with its output discarded, then the overrides in order of specificity; what the files
 * print goes nowhere, the dump goes to the saved stdout (fd 3). DKMS knows $module and
 * $module_version before it reads the file; dm2 learns them from it, in a subshell first.
 * A trailing CR is dropped from values, as DKMS does (CRLF files work).
 */
const char dkms_eval_program[] =
	"__dm2_conf=$1 __dm2_src=$2 kernelver=$3 arch=$4 kernel_source_dir=$5 __dm2_etc=$6\n"
	"dkms_tree=/var/lib/dkms source_tree=/usr/src install_tree=/lib/modules\n"
	"kernel_config=$kernel_source_dir/.config\n"
	"[[ -e $kernel_source_dir/include/config/auto.conf ]] &&"
	" kernel_config=$kernel_source_dir/include/config/auto.conf\n"
	"shift 6\n"
	"umask 022\n"
	"unset CC CXX CFLAGS CXXFLAGS LDFLAGS\n"
	"cd \"$__dm2_src\" 2>/dev/null || cd /\n"
	/* A file with CRLF line ends is read without the CRs (bash would choke on
	 * "then\r"), from a copy in the private /tmp. */
	"if [[ $(< \"$__dm2_conf\") == *$'\\r'* ]]; then\n"
	"  tr -d '\\r' <\"$__dm2_conf\" >/tmp/dm2-build/dkms.conf &&"
	" __dm2_conf=/tmp/dm2-build/dkms.conf\n"
	"fi\n"
	"exec 3>&1 >/dev/null\n"
	"mapfile -d '' -t __dm2_mv < <(. \"$__dm2_conf\" >/dev/null 2>&1;"
	" printf '%s\\0%s\\0' \"$PACKAGE_NAME\" \"$PACKAGE_VERSION\")\n"
	"module=${__dm2_mv[0]} module_version=${__dm2_mv[1]}\n"
	"__dm2_names=(" /* dkms_directives[], filled in by program_text() */ "@NAMES@)\n"
	"unset \"${__dm2_names[@]}\"\n"
	". \"$__dm2_conf\"\n"
	"__dm2_read=()\n"
	"if [[ $__dm2_etc && $module ]]; then\n"
	"  __dm2_c=(\"$module.conf\")\n"
	"  [[ $module_version ]] && __dm2_c+=(\"$module-$module_version.conf\")\n"
	"  [[ $module_version && $kernelver ]] && __dm2_c+=(\"$module-$module_version-$kernelver.conf\""
	" \"$module-$module_version-$kernelver-$arch.conf\")\n"
	"  [[ $kernelver ]] && __dm2_c+=(\"$module--$kernelver.conf\" \"$module--$kernelver-$arch.conf\")\n"
	"  for __dm2_f in \"${__dm2_c[@]}\"; do\n"
	"    [[ -e $__dm2_etc/$__dm2_f ]] || continue\n"
	"    __dm2_read+=(\"$__dm2_f\")\n"
	"    . \"$__dm2_etc/$__dm2_f\"\n"
	"  done\n"
	"fi\n"
	"\\unset -f printf eval builtin 2>/dev/null\n"
	"for __dm2_n in \"${__dm2_names[@]}\"; do\n"
	"  eval \"__dm2_i=(\\\"\\${!$__dm2_n[@]}\\\")\"\n"
	"  for __dm2_x in \"${__dm2_i[@]}\"; do\n"
	"    eval \"__dm2_v=\\${$__dm2_n[\\$__dm2_x]}\"\n"
	"    builtin printf '%s\\0%s\\0%s\\0' \"$__dm2_n\" \"$__dm2_x\" \"${__dm2_v%$'\\r'}\" >&3\n"
	"  done\n"
	"done\n"
	"builtin printf 'dm2_module\\0000\\0%s\\0dm2_module_version\\0000\\0%s\\0'"
	" \"$module\" \"$module_version\" >&3\n"
	"for __dm2_x in \"${!__dm2_read[@]}\"; do\n"
	"  builtin printf 'dm2_override\\0%s\\0%s\\0' \"$__dm2_x\" \"${__dm2_read[$__dm2_x]}\" >&3\n"
	"done\n"
	"exit 0\n";

static char *program_text(void)
{
	_cleanup_free_ char *names = NULL;
	const char *at = strstr(dkms_eval_program, "@NAMES@");

	names = strv_join((char **) dkms_directives, " ");
	if (!names || !at)
		return NULL;
	return strdup_printf("%.*s%s%s", (int) (at - dkms_eval_program), dkms_eval_program,
			     names, at + strlen("@NAMES@"));
}

void dkms_eval_result_done(struct dkms_eval_result *r)
{
	r->vars = dkms_vars_free(r->vars);
	r->overrides = strv_free(r->overrides);
	r->errors = mfree(r->errors);
}

/* ---- what the sandbox sees ---- */

/* The root's directories that stand for the machine's own under --root. */
static const char *const bound_dirs[] = {"usr/src", "lib/modules", "etc/dkms",
					 "var/lib/dkms"};

struct view {
	const struct dkms_eval_input *in;
	struct kbw_bind binds[ELEMENTSOF(bound_dirs) + 2];
	char *owned[ELEMENTSOF(bound_dirs) + 2];
	size_t n_binds;
	bool source_moved; /* the package directory is seen at SOURCE_TARGET */
};

/* Where a package directory the sandbox would not see at its path is shown. */
#define SOURCE_TARGET "/tmp/dm2-source"

static void view_done(struct view *v)
{
	for (size_t i = 0; i < v->n_binds; i++)
		free(v->owned[i]);
}

static bool root_is_slash(const struct dm2_context *ctx)
{
	return streq(ctx->root, "/");
}

/* host path -> sandbox path: below a bound root directory it is the machine's path. */
static char *sandbox_path(const struct view *v, const char *host)
{
	const struct dm2_context *ctx = v->in->ctx;
	const char *rest;

	if (root_is_slash(ctx) || !(rest = startswith(host, ctx->root)) || rest[0] != '/')
		return strdup(host);
	for (size_t i = 0; i < ELEMENTSOF(bound_dirs); i++) {
		const char *tail = startswith(rest + 1, bound_dirs[i]);

		if (tail && (tail[0] == '/' || tail[0] == '\0'))
			return strjoin("/", bound_dirs[i], tail);
	}
	return strdup(host);
}

/* target NULL: the source's own path. */
static int view_add(struct view *v, const char *source, const char *target)
{
	char *s = strdup(source);

	if (!s)
		return -ENOMEM;
	v->owned[v->n_binds] = s;
	v->binds[v->n_binds++] = (struct kbw_bind){.source = s, .target = target ?: s};
	return 0;
}

/* A directory the sandbox would not see where the host has it (below the private /tmp)
 * is bound at its own path. */
static int view_keep(struct view *v, const char *host)
{
	_cleanup_free_ char *p = sandbox_path(v, host);

	if (!p)
		return -ENOMEM;
	if (!streq(p, host) || !startswith(host, "/tmp/"))
		return 0;
	for (size_t i = 0; i < v->n_binds; i++)
		if (streq(v->binds[i].target, host))
			return 0;
	if (v->n_binds >= ELEMENTSOF(v->binds))
		return -E2BIG;
	return view_add(v, host, NULL);
}

/*
 * The package directory, when the sandbox would not see it where it is: one below the
 * private /tmp, or a link (a fake root's usr/src/NAME-VER -> /usr/src/NAME-VER would
 * point at itself in the overlay) to a tree that is not the root's. Its real tree is
 * bound at SOURCE_TARGET.
 */
/* Below a bind's target the root's tree hides (or shadows) the host's. */
static bool below_target(const struct view *v, const char *host)
{
	for (size_t i = 0; i < v->n_binds; i++) {
		const char *rest = startswith(host, v->binds[i].target);

		if (rest && (*rest == '/' || *rest == '\0'))
			return true;
	}
	return false;
}

static int view_source(struct view *v, const char *dir)
{
	_cleanup_free_ char *real = realpath(dir, NULL), *mapped = NULL;
	int r;

	if (!real)
		return -errno;
	mapped = sandbox_path(v, real);
	if (!mapped)
		return -ENOMEM;
	if (!streq(mapped, real))
		return 0; /* inside the root's bound directories */
	if (streq(real, dir) && !startswith(real, "/tmp/") && !below_target(v, real))
		return 0; /* the host's own path, visible */
	r = view_add(v, real, SOURCE_TARGET);
	if (r < 0)
		return r;
	v->source_moved = true;
	return 0;
}

/* The root's directories at the machine's paths, appended to binds[*n], their sources
 * owned by owned[]: the view evaluation and builds share. */
static int root_binds(const struct dm2_context *ctx, struct kbw_bind *binds, char **owned,
		      size_t *n, size_t max)
{
	static const char *const targets[] = {"/usr/src", "/lib/modules", "/etc/dkms",
					      "/var/lib/dkms"};

	for (size_t i = 0; !root_is_slash(ctx) && i < ELEMENTSOF(bound_dirs); i++) {
		char *host = context_path(ctx, bound_dirs[i]);
		struct stat st;

		if (!host)
			return -ENOMEM;
		if (stat(host, &st) < 0 || !S_ISDIR(st.st_mode)) {
			free(host);
			continue;
		}
		if (*n >= max) {
			free(host);
			return -E2BIG;
		}
		owned[*n] = host;
		/* The kernel trees a fake root's lib/modules/KVER/build links to live in
		 * the host's /usr/src (and a package may be named from there): the
		 * root's usr/src shows over it. */
		binds[(*n)++] = (struct kbw_bind){.source = host, .target = targets[i],
						  .over_host = streq(bound_dirs[i], "usr/src")};
	}
	return 0;
}

int dkms_root_view_init(const struct dm2_context *ctx, struct dkms_root_view *ret)
{
	struct dkms_root_view v = {};
	int r;

	r = root_binds(ctx, v.binds, v.owned, &v.n_binds, ELEMENTSOF(v.binds));
	if (r < 0) {
		dkms_root_view_done(&v);
		return r;
	}
	*ret = v;
	return 0;
}

void dkms_root_view_done(struct dkms_root_view *v)
{
	for (size_t i = 0; i < v->n_binds; i++)
		free(v->owned[i]);
	*v = (struct dkms_root_view){};
}

static int view_init(struct view *v, const struct dkms_eval_input *in)
{
	int r;

	*v = (struct view){.in = in};
	r = root_binds(in->ctx, v->binds, v->owned, &v->n_binds, ELEMENTSOF(v->binds));
	if (r >= 0)
		r = view_source(v, in->dir);
	if (r >= 0 && in->overrides_dir && access(in->overrides_dir, F_OK) == 0)
		r = view_keep(v, in->overrides_dir);
	return r;
}

/* ---- the run ---- */

static int run_bash(const struct dkms_eval_input *in, struct view *v, char **ret_out,
		    size_t *ret_size, char **ret_err, char **ret_reason)
{
	_cleanup_(build_uid_release) struct build_uid u = BUILD_UID_NULL;
	_cleanup_free_ char *program = NULL, *conf = NULL, *src = NULL, *etc = NULL,
			    *ksrc = NULL, *host_conf = NULL;
	static char *envp[] = {(char *) "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
					"/usr/bin:/sbin:/bin",
			       (char *) "LC_ALL=C", (char *) "HOME=/tmp", NULL};
	struct kbw_limits limits = {.processes = 64, .cpu_usec = DKMS_EVAL_TIMEOUT_USEC,
				    .disk_max = 16u << 20};
	int r;

	if (geteuid() != 0) {
		*ret_reason = strdup("evaluating dkms.conf needs root (bash runs in the build "
				     "sandbox)");
		return -EPROTO;
	}
	r = build_uid_acquire(in->ctx, &u);
	if (r < 0)
		return r;
	program = program_text();
	host_conf = path_join(in->dir, "dkms.conf");
	conf = v->source_moved ? strdup(SOURCE_TARGET "/dkms.conf")
	       : host_conf	? sandbox_path(v, host_conf)
				: NULL;
	src = v->source_moved ? strdup(SOURCE_TARGET) : sandbox_path(v, in->dir);
	etc = in->overrides_dir ? sandbox_path(v, in->overrides_dir) : strdup("");
	ksrc = sandbox_path(v, in->kernel_source_dir);
	if (!program || !conf || !src || !etc || !ksrc)
		return -ENOMEM;
	return kbw_run_capture(
		&(struct kbw_command){
			.argv = (char *[]){(char *) "bash", (char *) "--noprofile",
					   (char *) "--norc", (char *) "-c", program,
					   (char *) "dm2-dkms", conf, src,
					   (char *) strempty(in->kernel_release),
					   (char *) strempty(in->arch), ksrc, etc, NULL},
			.envp = envp,
			.cwd = "/",
			.binds = v->binds,
			.n_binds = v->n_binds,
			.kernel = in->kernel,
			.uid = u.uid,
			.gid = u.gid,
			.timeout_usec = DKMS_EVAL_TIMEOUT_USEC,
			.memory_max = DKMS_EVAL_MEMORY_MAX,
			.limits = &limits,
		},
		ret_out, ret_size, ret_err, ret_reason);
}

/* ---- the cache ---- */

static uint64_t crc_str(uint64_t crc, const char *s)
{
	return lzma_crc64((const uint8_t *) strempty(s), strlen(strempty(s)) + 1, crc);
}

/* Name of the cache entry: CRC-64 and CRC-32 of everything the result depends on but the
 * overrides (checked separately, see overrides_line()). */
static char *cache_key(const struct dkms_eval_input *in)
{
	_cleanup_free_ char *program = program_text(), *config = NULL, *cfg_path = NULL;
	uint64_t c64 = 0;
	uint32_t c32 = 0;
	size_t size = 0;
	const char *parts[] = {program, in->ctx->root, in->dir, in->kernel_release, in->arch,
			       in->kernel_source_dir, in->overrides_dir ? "etc" : "-"};

	if (!program)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
		c64 = crc_str(c64, parts[i]);
		c32 = lzma_crc32((const uint8_t *) strempty(parts[i]),
				 strlen(strempty(parts[i])) + 1, c32);
	}
	c64 = lzma_crc64((const uint8_t *) in->conf_text, in->conf_size, c64);
	c32 = lzma_crc32((const uint8_t *) in->conf_text, in->conf_size, c32);
	/* What a dkms.conf looks at most: the kernel's configuration. */
	cfg_path = in->kernel_release ? path_join(in->kernel_source_dir, ".config") : NULL;
	if (cfg_path && read_full_file_at(AT_FDCWD, cfg_path, 0, &config, &size) >= 0) {
		c64 = lzma_crc64((const uint8_t *) config, size, c64);
		c32 = lzma_crc32((const uint8_t *) config, size, c32);
	}
	return strdup_printf(DKMS_EVAL_CACHE_DIR "/%016" PRIx64 "-%08" PRIx32, c64, c32);
}

/* One line naming every override candidate with the CRC-64 of its bytes or "-" when it
 * does not exist: a cached result is only as good as this line. */
static char *overrides_line(const struct dkms_eval_input *in, const struct dkms_vars *vars)
{
	const char *m = dkms_vars_get(vars, "dm2_module", 0);
	const char *v = dkms_vars_get(vars, "dm2_module_version", 0);
	const char *k = in->kernel_release, *a = strempty(in->arch);
	_cleanup_free_ char *line = strdup("overrides");
	char *names[6] = {};

	if (!line)
		return NULL;
	if (!in->overrides_dir || isempty(m))
		return TAKE_PTR(line);
	names[0] = strjoin(m, ".conf");
	if (!isempty(v))
		names[1] = strjoin(m, "-", v, ".conf");
	if (!isempty(v) && k) {
		names[2] = strjoin(m, "-", v, "-", k, ".conf");
		names[3] = strjoin(m, "-", v, "-", k, "-", a, ".conf");
	}
	if (k) {
		names[4] = strjoin(m, "--", k, ".conf");
		names[5] = strjoin(m, "--", k, "-", a, ".conf");
	}
	for (size_t i = 0; i < ELEMENTSOF(names) && line; i++) {
		_cleanup_free_ char *path = NULL, *text = NULL, *n = NULL;
		size_t size;

		if (!names[i])
			continue;
		path = path_join(in->overrides_dir, names[i]);
		if (path && read_full_file_at(AT_FDCWD, path, 0, &text, &size) >= 0)
			n = strdup_printf("%s %s:%016" PRIx64, line, names[i],
					  lzma_crc64((const uint8_t *) text, size, 0));
		else
			n = strdup_printf("%s %s:-", line, names[i]);
		free(line);
		line = TAKE_PTR(n);
	}
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		free(names[i]);
	return TAKE_PTR(line);
}

#define CACHE_MAGIC "dm2-dkms-eval 1\n"

static int cache_read(const struct dkms_eval_input *in, const char *key,
		      struct dkms_vars **ret)
{
	_cleanup_(dkms_vars_freep) struct dkms_vars *vars = NULL;
	_cleanup_free_ char *text = NULL, *want = NULL;
	const char *p, *nl;
	size_t size;
	int r;

	r = read_full_file_at(in->ctx->root_fd, key, 2u << 20, &text, &size);
	if (r < 0)
		return r;
	p = startswith(text, CACHE_MAGIC);
	nl = p ? memchr(p, '\n', size - (size_t) (p - text)) : NULL;
	if (!nl)
		return -EBADMSG;
	r = dkms_vars_parse(nl + 1, size - (size_t) (nl + 1 - text), &vars, NULL);
	if (r < 0)
		return r;
	want = overrides_line(in, vars);
	if (!want)
		return -ENOMEM;
	if (strlen(want) != (size_t) (nl - p) || memcmp(want, p, (size_t) (nl - p)) != 0)
		return -ESTALE;
	*ret = TAKE_PTR(vars);
	return 0;
}

static void cache_write(const struct dkms_eval_input *in, const char *key,
			const struct dkms_vars *vars, const char *dump, size_t size)
{
	_cleanup_free_ char *line = overrides_line(in, vars), *data = NULL;
	size_t n;
	int r;

	if (!line)
		return;
	n = strlen(CACHE_MAGIC) + strlen(line) + 1 + size;
	data = malloc(n);
	if (!data)
		return;
	memcpy(data, CACHE_MAGIC, strlen(CACHE_MAGIC));
	memcpy(data + strlen(CACHE_MAGIC), line, strlen(line));
	data[strlen(CACHE_MAGIC) + strlen(line)] = '\n';
	memcpy(data + strlen(CACHE_MAGIC) + strlen(line) + 1, dump, size);
	r = mkdir_p_at(in->ctx->root_fd, DKMS_EVAL_CACHE_DIR, 0755);
	if (r >= 0)
		r = write_file_atomic_at(in->ctx->root_fd, key, data, n, 0644);
	if (r < 0)
		log_debug_errno(r, "Cannot write '%s', ignoring: %m", key);
}

static int collect_overrides(const struct dkms_eval_input *in, const struct dkms_vars *vars,
			     char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	size_t n = dkms_vars_size(vars, "dm2_override");

	for (size_t i = 0; i < n && in->overrides_dir; i++) {
		const char *name = dkms_vars_get(vars, "dm2_override", i);
		int r;

		if (!name || strchr(name, '/'))
			continue;
		r = strv_consume(&l, path_join(in->overrides_dir, name));
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

int dkms_evaluate(const struct dkms_eval_input *in, struct dkms_eval_result *ret,
		  char **ret_reason)
{
	_cleanup_(dkms_eval_result_done) struct dkms_eval_result res = {};
	_cleanup_(view_done) struct view v = {};
	_cleanup_free_ char *key = NULL, *out = NULL, *error = NULL;
	size_t size = 0;
	int r;

	key = cache_key(in);
	if (!key)
		return -ENOMEM;
	if (!in->fresh && cache_read(in, key, &res.vars) >= 0) {
		res.cached = true;
		r = collect_overrides(in, res.vars, &res.overrides);
		if (r < 0)
			return r;
		*ret = res;
		res = (struct dkms_eval_result){};
		return 0;
	}
	r = view_init(&v, in);
	if (r < 0)
		return r;
	r = run_bash(in, &v, &out, &size, &res.errors, ret_reason);
	if (r < 0)
		return r;
	r = dkms_vars_parse(out, size, &res.vars, &error);
	if (r == -EBADMSG) {
		*ret_reason = strjoin("bash's output cannot be read: ", strna(error));
		return -EPROTO;
	}
	if (r < 0)
		return r;
	if (!in->fresh)
		cache_write(in, key, res.vars, out, size);
	r = collect_overrides(in, res.vars, &res.overrides);
	if (r < 0)
		return r;
	*ret = res;
	res = (struct dkms_eval_result){};
	return 0;
}
