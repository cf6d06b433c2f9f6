#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 17 (found by the soak): `dm2 uninstall NAME -k KVER` while dm2d builds NAME for KVER
# forgot the running job's row, so the job failed at its end with "Failed to record state of
# job N ... No such file or directory" and status showed nothing. uninstall now waits for the
# job (its lock), then removes what it installed; and dm2d, finding the row of a job that
# succeeded gone, no longer calls the job failed (with its success line as the reason).
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
mkdir -p "$ROOT/lib/modules/$KVER"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"
make_recipe t-u dm2t_u
# Stays in "building" while $HOLD-t-u exists.
echo "\$(shell while [ -e $HOLD-t-u ]; do sleep 0.2; done)" >>"$RECIPES/t-u-src/Kbuild"
touch "$HOLD-t-u"
start_daemon
wait_for 120 state_is t-u "$KVER" building || fail "t-u never reached building"

rc=0
dm2 uninstall t-u -k "$KVER" >"$T/uninstall.out" 2>&1 &
upid=$!
sleep 2
kill -0 "$upid" 2>/dev/null || { wait "$upid" || rc=$?; cat "$T/uninstall.out"; \
	fail "uninstall did not wait for the running job (exit $rc)"; }
rm "$HOLD-t-u"
wait "$upid" || rc=$?
[ $rc = 0 ] || { cat "$T/uninstall.out"; fail "uninstall exited $rc"; }
grep -q "Failed to record state" "$T/dm2d.log" && fail "the job lost its row: $(grep -m1 'Failed to record' "$T/dm2d.log")"
wait_for 30 grep -q "state=installed" "$T/dm2d.log" || fail "the job did not finish installing"
grep -q "state=failed" "$T/dm2d.log" && fail "dm2d calls the job failed: $(grep -m1 'state=failed' "$T/dm2d.log")"
module_installed "$KVER" dm2t_u && fail "the module is still installed after uninstall"
st=$(dm2 status t-u -k "$KVER" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["modules"][0]["state"])')
[ "$st" = not-built ] || fail "after uninstall t-u is '$st', expected not-built"
stop_daemon
echo "ok"
