/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "shared/macro.h"

/*
 * Logging for the dm2 programs (never for the libraries: libkbuild-wrap and cache return errors
 * and report through callbacks). In the foreground lines go to stderr as "dm2: message"; under
 * systemd (JOURNAL_STREAM matches stderr, or log_open_journal()) they go to the journal with the
 * structured fields DM2_RECIPE, DM2_KERNEL and DM2_JOB taken from the current log context.
 *
 * log_*_errno(error, ...) log with errno set to |error| so that %m works, and return -|error|.
 */

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_JOURNAL,
};

void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_program(const char *name);
void log_set_target(enum log_target target);
/* Pick the journal when our stderr is connected to it (log-journal.c; links libsystemd). */
void log_target_auto(void);
typedef void (*log_journal_fn)(int level, const char *file, int line, const char *func,
			       const char *message, const char *program, const char *recipe,
			       const char *kernel, const char *job);
extern log_journal_fn log_journal;

/* Structured fields attached to every message until cleared (pass NULL to clear). */
void log_set_context(const char *recipe, const char *kernel, const char *job);

int log_internal(int level, int error, const char *file, int line, const char *func,
		 const char *format, ...) _printf_(6, 7);

#define log_full_errno(level, error, ...)                                                  \
	({                                                                                 \
		int _level_ = (level), _e_ = (error);                                      \
		_e_ = _e_ < 0 ? -_e_ : _e_;                                               \
		(log_get_max_level() >= _level_)                                           \
			? log_internal(_level_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__) \
			: -_e_;                                                            \
	})
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
