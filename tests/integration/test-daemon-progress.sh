#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Progress while a kernel is prepared (issue 14): four recipes built once for one kernel
# (their times recorded), then a second kernel appears while each build is held until the
# test lets it go. With Jobs=2, `dm2 status` shows "0 done, 2 running, 2 queued; about N s
# left" for the new kernel, then 1 done as one build is let go, and --json carries the same
# numbers in "progress"; when all are installed the line and the entry are gone.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
OTHER=6.1.0-97-amd64
MODULES=$ROOT/lib/modules
NAMES=(t-p1 t-p2 t-p3 t-p4)

for n in "${NAMES[@]}"; do
	make_recipe "$n" "dm2${n//-/_}"
	# Held while $HOLD-NAME exists (builds see /var/tmp read-only).
	echo "\$(shell while [ -e $HOLD-$n ]; do sleep 0.2; done)" >>"$RECIPES/$n-src/Kbuild"
done
mkdir "$MODULES/$KVER"
ln -s "$REAL_TREE" "$MODULES/$KVER/build"

# 1. Built once: every recipe has a recorded duration.
start_daemon
for n in "${NAMES[@]}"; do
	wait_for 300 state_is "$n" "$KVER" installed || fail "$n not installed for $KVER"
done

# 2. A new kernel while every build is held.
for n in "${NAMES[@]}"; do touch "$HOLD-$n"; done
make_other_tree "$ROOT/usr/src/linux-headers-$OTHER" "$OTHER"
mkdir "$MODULES/$OTHER"
ln -s "$ROOT/usr/src/linux-headers-$OTHER" "$MODULES/$OTHER/build"

line() { dm2 status | grep "^Kernel $OTHER: " || true; }
line_is() { # DONE RUNNING QUEUED
	[[ "$(line)" =~ ^Kernel\ $OTHER:\ $1\ done,\ $2\ running,\ $3\ queued\;\ about\ [0-9]+\ s\ left\.$ ]]
}
json_is() { # DONE RUNNING QUEUED
	dm2 status --json | jq -e --arg k "$OTHER" --argjson d "$1" --argjson r "$2" --argjson q "$3" \
		'[.progress[] | select(.kernel == $k)] | length == 1 and .[0].done == $d and
		 .[0].running == $r and .[0].queued == $q and .[0].untimed == 0 and
		 (.[0].left_sec | type) == "number" and .[0].left_sec > 0' >/dev/null
}
wait_for 120 line_is 0 2 2 || fail "no '0 done, 2 running, 2 queued' line: '$(line)'"
json_is 0 2 2 || fail "--json progress: $(dm2 status --json | jq -c .progress)"
echo "held: $(line)"
# The table's lines are still there, one per recipe and kernel.
[ "$(dm2 status | grep -c " $OTHER ")" = 4 ] || fail "status rows: $(dm2 status)"

# 3. One build let go: one done, the next one runs.
running() { dm2 status --json | jq -r --arg k "$OTHER" \
	'.modules[] | select(.kernel == $k and .state != "queued" and .state != "installed") | .name'; }
first=$(running | head -n 1)
[ -n "$first" ] || fail "no running build for $OTHER"
rm -f "$HOLD-$first"
wait_for 120 state_is "$first" "$OTHER" installed || fail "$first not installed for $OTHER"
wait_for 60 line_is 1 2 1 || fail "no '1 done, 2 running, 1 queued' line: '$(line)'"
json_is 1 2 1 || fail "--json progress after one: $(dm2 status --json | jq -c .progress)"
echo "one done: $(line)"

# 4. All let go: installed, and no progress is shown any more.
for n in "${NAMES[@]}"; do rm -f "$HOLD-$n"; done
for n in "${NAMES[@]}"; do
	wait_for 300 state_is "$n" "$OTHER" installed || fail "$n not installed for $OTHER"
done
[ -z "$(line)" ] || fail "a progress line after everything was installed: $(line)"
dm2 status --json | jq -e '.version == 1 and .progress == []' >/dev/null ||
	fail "--json progress after everything: $(dm2 status --json | jq -c .progress)"
stop_daemon
echo "ok - dm2 status shows done, running, queued and the time left while a kernel is prepared"
