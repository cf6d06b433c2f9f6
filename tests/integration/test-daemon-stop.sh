#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 17: dm2d stops on time, and a stop is not a failure.
#  1. Many jobs, kill -9 of dm2d during two builds, restart: the two are resumed (the other
#     jobs were queued), the work directories the killed jobs left are removed.
#  2. SIGTERM while two jobs run; one of them (its process ignores SIGTERM) finishes
#     installing during the stop. dm2d used to wait for a child that was already gone,
#     forever. Bound: dm2d exits within 10 s of that last job's end, and within
#     STOP_TIMEOUT + grace (25 s) of SIGTERM in any case.
#  3. The interrupted job shows as queued, never "failed ... interrupted by signal TERM",
#     and runs on the next start; so do the jobs of a stop where systemd sends SIGTERM to
#     dm2d and its jobs at once.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
mkdir -p "$ROOT/lib/modules/$KVER"
link_tree_entries "$ROOT/usr/src/tree" "${TREE_ENTRIES[@]}"
ln -s "$ROOT/usr/src/tree" "$ROOT/lib/modules/$KVER/build"
NAMES=(t-s1 t-s2 t-s3 t-s4 t-s5 t-s6)
for n in "${NAMES[@]}"; do
	make_recipe "$n" "dm2t_${n#t-}"
	# Stays in "building" while $HOLD-NAME exists.
	echo "\$(shell while [ -e $HOLD-$n ]; do sleep 0.2; done)" >>"$RECIPES/$n-src/Kbuild"
	touch "$HOLD-$n"
done

# The jobs dm2d runs go through this wrapper: the first job it starts after the restart
# ignores SIGTERM (SIG_IGN survives exec), as a job finishing its install would.
cat >"$T/dm2-wrapper" <<EOF
#!/bin/bash
prev=
for a in "\$@"; do
	[ "\$prev" = install ] && name=\$a
	prev=\$a
done
if [ -n "\${name:-}" ] && [ -e "$T/arm-ignore" ] && mkdir "$T/ignore-claimed" 2>/dev/null; then
	echo "\$name" >"$T/ignoring"
	trap '' TERM
fi
exec "$DM2" "\$@"
EOF
chmod +x "$T/dm2-wrapper"
export DM2_CLI=$T/dm2-wrapper

building() { # the names of the jobs in state building
	for n in "${NAMES[@]}"; do
		[ "$(job_state "$n" "$KVER")" = building ] && echo "$n"
	done
	return 0
}
two_building() { [ "$(building | wc -l)" = 2 ]; }
work_dirs() { ls -d "$ROOT"/var/lib/dm2/work/job-* 2>/dev/null || true; }

kill_daemon_hard() {
	local kids
	kids=$(ps -o pid= --ppid "$DAEMON_PID" || true)
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=
	for k in $kids; do
		kill -KILL -- "-$k" 2>/dev/null || true
	done
	rm -f "$ROOT/run/dm2/control" # what a kill -9 leaves; start_daemon wants it gone
	# systemd kills the whole cgroup before it restarts a service; here the killed builds'
	# sandboxes die with their engines, which takes a moment: wait until none holds a lock
	# (dm2d rightly keeps work directories while any job may still run).
	wait_for 60 locks_free || fail "the killed jobs still hold their locks after 60 s"
	# dm2d keeps work directories changed in the last second (a job may have just made
	# one; file times are coarse): let the killed jobs' directories age past that.
	sleep 1.5
}
locks_free() {
	local f
	for f in $(find "$ROOT/var/lib/dm2/locks" -type f 2>/dev/null); do
		flock -n -x "$f" true || return 1
	done
}

# 1. kill -9 during two builds, restart.
start_daemon
wait_for 120 two_building || fail "two jobs never reached building"
kill_daemon_hard
leaked=$(work_dirs)
[ -n "$leaked" ] || fail "the killed jobs left no work directory (nothing to test)"
touch "$T/arm-ignore"
start_daemon -v
wait_for 60 grep -q "Removed [0-9]* work director" "$T/dm2d.log" ||
	fail "leftover work directories not removed at start"
