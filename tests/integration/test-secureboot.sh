# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2 key status and the Secure Boot line of dm2 status, from efivars files written here
# beneath --root (4 bytes of attributes, then the data): Secure Boot on/off, dm2's
# certificate enrolled (MokListRT), pending (MokNew) or not (with the mokutil command).
set -euo pipefail
. "$DM2_SOURCE_DIR/tests/integration/lib.sh"

lib_init
EFI=$ROOT/sys/firmware/efi/efivars
CERT=$ROOT/var/lib/dm2/keys/signing_key.x509
GLOBAL=8be4df61-93ca-11d2-aa0d-00e098032b8c
SHIM=605dab50-e046-4300-abb6-3dd810dd8b23

# No EFI: status says nothing about it, key status says unknown.
dm2 status >"$T/out"
grep -q "Secure Boot" "$T/out" && fail "status speaks of Secure Boot without EFI"
dm2 key status | grep -qx "Enrolled:    no certificate yet: dm2 key generate" ||
	fail "key status without a certificate: $(dm2 key status)"
[ "$(dm2 status --json | jq -r .secure_boot.mok)" = no-certificate ] || fail "json without cert"

dm2 key generate >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/other.key" -subj /CN=other \
	-outform DER -out "$T/other.der" -days 1 2>/dev/null

# efivar NAME-GUID ATTRS-HEX PYTHON-EXPR-OF-BYTES
siglist() { # DER files -> EFI_SIGNATURE_LIST array on stdout, one list per certificate
	python3 - "$@" <<'PY'
import struct, sys, uuid
x509 = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072").bytes_le
owner = uuid.UUID("605dab50-e046-4300-abb6-3dd810dd8b23").bytes_le
out = b""
for f in sys.argv[1:]:
    der = open(f, "rb").read()
    entry = owner + der
    out += x509 + struct.pack("<III", 28 + len(entry), 0, len(entry)) + entry
sys.stdout.buffer.write(out)
PY
}
efivar() { # NAME DATA-FILE: attributes 0x7 (NV, BS, RT), then the data
	mkdir -p "$EFI"
	{ printf '\x07\x00\x00\x00'; cat "$2"; } >"$EFI/$1"
}
printf '\x01' >"$T/on"
printf '\x00' >"$T/off"

# Secure Boot on, MokListRT without dm2's certificate: not enrolled, the command to run.
efivar "SecureBoot-$GLOBAL" "$T/on"
siglist "$T/other.der" >"$T/list"
efivar "MokListRT-$SHIM" "$T/list"
dm2 key status >"$T/out"
grep -qx "Secure Boot: on" "$T/out" || fail "key status: $(cat "$T/out")"
grep -qx "mokutil --import $CERT" "$T/out" || fail "no mokutil command: $(cat "$T/out")"
dm2 status >"$T/out"
grep -qx "Secure Boot: on; dm2's certificate is not enrolled: mokutil --import $CERT" "$T/out" ||
	fail "status line: $(cat "$T/out")"
dm2 status --json >"$T/json"
[ "$(jq -c .secure_boot "$T/json")" = \
	"{\"efi\":true,\"enabled\":true,\"mok\":\"not-enrolled\",\"certificate\":\"$CERT\",\"enroll_command\":\"mokutil --import $CERT\"}" ] ||
	fail "status json: $(jq -c .secure_boot "$T/json")"
pass "Secure Boot on, not enrolled: the mokutil command"

# mokutil --import done, not yet confirmed: MokNew holds it.
siglist "$CERT" >"$T/new"
efivar "MokNew-$SHIM" "$T/new"
dm2 key status | grep -q "^Enrolled:    pending" || fail "pending: $(dm2 key status)"
[ "$(dm2 key status --json | jq -r .secure_boot.mok)" = pending ] || fail "pending json"
pass "pending in MokNew"

# Confirmed at boot: MokListRT holds it among others; Secure Boot off now.
siglist "$T/other.der" "$CERT" >"$T/list"
efivar "MokListRT-$SHIM" "$T/list"
rm "$EFI/MokNew-$SHIM"
efivar "SecureBoot-$GLOBAL" "$T/off"
dm2 status | grep -qx "Secure Boot: off; dm2's certificate is enrolled." ||
	fail "enrolled: $(dm2 status)"
[ "$(dm2 key status --json | jq -c '[.secure_boot.enabled, .secure_boot.mok, .version]')" = \
	'[false,"enrolled",1]' ] || fail "enrolled json: $(dm2 key status --json)"
pass "enrolled in MokListRT, Secure Boot off"

# The same certificate configured as PEM compares by its DER.
openssl x509 -inform DER -in "$CERT" -out "$T/cert.pem"
cp "$T/cert.pem" "$ROOT/etc/dm2/cert.pem"
printf '[Signing]\nCertificate=/etc/dm2/cert.pem\nKey=/var/lib/dm2/keys/signing_key.pem\n' \
	>"$ROOT/etc/dm2/dm2d.conf"
[ "$(dm2 key status --json | jq -r .secure_boot.mok)" = enrolled ] || fail "PEM cert"
rm "$ROOT/etc/dm2/dm2d.conf"

# A MokListRT whose sizes do not add up: unknown, not a crash and not "enrolled".
head -c 40 "$T/list" >"$T/bad"
efivar "MokListRT-$SHIM" "$T/bad"
[ "$(dm2 key status --json | jq -r .secure_boot.mok)" = unknown ] || fail "malformed list"
pass "PEM certificate; a malformed MokListRT is unknown"

# Linux >= 5.10 exports shim's list without attributes in mok-variables/ too.
rm "$EFI/MokListRT-$SHIM"
mkdir -p "$ROOT/sys/firmware/efi/mok-variables"
cp "$T/list" "$ROOT/sys/firmware/efi/mok-variables/MokListRT"
[ "$(dm2 key status --json | jq -r .secure_boot.mok)" = enrolled ] || fail "mok-variables"
pass "mok-variables/MokListRT"
