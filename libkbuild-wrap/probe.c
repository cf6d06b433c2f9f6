/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Probe a kernel build tree: everything comes from the tree, never from the running
 * kernel. */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <syslog.h>

#include "kbw-internal.h"

static struct kbw_kernel *kernel_free(struct kbw_kernel *k)
{
	if (!k)
		return NULL;
	free(k->release);
	free(k->modules_dir);
	free(k->build_dir);
	free(k->reason);
	free(k->config);
	free(k->config_text);
	free(k->arch);
	free(k->srcarch);
	free(k->cc);
	free(k->cc_version_text);
	free(k->vermagic);
	free(k->identity);
	free(k->version);
	strv_free(k->ro_paths);
	free(k);
	return NULL;
}

KBW_EXPORT struct kbw_kernel *kbw_kernel_ref(struct kbw_kernel *k)
{
	if (k)
		k->n_ref++;
	return k;
}

KBW_EXPORT struct kbw_kernel *kbw_kernel_unref(struct kbw_kernel *k)
{
	if (!k)
		return NULL;
	if (--k->n_ref > 0)
		return NULL;
	return kernel_free(k);
}

static void kernel_unrefp(struct kbw_kernel **k)
{
	kbw_kernel_unref(*k);
}

/* Parse .config in place: "CONFIG_X=value", values in quotes unescaped ("\"" and "\\").
 * The entries point into text, which the kernel object keeps: one allocation for a few
 * thousand options instead of two each, which matters for a daemon holding every kernel.
 */
static int parse_config(struct kbw_kernel *k, char *text)
{
	size_t cap = 0;

	for (char *line = text, *next; line && *line; line = next) {
		struct kbw_config_entry *e;
		char *eq, *v;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strncmp(line, "CONFIG_", 7) != 0)
			continue;
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		v = eq + 1;
		if (*v == '"') {
			char *w = ++v, *r = v;

			for (; *r && *r != '"'; r++) {
				if (*r == '\\' && r[1])
					r++;
				*w++ = *r;
			}
			*w = '\0';
		}
		if (k->n_config == cap) {
			cap = cap ? cap * 2 : 4096;
			e = realloc(k->config, cap * sizeof(*e));
			if (!e)
				return -ENOMEM;
			k->config = e;
		}
		k->config[k->n_config++] =
			(struct kbw_config_entry){.name = line, .value = v};
	}
	if (k->n_config > 0 && k->n_config < cap) {
		/* Give back the unused part of the last doubling. */
		struct kbw_config_entry *e = realloc(k->config, k->n_config * sizeof(*e));

		if (e)
			k->config = e;
	}
	return 0;
}

static bool config_y(const struct kbw_kernel *k, const char *option)
{
	const char *v = kbw_kernel_config(k, option);

	return v && streq(v, "y");
}

/* A "VAR = value" assignment in .kernelvariables (make syntax; "override" allowed). */
static char *kernelvariable(const char *text, const char *var)
{
	size_t n = strlen(var);

	for (const char *line = text; line && *line;) {
		const char *end = strchrnul(line, '\n'), *p = line;

		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "override", 8) == 0 && (p[8] == ' ' || p[8] == '\t'))
			for (p += 8; *p == ' ' || *p == '\t'; p++)
				;
		if (strncmp(p, var, n) == 0) {
			p += n;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == ':' || *p == '?')
				p++;
			if (*p == '=') {
				p++;
				while (*p == ' ' || *p == '\t')
					p++;
				return strndup(p, (size_t) (end - p));
			}
		}
		line = *end ? end + 1 : NULL;
	}
	return NULL;
}

/* Drop make expansions ("$(if ...)", "$(CROSS_COMPILE)") and keep the first plain word:
 * Debian's "$(if $(DEBIAN_KERNEL_USE_CCACHE),$(CCACHE)) $(CROSS_COMPILE)gcc-12" ->
 * "gcc-12". Cross compilation is not supported, so CROSS_COMPILE is empty. */
