# SPDX-License-Identifier: LGPL-2.1-or-later
# The real Debian package acpi-call-dkms (installed in CI, see .ci/setup): a fake root whose
# usr/src/acpi-call-VERSION links to the machine's /usr/src/acpi-call-VERSION (as in the
# README demo) gets it as a recipe of origin dkms, and `dm2 install` builds, signs and
# installs acpi_call.ko into updates/dkms, where DKMS would put it on Debian.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

SRC=$(ls -d /usr/src/acpi-call-*/ 2>/dev/null | head -n 1)
SRC=${SRC%/}
[ -n "$SRC" ] && [ -f "$SRC/dkms.conf" ] || fail "no /usr/src/acpi-call-*: apt-get install acpi-call-dkms"
PKG=$(basename "$SRC")
VER=${PKG#acpi-call-}
lib_init
mkdir -p "$ROOT/usr/src"
ln -s "$SRC" "$ROOT/usr/src/$PKG"
MOD=$ROOT/lib/modules/$KVER/updates/dkms/acpi_call.ko

dm2 recipe list | grep -E "^acpi-call +$VER +dkms +$ROOT/usr/src/$PKG/dkms.conf" \
	>/dev/null || fail "acpi-call not listed: $(dm2 recipe list)"
dm2 install acpi-call -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "install acpi-call"; }
cat "$T/out"
[ -f "$MOD" ] || fail "acpi_call.ko not in updates/dkms: $(find "$ROOT/lib/modules" -name '*.ko*')"
signer=$(dm2 key show | sed -n 's/^Issuer: *CN=//p')
[ -n "$signer" ] || fail "no issuer in 'dm2 key show'"
[ "$(modinfo -F signer "$MOD")" = "$signer" ] ||
	fail "signer '$(modinfo -F signer "$MOD")', key '$signer'"
[ "$(modinfo -F sig_hashalgo "$MOD")" = sha256 ] || fail "hash $(modinfo -F sig_hashalgo "$MOD")"
dm2 verify --cert "$ROOT/var/lib/dm2/keys/signing_key.x509" "$MOD" >/dev/null ||
	fail "dm2 verify against dm2's key"
# vermagic is the kernel's release plus its config flags, from the real headers.
vermagic=$(modinfo -F vermagic "$MOD")
case "$vermagic" in
"$KVER SMP "*mod_unload*) ;;
*) fail "vermagic '$vermagic' is not for $KVER" ;;
esac
[ "$(modinfo -F name "$MOD")" = acpi_call ] || fail "module name $(modinfo -F name "$MOD")"
json_get "[m['state'] for m in j['modules'] if m['name'] == 'acpi-call'][0]" >"$T/state"
[ "$(cat "$T/state")" = installed ] || fail "status: $(cat "$T/state")"
json_get "[m['install_dir'] for m in j['modules'] if m['name'] == 'acpi-call'][0]" >"$T/dir"
[ "$(cat "$T/dir")" = updates/dkms ] || fail "status install_dir: $(cat "$T/dir")"
grep -q '^updates/dkms/acpi_call.ko:' "$ROOT/lib/modules/$KVER/modules.dep" ||
	fail "modules.dep does not list acpi_call"

# The admin's /etc/dkms/<module>.conf overrides dkms.conf, as with DKMS: here it turns off
# stripping, which changes the build, so the next install builds anew.
mkdir -p "$ROOT/etc/dkms"
printf 'STRIP[0]="no"\n' >"$ROOT/etc/dkms/acpi-call.conf"
dm2 dkms import "$ROOT/usr/src/$PKG" -k "$KVER" --json >"$T/import.json" ||
	fail "dkms import with an override"
python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["overrides"] == [sys.argv[2]], j["overrides"]
assert j["modules"][0]["strip"] is False, j["modules"]
' "$T/import.json" "$ROOT/etc/dkms/acpi-call.conf" || fail "import does not show the override"
dm2 install acpi-call -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "install with override"; }
grep -q "installed (built," "$T/out" || fail "the override did not make a new build: $(cat "$T/out")"
modinfo -F name "$MOD" >/dev/null || fail "acpi_call.ko unreadable after the override"
pass "acpi-call-dkms built, signed, installed into updates/dkms; /etc/dkms override honoured"
