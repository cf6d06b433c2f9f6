# SPDX-License-Identifier: LGPL-2.1-or-later
# libkbuild-wrap.so exports exactly the kbw_* functions of libkbuild-wrap.h, each with the
# version of its section in libkbuild-wrap.sym (LIBKBUILD_WRAP_1 never changes; later symbols
# are in LIBKBUILD_WRAP_2, ...), and nothing else; a program links against it.
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
nm -D --defined-only "$SO" | awk '$3 !~ /^LIBKBUILD_WRAP_[0-9]+(@|$)/ { print $3 }' |
	sed 's/@.*//' | sort >"$T/exported"
grep -v '^kbw_' "$T/exported" && fail "non-kbw_ symbols exported (above)"
grep -oE '\bkbw_[a-z0-9_]+\(' "$DM2_SOURCE_DIR/libkbuild-wrap/libkbuild-wrap.h" | tr -d '(' |
	sort -u >"$T/header"
sed -n 's/^\t\(kbw_[a-z0-9_]*\);$/\1/p' "$DM2_SOURCE_DIR/libkbuild-wrap/libkbuild-wrap.sym" |
	sort >"$T/script"
diff -u "$T/header" "$T/exported" || fail "exports differ from libkbuild-wrap.h"
diff -u "$T/header" "$T/script" || fail "libkbuild-wrap.sym differs from libkbuild-wrap.h"
objdump -T "$SO" | grep ' kbw_' | grep -vE 'LIBKBUILD_WRAP_[0-9]+' &&
	fail "unversioned symbols (above)"

# Each symbol carries the version of the section that lists it.
awk '/^LIBKBUILD_WRAP_[0-9]+ *\{/ { v = $1 } /^\tkbw_[a-z0-9_]*;$/ { sub(/;/, ""); print $1 "@@" v }' \
	"$DM2_SOURCE_DIR/libkbuild-wrap/libkbuild-wrap.sym" | sort >"$T/script-versions"
nm -D --defined-only "$SO" | awk '$3 ~ /^kbw_/ { print $3 }' | sort >"$T/versions"
diff -u "$T/script-versions" "$T/versions" || fail "symbol versions differ from libkbuild-wrap.sym"
# The ABI as first released stays in LIBKBUILD_WRAP_1; what came later is not in it.
grep -qx 'kbw_kernel_probe@@LIBKBUILD_WRAP_1' "$T/versions" || fail "kbw_kernel_probe moved"
grep -qx 'kbw_build_cancel_all@@LIBKBUILD_WRAP_2' "$T/versions" ||
	fail "kbw_build_cancel_all is not in LIBKBUILD_WRAP_2"

cat >"$T/use.c" <<'EOF'
#include <libkbuild-wrap.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	kbw_build_cancel_all(); /* nothing in progress: a no-op */
	return strcmp(kbw_compression_to_string(KBW_COMPRESSION_XZ), "xz") != 0;
}
EOF
# The same sanitizer flags as the library, which may have been built with them.
flags=$(grep -q asan "$SO" 2>/dev/null && echo "-fsanitize=address,undefined" || true)
# shellcheck disable=SC2086
gcc $flags -I"$DM2_SOURCE_DIR/libkbuild-wrap" "$T/use.c" -L"$DM2_BUILD_DIR" -lkbuild-wrap \
	-o "$T/use" || fail "cannot link against libkbuild-wrap.so"
LD_LIBRARY_PATH=$DM2_BUILD_DIR ASAN_OPTIONS=detect_leaks=0 "$T/use" || fail "program failed"
objdump -T "$T/use" | grep -q '(LIBKBUILD_WRAP_2) *kbw_build_cancel_all$' ||
	fail "the program does not bind kbw_build_cancel_all@LIBKBUILD_WRAP_2"
echo "ok - $(wc -l <"$T/exported") kbw_* symbols, versioned as in libkbuild-wrap.sym"
