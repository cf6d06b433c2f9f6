#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Under systemd (JOURNAL_STREAM names the stream on its stderr), dm2d logs to the journal with
# the fields DM2_RECIPE, DM2_KERNEL and DM2_JOB. The journal here is a socket listener of the
# test's own at /run/systemd/journal/socket, in a private mount namespace: the machine's /run
# is not touched.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
command -v unshare >/dev/null || fail "unshare (util-linux) is missing"

make_recipe t-jrnl dm2t_jrnl
mkdir "$ROOT/lib/modules/$KVER"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"

cat >"$T/in-namespace.sh" <<'EOS'
set -euo pipefail
T=$1
mount -t tmpfs -o mode=755 dm2-test /run/systemd
mkdir /run/systemd/journal
python3 - "$T/journal" <<'EOP' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
with open(sys.argv[1], "w") as f:
    print("listening", file=f, flush=True)
    while True:
        f.write(s.recv(1 << 20).decode(errors="replace") + "\n--\n")
        f.flush()
EOP
listener=$!
for _ in $(seq 50); do [ -s "$T/journal" ] && break; sleep 0.1; done
: >"$T/stderr"
rc=0
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/stderr") \
	"$DM2D" --root "$T/root" --recipes "$T/recipes" --exit-when-idle 2>>"$T/stderr" || rc=$?
kill "$listener"
exit $rc
EOS
export DM2D
rc=0
unshare --mount --propagation private bash "$T/in-namespace.sh" "$T" || rc=$?
[ $rc = 0 ] || { cat "$T/stderr" >&2; fail "dm2d under a journal exited $rc"; }
module_installed "$KVER" dm2t_jrnl || fail "t-jrnl not installed"

# Datagrams are separated by "--" lines; find the one of the install event.
entry=$(awk -v RS='\n--\n' '/MESSAGE=event: job-state[^\n]*recipe=t-jrnl[^\n]*state=installed/' "$T/journal")
[ -n "$entry" ] || fail "no job-state event in the journal:"$'\n'"$(head -c 2000 "$T/journal")"
for field in "DM2_RECIPE=t-jrnl" "DM2_KERNEL=$KVER" "SYSLOG_IDENTIFIER=dm2d" "PRIORITY=5"; do
	grep -qx "$field" <<<"$entry" || fail "journal entry lacks '$field':"$'\n'"$entry"
done
grep -qx 'DM2_JOB=[0-9][0-9]*' <<<"$entry" || fail "journal entry lacks DM2_JOB:"$'\n'"$entry"
# Everything went to the journal, nothing to the plain stderr lines.
[ ! -s "$T/stderr" ] || fail "dm2d wrote to stderr under the journal:"$'\n'"$(head "$T/stderr")"
echo ok
