/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The journal side of log.c, kept apart so that programs which never log to the journal (the
 * dm2 front end) do not load libsystemd and its dependencies. */
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "shared/log.h"

static void journal_send(int level, const char *file, int line, const char *func,
			 const char *message, const char *program, const char *recipe,
			 const char *kernel, const char *job)
{
	char cf[512], cl[32];

	snprintf(cf, sizeof(cf), "CODE_FILE=%s", file);
	snprintf(cl, sizeof(cl), "CODE_LINE=%d", line);
	(void) sd_journal_send_with_location(cf, cl, func, "MESSAGE=%s", message, "PRIORITY=%i",
					     level, "SYSLOG_IDENTIFIER=%s", program,
					     "DM2_RECIPE=%s", recipe, "DM2_KERNEL=%s", kernel,
					     "DM2_JOB=%s", job, NULL);
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
	if ((unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino) {
		log_journal = journal_send;
		log_set_target(LOG_TARGET_JOURNAL);
	}
}
