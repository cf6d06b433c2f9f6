# SPDX-License-Identifier: LGPL-2.1-or-later
# DKMS coexistence and migration with real everything: dkms.conf packages in a fake root's
# usr/src become recipes (origin dkms), `dm2 install` builds them for a kernel ($kernelver
# evaluated for it), a fake DKMS install (module built with kbuild, signed with sign-file
# and a DKMS-style key made by openssl as DKMS does) is reported by `dm2 dkms status`,
# never overwritten by `dm2 install`, and `dm2 dkms takeover` replaces it with dm2's build
# signed by the adopted key - or, when the package does not compile, restores DKMS' file
# byte for byte.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
ARCH=$(uname -m)
MODDIR=$ROOT/lib/modules/$KVER/updates/dkms
SIGN_FILE=$REAL_TREE/scripts/sign-file
[ -x "$SIGN_FILE" ] || fail "no sign-file in $REAL_TREE"

# make_pkg NAME VERSION: a dkms.conf package whose module records $kernelver.
make_pkg() {
	local d=$ROOT/usr/src/$1-$2
	mkdir -p "$d"
	cat >"$d/$1.c" <<EOF
#include <linux/module.h>
static int __init m_init(void) { return 0; }
static void __exit m_exit(void) { }
module_init(m_init);
module_exit(m_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION("$2");
MODULE_DESCRIPTION("dm2 dkms fixture for " KVER_TAG);
EOF
	printf 'obj-m := %s.o\nccflags-y := -DKVER_TAG=\x27"$(TAG)"\x27\n' "$1" >"$d/Makefile"
	cat >"$d/dkms.conf" <<EOF
PACKAGE_NAME="$1"
PACKAGE_VERSION="$2"
BUILT_MODULE_NAME[0]="$1"
DEST_MODULE_LOCATION[0]="/updates/dkms"
MAKE[0]="make -C \${kernel_source_dir} M=\${dkms_tree}/\${PACKAGE_NAME}/\${PACKAGE_VERSION}/build TAG=\$kernelver"
AUTOINSTALL="yes"
EOF
	chmod -R a+rX "$ROOT/usr"
}

# fake_dkms_install NAME VERSION FILE: what `dkms install` leaves behind.
fake_dkms_install() {
	local b=$ROOT/var/lib/dkms/$1/$2/$KVER/$ARCH/module
	mkdir -p "$b" "$MODDIR"
	cp "$3" "$b/$1.ko"
	cp "$3" "$MODDIR/$1.ko"
	ln -sfn "$2/$KVER/$ARCH" "$ROOT/var/lib/dkms/$1/kernel-$KVER-$ARCH"
}

# ---- dkms.conf packages are recipes; a dm2 recipe of the same name wins ----
make_pkg foo 1.0
make_pkg bar 2.0
dm2 recipe list >"$T/out" 2>&1 || { cat "$T/out"; fail "recipe list"; }
grep -E "^foo +1.0 +dkms +$ROOT/usr/src/foo-1.0/dkms.conf" "$T/out" >/dev/null ||
	fail "foo not listed as dkms: $(cat "$T/out")"
mkdir -p "$ROOT/usr/src/broken-1"
echo 'PACKAGE_VERSION=1' >"$ROOT/usr/src/broken-1/dkms.conf"
dm2 recipe list >"$T/out" 2>"$T/err" || fail "recipe list with a broken dkms.conf"
grep -q "usr/src/broken-1/dkms.conf" "$T/err" || fail "broken dkms.conf not reported"
grep -q "^foo " "$T/out" || fail "a broken dkms.conf hides the others"
rm -r "$ROOT/usr/src/broken-1"
cat >"$RECIPES/bar.recipe" <<EOF
[Recipe]
Name=bar
License=GPL-2.0-only
[Source]
Version=9.9
Path=$ROOT/usr/src/bar-2.0
[Build]
Modules=bar
EOF
dm2 recipe list | grep -E "^bar +9.9 +extra" >/dev/null || fail "dm2 recipe does not win"
rm "$RECIPES/bar.recipe"
dm2 recipe list | grep -E "^bar +2.0 +dkms" >/dev/null || fail "bar not back as dkms"
pass "dkms.conf packages in recipe list, dm2 recipe wins"

# ---- a DKMS-style key and a module DKMS built and installed ----
mkdir -p "$ROOT/var/lib/dkms"
openssl req -new -x509 -nodes -days 36500 -subj "/CN=DKMS module signing key" \
	-newkey rsa:2048 -keyout "$ROOT/var/lib/dkms/mok.key" -outform DER \
	-out "$ROOT/var/lib/dkms/mok.pub" >/dev/null 2>&1 || fail "openssl req"
cp -r "$ROOT/usr/src/foo-1.0" "$T/dkms-build"
make -s -C "$REAL_TREE" M="$T/dkms-build" TAG=dkms-built modules >/dev/null 2>&1 ||
	fail "building the DKMS fixture"
"$SIGN_FILE" sha512 "$ROOT/var/lib/dkms/mok.key" "$ROOT/var/lib/dkms/mok.pub" \
	"$T/dkms-build/foo.ko" || fail "sign-file"
fake_dkms_install foo 1.0 "$T/dkms-build/foo.ko"
head -c 4096 /dev/urandom >"$T/bar.ko"
fake_dkms_install bar 2.0 "$T/bar.ko"
# A file in updates/dkms that no DKMS package accounts for.
echo stray >"$MODDIR/stray.ko"
cp "$MODDIR/foo.ko" "$T/foo.dkms.ko"

dm2 dkms status >"$T/out" || fail "dkms status"
grep -E "^foo +1.0 +$KVER +no +lib/modules/$KVER/updates/dkms/foo.ko$" "$T/out" >/dev/null ||
	fail "dkms status: $(cat "$T/out")"
grep -E "^\(unknown\) +- +$KVER +no +lib/modules/$KVER/updates/dkms/stray.ko$" "$T/out" \
	>/dev/null || fail "stray file: $(cat "$T/out")"
dm2 --json dkms status -k "$KVER" | python3 -c '
import json, sys
j = json.load(sys.stdin)
m = {e["module"]: e for e in j["modules"]}
assert m["foo"]["version"] == "1.0" and m["foo"]["arch"] == "'"$ARCH"'", m
assert m["bar"]["path"].endswith("updates/dkms/bar.ko") and not m["bar"]["dm2_managed"], m
assert m[None]["path"].endswith("stray.ko"), m
' || fail "dkms status --json"
[ "$(dm2 dkms status -k 0.0-none)" = "DKMS has installed no modules for 0.0-none." ] ||
	fail "dkms status for another kernel"
pass "dkms status finds DKMS' installs"

# ---- dry run changes nothing ----
dm2 dkms takeover --dry-run >"$T/out" || fail "dry run: $(cat "$T/out")"
grep -q "^foo 1.0 for $KVER: would move 'lib/modules/$KVER/updates/dkms/foo.ko' aside" \
	"$T/out" || fail "dry run output: $(cat "$T/out")"
grep -q "Would adopt DKMS' signing key" "$T/out" || fail "dry run key: $(cat "$T/out")"
[ ! -e "$ROOT/var/lib/dm2/keys" ] || fail "dry run adopted the key"
cmp "$MODDIR/foo.ko" "$T/foo.dkms.ko" || fail "dry run moved the file"
expect_exit 4 dm2 dkms takeover no-such-package
pass "takeover --dry-run"

# ---- takeover of a package that does not compile: DKMS' file comes back exactly ----
cp "$ROOT/usr/src/bar-2.0/bar.c" "$T/bar.c"
echo "this is not C" >>"$ROOT/usr/src/bar-2.0/bar.c"
stat -c '%i %Y %a %s' "$MODDIR/bar.ko" >"$T/bar.stat"
expect_exit 5 dm2 dkms takeover bar -k "$KVER" >"$T/out" 2>&1
cat "$T/out" >&2
grep -q "^bar 2.0 for $KVER: not taken over: failed while building: .*DKMS' files are back in place" \
	"$T/out" || fail "failed takeover output: $(cat "$T/out")"
cmp "$MODDIR/bar.ko" "$T/bar.ko" || fail "bar.ko not restored byte for byte"
stat -c '%i %Y %a %s' "$MODDIR/bar.ko" | cmp - "$T/bar.stat" || fail "bar.ko metadata changed"
[ -L "$ROOT/var/lib/dkms/bar/kernel-$KVER-$ARCH" ] || fail "bar's DKMS link removed"
[ -z "$(ls -A "$ROOT/var/lib/dm2/dkms-backup" 2>/dev/null)" ] || fail "backup left behind"
[ -e "$ROOT/etc/dkms/no-autoinstall" ] && fail "a failed takeover turned DKMS' autoinstall off"
pass "failed takeover restores DKMS' file"

# ---- takeover: adopt the key, build with dm2, DKMS forgets the kernel ----
dm2 dkms takeover foo -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "takeover"; }
cat "$T/out" >&2
grep -q "Adopted DKMS' signing key" "$T/out" || fail "key not adopted: $(cat "$T/out")"
grep -q "^foo 1.0 for $KVER: taken over: dm2 installed 'lib/modules/$KVER/updates/dkms/foo.ko'" \
	"$T/out" || fail "takeover output: $(cat "$T/out")"
