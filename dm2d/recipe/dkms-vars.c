/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The variable store of the dkms.conf evaluator: every variable is a sparse array. */
#include "recipe/dkms-eval.h"
#include "shared/util.h"

struct dkms_var {
	char *name;
	size_t index;
	char *value;
	unsigned line;
};

struct dkms_vars {
	struct dkms_var *v;
	size_t n;
};

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

int dkms_vars_set(struct dkms_vars *v, const char *name, size_t index, const char *value,
		  unsigned line)
{
	struct dkms_var *e = vars_find(v, name, index), *a;
	char *copy = strdup(value);

	if (!copy)
		return -ENOMEM;
	if (e) {
		free(e->value);
		e->value = copy;
		e->line = line;
		return 0;
	}
	/* Every lookup walks the list: bounded, so that many assignments stay fast. */
	if (v->n >= DKMS_VARS_MAX) {
		free(copy);
		return -ENOSPC;
	}
	a = realloc(v->v, (v->n + 1) * sizeof(*a));
	if (!a) {
		free(copy);
		return -ENOMEM;
	}
	v->v = a;
	a[v->n] = (struct dkms_var){
		.name = strdup(name), .index = index, .value = copy, .line = line
	};
	if (!a[v->n].name) {
		free(copy);
		return -ENOMEM;
	}
	v->n++;
	return 0;
}

void dkms_vars_unset(struct dkms_vars *v, const char *name)
{
	size_t k = 0;

	for (size_t i = 0; i < v->n; i++) {
		if (streq(v->v[i].name, name)) {
			free(v->v[i].name);
			free(v->v[i].value);
			continue;
		}
		v->v[k++] = v->v[i];
	}
	v->n = k;
}

const char *dkms_vars_get(const struct dkms_vars *v, const char *name, size_t index)
{
	struct dkms_var *e = vars_find(v, name, index);

	return e ? e->value : NULL;
}

unsigned dkms_vars_line(const struct dkms_vars *v, const char *name, size_t index)
{
	struct dkms_var *e = vars_find(v, name, index);

	return e ? e->line : 0;
}

size_t dkms_vars_size(const struct dkms_vars *v, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < v->n; i++)
		if (streq(v->v[i].name, name))
			n = MAX(n, v->v[i].index + 1);
	return n;
}

unsigned dkms_vars_first_line(const struct dkms_vars *v, const char *name)
{
	unsigned l = 0;

	for (size_t i = 0; i < v->n; i++)
		if (streq(v->v[i].name, name) && v->v[i].line > 0 &&
		    (l == 0 || v->v[i].line < l))
			l = v->v[i].line;
	return l;
}

void dkms_vars_foreach_assigned(const struct dkms_vars *v,
				void (*fn)(const char *name, unsigned line,
					   void *userdata),
				void *userdata)
{
	for (size_t i = 0; i < v->n; i++) {
		bool seen = false;

		if (v->v[i].line == 0)
			continue;
		for (size_t j = 0; j < i; j++)
			if (v->v[j].line > 0 && streq(v->v[j].name, v->v[i].name))
				seen = true;
		if (!seen)
			fn(v->v[i].name, dkms_vars_first_line(v, v->v[i].name), userdata);
	}
}