static char *strip_make_expansions(const char *v)
{
	_cleanup_free_ char *out = malloc(strlen(v) + 1);
	size_t n = 0;
	const char *p = v;
	char *w;

	if (!out)
		return NULL;
	while (*p) {
		if (p[0] == '$' && (p[1] == '(' || p[1] == '{')) {
			int depth = 0;

			for (p++; *p; p++) {
				if (*p == '(' || *p == '{')
					depth++;
				else if ((*p == ')' || *p == '}') && --depth == 0) {
					p++;
					break;
				}
			}
			continue;
		}
		out[n++] = *p++;
	}
	out[n] = '\0';
	w = out + strspn(out, " \t");
	w[strcspn(w, " \t")] = '\0';
	return w[0] ? strdup(w) : NULL;
}

static int set_arch(struct kbw_kernel *k, const char *kernelvariables)
{
	static const struct {
		const char *option, *arch, *srcarch;
	} table[] = {
		{"CONFIG_X86_64", "x86_64", "x86"},
		{"CONFIG_X86_32", "i686", "x86"},
		{"CONFIG_ARM64", "aarch64", "arm64"},
		{"CONFIG_ARM", "armv7l", "arm"},
		{"CONFIG_PPC64", "ppc64le", "powerpc"},
		{"CONFIG_PPC32", "ppc", "powerpc"},
		{"CONFIG_S390", "s390x", "s390"},
		{"CONFIG_RISCV", "riscv64", "riscv"},
		{"CONFIG_LOONGARCH", "loongarch64", "loongarch"},
		{"CONFIG_MIPS", "mips", "mips"},
	};
	_cleanup_free_ char *kv_arch = NULL;

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (!config_y(k, table[i].option))
			continue;
		if (streq(table[i].option, "CONFIG_PPC64") &&
		    !config_y(k, "CONFIG_CPU_LITTLE_ENDIAN"))
			k->arch = strdup("ppc64");
		else if (streq(table[i].option, "CONFIG_MIPS") &&
			 config_y(k, "CONFIG_64BIT"))
			k->arch = strdup("mips64");
		else
			k->arch = strdup(table[i].arch);
		k->srcarch = strdup(table[i].srcarch);
		return k->arch && k->srcarch ? 0 : -ENOMEM;
	}
	if (kernelvariables)
		kv_arch = kernelvariable(kernelvariables, "ARCH");
	if (kv_arch) {
		k->srcarch = strip_make_expansions(kv_arch);
		k->arch = k->srcarch ? strdup(k->srcarch) : NULL;
	}
	return 0;
}

static int set_vermagic(struct kbw_kernel *k, const char *uts_release)
{
	const char *preempt = "";
	const char *arch = "";

	if (config_y(k, "CONFIG_PREEMPT_BUILD") ||
	    (!kbw_kernel_config(k, "CONFIG_PREEMPT_BUILD") &&
	     config_y(k, "CONFIG_PREEMPT")))
		preempt = "preempt ";
	else if (config_y(k, "CONFIG_PREEMPT_RT"))
		preempt = "preempt_rt ";
	/* MODULE_ARCH_VERMAGIC: x86_64 adds nothing, arm64 "aarch64". */
	if (k->arch && streq(k->arch, "aarch64"))
		arch = "aarch64";
	k->vermagic = strdup_printf(
		"%s %s%s%s%s%s", uts_release, config_y(k, "CONFIG_SMP") ? "SMP " : "",
		preempt, config_y(k, "CONFIG_MODULE_UNLOAD") ? "mod_unload " : "",
		config_y(k, "CONFIG_MODVERSIONS") ? "modversions " : "", arch);
	return k->vermagic ? 0 : -ENOMEM;
}

/* Leading "X.Y[.Z]" of s, or NULL. */
static char *leading_version(const char *s)
{
	size_t n = 0;
	int dots = 0;

	if (!s || !isdigit((unsigned char) s[0]))
		return NULL;
	while (s[n]) {
		if (isdigit((unsigned char) s[n]))
			n++;
		else if (s[n] == '.' && dots < 2 && isdigit((unsigned char) s[n + 1])) {
			dots++;
			n++;
		} else
			break;
	}
	return dots > 0 ? strndup(s, n) : NULL;
}

static int set_incomplete(struct kbw_kernel *k, char *reason)
{
	if (!reason)
		return -ENOMEM;
	k->complete = false;
	free(k->reason);
	k->reason = reason;
	return 0;
}