[ -f "$MODDIR/foo.ko" ] || fail "no module after takeover"
# DKMS' own hooks, which run first on a kernel upgrade, are off for what dm2 took over.
grep -q "^DKMS' autoinstall is off now ('/etc/dkms/no-autoinstall')" "$T/out" ||
	fail "takeover does not say DKMS' autoinstall is off: $(cat "$T/out")"
[ -f "$ROOT/etc/dkms/no-autoinstall" ] || fail "takeover left DKMS' autoinstall on"
! cmp -s "$MODDIR/foo.ko" "$T/foo.dkms.ko" || fail "DKMS' module still in place"
[ "$(modinfo -F description "$MODDIR/foo.ko")" = "dm2 dkms fixture for $KVER" ] ||
	fail "not dm2's build: $(modinfo -F description "$MODDIR/foo.ko")"
[ "$(modinfo -F signer "$MODDIR/foo.ko")" = "DKMS module signing key" ] ||
	fail "signer: $(modinfo -F signer "$MODDIR/foo.ko")"
dm2 verify --cert "$ROOT/var/lib/dkms/mok.pub" "$MODDIR/foo.ko" >/dev/null ||
	fail "dm2 verify with DKMS' certificate"
[ ! -e "$ROOT/var/lib/dkms/foo/kernel-$KVER-$ARCH" ] || fail "DKMS link still there"
[ -d "$ROOT/var/lib/dkms/foo/1.0/$KVER/$ARCH" ] || fail "DKMS' build was removed"
[ -z "$(ls -A "$ROOT/var/lib/dm2/dkms-backup" 2>/dev/null)" ] || fail "backup left behind"
json_get "[m['state'] for m in j['modules'] if m['name'] == 'foo' and m['kernel'] == '$KVER'][0]" \
	>"$T/state"
