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

# A copy of a wrapper that calls the hook HOOK_PATH (default: the build tree's) instead of
# libexec's.
wrapper() {
	local h=${HOOK_PATH:-$HOOK}
	sed "s#^hook=.*#hook=$h#" "$UNITS/$1" >"$T/$1"
	grep -qx "hook=$h" "$T/$1" || fail "$1 names no hook= to redirect"
	chmod +x "$T/$1"
	echo "$T/$1"
}

# 0. By the Debian Kernel Handbook: the wrappers, and the dm2 they start, read no stdin and
# write nothing to stdout (debconf may be running); after a remove without purge (the
# conffile stays, libexec is gone) they print nothing at all and exit 0.
printf '#!/bin/sh\necho "stdin=$(readlink /proc/$$/fd/0) stdout=$(readlink /proc/$$/fd/1)" >>"%s"\n' \
	"$T/fake.log" >"$T/fake-dm2"
chmod +x "$T/fake-dm2"
mkdir -p "$ROOT/lib/modules/9.9.9-fake/build"
touch "$ROOT/lib/modules/9.9.9-fake/build/Makefile"
for w in debian-postinst debian-header-postinst 40-dm2.install; do
	args=(9.9.9-fake)
	[ $w = 40-dm2.install ] && args=(add 9.9.9-fake)
	: >"$T/fake.log"
	rc=0
	echo junk | DM2_HOOK_DM2=$T/fake-dm2 "$(wrapper $w)" "${args[@]}" >"$T/stdout" \
		2>"$T/stderr" || rc=$?
	[ $rc = 0 ] || fail "$w exited $rc"
	[ -s "$T/stdout" ] && fail "$w wrote to stdout: $(cat "$T/stdout")"
	grep -q '^stdin=/dev/null ' "$T/fake.log" || fail "$w: dm2 got stdin: $(cat "$T/fake.log")"
	grep -q "stdout=$T/stdout\$" "$T/fake.log" && fail "$w: dm2 got stdout: $(cat "$T/fake.log")"
	rc=0
	gone=$(HOOK_PATH=/nonexistent/kernel-hook wrapper $w)
	"$gone" "${args[@]}" >"$T/out" 2>&1 || rc=$?
	[ $rc = 0 ] || fail "$w without dm2 installed exited $rc"
	[ -s "$T/out" ] && fail "$w without dm2 installed is not silent: $(cat "$T/out")"
done
rc=0
gone=$(HOOK_PATH=/nonexistent/kernel-hook wrapper debian-prerm)
"$gone" 9.9.9-fake >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] && [ ! -s "$T/out" ] || fail "debian-prerm without dm2: exit $rc, $(cat "$T/out")"
rm -rf "$ROOT/lib/modules/9.9.9-fake"

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

# 5. prerm: dm2's modules of the kernel go, with the directory they were in, on a remove;
# an upgrade of the same kernel (DEB_MAINT_PARAMS 'upgrade' VERSION) keeps them, as its
# postinst checks them again.
rc=0
DEB_MAINT_PARAMS="'upgrade' '6.1.0-1'" "$(wrapper debian-prerm)" "$KVER" >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "prerm hook (upgrade) exited $rc"
module_installed "$KVER" dm2t_good || fail "prerm hook on an upgrade removed t-good"
rc=0
DEB_MAINT_PARAMS="'remove'" "$(wrapper debian-prerm)" "$KVER" >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "prerm hook exited $rc"
module_installed "$KVER" dm2t_good && fail "prerm hook left t-good installed"
[ -s "$T/out" ] && fail "prerm hook is not quiet: $(cat "$T/out")"
[ -e "$ROOT/lib/modules/$KVER/updates/dm2" ] &&
	fail "the last module's uninstall left $(ls -la "$ROOT/lib/modules/$KVER/updates/dm2")"
[ -d "$ROOT/lib/modules/$KVER" ] || fail "uninstall removed lib/modules/$KVER itself"

# 7. DKMS active (installed, the package registered with it, no takeover): its own hook,
# which runs first, built the package; dm2's hook leaves it alone, says so once, and does
# not fail on DKMS' file. After a takeover (etc/dkms/no-autoinstall) dm2 builds it.
rm -rf "$RECIPES"/t-bad* "$RECIPES"/t-late*
DK=$ROOT/usr/src/dk-1.0
mkdir -p "$DK" "$ROOT/usr/sbin" "$ROOT/var/lib/dkms/dk/1.0" "$ROOT/lib/modules/$KVER/updates/dkms"
sed "s/dm2_example/dm2t_dk/g" "$DM2_SOURCE_DIR/recipes/dm2-example/dm2_example.c" >"$DK/dm2t_dk.c"
echo "obj-m := dm2t_dk.o" >"$DK/Kbuild"
printf 'PACKAGE_NAME=dk\nPACKAGE_VERSION=1.0\nBUILT_MODULE_NAME[0]=dm2t_dk\nDEST_MODULE_LOCATION[0]=/updates/dkms\nAUTOINSTALL=yes\n' \
	>"$DK/dkms.conf"
chmod -R a+rX "$ROOT/usr/src"
printf '#!/bin/sh\nexit 0\n' >"$ROOT/usr/sbin/dkms"
chmod +x "$ROOT/usr/sbin/dkms"
DKMOD=$ROOT/lib/modules/$KVER/updates/dkms/dm2t_dk.ko
echo "DKMS' build" >"$DKMOD"
for how in inline daemon; do
	[ $how = daemon ] && start_daemon
	rc=0
	"$(wrapper debian-header-postinst)" "$KVER" >"$T/out" 2>&1 || rc=$?
	[ $rc = 0 ] || fail "hook ($how) with DKMS active exited $rc: $(cat "$T/out")"
	grep -qi 'fail' "$T/out" && fail "hook ($how) reports a failure on DKMS' package: $(cat "$T/out")"
	[ -z "$(job_state dk "$KVER")" ] || fail "dm2 made a job ($how) for DKMS' package: $(job_state dk "$KVER")"
	[ "$(cat "$DKMOD")" = "DKMS' build" ] || fail "dm2 touched DKMS' module ($how)"
	[ $how = daemon ] && stop_daemon
done
n=$(grep -c "'dk' for '$KVER' is left to DKMS, which builds it itself; 'dm2 dkms takeover dk' hands it to dm2." "$T/dm2d.log" || true)
[ "$n" -ge 1 ] || fail "dm2d does not say it leaves dk to DKMS: $(grep -i dkms "$T/dm2d.log")"
rm "$DKMOD"
touch "$ROOT/etc/dkms/no-autoinstall" 2>/dev/null || { mkdir -p "$ROOT/etc/dkms"; touch "$ROOT/etc/dkms/no-autoinstall"; }
rc=0
"$(wrapper debian-header-postinst)" "$KVER" >"$T/out" 2>&1 || rc=$?
[ $rc = 0 ] || fail "hook after takeover exited $rc"
state_is dk "$KVER" installed || job_fail dk "dk not built by dm2 once DKMS' autoinstall is off"
[ -f "$DKMOD" ] || fail "dm2 did not install dk into updates/dkms"

# 6. No dm2 at all: still exit 0.
rc=0
DM2_HOOK_DM2=/nonexistent "$HOOK" add "$KVER" >/dev/null 2>&1 || rc=$?
[ $rc = 0 ] || fail "hook exited $rc without dm2"
echo "ok"
