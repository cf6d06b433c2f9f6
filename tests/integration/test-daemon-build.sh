#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `dm2 build` while dm2d runs is handed to the daemon (BUILD): it prints the same stdout and
# stderr and exits with the same code as a build the CLI runs itself; only root may ask; the
# build leaves dm2 status alone, waits for a free Jobs= slot, and dies with its client.
# Without a daemon the CLI builds by itself.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
printf '[Daemon]\nSettleSec=1\nJobs=1\n' >"$ROOT/etc/dm2/dm2d.conf"
make_recipe t-alpha dm2t_alpha
make_recipe t-broken dm2t_broken broken
# t-slow builds only while $HOLD exists: then its Kbuild waits for the file to go away. A
# build sees a private /tmp, so the file is in /var/tmp (which it sees read-only).
HOLD=/var/tmp/${T##*/}.hold
trap 'rc=$?; rm -f "$HOLD"; (exit $rc); cleanup' EXIT
make_recipe t-slow dm2t_slow
echo "\$(shell while [ -e $HOLD ]; do sleep 0.2; done)" >>"$RECIPES/t-slow-src/Kbuild"
mkdir "$ROOT/lib/modules/$KVER"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"

start_daemon
wait_for 240 state_is t-alpha "$KVER" installed || fail "t-alpha not installed by dm2d"
wait_for 240 state_is t-slow "$KVER" installed || fail "t-slow not installed by dm2d"
wait_for 240 state_is t-broken "$KVER" failed || fail "t-broken did not fail in dm2d"
dm2 status --json >"$T/status-before"

builds_logged() { grep -c "event: build, recipe=$1, kernel=$KVER" "$T/dm2d.log" || true; }

# 1. The forwarded build: valid JSON on stdout, a module that exists, the daemon ran it.
rc=0
dm2 build t-alpha -k "$KVER" --json >"$T/fwd.json" 2>"$T/fwd.err" || rc=$?
[ $rc = 0 ] || fail "forwarded build exited $rc: $(cat "$T/fwd.err")"
jq -e '.succeeded == true and .recipe == "t-alpha"' "$T/fwd.json" >/dev/null ||
	fail "forwarded build did not print a successful JSON result: $(cat "$T/fwd.json")"
ko=$(jq -r '.modules[0]' "$T/fwd.json")
[ -f "$ko" ] || fail "forwarded build: '$ko' does not exist"
[ "$(builds_logged t-alpha)" = 1 ] || fail "dm2d did not run the build of t-alpha"

# The same build run by the CLI itself (DM2_NO_FORWARD) prints the same.
rc=0
DM2_NO_FORWARD=1 dm2 build t-alpha -k "$KVER" --json >"$T/local.json" 2>"$T/local.err" || rc=$?
[ $rc = 0 ] || fail "local build exited $rc: $(cat "$T/local.err")"
[ "$(builds_logged t-alpha)" = 1 ] || fail "DM2_NO_FORWARD=1 still asked dm2d"
diff -u "$T/local.json" "$T/fwd.json" || fail "forwarded stdout differs from a local build's"
diff -u "$T/local.err" "$T/fwd.err" || fail "forwarded stderr differs from a local build's"

# 2. A recipe that does not compile: exit 5 and the compiler error, through the daemon too.
rc=0
dm2 build t-broken -k "$KVER" >"$T/fwd.out" 2>"$T/fwd.err" || rc=$?
[ $rc = 5 ] || fail "forwarded build of t-broken exited $rc, expected 5"
[ "$(builds_logged t-broken)" = 1 ] || fail "dm2d did not run the build of t-broken"
grep -q "this" "$T/fwd.err" || fail "forwarded failure does not show the error: $(cat "$T/fwd.err")"
rc=0
DM2_NO_FORWARD=1 dm2 build t-broken -k "$KVER" >"$T/local.out" 2>"$T/local.err" || rc=$?
[ $rc = 5 ] || fail "local build of t-broken exited $rc, expected 5"
diff -u "$T/local.out" "$T/fwd.out" || fail "forwarded stdout of t-broken differs"
diff -u "$T/local.err" "$T/fwd.err" || fail "forwarded stderr of t-broken differs"
# An unknown recipe: dm2d has none (NORECIPE), so the CLI looks itself: exit 4, one message.
rc=0
out=$(dm2 build no-such -k "$KVER" 2>&1) || rc=$?
[ $rc = 4 ] || fail "build of an unknown recipe exited $rc, expected 4: $out"
grep -q "No recipe 'no-such'" <<<"$out" || fail "unknown recipe: $out"
[ "$(builds_logged no-such)" = 0 ] || fail "dm2d started a build of an unknown recipe"


# A name that is not one word is refused here, not sent as two recipes.
queued() { grep -c 'state=queued' "$T/dm2d.log" || true; }
q0=$(queued)
rc=0
out=$(dm2 install "t-alpha t-slow" -k "$KVER" 2>&1) || rc=$?
[ $rc = 4 ] || fail "install of 't-alpha t-slow' exited $rc, expected 4: $out"
[ "$(wc -l <<<"$out")" = 1 ] || fail "install of 't-alpha t-slow' printed more than a line: $out"
[ "$(queued)" = "$q0" ] || fail "dm2d queued jobs for 't-alpha t-slow'"

# 3. Only root may ask: anyone else gets exit 11 and one line.
rc=0
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$DM2" --root "$ROOT" --recipes "$RECIPES" build t-alpha -k "$KVER" 2>&1) || rc=$?
[ $rc = 11 ] || fail "non-root build exited $rc, expected 11: $out"
[ "$(wc -l <<<"$out")" = 1 ] || fail "non-root build printed more than one line: $out"
grep -q "permission denied" <<<"$out" || fail "non-root build: $out"
grep -q "Refused 'BUILD' from uid 65534" "$T/dm2d.log" || fail "BUILD refusal not logged"

# 4. With Jobs=1, a second build waits while the first holds the slot; a client that goes
# away takes its build with it, and the waiting one starts.
touch "$HOLD"
"$DM2" --root "$ROOT" --recipes "$RECIPES" build t-slow -k "$KVER" >/dev/null 2>&1 &
slow=$!
wait_for 60 pgrep -f "$HOLD" >/dev/null || fail "the build of t-slow did not start"
"$DM2" --root "$ROOT" --recipes "$RECIPES" build t-alpha -k "$KVER" --json \
	>"$T/second.json" 2>"$T/second.err" &
second=$!
sleep 3
[ "$(builds_logged t-alpha)" = 1 ] || fail "a second build started while Jobs=1 was taken"
kill -0 $second 2>/dev/null || fail "the waiting client exited: $(cat "$T/second.err")"
kill -KILL $slow
wait $slow 2>/dev/null || true
wait_for 30 grep -q "Killing the build of 't-slow'" "$T/dm2d.log" ||
	fail "dm2d did not kill the build of a client that went away"
slow_gone() { ! pgrep -f "$HOLD" >/dev/null; }
wait_for 30 slow_gone || fail "t-slow's build still runs"
rc=0
wait $second || rc=$?
[ $rc = 0 ] || fail "the waiting build exited $rc: $(cat "$T/second.err")"
jq -e '.succeeded == true' "$T/second.json" >/dev/null || fail "waiting build: bad JSON"
[ "$(builds_logged t-alpha)" = 2 ] || fail "the waiting build did not run in dm2d"
rm "$HOLD"

# 5. None of this touched the jobs.
dm2 status --json >"$T/status-after"
diff -u "$T/status-before" "$T/status-after" || fail "dm2 build changed dm2 status"

# 6. A recipe only the CLI reads (a --recipes directory dm2d was not started with) is built
# and installed here instead of being refused.
EXTRA=$T/extra
mkdir -p "$EXTRA/t-extra-src"
sed 's/dm2t_alpha/dm2t_extra/g' "$RECIPES/t-alpha-src/dm2t_alpha.c" >"$EXTRA/t-extra-src/dm2t_extra.c"
echo "obj-m := dm2t_extra.o" >"$EXTRA/t-extra-src/Kbuild"
printf '[Recipe]\nName=t-extra\nLicense=GPL-2.0-only\n\n[Source]\nVersion=1.0\nPath=t-extra-src\n\n[Build]\nModules=dm2t_extra\n' \
	>"$EXTRA/t-extra.recipe"
extra() { "$DM2" --root "$ROOT" --recipes "$EXTRA" --recipes "$RECIPES" "$@"; }
rc=0
extra build t-extra -k "$KVER" --json >"$T/extra.json" 2>"$T/extra.err" || rc=$?
[ $rc = 0 ] || fail "build of a recipe dm2d does not read exited $rc: $(cat "$T/extra.err")"
jq -e '.succeeded == true' "$T/extra.json" >/dev/null || fail "t-extra: bad JSON"
grep -q "working here instead" "$T/extra.err" || fail "t-extra: no note: $(cat "$T/extra.err")"
[ "$(builds_logged t-extra)" = 0 ] || fail "dm2d ran a build of a recipe it does not read"
rc=0
out=$(extra install t-extra -k "$KVER" 2>&1) || rc=$?
[ $rc = 0 ] || fail "install of a recipe dm2d does not read exited $rc: $out"
module_installed "$KVER" dm2t_extra || fail "t-extra not installed"
extra uninstall t-extra -k "$KVER" >/dev/null 2>&1 || fail "t-extra not uninstalled"
stop_daemon

# 7. No daemon: the CLI builds by itself.
rc=0
dm2 build t-alpha -k "$KVER" --json >"$T/nodaemon.json" || rc=$?
[ $rc = 0 ] || fail "build without a daemon exited $rc"
jq -e '.succeeded == true' "$T/nodaemon.json" >/dev/null || fail "build without a daemon: bad JSON"
[ "$(builds_logged t-alpha)" = 2 ] || fail "a build without a daemon reached dm2d"
echo "ok"
