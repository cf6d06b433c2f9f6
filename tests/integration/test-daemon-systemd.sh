#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2d as systemd runs it, without systemd: socket activation through systemd's own
# systemd-socket-activate (dm2d starts on the first connection to the control socket and
# answers it on the passed fd), and the watchdog (WATCHDOG=1 on NOTIFY_SOCKET while
# WATCHDOG_USEC is set, as with WatchdogSec=).
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
command -v systemd-socket-activate >/dev/null || fail "systemd-socket-activate is missing"

make_recipe t-sock dm2t_sock
mkdir "$ROOT/lib/modules/$KVER" "$ROOT/run" "$ROOT/run/dm2"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"

start_notify_listener
export WATCHDOG_USEC=1000000
# systemd-socket-activate passes on only the environment named with -E.
systemd-socket-activate -l "$ROOT/run/dm2/control" \
	-E ASAN_OPTIONS -E NOTIFY_SOCKET -E WATCHDOG_USEC -E DM2_LOCK_TIMEOUT_SEC \
	"$DM2D" --root "$ROOT" --recipes "$RECIPES" --foreground >>"$T/dm2d.log" 2>&1 &
DAEMON_PID=$!
unset WATCHDOG_USEC
wait_for 10 test -S "$ROOT/run/dm2/control" || fail "systemd-socket-activate did not listen"
[ -s "$T/notify" ] && fail "dm2d started before anyone connected"

# The first connection starts dm2d, which serves it on the passed socket.
out=$(dm2 trigger "$KVER" --wait --timeout 240) || fail "trigger through activation: $out"
module_installed "$KVER" dm2t_sock || fail "t-sock not installed"
grep -qx 'READY=1' "$T/notify" || fail "no READY=1 after activation"
grep -q 'running for root' "$T/dm2d.log" || fail "dm2d did not start"

# WatchdogSec=: WATCHDOG=1 at least every half period, also when idle.
n0=$(grep -cx 'WATCHDOG=1' "$T/notify" || true)
sleep 2
n1=$(grep -cx 'WATCHDOG=1' "$T/notify" || true)
[ "$n1" -ge $((n0 + 2)) ] || fail "watchdog pinged $((n1 - n0)) time(s) in 2 s, expected ≥ 2"

# The passed socket is dm2d's own: its path stays after it stops, for the next activation.
stop_daemon
test -S "$ROOT/run/dm2/control" || fail "dm2d removed the socket systemd passed it"
echo ok
