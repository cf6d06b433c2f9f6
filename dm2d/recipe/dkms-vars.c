/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The variables of an evaluated dkms.conf and the strict parser of the runner's dump. */
#include <stdarg.h>
#include <stdio.h>

#include "recipe/dkms-vars.h"
#include "shared/util.h"

struct dkms_var {
	char *name;
	size_t index;
	char *value;
};

struct dkms_vars {
	struct dkms_var *v;
	size_t n;
};

const char *const dkms_directives[] = {
	"PACKAGE_NAME",
	"PACKAGE_VERSION",
	"MAKE",
	"MAKE_MATCH",
	"CLEAN",
	"PATCH",
	"PATCH_MATCH",
	"BUILT_MODULE_NAME",
	"BUILT_MODULE_LOCATION",
	"DEST_MODULE_NAME",
	"DEST_MODULE_LOCATION",
	"STRIP",
	"AUTOINSTALL",
	"BUILD_DEPENDS",
	"BUILD_DEPENDS_REBUILD",
	"BUILD_EXCLUSIVE_KERNEL",
	"BUILD_EXCLUSIVE_KERNEL_MIN",
	"BUILD_EXCLUSIVE_KERNEL_MAX",
	"BUILD_EXCLUSIVE_ARCH",
	"BUILD_EXCLUSIVE_CONFIG",
	"OBSOLETE_BY",
	"NO_WEAK_MODULES",
	"PRE_BUILD",
	"POST_BUILD",
	"POST_ADD",
	"PRE_INSTALL",
	"POST_INSTALL",
	"POST_REMOVE",
	"REMAKE_INITRD",
	"MODULES_CONF",
	"MODULES_CONF_OBSOLETES",
	"MODULES_CONF_ALIAS_TYPE",
	"MODULES_CONF_OBSOLETE_ONLY",
	NULL,
};

bool dkms_directive_known(const char *name)
{
	for (const char *const *d = dkms_directives; *d; d++)
		if (streq(*d, name))
			return true;
	return false;
}

int dkms_vars_new(struct dkms_vars **ret)
{
	struct dkms_vars *v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	*ret = v;
	return 0;
}

struct dkms_vars *dkms_vars_free(struct dkms_vars *v)
{
	if (!v)
		return NULL;
	for (size_t i = 0; i < v->n; i++) {
		free(v->v[i].name);
		free(v->v[i].value);
	}
	free(v->v);
	return mfree(v);
}

static struct dkms_var *vars_find(const struct dkms_vars *v, const char *name,
				  size_t index)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i].index == index && streq(v->v[i].name, name))
			return &v->v[i];
	return NULL;
}

int dkms_vars_set(struct dkms_vars *v, const char *name, size_t index, const char *value)
{
	struct dkms_var *e = vars_find(v, name, index), *a;
	char *copy = strdup(value);

	if (!copy)
		return -ENOMEM;
	if (e) {
		free(e->value);
		e->value = copy;
		return 0;
	}
	a = reallocarray(v->v, v->n + 1, sizeof(*a));
	if (!a) {
		free(copy);
		return -ENOMEM;
	}
	v->v = a;
	a[v->n] = (struct dkms_var){.name = strdup(name), .index = index, .value = copy};
	if (!a[v->n].name) {
		free(copy);
		return -ENOMEM;
	}
	v->n++;
	return 0;
}

const char *dkms_vars_get(const struct dkms_vars *v, const char *name, size_t index)
{
	struct dkms_var *e = vars_find(v, name, index);

	return e ? e->value : NULL;
}

size_t dkms_vars_size(const struct dkms_vars *v, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < v->n; i++)
		if (streq(v->v[i].name, name))
			n = MAX(n, v->v[i].index + 1);
	return n;
}

void dkms_vars_foreach(const struct dkms_vars *v,
		       void (*fn)(const char *name, size_t index, const char *value,
				  void *userdata),
		       void *userdata)
{
	for (size_t i = 0; i < v->n; i++)
		fn(v->v[i].name, v->v[i].index, v->v[i].value, userdata);
}

/* ---- the parser ---- */

