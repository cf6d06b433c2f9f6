/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers shared by the libFuzzer targets in fuzz/ (fuzz/README.md). */

#include <stddef.h>
#include <stdint.h>

#include "shared/macro.h"

/* The entry points libFuzzer calls. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * A scratch directory of this process, made on first use under $DM2_FUZZ_TMPDIR, else
 * /dev/shm (files are written for every input: tmpfs keeps that cheap), else $TMPDIR or
 * /tmp; removed at exit. Aborts when none can be made: a fuzzer without it tests nothing.
 */
const char *fuzz_tmpdir(void);
/* An absolute path below fuzz_tmpdir(); caller frees. */
char *fuzz_path(const char *rel);

/* Write data to path (created or truncated, 0644); aborts on failure. */
void fuzz_write_file(const char *path, const void *data, size_t size);
/* The input as a NUL-terminated string (it may hold NUL bytes itself); caller frees. */
char *fuzz_strndup(const uint8_t *data, size_t size);
/* Silence dm2's log (the targets feed it garbage on purpose); DM2_FUZZ_DEBUG=1 keeps it.
 */
void fuzz_quiet_log(void);
