#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2d's queue survives: kill -9 in the middle of a build, then a restart resumes the job and
# finishes it; SIGTERM in the middle of a build puts the job back in the queue and the next
# start finishes it; --exit-when-idle exits 0; a non-root client is refused; `dm2 install`
# is forwarded to a running daemon; Needs= orders the daemon's jobs.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
mkdir -p "$ROOT/lib/modules/$KVER"
link_tree_entries "$ROOT/usr/src/tree" "${TREE_ENTRIES[@]}"
ln -s "$ROOT/usr/src/tree" "$ROOT/lib/modules/$KVER/build"
make_recipe t-one dm2t_one
make_recipe t-two dm2t_two
# A build of $1 that stays in "building" while $HOLD exists (its Kbuild waits for the file
# to go away), so that the daemon is surely stopped in the middle of it.
hold_build() {
	echo "\$(shell while [ -e $HOLD ]; do sleep 0.2; done)" >>"$RECIPES/$1-src/Kbuild"
}
hold_build t-one

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
touch "$HOLD"
start_daemon
wait_for 120 state_is t-one "$KVER" building || fail "t-one never reached building"
kill_daemon_hard
rm "$HOLD"
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
hold_build t-three
touch "$HOLD"
start_daemon -v
wait_for 120 state_is t-three "$KVER" building || fail "t-three never reached building"
# A client waiting for it hears that dm2d stopped (exit 12), not a broken connection.
dm2 trigger "$KVER" --wait --timeout 120 >"$T/waiter.out" 2>&1 &
waiter=$!
wait_for 30 grep -q "Control request 'TRIGGER $KVER 1" "$T/dm2d.log" ||
	fail "the waiting client's request did not reach dm2d"
stop_daemon
rm "$HOLD"
rc=0
wait $waiter || rc=$?
[ $rc = 12 ] || fail "a client waiting while dm2d stopped exited $rc: $(cat "$T/waiter.out")"
grep -q "dm2d stopped before this was done" "$T/waiter.out" ||
	fail "the waiting client was not told: $(cat "$T/waiter.out")"
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

# 4. `dm2 install` while dm2d runs is handed to the daemon, which builds it and reports.
dm2 uninstall t-one -k "$KVER" >/dev/null
module_installed "$KVER" dm2t_one && fail "t-one still installed after uninstall"
n_before=$(grep -c "Building 't-one' for kernel '$KVER'" "$T/dm2d.log" || true)
rc=0
out=$(dm2 install t-one -k "$KVER" 2>&1) || rc=$?
[ $rc = 0 ] || fail "forwarded install exited $rc: $out"
grep -q "t-one $KVER: installed" <<<"$out" || fail "forwarded install output: $out"
n_after=$(grep -c "Building 't-one' for kernel '$KVER'" "$T/dm2d.log" || true)
[ "$n_after" -gt "$n_before" ] || fail "dm2d did not run the forwarded install"
module_installed "$KVER" dm2t_one || fail "forwarded install: module missing"
state_is t-one "$KVER" installed || fail "forwarded install: t-one not installed"
# The exit code is the job's: a recipe that does not compile gives 5, through the daemon too.
make_recipe t-bad dm2t_bad broken
rc=0
out=$(dm2 install t-bad -k "$KVER" 2>&1) || rc=$?
[ $rc = 5 ] || fail "forwarded install of a broken recipe exited $rc, expected 5: $out"
grep -q "t-bad $KVER: failed" <<<"$out" || fail "forwarded failure not reported: $out"
grep -q "Building 't-bad' for kernel '$KVER'" "$T/dm2d.log" || fail "dm2d did not build t-bad"
rm "$RECIPES/t-bad.recipe"
# Non-root clients are refused by the daemon (exit 11), even for a --root tree.
rc=0
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$DM2" --root "$ROOT" --recipes "$RECIPES" install t-one -k "$KVER" 2>&1) || rc=$?
[ $rc = 11 ] || fail "non-root install exited $rc, expected 11: $out"
grep -q "Refused 'INSTALL' from uid" "$T/dm2d.log" || fail "INSTALL refusal not logged"

# 5. Needs=: the daemon starts a dependant only once what it needs is done.
mkdir -p "$T/stage/provider-src" "$T/stage/consumer-src"
echo 'obj-m := provider_mod.o' >"$T/stage/provider-src/Kbuild"
echo 'obj-m := consumer_mod.o' >"$T/stage/consumer-src/Kbuild"
printf '%s\n' '#include <linux/module.h>' 'int provider_answer(void) { return 42; }' \
	'EXPORT_SYMBOL_GPL(provider_answer);' 'MODULE_LICENSE("GPL");' \
	>"$T/stage/provider-src/provider_mod.c"
printf '%s\n' '#include <linux/module.h>' 'int provider_answer(void);' \
	'static int __init i(void) { return provider_answer() == 42 ? 0 : -EINVAL; }' \
	'module_init(i);' 'MODULE_LICENSE("GPL");' >"$T/stage/consumer-src/consumer_mod.c"
for r in provider consumer; do
	printf '[Recipe]\nName=%s\nLicense=GPL-2.0-only\n[Source]\nVersion=1\nPath=%s-src\n' \
		"$r" "$r" >"$T/stage/$r.recipe"
	printf '[Build]\nModules=%s_mod\n' "$r" >>"$T/stage/$r.recipe"
done
echo 'Needs=provider' >>"$T/stage/consumer.recipe"
chmod -R a+rX "$T/stage"
mv "$T/stage/provider-src" "$T/stage/consumer-src" "$RECIPES/"
# The dependant arrives first: only the scheduler can make it wait.
mv "$T/stage/consumer.recipe" "$RECIPES/"
mv "$T/stage/provider.recipe" "$RECIPES/"
wait_for 240 state_is consumer "$KVER" installed || fail "consumer not installed by dm2d"
state_is provider "$KVER" installed || fail "provider not installed by dm2d"
p_done=$(grep -n "recipe=provider, kernel=$KVER, state=installed" "$T/dm2d.log" | head -n1 |
	cut -d: -f1)
c_start=$(grep -n "Building 'consumer' for kernel '$KVER'" "$T/dm2d.log" | tail -n1 |
	cut -d: -f1)
[ -n "$p_done" ] && [ -n "$c_start" ] && [ "$c_start" -gt "$p_done" ] ||
	fail "consumer started (line ${c_start:-none}) before provider was done (${p_done:-none})"
[ "$(modinfo -F depends "$ROOT/lib/modules/$KVER/updates/dm2/consumer_mod.ko")" = \
	provider_mod ] || fail "consumer built by dm2d does not depend on provider_mod"
stop_daemon
echo "ok"
