# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 12, attack 12: what a build writes must not control the admin's terminal, and
# --json must stay valid JSON whatever bytes a build or a recipe holds. A module whose
# Kbuild prints an error line with a clear-screen, a window title, BEL, a C1 CSI and a
# byte that is not UTF-8 fails to build; that line is the reason `dm2 status` shows.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
NAME=t-hostile
SRC=$RECIPES/$NAME-src
mkdir -p "$SRC"
cat >"$SRC/Kbuild" <<'EOF'
obj-m := dm2t_hostile.o
$(shell printf 'ERROR: \033[2J\033]0;pwn\007 \302\233 \377 hostile\n' >&2)
$(error stop)
EOF
printf '// SPDX-License-Identifier: GPL-2.0\n' >"$SRC/dm2t_hostile.c"
cat >"$RECIPES/$NAME.recipe" <<EOF
[Recipe]
Name=$NAME
License=GPL-2.0-only

[Source]
Version=1.0
Path=$NAME-src

[Build]
Modules=dm2t_hostile
EOF
chmod -R a+rX "$RECIPES"

# has_raw FILE: the file holds ESC, BEL, CR, the C1 CSI or the invalid byte as they are.
has_raw() {
	LC_ALL=C grep -q $'[\033\007\r\377]\|\302\233' "$1"
}

expect_exit 5 dm2 install "$NAME" -k "$KVER" >"$T/install.out" 2>&1
LOG=$ROOT/var/lib/dm2/logs/$NAME/$KVER/build.log
has_raw "$LOG" || fail "the build log does not hold the hostile line; test is broken"

# ---- dm2 status: the reason column is escaped ----
dm2 status >"$T/status"
grep -qF 'ERROR: \x1b[2J\x1b]0;pwn\x07 \xc2\x9b \xff hostile' "$T/status" ||
	fail "status does not show the escaped reason: $(cat -v "$T/status")"
! has_raw "$T/status" || fail "dm2 status printed control characters: $(cat -v "$T/status")"
pass "dm2 status escapes the reason"

# ---- dm2 status --json: valid UTF-8 JSON, control characters as \u escapes ----
dm2 status --json >"$T/status.json"
! has_raw "$T/status.json" || fail "--json holds raw control bytes: $(cat -v "$T/status.json")"
python3 -c '
import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8", errors="strict"))
r = j["modules"][0]["reason"]
assert "\x1b[2J\x1b]0;pwn\x07 \x9b \ufffd hostile" in r, repr(r)
' "$T/status.json" || fail "--json is not valid or lost the reason: $(cat -v "$T/status.json")"
pass "dm2 status --json is valid JSON"

# ---- dm2 log: raw into a pipe, escaped on a terminal ----
dm2 log "$NAME" -k "$KVER" >"$T/log.pipe"
cmp -s "$LOG" "$T/log.pipe" || fail "dm2 log into a pipe changed the log"
script -qec "'$DM2' --root '$ROOT' --recipes '$RECIPES' log '$NAME' -k '$KVER'" /dev/null |
	tr -d '\r' >"$T/log.tty"
grep -qF 'ERROR: \x1b[2J\x1b]0;pwn\x07 \xc2\x9b \xff hostile' "$T/log.tty" ||
	fail "dm2 log on a terminal does not show the escaped line: $(cat -v "$T/log.tty")"
! has_raw "$T/log.tty" || fail "dm2 log on a terminal printed control characters"
pass "dm2 log escapes on a terminal only"

# ---- recipes: invalid UTF-8 is refused by lint with FILE:LINE ----
printf '[Recipe]\nName=latin1\nDescription=caf\351 cr\350me\nLicense=GPL\n\n[Source]\nVersion=1\nURL=https://example.org/x.tar.gz\n\n[Build]\nModules=x\n' \
	>"$T/latin1.recipe"
expect_exit 3 dm2 recipe lint "$T/latin1.recipe" 2>"$T/lint.err"
grep -qF "$T/latin1.recipe:3: Description= is not valid UTF-8" "$T/lint.err" ||
	fail "lint: $(cat -v "$T/lint.err")"
# A Version= with a quote is still one JSON string in recipe list.
printf '[Recipe]\nName=quoted\nLicense=GPL\n\n[Source]\nVersion=1"x\nURL=https://example.org/x.tar.gz\n\n[Build]\nModules=x\n' \
	>"$RECIPES/quoted.recipe"
dm2 recipe list --json >"$T/list.json"
python3 -c '
import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8", errors="strict"))
assert j["version"] == 1, j
assert [r["versions"] for r in j["recipes"] if r["name"] == "quoted"] == [["1\"x"]], j
' "$T/list.json" || fail "recipe list --json: $(cat "$T/list.json")"
pass "invalid UTF-8 refused by lint, recipe list --json valid"
