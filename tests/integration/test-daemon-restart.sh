#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2d's queue survives: kill -9 in the middle of a build, then a restart resumes the job and
# finishes it; SIGTERM in the middle of a build puts the job back in the queue and the next
# start finishes it; --exit-when-idle exits 0; a non-root client is refused.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
mkdir -p "$ROOT/lib/modules/$KVER"
link_tree_entries "$ROOT/usr/src/tree" "${TREE_ENTRIES[@]}"
ln -s "$ROOT/usr/src/tree" "$ROOT/lib/modules/$KVER/build"
make_recipe t-one dm2t_one
make_recipe t-two dm2t_two

# The process groups dm2d made for its jobs (each job leads its own group).
kill_daemon_hard() {
	local kids
	kids=$(ps -o pid= --ppid "$DAEMON_PID" || true)
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=
	for k in $kids; do
		kill -KILL -- "-$k" 2>/dev/null || true
	done
}

# 1. kill -9 while building.
start_daemon
wait_for 120 state_is t-one "$KVER" building || fail "t-one never reached building"
kill_daemon_hard
st=$(job_state t-one "$KVER")
case "$st" in
queued | fetching | building | signing | installing) ;;
*) fail "after kill -9 t-one is '$st', expected unfinished" ;;
esac

rc=0
timeout 300 "$DM2D" --root "$ROOT" --recipes "$RECIPES" --foreground --exit-when-idle \
	>>"$T/dm2d.log" 2>&1 || rc=$?
[ $rc = 0 ] || fail "restarted dm2d --exit-when-idle exited $rc"
grep -q "Resuming job" "$T/dm2d.log" || fail "unfinished job not resumed"
state_is t-one "$KVER" installed || fail "t-one not installed after the restart"
state_is t-two "$KVER" installed || fail "t-two not installed after the restart"
modinfo -F vermagic "$ROOT/lib/modules/$KVER/updates/dm2/dm2t_one.ko" | grep -q "^$KVER " ||
	fail "installed t-one is not a valid module"
ls "$ROOT/lib/modules/$KVER/updates/dm2/" | grep -v '\.ko$' && fail "temporary files left behind"

# 2. SIGTERM while building: graceful, the job goes back to the queue.
dm2 uninstall t-one -k "$KVER" >/dev/null
make_recipe t-three dm2t_three
start_daemon
wait_for 120 state_is t-three "$KVER" building || fail "t-three never reached building"
stop_daemon
st=$(job_state t-three "$KVER")
[ "$st" = queued ] || fail "after SIGTERM t-three is '$st', expected queued"
rc=0
timeout 300 "$DM2D" --root "$ROOT" --recipes "$RECIPES" --foreground --exit-when-idle \
	>>"$T/dm2d.log" 2>&1 || rc=$?
[ $rc = 0 ] || fail "dm2d --exit-when-idle exited $rc"
state_is t-three "$KVER" installed || fail "t-three not installed after SIGTERM + restart"

# 3. Only root may ask for builds; the socket itself is open to everyone.
start_daemon
# A second daemon for the same root refuses to start and leaves the first one's socket alone.
rc=0
timeout 60 "$DM2D" --root "$ROOT" --foreground >"$T/second.log" 2>&1 || rc=$?
[ $rc = 1 ] || fail "second dm2d exited $rc, expected 1"
grep -q "Another dm2d already listens" "$T/second.log" || fail "second dm2d: $(cat "$T/second.log")"
[ -S "$ROOT/run/dm2/control" ] || fail "second dm2d removed the first one's socket"
rc=0
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$DM2" --root "$ROOT" trigger "$KVER" 2>&1) || rc=$?
[ $rc = 11 ] || fail "non-root trigger exited $rc, expected 11: $out"
grep -q "permission denied" <<<"$out" || fail "non-root trigger: no 'permission denied': $out"
grep -q "Refused 'TRIGGER' from uid" "$T/dm2d.log" || fail "refusal not logged"
rc=0
dm2 trigger "$KVER" --wait --timeout 120 >/dev/null || rc=$?
[ $rc = 0 ] || fail "root trigger --wait exited $rc"
stop_daemon
echo "ok"