struct cursor {
	const char *p, *end;
	size_t record;
	char *error;
};

static _printf_(2, 3) int bad(struct cursor *c, const char *format, ...)
{
	_cleanup_free_ char *m = NULL;
	va_list ap;

	va_start(ap, format);
	if (vasprintf(&m, format, ap) < 0)
		m = NULL;
	va_end(ap);
	free(c->error);
	c->error = m ? strdup_printf("record %zu: %s", c->record + 1, m) : NULL;
	/* One line, whatever the bytes quoted from the dump. */
	for (char *p = c->error; p && *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '?';
	return -EBADMSG;
}

/* The next NUL-terminated field, at most max bytes; -EBADMSG at the end of the data. */
static int field(struct cursor *c, size_t max, const char *what, const char **ret,
		 size_t *ret_len)
{
	const char *nul = memchr(c->p, '\0', (size_t) (c->end - c->p));

	if (!nul)
		return bad(c, "%s is not terminated (the dump is cut short)", what);
	if ((size_t) (nul - c->p) > max)
		return bad(c, "%s is longer than %zu bytes", what, max);
	*ret = c->p;
	*ret_len = (size_t) (nul - c->p);
	c->p = nul + 1;
	return 0;
}

static bool name_valid(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= 'a' && s[i] <= 'z') || (i > 0 && s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static int parse_index(struct cursor *c, const char *s, size_t n, const char *name,
		       size_t *ret)
{
	size_t v = 0;

	if (n == 0 || n > 6 || (n > 1 && s[0] == '0'))
		return bad(c, "index '%.*s' of '%s' is not a plain decimal number", (int) MIN(n, 16u),
			   s, name);
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return bad(c, "index '%.*s' of '%s' is not a plain decimal number",
				   (int) MIN(n, 16u), s, name);
		v = v * 10 + (size_t) (s[i] - '0');
	}
	if (v >= DKMS_VARS_MAX_INDEX)
		return bad(c, "index %zu of '%s' is too large", v, name);
	*ret = v;
	return 0;
}

static int parse_record(struct cursor *c, struct dkms_vars *vars)
{
	_cleanup_free_ char *name = NULL;
	const char *s, *idx, *value;
	size_t n, ni, nv, index = 0; /* set by parse_index(); -O2 cannot tell */
	int r;

	r = field(c, 64, "the name", &s, &n);
	if (r < 0)
		return r;
	if (!name_valid(s, n))
		return bad(c, "'%.*s' is not a variable name", (int) MIN(n, 64u), s);
	name = strndup(s, n);
	if (!name)
		return -ENOMEM;
	if (!dkms_directive_known(name) && !startswith(name, "dm2_"))
		return bad(c, "'%s' is not a DKMS directive", name);
	r = field(c, 16, "the index", &idx, &ni);
	if (r < 0)
		return r;
	r = parse_index(c, idx, ni, name, &index);
	if (r < 0)
		return r;
	r = field(c, DKMS_VARS_MAX_VALUE, "the value", &value, &nv);
	if (r < 0)
		return r;
	if (dkms_vars_get(vars, name, index))
		return bad(c, "'%s[%zu]' appears twice", name, index);
	return dkms_vars_set(vars, name, index, value);
}

int dkms_vars_parse(const void *data, size_t size, struct dkms_vars **ret, char **ret_error)
{
	_cleanup_(dkms_vars_freep) struct dkms_vars *vars = NULL;
	struct cursor c = {.p = data, .end = (const char *) data + size};
	int r;

	r = dkms_vars_new(&vars);
	if (r < 0)
		return r;
	for (; c.p < c.end; c.record++) {
		if (c.record >= DKMS_VARS_MAX_RECORDS) {
			r = bad(&c, "more than %u records", DKMS_VARS_MAX_RECORDS);
			break;
		}
		r = parse_record(&c, vars);
		if (r < 0)
			break;
	}
	if (r < 0) {
		if (ret_error)
			*ret_error = TAKE_PTR(c.error);
		free(c.error);
		return r;
	}
	*ret = TAKE_PTR(vars);
	return 0;
}