/* Which package usually provides path (relative to the build tree). */
static char *package_hint(const struct kbw_kernel *k, const char *rel, bool debian)
{
	if (debian && strncmp(rel, "scripts/", 8) == 0) {
		_cleanup_free_ char *v = k->version ? strdup(k->version) : NULL;
		char *dot;

		if (v && (dot = strchr(v, '.')) && (dot = strchr(dot + 1, '.')))
			*dot = '\0';
		return strdup_printf("linux-kbuild-%s", v ?: "X.Y");
	}
	return strdup_printf("linux-headers-%s", k->release);
}

static int add_ro_path(struct kbw_kernel *k, const char *path)
{
	char real[PATH_MAX];

	if (!realpath(path, real))
		return 0;
	for (char **p = k->ro_paths; p && *p; p++)
		if (streq(*p, real))
			return 0;
	return strv_consume(&k->ro_paths, strdup(real));
}

/* The trees a build reads: the build dir, what its top-level symlinks point to (Debian:
 * scripts -> /usr/lib/linux-kbuild-X.Y/scripts), and the tree its Makefile includes
 * (Debian: /usr/src/linux-headers-KVER-common). */
static int collect_ro_paths(struct kbw_kernel *k, const char *makefile)
{
	static const char *const links[] = {"scripts", "tools", "source", "arch",
					    "include"};
	int r;

	r = add_ro_path(k, k->build_dir);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		_cleanup_free_ char *p =
			strdup_printf("%s/%s", k->build_dir, links[i]);
		struct stat st;

		if (!p)
			return -ENOMEM;
		if (lstat(p, &st) < 0 || !S_ISLNK(st.st_mode))
			continue;
		{
			char real[PATH_MAX], *slash;

			if (!realpath(p, real))
				continue;
			/* /usr/lib/linux-kbuild-6.1/scripts -> /usr/lib/linux-kbuild-6.1
			 */
			slash = strrchr(real, '/');
			if (slash && slash != real && streq(slash + 1, links[i]))
				*slash = '\0';
			r = add_ro_path(k, real);
			if (r < 0)
				return r;
		}
	}
	if (makefile) {
		const char *inc = strstr(makefile, "include /");

		if (inc && (inc == makefile || inc[-1] == '\n')) {
			_cleanup_free_ char *f =
				strndup(inc + 8, strcspn(inc + 8, " \t\n"));
			char *slash;

			if (!f)
				return -ENOMEM;
			slash = strrchr(f, '/');
			if (slash && slash != f) {
				*slash = '\0';
				r = add_ro_path(k, f);
				if (r < 0)
					return r;
			}
		}
	}
	return 0;
}

/* utsrelease.h: #define UTS_RELEASE "6.1.0-56-amd64" */
static char *parse_uts_release(const char *text)
{
	const char *p = strstr(text, "UTS_RELEASE");
	const char *q, *e;

	if (!p || !(q = strchr(p, '"')) || !(e = strchr(q + 1, '"')))
		return NULL;
	return strndup(q + 1, (size_t) (e - q - 1));
}

/* Read build_dir/name (at most max bytes, 0: no limit) into *ret; -ENOENT when missing. */
static int read_tree_file(const struct kbw_kernel *k, const char *name, size_t max,
			  char **ret)
{
	_cleanup_free_ char *p = strdup_printf("%s/%s", k->build_dir, name);

	if (!p)
		return -ENOMEM;
	return read_full_file_at(AT_FDCWD, p, max, ret, NULL);
}

/* The compiler kbuild expects: CC from Debian's .kernelvariables, else clang for clang
 * kernels, else the first word of CONFIG_CC_VERSION_TEXT. */
static int probe_compiler(struct kbw_kernel *k, const char *kernelvariables)
{
	const char *cc_text = kbw_kernel_config(k, "CONFIG_CC_VERSION_TEXT");

	if (cc_text) {
		k->cc_version_text = strdup(cc_text);
		if (!k->cc_version_text)
			return -ENOMEM;
	}
	k->llvm = config_y(k, "CONFIG_CC_IS_CLANG");
	if (kernelvariables) {
		_cleanup_free_ char *v = kernelvariable(kernelvariables, "CC");

		if (v)
			k->cc = strip_make_expansions(v);
	}
	if (!k->cc && k->llvm)
		k->cc = strdup("clang");
	if (!k->cc && cc_text)
		k->cc = strndup(cc_text, strcspn(cc_text, " \t"));
	return 0;
}

