#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A `dm2 install` that is stopped in the middle of a build takes the build with it: kbuild
# runs in its own session, so SIGTERM (dm2d stopping, systemd) and kill -9 must still end
# make and everything it started. After SIGTERM dm2 dies of the signal and the job goes back
# to queued (a stop is not a failure); after kill -9 nothing of the build survives either,
# and the next dm2 puts the job it left in building back to queued.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
# A build that takes "forever": Kbuild runs a sleep with a value no other test uses, so the
# build's processes can be found (and, should the test fail, killed) by it.
MARK="$((500 + RANDOM % 400)).$$"
build_pids() { pgrep -f "^sleep $MARK\$" || true; }
kill_leftovers() {
	local p
	for p in $(build_pids); do kill -KILL "$p" 2>/dev/null || true; done
}
on_exit() {
	local rc=$?
	kill_leftovers
	(exit $rc)
	lib_cleanup
}
trap on_exit EXIT

mkdir -p "$RECIPES/slow-src"
printf 'obj-m := slow_mod.o\n$(info $(shell sleep %s))\n' "$MARK" >"$RECIPES/slow-src/Kbuild"
printf '#include <linux/module.h>\nMODULE_LICENSE("GPL");\n' >"$RECIPES/slow-src/slow_mod.c"
printf '[Recipe]\nName=slow\nLicense=GPL-2.0-only\n[Source]\nVersion=1\nPath=slow-src\n[Build]\nModules=slow_mod\n' \
	>"$RECIPES/slow.recipe"
chmod -R a+rX "$RECIPES"
running() { [ -n "$(build_pids)" ]; }
gone() { [ -z "$(build_pids)" ]; }

# ---- SIGTERM: the build's whole process group goes, dm2 dies of SIGTERM, the job says why
# Not the dm2() function: $! must be dm2 itself, not a subshell running it.
"$DM2" --root "$ROOT" --recipes "$RECIPES" install slow -k "$KVER" >"$T/out" 2>&1 &
pid=$!
wait_for 120 running
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ $rc = 143 ] || fail "dm2 exited $rc after SIGTERM, expected 143 (killed by SIGTERM): $(cat "$T/out")"
wait_for 10 gone
json_get "[m['state'] + ' ' + (m.get('reason') or '') for m in j['modules'] if m['name'] == 'slow'][0]" \
	>"$T/state"
grep -q '^queued' "$T/state" || fail "job after SIGTERM: $(cat "$T/state")"
grep -q "interrupted by signal TERM; it goes back to the queue" "$T/out" ||
	fail "dm2 did not say why it stopped: $(cat "$T/out")"
[ -z "$(ls -A "$ROOT/var/lib/dm2/work" 2>/dev/null)" ] || fail "work directory left behind"
pass "SIGTERM stops the build with its process group; the job is queued, not failed"

# ---- kill -9: no handler runs, and still nothing of the build may keep compiling ----------
"$DM2" --root "$ROOT" --recipes "$RECIPES" install slow -k "$KVER" >"$T/out" 2>&1 &
pid=$!
wait_for 120 running
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
wait_for 10 gone
pass "kill -9 of dm2 stops the build too"

# ---- the job kill -9 left in building is run again from queued, and finishes -------------
json_get "[m['state'] for m in j['modules'] if m['name'] == 'slow'][0]" >"$T/state"
[ "$(cat "$T/state")" = building ] || fail "job after kill -9: $(cat "$T/state")"
printf 'obj-m := slow_mod.o\n' >"$RECIPES/slow-src/Kbuild"
dm2 install slow -k "$KVER" >"$T/out" 2>&1 || fail "install after kill -9: $(cat "$T/out")"
grep -q "1 interrupted job(s) went back to the queue" "$T/out" ||
	fail "the interrupted job did not start over from queued: $(cat "$T/out")"
json_get "[m['state'] for m in j['modules'] if m['name'] == 'slow'][0]" >"$T/state"
[ "$(cat "$T/state")" = installed ] || fail "job after the second install: $(cat "$T/state")"
pass "a job left in building runs again from queued"
