/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "kbw-internal.h"

static kbw_log_fn log_fn;
static void *log_userdata;

KBW_EXPORT void kbw_set_log_fn(kbw_log_fn fn, void *userdata)
{
	log_fn = fn;
	log_userdata = userdata;
}

void kbw_log(int priority, const char *format, ...)
{
	char buf[1024];
	va_list ap;

	if (!log_fn)
		return;
	va_start(ap, format);
	vsnprintf(buf, sizeof(buf), format, ap);
	va_end(ap);
	log_fn(priority, buf, log_userdata);
}