static enum kbw_compression probe_compression(const struct kbw_kernel *k)
{
	if (config_y(k, "CONFIG_MODULE_COMPRESS_GZIP"))
		return KBW_COMPRESSION_GZIP;
	if (config_y(k, "CONFIG_MODULE_COMPRESS_XZ"))
		return KBW_COMPRESSION_XZ;
	if (config_y(k, "CONFIG_MODULE_COMPRESS_ZSTD"))
		return KBW_COMPRESSION_ZSTD;
	return KBW_COMPRESSION_NONE;
}

/* .kernelvariables, .config, arch, compiler, compression, version, read-only paths: what
 * can be known even of an incomplete tree. */
static int probe_config(struct kbw_kernel *k, bool *ret_debian)
{
	_cleanup_free_ char *kernelvariables = NULL, *kernel_release = NULL, *makefile = NULL;
	int r;

	r = read_tree_file(k, ".kernelvariables", 0, &kernelvariables);
	if (r < 0 && r != -ENOENT)
		kbw_log(LOG_DEBUG, "Failed to read '%s/.kernelvariables', ignoring: %s",
			k->build_dir, strerror(-r));
	*ret_debian = kernelvariables != NULL;

	if (read_tree_file(k, ".config", 0, &k->config_text) >= 0) {
		r = parse_config(k, k->config_text);
		if (r < 0)
			return r;
	}
	r = set_arch(k, kernelvariables);
	if (r >= 0)
		r = probe_compiler(k, kernelvariables);
	if (r < 0)
		return r;
	k->compression = probe_compression(k);

	/* Upstream version for ranges: Debian's kernel.release holds "6.1.192" while the
	 * release is "6.1.0-56-amd64"; prefer it when it parses. */
	if (read_tree_file(k, "include/config/kernel.release", 4096, &kernel_release) >= 0)
		k->version = leading_version(kernel_release);
	if (!k->version)
		k->version = leading_version(k->release);

	(void) read_tree_file(k, "Makefile", 0, &makefile);
	return collect_ro_paths(k, makefile);
}

/* A tree is complete when every file a build reads exists; the first missing one is
 * named with the package that brings it. */
static int probe_required_files(struct kbw_kernel *k, bool debian)
{
	static const char *const required[] = {
		".config",
		"Makefile",
		"Module.symvers",
		"include/generated/autoconf.h",
		"include/generated/utsrelease.h",
		"include/config/auto.conf",
		"scripts/mod/modpost",
	};

	k->complete = true;
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		_cleanup_free_ char *f = strdup_printf("%s/%s", k->build_dir, required[i]);
		_cleanup_free_ char *pkg = NULL;

		if (!f)
			return -ENOMEM;
		if (access(f, F_OK) >= 0)
			continue;
		pkg = package_hint(k, required[i], debian);
		return set_incomplete(k, strdup_printf("'%s' is missing (install %s)", f,
						      pkg ?: "the kernel headers"));
	}
	return 0;
}

static int probe_tree(struct kbw_kernel *k)
{
	static const char uts_h[] = "include/generated/utsrelease.h";
	_cleanup_free_ char *uts = NULL, *uts_release = NULL;
	bool debian;
	int r;

	r = probe_config(k, &debian);
	if (r < 0)
		return r;
	r = probe_required_files(k, debian);
	if (r < 0 || !k->complete)
		return r;

	r = read_tree_file(k, uts_h, 65536, &uts);
	if (r < 0)
		return set_incomplete(k, strdup_printf("Cannot read '%s/%s': %s", k->build_dir,
						      uts_h, strerror(-r)));
	uts_release = parse_uts_release(uts);
	if (!uts_release)
		return set_incomplete(k, strdup_printf("'%s/%s' defines no UTS_RELEASE",
						      k->build_dir, uts_h));
	if (!streq(uts_release, k->release))
		return set_incomplete(k, strdup_printf("UTS_RELEASE in '%s/%s' is '%s', not '%s'",
						      k->build_dir, uts_h, uts_release,
						      k->release));
	if (!k->arch)
		return set_incomplete(k,
				      strdup_printf("Cannot tell the architecture of '%s'",
						   k->build_dir));
	/* The identity (a sha256 over .config and the large Module.symvers) is computed
	 * on the first kbw_kernel_identity() call: a daemon probing every kernel never
	 * pays for it, nor loads OpenSSL, until a build needs it. */
	return set_vermagic(k, uts_release);
}

