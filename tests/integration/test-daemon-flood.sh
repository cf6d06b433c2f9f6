#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 12, attack 5: a local user opens ~1100 connections to the control socket, each
# sending "STATUS" without a newline. dm2d used to run out of fds and then spin on
# "Failed to accept: Too many open files" at 100% CPU, writing gigabytes of log, deaf to
# root. Now: it refuses what is over its limits, closes a request without a newline after
# the request timeout, stays responsive to root, its CPU and log stay small; and when
# accept() does run out of fds it pauses instead of spinning.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
make_recipe t-flood dm2t_flood
mkdir "$ROOT/lib/modules/$KVER"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"
SOCK=$ROOT/run/dm2/control

# flood.py SOCKET N HOLD_SEC: N connections sending "STATUS" and no newline; after
# HOLD_SEC, how many dm2d still keeps open (neither closed nor answered).
cat >"$T/flood.py" <<'EOF'
import socket, sys, time
path, n, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
socks, failed = [], 0
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        s.connect(path)
        s.sendall(b"STATUS")
        socks.append(s)
    except OSError:
        failed += 1
        s.close()
print("connected=%d failed=%d" % (len(socks), failed), flush=True)
time.sleep(hold)
still = 0
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(256):
            continue  # answered (refused, or timed out with an ERR line)
    except BlockingIOError:
        still += 1
    except OSError:
        pass
print("still_open=%d" % still, flush=True)
EOF
chmod 644 "$T/flood.py"

ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
nfds() { ls "/proc/$DAEMON_PID/fd" | wc -l; }
log_size() { stat -c %s "$T/dm2d.log"; }

start_daemon
dm2 trigger "$KVER" --wait --timeout 240 >/dev/null || fail "first trigger failed"
fds0=$(nfds)
cpu0=$(ticks)
log0=$(log_size)

# 1. The flood, as an unprivileged user, held past the request timeout (10 s).
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	/usr/bin/python3 "$T/flood.py" "$SOCK" 1100 14 >"$T/flood.out" 2>&1 &
flood=$!
wait_for 60 grep -q connected= "$T/flood.out" || fail "the flood did not connect: $(cat "$T/flood.out")"
t=$SECONDS
rc=0
timeout 20 "$DM2" --root "$ROOT" trigger "$KVER" --wait --timeout 15 >"$T/trigger.out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "root trigger during the flood exited $rc: $(cat "$T/trigger.out")"
[ $((SECONDS - t)) -le 10 ] || fail "root trigger during the flood took $((SECONDS - t)) s"
wait $flood || fail "the flood script failed: $(cat "$T/flood.out")"
cat "$T/flood.out"
grep -q "still_open=0" "$T/flood.out" ||
	fail "connections without a request line are kept open past the timeout: $(cat "$T/flood.out")"
cpu=$(($(ticks) - cpu0))
logged=$(($(log_size) - log0))
echo "flood: dm2d used $cpu ticks of CPU, wrote $logged bytes of log"
[ "$cpu" -le 300 ] || fail "dm2d used $cpu ticks of CPU during the flood"
[ "$logged" -le 20000 ] || fail "dm2d wrote $logged bytes of log during the flood"
[ "$(grep -c "Refused a control connection" "$T/dm2d.log")" -le 2 ] ||
	fail "refusals are not rate-limited in the log"
wait_for 15 test "$(nfds)" -le "$fds0" || fail "dm2d keeps $(nfds) fds, had $fds0 before"

# 2. Out of fds anyway (the limit lowered under it): accept() fails, dm2d pauses.
soft=$(prlimit --pid "$DAEMON_PID" --nofile --noheadings --output SOFT)
prlimit --pid "$DAEMON_PID" --nofile=$((fds0 + 6)):
cpu0=$(ticks)
log0=$(log_size)
/usr/bin/python3 "$T/flood.py" "$SOCK" 60 6 >"$T/flood2.out" 2>&1 || fail "root flood failed"
cpu=$(($(ticks) - cpu0))
logged=$(($(log_size) - log0))
echo "out of fds: dm2d used $cpu ticks of CPU, wrote $logged bytes of log"
grep -q "Failed to accept a control connection, pausing" "$T/dm2d.log" ||
	fail "dm2d never ran out of fds (nothing tested)"
[ "$cpu" -le 200 ] || fail "dm2d used $cpu ticks of CPU while out of fds (busy loop)"
[ "$logged" -le 5000 ] || fail "dm2d wrote $logged bytes of log while out of fds"
prlimit --pid "$DAEMON_PID" --nofile="$soft":
wait_for 30 test "$(nfds)" -le "$fds0" || fail "dm2d keeps $(nfds) fds after the flood"
rc=0
timeout 30 "$DM2" --root "$ROOT" trigger "$KVER" --wait --timeout 20 >/dev/null || rc=$?
[ $rc = 0 ] || fail "root trigger after running out of fds exited $rc"
stop_daemon
echo "ok"
