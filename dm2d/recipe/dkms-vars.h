/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "shared/macro.h"

/*
 * The variables a dkms.conf set, as bash left them (dkms-run.c sources the file in the
 * build sandbox and prints them), and the strict parser of that dump. Every variable is a
 * sparse array; a scalar is index 0, as in bash.
 *
 * The dump is a sequence of records NAME NUL INDEX NUL VALUE NUL: NAME one of the DKMS
 * directives dm2 knows (dkms_directive_known()) or a "dm2_" name the runner adds, INDEX a
 * decimal number without leading zeros below DKMS_VARS_MAX_INDEX, VALUE any bytes but NUL
 * (at most DKMS_VARS_MAX_VALUE). Each NAME[INDEX] appears once; nothing may follow the
 * last record.
 */
#define DKMS_VARS_MAX_INDEX 100000u
#define DKMS_VARS_MAX_VALUE (64u * 1024u)
#define DKMS_VARS_MAX_RECORDS 8192u

struct dkms_vars;

int dkms_vars_new(struct dkms_vars **ret);
struct dkms_vars *dkms_vars_free(struct dkms_vars *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dkms_vars *, dkms_vars_free);
int dkms_vars_set(struct dkms_vars *v, const char *name, size_t index, const char *value);
/* NULL when unset. */
const char *dkms_vars_get(const struct dkms_vars *v, const char *name, size_t index);
/* Highest set index + 1 (0 when the variable is unset). */
size_t dkms_vars_size(const struct dkms_vars *v, const char *name);
/* Call fn for each set NAME[INDEX], in the order they were set. */
void dkms_vars_foreach(const struct dkms_vars *v,
		       void (*fn)(const char *name, size_t index, const char *value,
				  void *userdata),
		       void *userdata);

/* The directives DKMS 3.0.10 reads from dkms.conf (its dkms_conf_variables, upper case),
 * NULL-terminated; the runner prints these. */
extern const char *const dkms_directives[];
bool dkms_directive_known(const char *name);

/* Parse a dump. On a malformed one: -EBADMSG and *ret_error (if not NULL) says what and
 * where in one line ("record 3: index '01' of 'MAKE' is not a plain decimal number"). */
int dkms_vars_parse(const void *data, size_t size, struct dkms_vars **ret, char **ret_error);
