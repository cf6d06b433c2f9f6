#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 17 (found by the soak): a recipe edited just before dm2d stops (within SettleSec=,
# so the running dm2d never re-read it) or while it is stopped was never rebuilt: dm2d knew
# recipes by a CRC held in memory only, and at start it planned only pairs without a job.
# Now a final job older than its recipe file is queued again at start; so is one of a
# recipe removed and added again with other content while dm2d runs.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
mkdir -p "$ROOT/lib/modules/$KVER"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"
printf '[Daemon]\nSettleSec=5\nJobs=2\n' >"$ROOT/etc/dm2/dm2d.conf"
make_recipe t-e dm2t_e
start_daemon
wait_for 120 state_is t-e "$KVER" installed || fail "t-e not installed"
version() { dm2 status t-e -k "$KVER" --json | grep -o '"version":"[^"]*"' | cut -d'"' -f4; }
[ "$(version)" = 1.0 ] || fail "first install is $(version)"

# Edited, then dm2d stopped before SettleSec= passed.
sed 's/^Version=1.0/Version=1.1/' "$RECIPES/t-e.recipe" >"$RECIPES/t-e.recipe.tmp"
mv "$RECIPES/t-e.recipe.tmp" "$RECIPES/t-e.recipe"
stop_daemon
grep -q "recipe-changed" "$T/dm2d.log" && fail "dm2d saw the edit (nothing to test)"
start_daemon
wait_for 120 eval '[ "$(version)" = 1.1 ] && state_is t-e "$KVER" installed' ||
	fail "the edit made before the stop is not built after the restart: $(version)"

# Edited while dm2d is stopped.
stop_daemon
sed 's/^Version=1.1/Version=1.2/' "$RECIPES/t-e.recipe" >"$RECIPES/t-e.recipe.tmp"
mv "$RECIPES/t-e.recipe.tmp" "$RECIPES/t-e.recipe"
start_daemon
wait_for 120 eval '[ "$(version)" = 1.2 ] && state_is t-e "$KVER" installed' ||
	fail "the edit made while dm2d was stopped is not built: $(version)"

# Removed (its module stays), then added again with another version, dm2d running.
mv "$RECIPES/t-e.recipe" "$T/t-e.recipe.old"
wait_for 30 grep -q "recipe-removed, recipe=t-e" "$T/dm2d.log" || fail "removal not seen"
sed 's/^Version=1.2/Version=1.3/' "$T/t-e.recipe.old" >"$RECIPES/t-e.recipe.tmp"
mv "$RECIPES/t-e.recipe.tmp" "$RECIPES/t-e.recipe"
wait_for 120 eval '[ "$(version)" = 1.3 ] && state_is t-e "$KVER" installed' ||
	fail "the recipe added again is not built: $(version)"

# Nothing changed: a restart rebuilds nothing.
n=$(grep -c "Building 't-e'" "$T/dm2d.log")
stop_daemon
start_daemon
sleep 3
[ "$(grep -c "Building 't-e'" "$T/dm2d.log")" = "$n" ] || fail "a restart rebuilt an unchanged recipe"
stop_daemon
echo "ok"
