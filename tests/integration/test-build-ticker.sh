# SPDX-License-Identifier: LGPL-2.1-or-later
# On a terminal (script(1) gives dm2 a pty) a build shows one updating line on stderr: the
# elapsed time and the last line of the build log (the compiler's); not on a pipe.
set -euo pipefail
. "$DM2_SOURCE_DIR/tests/integration/lib.sh"

command -v script >/dev/null || fail "script(1) (util-linux) is needed"
lib_init
lib_copy_recipe dm2-example

# A pipe: nothing but the usual lines, no carriage return, no escape sequence.
dm2 install dm2-example -k "$KVER" --force >"$T/out" 2>"$T/err" || fail "install: $(cat "$T/err")"
if grep -q $'\r\|\033' "$T/out" "$T/err"; then
	fail "control characters without a terminal: $(cat -v "$T/err")"
fi

# A terminal: "\r\033[K  [0:0N] ...CC [M]..." lines, then the line cleared.
script -qec "$DM2 --root $ROOT --recipes $RECIPES install dm2-example -k $KVER --force" \
	"$T/ts" >/dev/null </dev/null || fail "install on a pty: $(cat -v "$T/ts")"
grep -aq $'\r\033\\[K  \\[0:0[0-9]\\] ' "$T/ts" || fail "no elapsed time line: $(cat -v "$T/ts")"
grep -aqE $'\\[0:0[0-9]\\] +(CC|LD|MODPOST)' "$T/ts" || fail "no compiler line: $(cat -v "$T/ts")"
grep -aq $'\r\033\\[Kdm2-example 1.0 for .*: signing' "$T/ts" || fail "line not cleared: $(cat -v "$T/ts")"
pass "a build on a terminal shows elapsed time and the last compiler line; a pipe gets none"
