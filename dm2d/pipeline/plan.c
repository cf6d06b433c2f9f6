/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <regex.h>
#include <stdarg.h>

#include "pipeline/plan.h"
#include "shared/log.h"
#include "shared/util.h"

void plan_done(struct plan *p)
{
	if (!p)
		return;
	free(p->skip_reason);
	*p = (struct plan){};
}

static int skip(struct plan *ret, const char *format, ...) _printf_(2, 3);
static int skip(struct plan *ret, const char *format, ...)
{
	char *reason = NULL;
	va_list ap;
	int r;

	va_start(ap, format);
	r = vasprintf(&reason, format, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	*ret = (struct plan){.applicable = false, .skip_reason = reason};
	return 0;
}

/* 1 if s matches the POSIX ERE, 0 if not, -EINVAL if the expression is bad. */
static int ere_match(const char *ere, const char *s)
{
	regex_t re;
	int r;

	if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB) != 0)
		return -EINVAL;
	r = regexec(&re, s, 0, NULL, 0) == 0;
	regfree(&re);
	return r;
}

static char *ranges_text(const struct recipe *r)
{
	char *text = NULL;

	for (size_t i = 0; i < r->n_sources; i++) {
		const char *t = r->sources[i].kernel.text;
		char *n;

		if (!t)
			continue;
		n = text ? strjoin(text, " or Kernel=", t) : strjoin("Kernel=", t);
		free(text);
		if (!n)
			return NULL;
		text = n;
	}
	return text ?: strdup("Kernel=");
}

int plan_recipe_for(const struct recipe *r, const char *release, const char *version,
		    const char *arch, plan_config_fn config, void *userdata,
		    bool allow_non_gpl, struct plan *ret)
{
	const struct recipe_source *src;
	int k;

	if (r->exclusive_arch && arch) {
		k = ere_match(r->exclusive_arch, arch);
		if (k < 0)
			return skip(ret, "invalid BUILD_EXCLUSIVE_ARCH '%s'",
				    r->exclusive_arch);
		if (k == 0)
			return skip(ret,
				    "architecture %s does not match BUILD_EXCLUSIVE_ARCH "
				    "'%s'",
				    arch, r->exclusive_arch);
	}
	if (r->exclusive_kernel && release) {
		k = ere_match(r->exclusive_kernel, release);
		if (k < 0)
			return skip(ret, "invalid BUILD_EXCLUSIVE_KERNEL '%s'",
				    r->exclusive_kernel);
		if (k == 0)
			return skip(
				ret,
				"kernel %s does not match BUILD_EXCLUSIVE_KERNEL '%s'",
				release, r->exclusive_kernel);
	}
	if (r->arches && r->arches[0] && (!arch || !strv_contains(r->arches, arch))) {
		_cleanup_free_ char *list = strv_join(r->arches, " ");

		if (!list)
			return -ENOMEM;
		return skip(ret, "architecture %s is not in Arch=%s", strna(arch), list);
	}
	/* A DKMS package is judged by the modules it builds (stage-build.c). */
	if (!allow_non_gpl && r->origin != RECIPE_ORIGIN_DKMS &&
	    !license_is_gpl_compatible(r->license))
		return skip(ret,
			    "license '%s' is not GPL-compatible (AllowNonGPL=yes in "
			    "dm2d.conf "
			    "builds it anyway)",
			    strempty(r->license));
	STRV_FOREACH(c, r->require_config)
	{
		bool negated = (*c)[0] == '!';
		const char *name = negated ? *c + 1 : *c;
		const char *v = config ? config(name, userdata) : NULL;
		bool set = v && (streq(v, "y") || streq(v, "m"));

		if (negated && v && !streq(v, "n"))
			return skip(ret,
				    "kernel %s has %s=%s but the recipe needs it unset "
				    "(RequireConfig=%s)",
				    strna(release), name, v, *c);
		if (!negated && !set)
			return skip(ret,
				    "kernel %s lacks %s (RequireConfig= needs y or m, it "
				    "is %s)",
				    strna(release), name, v ? v : "not set");
	}

	src = recipe_pick_source(r, version);
	if (!src) {
		_cleanup_free_ char *ranges = NULL;

		if (r->n_sources == 0)
			return skip(ret, "recipe has no source");
		ranges = ranges_text(r);
		if (!ranges)
			return -ENOMEM;
		return skip(ret, "kernel %s does not match %s of any source",
			    strna(version), ranges);
	}
	*ret = (struct plan){.applicable = true, .source = src};
	return 0;
}

static const char *kernel_config(const char *option, void *userdata)
{
	return kbw_kernel_config(userdata, option);
}

int plan_recipe(const struct recipe *r, const struct kbw_kernel *k, bool allow_non_gpl,
		struct plan *ret)
{
	return plan_recipe_for(r, kbw_kernel_release(k), kbw_kernel_version(k),
			       kbw_kernel_arch(k), kernel_config, (void *) k,
			       allow_non_gpl, ret);
}
