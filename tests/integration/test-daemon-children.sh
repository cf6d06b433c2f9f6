#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2d and the children it runs (DM2_CLI points it at a stand-in for dm2 here): a job whose
# own child lives on holding the output pipe neither hangs the daemon nor keeps it busy, and
# a job that writes more than a pipe holds at once loses none of it.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
make_recipe t-kid dm2t_kid
make_recipe t-chatty dm2t_chatty
mkdir "$ROOT/lib/modules/$KVER"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"

# The stand-in: "install t-kid" leaves a grandchild holding stdout for a minute;
# "install t-chatty" writes 20000 numbered lines (about 400 KiB) at once; all record
# "installed" in the state db as dm2 install does (dm2d reads the outcome there), exit 0.
cat >"$T/fake-dm2" <<EOF
#!/bin/bash
case " \$* " in
*" install t-kid "*) sleep 60 & echo "started a grandchild" ;;
*" install t-chatty "*) seq -f 'chatty line %06g' 1 20000 ;;
esac
case " \$* " in
*" install "*)
	set -- \$(sed 's/.* install \\([^ ]*\\) -k \\([^ ]*\\) .*/\\1 \\2/' <<<" \$* ")
	sqlite3 -cmd '.timeout 5000' "$ROOT/var/lib/dm2/state.db" \\
		"UPDATE jobs SET state = 'installed' WHERE recipe = '\$1' AND kernel = '\$2' AND
		 id = (SELECT MAX(id) FROM jobs WHERE recipe = '\$1' AND kernel = '\$2')" ;;
esac
exit 0
EOF
chmod +x "$T/fake-dm2"
export DM2_CLI=$T/fake-dm2
start_daemon
unset DM2_CLI

wait_for 30 grep -q 'recipe=t-kid, kernel=[^,]*, state=installed' "$T/dm2d.log" ||
	fail "the job whose grandchild holds its pipe did not finish"
wait_for 30 grep -q 'recipe=t-chatty, kernel=[^,]*, state=installed' "$T/dm2d.log" ||
	fail "the chatty job did not finish"
# Every line of the chatty job reached the log, the last one too.
n=$(grep -c 'chatty line' "$T/dm2d.log" || true)
[ "$n" = 20000 ] || fail "dm2d logged $n of the chatty job's 20000 lines"
grep -q 'chatty line 020000' "$T/dm2d.log" || fail "the chatty job's last line is missing"
# Still answering (the stand-in records no state, so this runs both jobs again), and not
# spinning: its CPU time stays put while idle.
out=$(dm2 trigger "$KVER" --wait --timeout 20) || fail "dm2d does not answer: $out"
cpu() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
c0=$(cpu)
sleep 2
c1=$(cpu)
[ $((c1 - c0)) -le 10 ] || fail "dm2d used $((c1 - c0)) ticks of CPU in 2 s while idle"
stop_daemon
echo ok
