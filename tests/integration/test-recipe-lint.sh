# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2 recipe lint's checks of logic (issue 18): each bad recipe under tests/data/recipes/lint/
# gets its findings, sorted by file and line, warnings marked; the exit code is 3 only when
# there is an error; --json carries file, line, column, severity, message and "version".
set -euo pipefail
. "$DM2_SOURCE_DIR/tests/integration/lib.sh"

T=$(mktemp -d /tmp/dm2-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
D=tests/data/recipes/lint
cd "$DM2_SOURCE_DIR"

# lint FILE CODE: the exit code, and stderr appended to $T/actual.
lint() {
	local rc=0
	"$DM2" recipe lint "$D/$1" 2>>"$T/actual" >/dev/null || rc=$?
	[ "$rc" = "$2" ] || fail "lint $1: exit $rc, expected $2"
}
: >"$T/actual"
lint empty-range.recipe 3
lint four-numbers.recipe 3
lint gap.recipe 0
lint missing-path.recipe 0
lint overlap.recipe 0
lint typo.recipe 3
lint unverified.recipe 3
lint module-directory.recipe 3
check_diff "$D/expected.txt" "$T/actual"
pass "each check's finding, at its line, in line order"

# A good recipe stays clean: no output at all.
"$DM2" recipe lint recipes/dm2-example.recipe 2>"$T/err"
[ ! -s "$T/err" ] || fail "dm2-example.recipe: $(cat "$T/err")"
pass "the shipped example lints clean"

# --json: one document for all files, same findings in the same order, with columns.
rc=0
"$DM2" --json recipe lint "$D/gap.recipe" "$D/typo.recipe" >"$T/json" 2>"$T/err" || rc=$?
[ "$rc" = 3 ] || fail "--json: exit $rc"
[ ! -s "$T/err" ] || fail "--json wrote to stderr: $(cat "$T/err")"
python3 - "$T/json" <<'PY' || fail "--json: unexpected document"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["version"] == 1, j
assert (j["errors"], j["warnings"]) == (6, 1), j
d = j["diagnostics"]
assert [x["file"].rsplit("/", 1)[1] for x in d] == ["gap.recipe"] + ["typo.recipe"] * 6, d
g = d[0]
assert (g["line"], g["column"], g["severity"]) == (14, 8, "warning"), g
assert "6.8 <6.9" in g["message"], g
k = [x for x in d if x["line"] == 9][0]
assert (k["column"], k["severity"]) == (1, "error"), k
assert "did you mean 'Kernel='" in k["message"], k
lines = [x["line"] for x in d[1:]]
assert lines == sorted(lines), lines
PY
pass "--json diagnostics"