KBW_EXPORT int kbw_kernel_probe(const char *modules_dir, const char *release,
				struct kbw_kernel **ret)
{
	_cleanup_(kernel_unrefp) struct kbw_kernel *k = NULL;
	_cleanup_free_ char *build = NULL;
	char real[PATH_MAX];
	struct stat st;
	int r;

	if (!modules_dir || !release || !release[0] || strchr(release, '/'))
		return -EINVAL;
	if (stat(modules_dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;

	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->n_ref = 1;
	k->release = strdup(release);
	k->modules_dir = strdup(modules_dir);
	build = strdup_printf("%s/build", modules_dir);
	if (!k->release || !k->modules_dir || !build)
		return -ENOMEM;
	k->version = NULL;

	if (lstat(build, &st) < 0) {
		k->version = leading_version(release);
		r = set_incomplete(
			k, strdup_printf("'%s' is missing (install linux-headers-%s)",
					build, release));
	} else if (!realpath(build, real)) {
		char target[PATH_MAX] = "";
		ssize_t n = readlink(build, target, sizeof(target) - 1);

		if (n > 0)
			target[n] = '\0';
		k->version = leading_version(release);
		r = set_incomplete(
			k, strdup_printf("'%s' points to '%s', which does not exist "
					"(install linux-headers-%s)",
					build, target, release));
	} else {
		k->build_dir = strdup(real);
		if (!k->build_dir)
			return -ENOMEM;
		r = probe_tree(k);
	}
	if (r < 0)
		return r;
	if (!k->complete)
		kbw_log(LOG_DEBUG, "Kernel %s is incomplete: %s", release, k->reason);
	*ret = TAKE_PTR(k);
	return 0;
}

KBW_EXPORT const char *kbw_kernel_release(const struct kbw_kernel *k)
{
	return k->release;
}

KBW_EXPORT const char *kbw_kernel_build_dir(const struct kbw_kernel *k)
{
	return k->build_dir;
}

KBW_EXPORT bool kbw_kernel_complete(const struct kbw_kernel *k, const char **reason)
{
	if (reason)
		*reason = k->complete ? NULL : k->reason;
	return k->complete;
}

KBW_EXPORT const char *kbw_kernel_arch(const struct kbw_kernel *k)
{
	return k->arch;
}

KBW_EXPORT const char *kbw_kernel_srcarch(const struct kbw_kernel *k)
{
	return k->srcarch;
}

KBW_EXPORT const char *kbw_kernel_config(const struct kbw_kernel *k, const char *option)
{
	const char *name = option;
	size_t off = 0;

	if (!option)
		return NULL;
	if (strncmp(option, "CONFIG_", 7) != 0)
		off = 7;
	for (size_t i = 0; i < k->n_config; i++)
		if (streq(k->config[i].name + off, name))
			return k->config[i].value;
	return NULL;
}

KBW_EXPORT const char *kbw_kernel_sig_hash(const struct kbw_kernel *k)
{
	return kbw_kernel_config(k, "CONFIG_MODULE_SIG_HASH");
}

KBW_EXPORT enum kbw_compression kbw_kernel_compression(const struct kbw_kernel *k)
{
	return k->compression;
}

KBW_EXPORT const char *kbw_kernel_cc(const struct kbw_kernel *k)
{
	return k->cc;
}

KBW_EXPORT bool kbw_kernel_llvm(const struct kbw_kernel *k)
{
	return k->llvm;
}

KBW_EXPORT bool kbw_kernel_cc_available(const struct kbw_kernel *k)
{
	return find_program(KBW_DEFAULT_PATH, k->cc, NULL) >= 0;
}

KBW_EXPORT const char *kbw_kernel_cc_version_text(const struct kbw_kernel *k)
{
	return k->cc_version_text;
}

KBW_EXPORT const char *kbw_kernel_vermagic(const struct kbw_kernel *k)
{
	return k->vermagic;
}

KBW_EXPORT const char *kbw_kernel_version(const struct kbw_kernel *k)
{
	return k->version;
}
