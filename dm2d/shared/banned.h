/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Functions that are too easy to misuse. macro.h includes this after the system headers that
 * declare them, so a call to one of these in dm2 code fails to compile. */
#undef strcpy
#define strcpy(...) banned_function_strcpy_use_strdup_or_memcpy
#undef sprintf
#define sprintf(...) banned_function_sprintf_use_snprintf_or_asprintf
#undef strtok
#define strtok(...) banned_function_strtok_use_strsep_or_strtok_r
#undef atoi
#define atoi(...) banned_function_atoi_use_safe_atoi
#undef localtime
#define localtime(...) banned_function_localtime_use_localtime_r
