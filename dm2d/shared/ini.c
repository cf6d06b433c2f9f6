/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "shared/ini.h"
#include "shared/util.h"

int ini_parse_string(const char *text, ini_item_cb item, ini_error_cb error, void *userdata)
{
	_cleanup_free_ char *section = NULL, *copy = strdup(text);
	char *p = copy, *line;
	unsigned n = 0;
	bool failed = false;
	int r;

	if (!copy)
		return -ENOMEM;

	while ((line = strsep(&p, "\n"))) {
		char *l, *eq;

		n++;
		l = strstrip(line);
		if (*l == '\0' || *l == '#' || *l == ';')
			continue;

		if (*l == '[') {
			size_t k = strlen(l);
			if (k < 3 || l[k - 1] != ']') {
				failed = true;
				if (error)
					error(n, "malformed section header", userdata);
				continue;
			}
			free(section);
			section = strndup(l + 1, k - 2);
			if (!section)
				return -ENOMEM;
			r = item(section, NULL, NULL, n, userdata);
			if (r < 0)
				return r;
			continue;
		}

		eq = strchr(l, '=');
		if (!eq) {
			failed = true;
			if (error)
				error(n, "expected 'Key=Value' or '[Section]'", userdata);
			continue;
		}
		if (!section) {
			failed = true;
			if (error)
				error(n, "assignment outside of any [Section]", userdata);
			continue;
		}
		*eq = '\0';
		char *key = strstrip(l), *value = strstrip(eq + 1);
		if (*key == '\0') {
			failed = true;
			if (error)
				error(n, "empty key", userdata);
			continue;
		}
		r = item(section, key, value, n, userdata);
		if (r < 0)
			return r;
	}
	return failed ? -EBADMSG : 0;
}
