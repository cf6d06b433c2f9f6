#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2d after a real inotify queue overflow: with the daemon stopped (SIGSTOP) so it cannot read
# its inotify fd, more events than fs.inotify.max_queued_events are made in ROOT/lib/modules;
# the events that follow are lost: a kernel removed, a kernel added, a recipe added. After
# SIGCONT the daemon logs the overflow once, reloads the recipes and rescans the kernels: the
# new kernel gets both modules, the removed one is forgotten, and the new kernel's build tree is
# watched from then on. No system setting is changed.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
OTHER=6.1.0-98-amd64
MODULES=$ROOT/lib/modules

max_queued=$(cat /proc/sys/fs/inotify/max_queued_events)
# Each round renames back and forth: four events (IN_MOVED_FROM, IN_MOVED_TO), never merged, as
# the kernel merges an event only into an identical last one. 2048 more than the queue holds.
rounds=$((max_queued / 4 + 512))

daemon_stopped() { # the state field of /proc/PID/stat is T
	local stat
	stat=$(cat "/proc/$DAEMON_PID/stat")
	stat=${stat##*) }
	[ "${stat%% *}" = T ]
}

# 1. A daemon with one kernel, idle after building its module.
make_recipe t-alpha dm2t_alpha
make_other_tree "$ROOT/usr/src/linux-headers-$OTHER" "$OTHER"
mkdir "$MODULES/$OTHER"
ln -s "$ROOT/usr/src/linux-headers-$OTHER" "$MODULES/$OTHER/build"
start_notify_listener
start_daemon
wait_for 180 state_is t-alpha "$OTHER" installed || fail "t-alpha not installed for $OTHER"
wait_for 30 grep -q dm2t_alpha "$MODULES/$OTHER/modules.dep" || fail "no depmod for $OTHER"
idle() { [ "$(grep '^STATUS=' "$T/notify" | tail -n1)" = "STATUS=Idle, watching for kernels." ]; }
wait_for 30 idle || fail "dm2d not idle"
sleep 1.5 # longer than SettleSec: whatever the install itself stirred up has been handled

# 2. Stopped, it reads nothing; flood its queue, then change things it must not miss.
kill -STOP "$DAEMON_PID"
wait_for 10 daemon_stopped || fail "dm2d did not stop"
start=$(date +%s%N)
python3 - "$MODULES" "$rounds" <<-'EOF'
	import os, sys
	a = os.path.join(sys.argv[1], ".dm2-flood-a")
	b = os.path.join(sys.argv[1], ".dm2-flood-b")
	open(a, "w").close()
	for _ in range(int(sys.argv[2])):
	    os.rename(a, b)
	    os.rename(b, a)
	os.unlink(a)
EOF
echo "flood: $((rounds * 4)) events (max_queued_events=$max_queued) in" \
	"$((($(date +%s%N) - start) / 1000000)) ms"
daemon_stopped || fail "dm2d ran during the flood"

rm -rf "$MODULES/$OTHER"
link_tree_entries "$ROOT/usr/src/linux-headers-$KVER" "${TREE_ENTRIES[@]}"
mkdir "$MODULES/$KVER"
ln -s "$ROOT/usr/src/linux-headers-$KVER" "$MODULES/$KVER/build"
make_recipe t-beta dm2t_beta
kill -CONT "$DAEMON_PID"

# 3. One overflow line, then the rescan finds everything the lost events said.
wait_for 10 grep -q 'inotify queue overflowed' "$T/dm2d.log" || fail "no overflow logged"
wait_for 30 grep -q "event: kernel-complete, kernel=$KVER" "$T/dm2d.log" ||
	fail "new kernel not found after the overflow"
wait_for 240 state_is t-alpha "$KVER" installed || fail "t-alpha not installed for $KVER"
[ -n "$(job_state t-beta "$KVER")" ] || fail "recipe added during the overflow not queued"
wait_for 240 state_is t-beta "$KVER" installed || fail "t-beta not installed for $KVER"
module_installed "$KVER" dm2t_alpha || fail "t-alpha module file missing"
module_installed "$KVER" dm2t_beta || fail "t-beta module file missing"
modinfo -F vermagic "$MODULES/$KVER/updates/dm2/dm2t_alpha.ko" | grep -q "^$KVER " ||
	fail "t-alpha for $KVER is not a valid module"
json=$(dm2 status --json)
grep -q "\"kernel\":\"$OTHER\"" <<<"$json" && fail "kernel removed during the overflow still listed"
grep -q "event: kernel-removed, kernel=$OTHER" "$T/dm2d.log" || fail "removal not logged"
n=$(grep -c 'inotify queue overflowed' "$T/dm2d.log")
[ "$n" = 1 ] || fail "overflow logged $n times, expected once"

# 4. The rescan watches the tree of the kernel whose own events were lost: a file that goes
# from it now is noticed, through that watch only.
rm "$ROOT/usr/src/linux-headers-$KVER/Module.symvers"
wait_for 30 grep -q "Kernel '$KVER' is not complete yet" "$T/dm2d.log" ||
	fail "the new kernel's build tree is not watched after the overflow"

stop_daemon
echo "ok"
