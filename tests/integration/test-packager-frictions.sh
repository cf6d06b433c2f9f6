# SPDX-License-Identifier: LGPL-2.1-or-later
# The smaller frictions of issue 18, each against real builds: a quiet dm2 install (events
# with -v), per-module install directories, ORIGIN "-" for jobs with no module, aligned
# status columns, a file conflict naming the recipe that owns the file, a failure's exit
# code winning over a skip, a hint for a module whose sources are in a subdirectory, and
# a warning for --version outside the source's Kernel= range.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
cp -r "$DM2_SOURCE_DIR/tests/data/recipes/frictions/." "$RECIPES/"
chmod -R a+rX "$RECIPES"
MODS=$ROOT/lib/modules/$KVER

# ---- recipe list: columns as wide as their cells (the paths here are over 40) ----
dm2 recipe list >"$T/list"
python3 - "$T/list" <<'PY' || fail "recipe list: $(cat "$T/list")"
import sys
lines = open(sys.argv[1]).read().splitlines()
starts = [lines[0].index(c) for c in ["VERSIONS", "ORIGIN", "FILE", "DESCRIPTION"]]
assert len(lines) > 5, lines
described = 0
for line in lines[1:]:
    assert line == line.rstrip(), line
    for s in starts[:3] + starts[3:] * (len(line) > starts[3]):
        assert line[s - 2:s] == "  " and line[s] != " ", (line, s)
    described += len(line) > starts[3]
assert described == 1, lines
PY
pass "recipe list columns line up"

# ---- quiet by default, events with -v; ModuleDirectory= ----
dm2 install pm -k "$KVER" >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "install pm"; }
if grep -q "event:" "$T/err"; then fail "events without -v: $(cat "$T/err")"; fi
grep -q "^pm 1.0 for $KVER: installed" "$T/out" || fail "no summary: $(cat "$T/out")"
[ -f "$MODS/updates/dm2/pm_a.ko" ] || fail "pm_a.ko not in updates/dm2"
[ -f "$MODS/extra/dm2-pm/pm_b.ko" ] || fail "pm_b.ko not in its ModuleDirectory=: $(find "$MODS" -name '*.ko')"
[ ! -e "$MODS/updates/dm2/pm_b.ko" ] || fail "pm_b.ko also in updates/dm2"
grep -q '^extra/dm2-pm/pm_b.ko:' "$MODS/modules.dep" || fail "modules.dep lacks pm_b"
pass "quiet install; pm_b.ko in its own directory"

dm2 -v install pm -k "$KVER" --force >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "install -v"; }
grep -q "event: job-state, .*recipe=pm, kernel=$KVER, state=installing" "$T/err" ||
	fail "no events with -v: $(cat "$T/err")"
pass "-v shows the job-state events"

# ---- a conflict between two recipes names the owner ----
expect_exit 8 dm2 install pm-clash -k "$KVER" >"$T/out" 2>&1
grep -q "updates/dm2/pm_a.ko' is installed by recipe 'pm'" "$T/out" "$T/out" ||
	fail "conflict message: $(cat "$T/out")"
pass "the conflict names recipe 'pm'"

# ---- skipped then failed: the failure's code (5), in either order ----
expect_exit 5 dm2 install skipme failme -k "$KVER" >/dev/null 2>&1
expect_exit 5 dm2 install failme skipme -k "$KVER" >/dev/null 2>&1
expect_exit 10 dm2 install skipme -k "$KVER" >/dev/null 2>&1
pass "a failure wins over a skip"

# ---- ORIGIN: "-" for the failed and skipped rows; aligned columns ----
dm2 status >"$T/status"
python3 - "$T/status" "$KVER" <<'PY' || fail "status table: $(cat "$T/status")"
import sys
lines = open(sys.argv[1]).read().splitlines()
head = lines[0]
cols = ["NAME", "VERSION", "KERNEL", "ARCH", "SIGNED-BY", "ORIGIN", "WHEN", "DIR", "STATE"]
starts = [head.index(c) for c in cols]
rows = {}
for line in lines[1:]:
    # Every cell starts where its heading does, after two spaces.
    for s in starts[1:]:
        assert line[s - 2:s] == "  " and line[s] != " ", (line, s)
    cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line)])]
    rows[cells[0]] = dict(zip(cols, cells))
assert rows["pm"]["ORIGIN"] in ("built", "cache"), rows["pm"]
assert rows["failme"]["ORIGIN"] == "-", rows["failme"]
assert rows["skipme"]["ORIGIN"] == "-", rows["skipme"]
assert rows["pm"]["KERNEL"] == sys.argv[2], rows["pm"]
PY
pass "ORIGIN and column alignment"

# ---- the module's sources in a subdirectory without a top Kbuild ----
expect_exit 5 dm2 install subdir -k "$KVER" >"$T/out" 2>&1
grep -q "module 'subm.ko' was not produced; 'subm.c' is in the subdirectory 'sub': does \[Build\] need Directory=sub?" \
	"$T/out" || fail "no subdirectory hint: $(cat "$T/out")"
pass "'not produced' names the subdirectory"

# ---- --version outside its Kernel= range: built, with a warning ----
dm2 build ranged -k "$KVER" --version 1.0 >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "build --version"; }
grep -q "Version '1.0' of 'ranged' is for kernels '<3.0', which '$KVER' is not; building it anyway" \
	"$T/err" || fail "no range warning: $(cat "$T/err")"
dm2 build ranged -k "$KVER" --version 2.0 >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "build 2.0"; }
if grep -q "is for kernels" "$T/err"; then fail "warning inside the range: $(cat "$T/err")"; fi
pass "--version outside Kernel= warns"
