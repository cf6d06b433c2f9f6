/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>
#include <time.h>

#define _unused_ __attribute__((__unused__))
#define _printf_(a, b) __attribute__((__format__(printf, a, b)))
#define _noreturn_ __attribute__((__noreturn__))
#define _cleanup_(f) __attribute__((__cleanup__(f)))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Hand ownership of a pointer or fd to someone else, leaving NULL/-EBADF behind. */
#define TAKE_PTR(p)                          \
	({                                   \
		__typeof__(p) _ptr_ = (p);   \
		(p) = NULL;                  \
		_ptr_;                       \
	})
#define TAKE_FD(fd)                   \
	({                            \
		int _fd_ = (fd);      \
		(fd) = -EBADF;        \
		_fd_;                 \
	})

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)      \
	static inline void func##p(type *p)          \
	{                                            \
		if (*p)                              \
			func(*p);                    \
	}

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		(void) close(fd);
		errno = saved;
	}
	return -EBADF;
}
static inline void closep(int *fd)
{
	safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void *mfree(void *p)
{
	free(p);
	return NULL;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
#define isempty(s) (!(s) || (s)[0] == '\0')
#define strempty(s) ((s) ?: "")
#define strna(s) ((s) ?: "n/a")

/* Enum <-> string tables: DECLARE in the header, DEFINE in the .c file next to the table. */
#define DECLARE_STRING_TABLE(name)                              \
	const char *name##_to_string(int i);                   \
	int name##_from_string(const char *s)
#define DEFINE_STRING_TABLE(name, max)                                  \
	const char *name##_to_string(int i)                             \
	{                                                               \
		if (i < 0 || i >= (int) ELEMENTSOF(name##_table))       \
			return NULL;                                    \
		return name##_table[i];                                 \
	}                                                               \
	int name##_from_string(const char *s)                           \
	{                                                               \
		if (!s)                                                 \
			return -EINVAL;                                 \
		for (int i = 0; i < (int) (max); i++)                   \
			if (name##_table[i] && streq(name##_table[i], s)) \
				return i;                               \
		return -EINVAL;                                         \
	}

/* Last, after the system headers that declare them. */
#include "shared/banned.h"
