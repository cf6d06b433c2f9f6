/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "shared/macro.h"

/*
 * A small INI reader shared by recipes and dm2d.conf: "[Section]" headers, "Key=Value" lines,
 * '#' and ';' comments, blank lines, CRLF tolerated, no line continuations. Values are stripped
 * of surrounding white space. The callback gets the 1-based line number of every assignment and
 * returns < 0 to stop. Syntax errors call error_cb (if given) with the line and a message and
 * then make ini_parse() fail with -EBADMSG after the whole file was read, so every error of a
 * file is reported, not just the first. At each section header the callback is called once with
 * key and value NULL, so a repeated section (several [Source]) can start a new record.
 */
typedef int (*ini_item_cb)(const char *section, const char *key, const char *value,
			   unsigned line, void *userdata);
typedef void (*ini_error_cb)(unsigned line, const char *message, void *userdata);

int ini_parse_string(const char *text, ini_item_cb item, ini_error_cb error, void *userdata);
