#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What the idle daemon keeps: dm2d links neither OpenSSL nor SQLite; SQLite is loaded while
# the state db is in use and unloaded once the daemon has nothing left to do, and loaded
# again for the next piece of work. An idle dm2d does not wake up.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER

needed=$(readelf -d "$DM2D" | grep NEEDED || true)
grep -q 'libsqlite3\|libcrypto\|libssl' <<<"$needed" &&
	fail "dm2d links SQLite or OpenSSL at start:"$'\n'"$needed"

maps_have() { grep -q "$1" "/proc/$DAEMON_PID/maps"; }
idle_unloaded() { ! maps_have libsqlite3 && ! maps_have libcrypto; }

make_recipe t-foot dm2t_foot
mkdir "$ROOT/lib/modules/$KVER"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"
start_daemon
dm2 trigger "$KVER" --wait --timeout 240 >/dev/null || fail "trigger --wait failed"
module_installed "$KVER" dm2t_foot || fail "t-foot not installed"
wait_for 10 idle_unloaded || fail "idle dm2d still maps SQLite or OpenSSL:
$(grep 'sqlite\|crypto' "/proc/$DAEMON_PID/maps")"

# Idle: no timer, no polling. Voluntary and involuntary switches stay put.
ctx() { awk '/ctxt_switches/ { n += $2 } END { print n }' "/proc/$DAEMON_PID/status"; }
c0=$(ctx)
sleep 3
c1=$(ctx)
[ "$c0" = "$c1" ] || fail "idle dm2d woke up $((c1 - c0)) time(s) in 3 s"

# The db comes back for the next event: a changed recipe is rebuilt and recorded.
sed -i 's/^Description=.*/Description=changed/' "$RECIPES/t-foot.recipe"
wait_for 60 grep -q 'event: recipe-changed, recipe=t-foot' "$T/dm2d.log" ||
	fail "changed recipe not noticed"
dm2 trigger "$KVER" --wait --timeout 240 >/dev/null || fail "second trigger --wait failed"
n=$(grep -c 'recipe=t-foot, kernel=[^,]*, state=installed' "$T/dm2d.log" || true)
[ "$n" -ge 2 ] || fail "changed recipe not installed again ($n installs logged)"
state_is t-foot "$KVER" installed || fail "status does not say installed"
wait_for 10 idle_unloaded || fail "SQLite not unloaded after the second burst"

# A touch without a change is no change.
touch "$RECIPES/t-foot.recipe"
sleep 3
[ "$(grep -c 'event: recipe-changed, recipe=t-foot' "$T/dm2d.log")" = 1 ] ||
	fail "a touched but unchanged recipe counted as changed"
stop_daemon
echo "ok"