for d in $leaked; do
	[ -e "$d" ] && fail "leftover work directory '$d' still there"
done
[ "$(grep -c "Resuming job" "$T/dm2d.log")" -ge 2 ] || fail "unfinished jobs not resumed"
wait_for 120 two_building || fail "two jobs never reached building after the restart"
wait_for 30 test -s "$T/ignoring" || fail "no job ignores SIGTERM"
late=$(cat "$T/ignoring")
other=$(building | grep -vx "$late" | head -n1)
[ -n "$other" ] || fail "no second running job besides '$late'"

# 2. SIGTERM while both run; '$late' ignores it and finishes during the stop.
t0=$SECONDS
kill -TERM "$DAEMON_PID"
wait_for 20 grep -q "Stopping: 2 running job(s)" "$T/dm2d.log" || fail "dm2d did not start to stop"
wait_for 20 state_is "$other" "$KVER" queued || fail "'$other' was not stopped by dm2d's SIGTERM"
rm "$HOLD-$late"
wait_for 60 grep -q "recipe=$late, kernel=$KVER, state=installed" "$T/dm2d.log" ||
	fail "'$late' did not finish during the stop"
t1=$SECONDS
for _ in $(seq 100); do
	kill -0 "$DAEMON_PID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$DAEMON_PID" 2>/dev/null; then
	sleep 15
	kill -0 "$DAEMON_PID" 2>/dev/null && kill -KILL "$DAEMON_PID"
	fail "dm2d still runs 10 s after its last job finished during the stop (hang)"
fi
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
[ $rc = 0 ] || fail "dm2d exited $rc after SIGTERM"
echo "stop: SIGTERM to exit $((SECONDS - t0)) s, last job to exit $((SECONDS - t1)) s"
[ $((SECONDS - t0)) -le 25 ] || fail "the stop took $((SECONDS - t0)) s, more than 25 s"
grep -q "Jobs did not stop in time" "$T/dm2d.log" && fail "dm2d waited for the stop timeout"

# 3. A stop is not a failure.
state_is "$late" "$KVER" installed || fail "'$late' is $(job_state "$late" "$KVER")"
st=$(job_state "$other" "$KVER")
[ "$st" = queued ] || fail "the stopped job '$other' is '$st', expected queued"
dm2 status --json | grep -q "interrupted by signal" && fail "status calls a stop a failure"

# systemd stops the unit: SIGTERM to dm2d and to its jobs at the same moment.
rm -f "$T/arm-ignore"
start_daemon
wait_for 120 two_building || fail "two jobs never reached building (third start)"
pgids=$(ps -o pgid= --ppid "$DAEMON_PID" | sort -u)
kill -TERM "$DAEMON_PID" $(for g in $pgids; do echo "-$g"; done)
rc=0
timeout 30 tail --pid="$DAEMON_PID" -f /dev/null || rc=$?
[ $rc = 0 ] || fail "dm2d did not exit within 30 s of a unit-wide SIGTERM"
wait "$DAEMON_PID" || true
DAEMON_PID=
for n in "${NAMES[@]}"; do
	st=$(job_state "$n" "$KVER")
	case "$st" in queued | installed) ;; *) fail "after a unit-wide SIGTERM '$n' is '$st'" ;; esac
done

# Everything runs on the next start.
rm -f "$HOLD"-*
rc=0
timeout 300 "$DM2D" --root "$ROOT" --recipes "$RECIPES" --foreground --exit-when-idle \
	>>"$T/dm2d.log" 2>&1 || rc=$?
[ $rc = 0 ] || fail "dm2d --exit-when-idle exited $rc"
for n in "${NAMES[@]}"; do
	state_is "$n" "$KVER" installed || fail "'$n' is $(job_state "$n" "$KVER") at the end"
done
[ -z "$(work_dirs)" ] || fail "work directories left at the end: $(work_dirs)"
echo "ok"
