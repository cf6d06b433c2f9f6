#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2d end to end: READY=1 on NOTIFY_SOCKET; a kernel whose build tree appears piece by piece
# gets its modules only once the tree is complete; a failing recipe is recorded (reason + log)
# while the others install; a new recipe file is built for every kernel; a second kernel is
# built and, once removed, forgotten; trigger --wait reports; SIGTERM exits cleanly.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
OTHER=6.1.0-99-amd64

make_recipe t-alpha dm2t_alpha
make_recipe t-broken dm2t_broken broken

start_notify_listener
start_daemon
wait_for 10 grep -qx 'READY=1' "$T/notify" || fail "no READY=1 on NOTIFY_SOCKET"
grep -q '^STATUS=' "$T/notify" || fail "no STATUS= on NOTIFY_SOCKET"
unset NOTIFY_SOCKET

# 1. The kernel directory first, then a build link to a tree that fills up entry by entry.
mkdir "$ROOT/lib/modules/$KVER"
TREE=$ROOT/usr/src/linux-headers-$KVER
mkdir -p "$TREE"
ln -s "$TREE" "$ROOT/lib/modules/$KVER/build"
for e in "${TREE_ENTRIES[@]}"; do
	[ "$e" = Module.symvers ] && break
	link_tree_entries "$TREE" "$e"
	sleep 0.3
done
# Everything but Module.symvers: longer than SettleSec, and still nothing may be built.
sleep 3
module_installed "$KVER" dm2t_alpha && fail "built from an incomplete tree"
[ -z "$(job_state t-alpha "$KVER")" ] || fail "job queued for an incomplete tree"
grep -q "not complete yet" "$T/dm2d.log" || fail "incomplete tree not reported"

link_tree_entries "$TREE" Module.symvers
wait_for 180 state_is t-alpha "$KVER" installed || fail "t-alpha not installed"
module_installed "$KVER" dm2t_alpha || fail "t-alpha module file missing"
wait_for 60 state_is t-broken "$KVER" failed || fail "t-broken not failed"
json=$(dm2 status t-broken -k "$KVER" --json)
grep -q '"reason":"[^"]' <<<"$json" || fail "failed job has no reason: $json"
log=$(grep -o '"log":"[^"]*"' <<<"$json" | cut -d'"' -f4)
[ -s "$log" ] || fail "failed job has no build log ('$log')"
grep -q 'this is not C' "$log" || fail "build log does not show the compiler error"
# depmod ran once for the batch.
wait_for 30 test -f "$ROOT/lib/modules/$KVER/modules.dep" || fail "no depmod after the batch"
grep -q 'dm2t_alpha' "$ROOT/lib/modules/$KVER/modules.dep" || fail "modules.dep lacks t-alpha"

# 2. trigger --wait: root may; the failed recipe makes it exit 5 and it names it.
rc=0
out=$(dm2 trigger "$KVER" --wait --timeout 240) || rc=$?
[ $rc = 5 ] || fail "trigger --wait exited $rc, expected 5: $out"
grep -q 't-broken.*failed' <<<"$out" || fail "trigger output does not name the failure: $out"
rc=0
dm2 trigger no-such-kernel --wait >/dev/null 2>&1 || rc=$?
[ $rc = 4 ] || fail "trigger of a missing kernel exited $rc, expected 4"

# 3. A second kernel appears complete at once; a new recipe is then built for both.
make_other_tree "$ROOT/usr/src/linux-headers-$OTHER" "$OTHER"
mkdir "$ROOT/lib/modules/$OTHER"
ln -s "$ROOT/usr/src/linux-headers-$OTHER" "$ROOT/lib/modules/$OTHER/build"
wait_for 180 state_is t-alpha "$OTHER" installed || fail "t-alpha not installed for $OTHER"
vermagic=$(modinfo -F vermagic "$ROOT/lib/modules/$OTHER/updates/dm2/dm2t_alpha.ko")
[[ "$vermagic" == "$OTHER "* ]] || fail "wrong vermagic for $OTHER: $vermagic"

make_recipe t-beta dm2t_beta
wait_for 240 state_is t-beta "$KVER" installed || fail "new recipe not built for $KVER"
wait_for 240 state_is t-beta "$OTHER" installed || fail "new recipe not built for $OTHER"
module_installed "$OTHER" dm2t_beta || fail "t-beta module missing for $OTHER"

# 4. The second kernel goes away: its records go too.
kernel_forgotten() { ! dm2 status --json | grep -q "\"kernel\":\"$1\""; }
kernel_forgotten "$OTHER" && fail "status does not list $OTHER before its removal"
rm -rf "$ROOT/lib/modules/$OTHER"
wait_for 30 kernel_forgotten "$OTHER" || fail "removed kernel still in dm2 status"
grep -q "event: kernel-removed, kernel=$OTHER" "$T/dm2d.log" || fail "removal not logged"

# 5. SIGHUP re-reads dm2d.conf and the recipes (RELOADING=1, then READY=1 again).
printf '[Daemon]\nSettleSec=1\nJobs=1\n' >"$ROOT/etc/dm2/dm2d.conf"
kill -HUP "$DAEMON_PID"
wait_for 10 grep -q "Reloaded: 3 recipe(s), up to 1 job(s) at once" "$T/dm2d.log" ||
	fail "SIGHUP did not reload"
wait_for 5 grep -qx 'RELOADING=1' "$T/notify" || fail "no RELOADING=1"

# 6. Nothing left to do: SIGTERM exits 0 and says STOPPING=1.
stop_daemon
grep -q 'dm2d stopped' "$T/dm2d.log" || fail "no clean stop"
grep -qx 'STOPPING=1' "$T/notify" || fail "no STOPPING=1"
echo "ok"
