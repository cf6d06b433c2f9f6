# SPDX-License-Identifier: LGPL-2.1-or-later
# A full disk is named as one (issue 12, attack 10): with a full tmpfs over the work dir, the
# cache dir, the kernel's module dir and the state dir in turn (in a private mount
# namespace: the host is untouched), every failure says "No space left on device" and which
# directory, on stderr and in status, and the module installed before is still there, whole,
# with its manifest, and no temporary file is left beside it.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root (unshare -m, mount)"

lib_init
lib_copy_recipe dm2-example
dm2 install dm2-example -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "first install"; }
MODDIR=$ROOT/lib/modules/$KVER/updates/dm2
MANIFEST=$ROOT/lib/modules/$KVER/.dm2/dm2-example.manifest
sha256sum "$MODDIR/dm2_example.ko" "$MANIFEST" >"$T/sums"

# full DIR: in a new mount namespace, DIR's content on a tmpfs with a little room, filled up, then
# `dm2 install --force` (a real rebuild) and `dm2 status`; their output in $T/out, $T/status.
full() {
	T=$T KVER=$KVER unshare -m --propagation private bash -c '
		set -eu
		dir=$1; shift
		size=$(($(du -sk "$dir" | cut -f1) + 64))k
		cp -a "$dir" "$dir.copy"
		mount -t tmpfs -o "size=$size,mode=755" tmpfs "$dir"
		cp -a "$dir.copy/." "$dir/"
		rm -rf "$dir.copy"
		head -c 1G /dev/zero >"$dir/filler" 2>/dev/null || true
		rc=0
		"$@" install dm2-example -k "$KVER" --force >"$T/out" 2>&1 || rc=$?
		"$@" status >"$T/status" 2>&1 || true
		exit $rc' full "$1" "$DM2" --root "$ROOT" --recipes "$RECIPES"
}

check() { # name dir-in-message [status-too]
	local rc=0
	rm -f "$T/out" "$T/status"
	full "$2" || rc=$?
	[ -f "$T/status" ] || fail "$1: could not set up the full file system"
	[ $rc != 0 ] || fail "$1: install on a full disk succeeded"
	grep -q "No space left on device" "$T/out" || fail "$1: stderr: $(cat "$T/out")"
	grep -qF "$3" "$T/out" || fail "$1: stderr does not name '$3': $(cat "$T/out")"
	if [ "${4:-}" != no-status ]; then
		grep -q "No space left on device" "$T/status" || fail "$1: status: $(cat "$T/status")"
		grep -qF "$3" "$T/status" || fail "$1: status does not name '$3': $(cat "$T/status")"
	fi
	sha256sum -c --quiet "$T/sums" || fail "$1: the installed module or its manifest changed"
	[ "$(ls -A "$MODDIR")" = dm2_example.ko ] || fail "$1: left in $MODDIR: $(ls -A "$MODDIR")"
	pass "$1: no space left is named, with the directory; the old install is whole"
}

check "work dir" "$ROOT/var/lib/dm2/work" "$ROOT/var/lib/dm2/work"
check "cache dir" "$ROOT/var/cache/dm2" "$ROOT/var/cache/dm2/artifacts"
check "module dir" "$MODDIR" "lib/modules/$KVER/updates/dm2"
check "kernel dir" "$ROOT/lib/modules/$KVER" "lib/modules/$KVER/"
# A full state db cannot record the failure: stderr says it, naming the file.
check "state dir" "$ROOT/var/lib/dm2" "$ROOT/var/lib/dm2/state.db" no-status
