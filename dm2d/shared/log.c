/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static enum log_target target = LOG_TARGET_STDERR;
static const char *program = "dm2";
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

void log_target_auto(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd sets JOURNAL_STREAM=dev:inode for the stream it connected to stderr. */
	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return;
	if (fstat(STDERR_FILENO, &st) < 0)
		return;
	if ((unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino)
		target = LOG_TARGET_JOURNAL;
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

	if (target == LOG_TARGET_JOURNAL) {
		char cf[512], cl[32];

		snprintf(cf, sizeof(cf), "CODE_FILE=%s", file);
		snprintf(cl, sizeof(cl), "CODE_LINE=%d", line);
		(void) sd_journal_send_with_location(cf, cl, func, "MESSAGE=%s", buf,
						     "PRIORITY=%i", level,
						     "SYSLOG_IDENTIFIER=%s", program,
						     "DM2_RECIPE=%s", ctx_recipe,
						     "DM2_KERNEL=%s", ctx_kernel,
						     "DM2_JOB=%s", ctx_job, NULL);
	} else
		fprintf(stderr, "%s: %s\n", program, buf);

	return -error;
}
