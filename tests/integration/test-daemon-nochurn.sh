#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 16: a restart changes nothing. dm2d used to say "The build tree of kernel 'X'
# changed, rebuilding." on every start and reinstall every module (the jobs recorded a
# sha256 identity, the daemon compared a stat stamp): start, stop, start, trigger twice:
# no job, no depmod, no "changed", the installed files untouched. A real change of the
# tree is still noticed.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
make_recipe t-calm dm2t_calm
mkdir -p "$ROOT/lib/modules/$KVER"
make_other_tree "$ROOT/usr/src/tree" "$KVER"
ln -s "$ROOT/usr/src/tree" "$ROOT/lib/modules/$KVER/build"
KO=$ROOT/lib/modules/$KVER/updates/dm2/dm2t_calm.ko

start_daemon
dm2 trigger "$KVER" --wait --timeout 240 >/dev/null || fail "first trigger failed"
module_installed "$KVER" dm2t_calm || fail "t-calm not installed"
stop_daemon
before=$(stat -c '%i %Y' "$KO")
mark=$(wc -l <"$T/dm2d.log")

start_daemon
sleep 3 # SettleSec=1: anything the start would do is done
dm2 trigger "$KVER" --wait --timeout 60 >/dev/null || fail "second trigger failed"
dm2 trigger --wait --timeout 60 >/dev/null || fail "third trigger failed"
stop_daemon
after=$(tail -n +"$((mark + 1))" "$T/dm2d.log")
grep -q "changed, rebuilding" <<<"$after" && fail "a restart counted as a changed tree"
grep -q "Building '" <<<"$after" && fail "a restart or trigger ran a job:"$'\n'"$after"
grep -q "depmod" <<<"$after" && fail "a restart or trigger ran depmod"
[ "$(stat -c '%i %Y' "$KO")" = "$before" ] || fail "the installed module was rewritten"

# The tree is replaced (headers reinstalled under the same release): rebuilt once.
sleep 1.1
cp "$ROOT/usr/src/tree/.config" "$T/config"
mv "$T/config" "$ROOT/usr/src/tree/.config"
mark=$(wc -l <"$T/dm2d.log")
start_daemon
wait_for 60 grep -q "The build tree of kernel '$KVER' changed" "$T/dm2d.log" ||
	fail "a changed tree was not noticed"
dm2 trigger "$KVER" --wait --timeout 240 >/dev/null || fail "trigger after the change failed"
stop_daemon
n=$(tail -n +"$((mark + 1))" "$T/dm2d.log" | grep -c "Building 't-calm'" || true)
[ "$n" = 1 ] || fail "t-calm ran $n times after the tree changed, expected once"
echo "ok"
