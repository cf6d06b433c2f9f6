/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "recipe/recipe.h"
#include "shared/macro.h"

/*
 * A safe evaluator for the bash subset dkms.conf files are written in: scalar and array
 * assignments (X=v, X[3]=v, X=(a b), X+=v), quoting, backslash escapes, comments, line
 * continuations, $var, ${var}, ${var[i]}, ${var[@]}, ${#var}, ${var:-w}, ${var-w},
 * ${var:+w}, ${var#p}, ${var##p}, ${var%p}, ${var%%p}, ${var/p/s}, ${var//p/s}, and the
 * command substitutions $(nproc), $(uname -r) (the target kernel), $(uname -m) and
 * $(getconf _NPROCESSORS_ONLN). Nothing is ever executed: every other construct is
 * reported as an error naming the line.
 */

/*
 * What one file may make the evaluator do. dkms.conf comes from whoever packaged the
 * module; past these bounds the evaluator reports "FILE:LINE: ... cannot be evaluated
 * safely" instead of running out of stack ("${a:-${a:-..." nested 20,000 deep), memory
 * ("A=$A$A" 40 times) or time (patterns over long values).
 */
/* ${...} expansions inside expansions */
#define DKMS_EVAL_DEPTH_MAX 32U
/* bytes of any word or value */
#define DKMS_EVAL_VALUE_MAX (64U * 1024U)
/* units of work per file: bytes looked up plus pattern matching steps */
#define DKMS_EVAL_WORK_MAX (4U * 1024U * 1024U)
/* variables and array elements in all; words of one array assignment */
#define DKMS_VARS_MAX 1024U

/* Variables: every variable is a sparse array, a scalar is index 0 (as in bash). */
struct dkms_vars;

int dkms_vars_new(struct dkms_vars **ret);
struct dkms_vars *dkms_vars_free(struct dkms_vars *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dkms_vars *, dkms_vars_free);
/* -ENOSPC when DKMS_VARS_MAX entries (name, index) are set already. */
int dkms_vars_set(struct dkms_vars *v, const char *name, size_t index, const char *value,
		  unsigned line);
/* Forget every index of name. */
void dkms_vars_unset(struct dkms_vars *v, const char *name);
/* NULL when unset. */
const char *dkms_vars_get(const struct dkms_vars *v, const char *name, size_t index);
/* Line of the assignment that set it (0 for preset variables or when unset). */
unsigned dkms_vars_line(const struct dkms_vars *v, const char *name, size_t index);
/* Highest set index + 1 (0 when the variable is unset). */
size_t dkms_vars_size(const struct dkms_vars *v, const char *name);
/* Line of the first assignment to any index of name, 0 if none. */
unsigned dkms_vars_first_line(const struct dkms_vars *v, const char *name);
/* Call fn for each distinct variable name that was assigned by the file (line > 0). */
void dkms_vars_foreach_assigned(const struct dkms_vars *v,
				void (*fn)(const char *name, unsigned line,
					   void *userdata),
				void *userdata);

struct dkms_eval_params {
	const char *kernelver; /* what $(uname -r) gives */
	const char *arch;      /* what $(uname -m) gives */
	unsigned nproc;	       /* what $(nproc) gives */
	unsigned line_base;    /* added to the line recorded with each variable (dkms.c tells
				* the files it reads one after another apart by it) */
};

/*
 * Evaluate text (the file's content; CR before LF already removed or not, both work) into
 * vars. Every problem is reported through diag as (path, line, message); evaluation goes
 * on with the next line so that all problems are reported, then fails with -EBADMSG.
 */
int dkms_eval(const char *path, const char *text, size_t size, struct dkms_vars *vars,
	      const struct dkms_eval_params *p, recipe_diag_fn diag, void *userdata);
