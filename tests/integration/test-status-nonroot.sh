# SPDX-License-Identifier: LGPL-2.1-or-later
# Anyone may read status (issue 12, attack 11): an unprivileged user's `dm2 status` (the
# front end, reading the state db itself) shows what root installed, without a daemon, with
# one running, and with a db whose -wal and -shm files are gone; also when root installed
# under umask 077.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"
: "${DM2D:=$(dirname "$DM2")/dm2d}"
command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed"

lib_init
lib_copy_recipe dm2-example
chmod 755 "$T" "$ROOT"
DB=$ROOT/var/lib/dm2/state.db
(umask 077 && dm2 install dm2-example -k "$KVER" >"$T/out" 2>&1) || { cat "$T/out"; fail "install"; }
chmod -R go+rX "$ROOT/var" # directories made under umask 077; the files are the point here

as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$DM2" --root "$ROOT" "$@"
}
check() { # what
	as_nobody status >"$T/out" 2>&1 || fail "$1: status as nobody: $(cat "$T/out")"
	grep -qE "^dm2-example +1.0 +$KVER .* installed" "$T/out" || fail "$1: $(cat "$T/out")"
	as_nobody status --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["modules"][0]["state"] == "installed"' ||
		fail "$1: status --json as nobody"
	pass "status as nobody: $1"
}

for f in "$DB" "$DB-wal" "$DB-shm"; do
	[ "$(($(stat -c %#a "$f") & 0444))" = 292 ] || fail "$f is not world-readable: $(stat -c %a "$f")"
done
check "no daemon, under umask 077"

rm -f "$DB-wal" "$DB-shm"
check "no daemon, -wal and -shm gone"

"$DM2D" --root "$ROOT" --recipes "$RECIPES" --foreground >"$T/dm2d.log" 2>&1 &
LIB_PIDS+=($!)
wait_for 60 test -S "$ROOT/run/dm2/control"
check "with dm2d running"
