# SPDX-License-Identifier: LGPL-2.1-or-later
# bash reads dkms.conf only in the build sandbox, which needs root: a user other than root
# sees a DKMS package through the cached evaluation root left (dm2(1), DKMS section), and a
# package never evaluated gets one line naming its file and why, nothing run as that user.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
pkg() {
	mkdir -p "$ROOT/usr/src/$1-1"
	printf 'PACKAGE_NAME=%s\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=%s\nAUTOINSTALL=yes\n' \
		"$1" "$1" >"$ROOT/usr/src/$1-1/dkms.conf"
}
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$DM2" --root "$ROOT" --recipes "$RECIPES" "$@"
}
pkg nr_seen
dm2 recipe list >"$T/root.out" 2>&1 || fail "root's recipe list: $(cat "$T/root.out")"
grep -q '^nr_seen ' "$T/root.out" || fail "root does not list nr_seen: $(cat "$T/root.out")"
# What a real root has: /var and its cache readable by everyone.
chmod -R a+rX "$ROOT/usr" "$ROOT/var/cache"
chmod a+rx "$ROOT/var"

pkg nr_new
chmod -R a+rX "$ROOT/usr"
as_nobody recipe list >"$T/out" 2>"$T/err" || true
grep -q '^nr_seen ' "$T/out" || fail "nobody does not see the cached nr_seen: $(cat "$T/out" "$T/err")"
! grep -q '^nr_new ' "$T/out" || fail "nobody sees nr_new, never evaluated: $(cat "$T/out")"
[ "$(grep -c nr_new "$T/err")" = 1 ] || fail "not one line about nr_new: $(cat "$T/err")"
grep -q "$ROOT/usr/src/nr_new-1/dkms.conf: cannot be evaluated: evaluating dkms.conf needs root" \
	"$T/err" || fail "reason: $(cat "$T/err")"
pass "non-root: cached dkms.conf evaluations are used, others are refused in one line"
