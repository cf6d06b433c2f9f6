# SPDX-License-Identifier: LGPL-2.1-or-later
# libkbuild-wrap.so exports exactly the kbw_* functions of libkbuild-wrap.h, each versioned
# LIBKBUILD_WRAP_1 through libkbuild-wrap.sym, and nothing else; a program links against it.
set -euo pipefail
: "${DM2_BUILD_DIR:?}" "${DM2_SOURCE_DIR:?}"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

SO=$DM2_BUILD_DIR/libkbuild-wrap.so
T=$(mktemp -d /tmp/dm2-kbw-abi.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -e "$SO" ] || fail "$SO is not built"

# Defined dynamic symbols (nm may print them as NAME@@VERSION), minus the version node.
nm -D --defined-only "$SO" | awk '$3 !~ /^LIBKBUILD_WRAP_1(@|$)/ { print $3 }' |
	sed 's/@.*//' | sort >"$T/exported"
grep -v '^kbw_' "$T/exported" && fail "non-kbw_ symbols exported (above)"
grep -oE '\bkbw_[a-z0-9_]+\(' "$DM2_SOURCE_DIR/libkbuild-wrap/libkbuild-wrap.h" | tr -d '(' |
	sort -u >"$T/header"
sed -n 's/^\t\(kbw_[a-z0-9_]*\);$/\1/p' "$DM2_SOURCE_DIR/libkbuild-wrap/libkbuild-wrap.sym" |
	sort >"$T/script"
diff -u "$T/header" "$T/exported" || fail "exports differ from libkbuild-wrap.h"
diff -u "$T/header" "$T/script" || fail "libkbuild-wrap.sym differs from libkbuild-wrap.h"
objdump -T "$SO" | grep ' kbw_' | grep -v LIBKBUILD_WRAP_1 && fail "unversioned symbols (above)"

cat >"$T/use.c" <<'EOF'
#include <libkbuild-wrap.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	return strcmp(kbw_compression_to_string(KBW_COMPRESSION_XZ), "xz") != 0;
}
EOF
# The same sanitizer flags as the library, which may have been built with them.
flags=$(grep -q asan "$SO" 2>/dev/null && echo "-fsanitize=address,undefined" || true)
# shellcheck disable=SC2086
gcc $flags -I"$DM2_SOURCE_DIR/libkbuild-wrap" "$T/use.c" -L"$DM2_BUILD_DIR" -lkbuild-wrap \
	-o "$T/use" || fail "cannot link against libkbuild-wrap.so"
LD_LIBRARY_PATH=$DM2_BUILD_DIR ASAN_OPTIONS=detect_leaks=0 "$T/use" || fail "program failed"
echo "ok - $(wc -l <"$T/exported") kbw_* symbols, all versioned LIBKBUILD_WRAP_1"
