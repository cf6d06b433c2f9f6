/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <sys/stat.h>

#include "shared/log.h"

static int max_level = LOG_INFO;
static enum log_target target = LOG_TARGET_STDERR;
static const char *program = "dm2";
/* Set by log_target_auto() (log-journal.c), so that only the programs that may log to the
 * journal link libsystemd: the dm2 front end starts faster without it. */
log_journal_fn log_journal;
static char ctx_recipe[256], ctx_kernel[256], ctx_job[64];

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

void log_set_program(const char *name)
{
	program = name;
}

void log_set_target(enum log_target t)
{
	target = t;
}


static void copy_field(char *dst, size_t n, const char *src)
{
	if (!src) {
		dst[0] = '\0';
		return;
	}
	snprintf(dst, n, "%s", src);
}

void log_set_context(const char *recipe, const char *kernel, const char *job)
{
	copy_field(ctx_recipe, sizeof(ctx_recipe), recipe);
	copy_field(ctx_kernel, sizeof(ctx_kernel), kernel);
	copy_field(ctx_job, sizeof(ctx_job), job);
}

int log_internal(int level, int error, const char *file, int line, const char *func,
		 const char *format, ...)
{
	char buf[2048];
	va_list ap;

	errno = error;
	va_start(ap, format);
	vsnprintf(buf, sizeof(buf), format, ap);
	va_end(ap);

	if (target == LOG_TARGET_JOURNAL && log_journal)
		log_journal(level, file, line, func, buf, program, ctx_recipe, ctx_kernel, ctx_job);
	else
		fprintf(stderr, "%s: %s\n", program, buf);

	return -error;
}
