# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for integration tests (sourced, not run). Each test gets a private fake root
# (mktemp -d) with lib/modules/KVER/build linked to the real installed headers, so real kbuild
# builds real modules, and nothing of the machine's /lib/modules, /etc or /var is touched.
#
#   lib_init                      make $T (removed on exit), $ROOT, $RECIPES, $KVER
#   lib_add_kernel KVER [TREE]    lib/modules/KVER/build -> TREE (default: the real tree)
#   lib_copy_recipe NAME          copy recipes/NAME.recipe (+ NAME/ dir) into $RECIPES
#   dm2 ARGS...                   run $DM2 with --root $ROOT --recipes $RECIPES
#   expect_exit CODE CMD...       run CMD, fail unless it exits with CODE
#   wait_for TIMEOUT_SEC CMD...   retry CMD until it succeeds, fail after the timeout
#   json_get EXPR                 evaluate a Python expression over `dm2 status --json` (j)
#   check_diff EXPECTED ACTUAL    diff -u, fail on a difference
#   fail MESSAGE / pass MESSAGE

: "${DM2:?DM2 must point at the dm2 binary}"
: "${DM2_SOURCE_DIR:?DM2_SOURCE_DIR must point at the source tree}"

# The installed kernel build tree (Debian's linux-headers-amd64 may bring a newer ABI than the
# one this was written on, so never hard-code the release).
if [ -z "${REAL_KVER:-}" ]; then
	for _b in /lib/modules/*/build; do
		if [ -f "$_b/.config" ]; then
			REAL_KVER=$(basename "$(dirname "$_b")")
			break
		fi
	done
fi
REAL_KVER=${REAL_KVER:-none}
REAL_TREE=$(readlink -f "/lib/modules/$REAL_KVER/build" 2>/dev/null || true)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
# Tests must not hang on a lock forever; 120 s is far above any legitimate wait here.
export DM2_LOCK_TIMEOUT_SEC=${DM2_LOCK_TIMEOUT_SEC:-120}
LIB_PIDS=()

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

pass() {
	echo "ok - $*"
}

lib_cleanup() {
	local rc=$? p
	for p in "${LIB_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "${T:-}" ] && [ -d "$T" ]; then
		if [ $rc != 0 ] && [ -n "${DM2_TEST_KEEP:-}" ]; then
			echo "kept $T" >&2
		else
			rm -rf "$T"
		fi
	fi
	exit $rc
}

lib_init() {
	[ -n "$REAL_TREE" ] && [ -f "$REAL_TREE/.config" ] ||
		fail "no kernel build tree for $REAL_KVER (install linux-headers-$REAL_KVER)"
	T=$(mktemp -d /tmp/dm2-test.XXXXXX)
	chmod 755 "$T" # the unprivileged build user copies sources from below here
	trap lib_cleanup EXIT
	ROOT=$T/root
	RECIPES=$T/recipes
	KVER=$REAL_KVER
	mkdir -p "$ROOT/etc/dm2" "$ROOT/lib/modules" "$RECIPES"
	lib_add_kernel "$KVER"
}

lib_add_kernel() {
	mkdir -p "$ROOT/lib/modules/$1"
	ln -sfn "${2:-$REAL_TREE}" "$ROOT/lib/modules/$1/build"
}

lib_copy_recipe() {
	cp "$DM2_SOURCE_DIR/recipes/$1.recipe" "$RECIPES/"
	if [ -d "$DM2_SOURCE_DIR/recipes/$1" ]; then
		cp -r "$DM2_SOURCE_DIR/recipes/$1" "$RECIPES/"
	fi
	chmod -R a+rX "$RECIPES"
}

dm2() {
	"$DM2" --root "$ROOT" --recipes "$RECIPES" "$@"
}

expect_exit() {
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited with $rc, expected $want"
}

wait_for() {
	local timeout=$1 start
	shift
	start=$(date +%s)
	until "$@"; do
		[ $(($(date +%s) - start)) -lt "$timeout" ] || fail "timed out waiting for: $*"
		sleep 0.2
	done
}

json_get() {
	dm2 status --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print('"$1"')'
}

check_diff() {
	diff -u "$1" "$2" || fail "output differs from $1"
}