[ "$(cat "$T/state")" = installed ] || fail "status: $(cat "$T/state")"
grep -q '^updates/dkms/foo.ko:' "$ROOT/lib/modules/$KVER/modules.dep" ||
	fail "modules.dep does not list dm2's module"
dm2 dkms status -k "$KVER" >"$T/out"
! grep -q "^foo " "$T/out" || fail "foo still reported as DKMS': $(cat "$T/out")"
grep -q "^bar " "$T/out" || fail "bar no longer reported: $(cat "$T/out")"
# Nothing left for foo: a second takeover says so.
expect_exit 4 dm2 dkms takeover foo -k "$KVER"
pass "takeover with the adopted key"

# ---- dm2 never overwrites DKMS' file (bar compiles again, its DKMS install is still there)
cp "$T/bar.c" "$ROOT/usr/src/bar-2.0/bar.c"
expect_exit 8 dm2 install bar -k "$KVER" >"$T/out" 2>&1
# The refusal names the owner and the way out.
grep -q "'lib/modules/$KVER/updates/dkms/bar.ko' was installed by DKMS (package 'bar'); see 'dm2 dkms takeover'" \
	"$T/out" || fail "install over DKMS' file: $(cat "$T/out")"
cmp "$MODDIR/bar.ko" "$T/bar.ko" || fail "dm2 install touched DKMS' file"
# A file no DKMS package accounts for: refused all the same, without naming a package.
mv "$ROOT/var/lib/dkms/bar/kernel-$KVER-$ARCH" "$T/bar.link"
expect_exit 8 dm2 install bar -k "$KVER" >"$T/out" 2>&1
mv "$T/bar.link" "$ROOT/var/lib/dkms/bar/kernel-$KVER-$ARCH"
grep -q "updates/dkms/bar.ko' exists and was not installed by dm2" "$T/out" ||
	fail "install over a foreign file: $(cat "$T/out")"
! grep -q "installed by DKMS" "$T/out" || fail "foreign file blamed on DKMS: $(cat "$T/out")"
cmp "$MODDIR/bar.ko" "$T/bar.ko" || fail "dm2 install touched the foreign file"
pass "dm2 install refuses DKMS' file"
