#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The kernel hooks (Debian /etc/kernel/*.d/dm2, kernel-install's 40-dm2.install, both thin
# wrappers around libexec/dm2/kernel-hook) always exit 0, also when a module fails, and say
# what failed and how to see why; with dm2d running they ask it, without they run the engine;
# the prerm hook removes dm2's modules of the kernel.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"
: "${DM2_BUILD_DIR:?}"

UNITS=$DM2_BUILD_DIR/units
HOOK=$UNITS/dm2-kernel-hook
[ -x "$HOOK" ] || fail "'$HOOK' missing (units/install.cmake not configured?)"
KVER=$REAL_KVER

# The hooks read recipes where an installed system has them.
RECIPES=$ROOT/etc/dm2/recipes.d
mkdir -p "$RECIPES"
make_recipe t-good dm2t_good
make_recipe t-bad dm2t_bad broken

export DM2_HOOK_DM2=$DM2 DM2_HOOK_DM2D=$DM2D DM2_HOOK_ROOT=$ROOT DM2_HOOK_TIMEOUT=300

# Fail with what dm2 knows about the job: its status line and the end of its build log.
job_fail() { # recipe message
	echo "---- dm2 status -k $KVER ----" >&2
	dm2 status -k "$KVER" >&2 || true
	echo "---- dm2 log $1 -k $KVER (tail) ----" >&2
	dm2 log "$1" -k "$KVER" 2>&1 | tail -n 20 >&2 || true
	fail "$2"
}

# A copy of a wrapper that calls the hook from the build tree instead of libexec.
wrapper() {
	sed "s#^/[^ ]*/kernel-hook #$HOOK #" "$UNITS/$1" >"$T/$1"
	chmod +x "$T/$1"
	echo "$T/$1"
}

# 1. No build tree yet (Debian's image postinst before the headers): nothing, exit 0.
mkdir -p "$ROOT/lib/modules/$KVER"
rc=0
"$(wrapper debian-postinst)" "$KVER" /boot/vmlinuz-$KVER >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "postinst hook without headers exited $rc"
[ -z "$(job_state t-good "$KVER")" ] || fail "postinst hook built without headers"

# 2. Headers arrive, no daemon runs: the header hook builds inline, one module fails, exit 0.
link_tree_entries "$ROOT/usr/src/tree" "${TREE_ENTRIES[@]}"
ln -s "$ROOT/usr/src/tree" "$ROOT/lib/modules/$KVER/build"
rc=0
"$(wrapper debian-header-postinst)" "$KVER" >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "header hook exited $rc with a failing module: $(cat "$T/out")"
grep -q "failed to build for kernel $KVER" "$T/out" || fail "hook does not report the failure: $(cat "$T/out")"
grep -q "dm2 log NAME -k $KVER" "$T/out" || fail "hook does not say how to see the log"
grep -q "t-bad" "$T/out" || fail "hook does not name the failed recipe: $(cat "$T/out")"
state_is t-good "$KVER" installed || job_fail t-good "t-good not installed by the inline hook"
state_is t-bad "$KVER" failed || fail "t-bad not recorded as failed"
[ -S "$ROOT/run/dm2/control" ] && fail "the inline run left a control socket behind"

# 3. kernel-install plugin: unknown verbs and a missing libexec are no failures.
rc=0
"$UNITS/40-dm2.install" frobnicate "$KVER" >/dev/null 2>&1 || rc=$?
[ $rc = 0 ] || fail "40-dm2.install exited $rc for an unknown verb"

# 4. With dm2d running, the postinst hook asks it (trigger --wait) and still exits 0.
dm2 uninstall t-good -k "$KVER" >/dev/null
start_daemon
wait_for 60 grep -q "dm2d .* running" "$T/dm2d.log" || fail "dm2d did not start"
rc=0
"$(wrapper debian-postinst)" "$KVER" /boot/vmlinuz-$KVER >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "postinst hook exited $rc with dm2d running"
grep -q "t-bad $KVER: failed" "$T/out" || fail "hook via dm2d does not show the failure: $(cat "$T/out")"
state_is t-good "$KVER" installed || job_fail t-good "t-good not installed via dm2d"
module_installed "$KVER" dm2t_good || fail "t-good module missing"
[ -f "$ROOT/lib/modules/$KVER/modules.dep" ] || fail "no depmod before the hook returned"

# A hook whose wait times out still exits 0.
make_recipe t-late dm2t_late
rc=0
DM2_HOOK_TIMEOUT=1 "$HOOK" add "$KVER" >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "hook exited $rc after a timeout"
stop_daemon

# 5. prerm: dm2's modules of the kernel go.
rc=0
"$(wrapper debian-prerm)" "$KVER" >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "prerm hook exited $rc"
module_installed "$KVER" dm2t_good && fail "prerm hook left t-good installed"

# 6. No dm2 at all: still exit 0.
rc=0
DM2_HOOK_DM2=/nonexistent "$HOOK" add "$KVER" >/dev/null 2>&1 || rc=$?
[ $rc = 0 ] || fail "hook exited $rc without dm2"
echo "ok"
