/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "shared/macro.h"

/*
 * dm2 recipe lint: what recipe_load() rejects (errors) plus the checks of logic that a
 * loadable recipe can still get wrong (dm2-recipe(5) LINT): empty, overlapping and gapped
 * Kernel= ranges, four-number kernel versions, downloads that nothing verifies, Path=
 * directories that do not exist.
 */

enum lint_severity {
	LINT_ERROR,
	LINT_WARNING,
	_LINT_SEVERITY_MAX,
	_LINT_SEVERITY_INVALID = -EINVAL,
};
DECLARE_STRING_TABLE(lint_severity);

struct lint_diag {
	char *file;
	unsigned line;	 /* 1-based, 0 = the whole file */
	unsigned column; /* 1-based byte column, 0 = unknown */
	enum lint_severity severity;
	char *message;
};

struct lint_result {
	struct lint_diag *diags;
	size_t n;
	size_t n_errors, n_warnings;
};

/* Lint one recipe file, appending its findings to res. Fails only when the file cannot be
 * read (-ENOENT, -EISDIR, ...) or on allocation failure; findings are not failures. A
 * file's findings are appended in the order of their line and column. */
int recipe_lint_file(const char *path, struct lint_result *res);
void lint_result_done(struct lint_result *res);

/* "Did you mean" for the parser: the known key of section (or section name, with key
 * NULL) that an unknown one is a likely misspelling of, or NULL. */
const char *recipe_suggest_key(const char *section, const char *key);
const char *recipe_suggest_section(const char *section);
