/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>

#include "libkbuild-wrap.h"

/* Symbols of the public API; everything else stays hidden (-fvisibility=hidden). */
#define KBW_EXPORT __attribute__((__visibility__("default")))

/* Report through the callback set with kbw_set_log_fn(); never prints by itself. */
void kbw_log(int priority, const char *format, ...) __attribute__((__format__(printf, 2, 3)));
