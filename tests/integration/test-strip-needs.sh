#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build details DKMS users rely on, with real kbuild, sign-file-format signatures and modinfo:
#  - Strip= (default yes): the installed module is `strip -g`ed before it is signed (smaller
#    than the build in the cache, no .debug sections, still signed); Strip=no keeps them.
#  - Needs=: 'consumer' uses a symbol 'provider' exports; without Needs= modpost fails the
#    build ("undefined!"); with it, `dm2 install consumer` installs provider first and links
#    against its Module.symvers, and modinfo shows the dependency.
#  - --force rebuilds (no cache) and reinstalls a build that is already installed.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
MODDIR=$ROOT/lib/modules/$KVER/updates/dm2

# make_recipe NAME MODULE C-BODY [EXTRA-BUILD-LINES]
make_recipe() {
	local src=$RECIPES/$1-src
	mkdir -p "$src"
	echo "obj-m := $2.o" >"$src/Kbuild"
	cat >"$src/$2.c" <<EOF
#include <linux/module.h>
$3
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dm2 test module $2");
EOF
	cat >"$RECIPES/$1.recipe" <<EOF
[Recipe]
Name=$1
License=GPL-2.0-only

[Source]
Version=1.0
Path=$1-src

[Build]
Modules=$2
${4:-}
EOF
	chmod -R a+rX "$RECIPES"
}

debug_sections() { readelf -S -W "$1" | grep -c ' \.debug_' || true; }
cached_ko() { # the unstripped build of module $1 in the build cache
	local f
	for f in $(find "$ROOT/var/cache/dm2/artifacts" -type f -size +1k); do
		if readelf -p .modinfo "$f" 2>/dev/null | grep -q "name=$1\$"; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

# ---- Strip= -------------------------------------------------------------------------------
make_recipe stripped dm2t_stripped 'static int __init i(void) { return 0; }
module_init(i);'
make_recipe unstripped dm2t_unstripped 'static int __init i(void) { return 0; }
module_init(i);' 'Strip=no'
dm2 install stripped unstripped -k "$KVER" >"$T/out" 2>&1 || fail "install: $(cat "$T/out")"
[ -f "$MODDIR/dm2t_stripped.ko" ] || fail "stripped module not installed: $(ls -R "$ROOT/lib")"
built=$(cached_ko dm2t_stripped) || fail "no build of dm2t_stripped in the cache"
[ "$(debug_sections "$built")" -gt 0 ] || fail "the build has no debug info to strip (test setup)"
[ "$(debug_sections "$MODDIR/dm2t_stripped.ko")" = 0 ] ||
	fail "installed module still has .debug sections: $(readelf -S -W "$MODDIR/dm2t_stripped.ko")"
[ "$(stat -c %s "$MODDIR/dm2t_stripped.ko")" -lt "$(stat -c %s "$built")" ] ||
	fail "installed module is not smaller than the build"
[ -n "$(modinfo -F signer "$MODDIR/dm2t_stripped.ko")" ] || fail "stripped module is not signed"
modinfo -F vermagic "$MODDIR/dm2t_stripped.ko" | grep -q "^$KVER " || fail "modinfo of stripped"
# The signature covers the stripped file: the appended signature verifies with dm2's key.
dm2 verify --cert "$ROOT/var/lib/dm2/keys/signing_key.x509" "$MODDIR/dm2t_stripped.ko" >/dev/null ||
	fail "signature of the stripped module does not verify"
[ "$(debug_sections "$MODDIR/dm2t_unstripped.ko")" -gt 0 ] || fail "Strip=no lost the debug info"
[ -n "$(modinfo -F signer "$MODDIR/dm2t_unstripped.ko")" ] || fail "Strip=no module not signed"
# From the cache: stripped the same way.
dm2 uninstall stripped -k "$KVER" >/dev/null
dm2 install stripped -k "$KVER" >"$T/out" 2>&1 || fail "reinstall: $(cat "$T/out")"
grep -q "from cache" "$T/out" || fail "second install did not use the cache: $(cat "$T/out")"
[ "$(debug_sections "$MODDIR/dm2t_stripped.ko")" = 0 ] || fail "install from cache not stripped"
pass "Strip= strips before signing; Strip=no keeps debug info"

# ---- --force --------------------------------------------------------------------------------
ino=$(stat -c %i "$MODDIR/dm2t_stripped.ko")
dm2 install stripped -k "$KVER" >"$T/out" 2>&1 || fail "install again: $(cat "$T/out")"
grep -q "from cache" "$T/out" || fail "install of an installed build: $(cat "$T/out")"
ino2=$(stat -c %i "$MODDIR/dm2t_stripped.ko")
[ "$ino" != "$ino2" ] || fail "an install of the installed build did not reinstall"
dm2 install --force stripped -k "$KVER" >"$T/out" 2>&1 || fail "install --force: $(cat "$T/out")"
grep -q ": installed (built" "$T/out" || fail "--force did not rebuild: $(cat "$T/out")"
[ "$(stat -c %i "$MODDIR/dm2t_stripped.ko")" != "$ino2" ] || fail "--force did not reinstall"
[ -n "$(modinfo -F signer "$MODDIR/dm2t_stripped.ko")" ] || fail "--force: not signed"
pass "--force rebuilds and reinstalls"

# ---- Needs= ---------------------------------------------------------------------------------
make_recipe provider provider_mod 'int provider_answer(void) { return 42; }
EXPORT_SYMBOL_GPL(provider_answer);'
consumer_c='int provider_answer(void);
static int __init i(void) { return provider_answer() == 42 ? 0 : -EINVAL; }
module_init(i);'
make_recipe consumer consumer_mod "$consumer_c"
expect_exit 5 dm2 install consumer -k "$KVER" >"$T/out" 2>&1
grep -q "undefined!" "$T/out" || fail "no modpost 'undefined!' reason: $(cat "$T/out")"
json_get "[m['reason'] for m in j['modules'] if m['name'] == 'consumer'][0]" >"$T/reason"
grep -q 'provider_answer.*undefined!' "$T/reason" || fail "status reason: $(cat "$T/reason")"
[ ! -e "$ROOT/lib/modules/$KVER/updates/dm2/provider_mod.ko" ] || fail "provider installed unasked"

make_recipe consumer consumer_mod "$consumer_c" 'Needs=provider'
dm2 install consumer -k "$KVER" >"$T/out" 2>&1 || fail "install with Needs=: $(cat "$T/out")"
[ -f "$MODDIR/provider_mod.ko" ] || fail "provider not installed first: $(cat "$T/out")"
[ -f "$MODDIR/consumer_mod.ko" ] || fail "consumer not installed: $(cat "$T/out")"
[ "$(modinfo -F depends "$MODDIR/consumer_mod.ko")" = provider_mod ] ||
	fail "consumer depends: '$(modinfo -F depends "$MODDIR/consumer_mod.ko")'"
for r in provider consumer; do
	[ "$(json_get "[m['state'] for m in j['modules'] if m['name'] == '$r'][0]")" = installed ] ||
		fail "$r is not installed in dm2 status"
done
grep -q '^updates/dm2/consumer_mod.ko: updates/dm2/provider_mod.ko' \
	"$ROOT/lib/modules/$KVER/modules.dep" || fail "modules.dep: $(cat "$ROOT/lib/modules/$KVER/modules.dep")"
pass "Needs= installs the dependency first and links against it"
