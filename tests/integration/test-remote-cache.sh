#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2 cache stat|gc|push|pull against a real nginx with WebDAV on 127.0.0.1, with fake roots.
set -euo pipefail

: "${DM2:?DM2 must point at the dm2 binary}"
: "${DM2_SOURCE_DIR:?}"

source "$(dirname "$0")/cache-lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dm2-remote-cache-XXXXXX")
cleanup() {
	stop_nginx
	if [ -z "${DM2_TEST_KEEP:-}" ]; then rm -rf "$tmp"; else echo "keeping $tmp" >&2; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE CMD...: run CMD, its stderr in $tmp/err, and check its exit status.
expect() {
	local want=$1 got=0
	shift
	"$@" >"$tmp/out" 2>"$tmp/err" || got=$?
	if [ "$got" != "$want" ]; then
		cat "$tmp/out" "$tmp/err" >&2
		fail "'$*' exited $got, expected $want"
	fi
}

srv=$tmp/nginx
start_nginx nginx-dav.conf "$srv"
url=http://127.0.0.1:$port

# ---- seed the server by hand, the way another machine's push leaves it ----
head -c 100000 /dev/urandom >"$tmp/a.ko"
printf '0x12345678\tsym\tdrivers/x\tEXPORT_SYMBOL\t\n' >"$tmp/Module.symvers"
key=$(printf 'demo key' | sha256sum | cut -d' ' -f1)
other=$(printf 'other key' | sha256sum | cut -d' ' -f1)
sha_a=$(sha256sum "$tmp/a.ko" | cut -d' ' -f1)
sha_s=$(sha256sum "$tmp/Module.symvers" | cut -d' ' -f1)
mkdir -p "$srv/www/seed/v1/objects" "$srv/www/seed/v1/$key"
cp "$tmp/a.ko" "$srv/www/seed/v1/objects/$sha_a"
cp "$tmp/Module.symvers" "$srv/www/seed/v1/objects/$sha_s"
{
	echo "dm2-cache-manifest 2"
	echo "key $key"
	echo "recipe demo"
	echo "version 1.0"
	echo "source $sha_a"
	echo "kernel 6.1.0-test"
	echo "identity $other"
	echo "arch x86_64"
	echo "file $sha_a $(stat -c %s "$tmp/a.ko") a.ko"
	echo "file $sha_s $(stat -c %s "$tmp/Module.symvers") Module.symvers"
} >"$tmp/body"
make_cert "$tmp/seeder" "dm2 test seeder"
sign_manifest "$tmp/body" "$tmp/seeder/key.pem" "$tmp/seeder/cert.pem" \
	>"$srv/www/seed/v1/$key/manifest"

# Every root trusts the seeder; r2, r3 and r5 also trust r1, which pushes (trust.c).
for r in r1 r2 r3 r4 r5; do
	mkdir -p "$tmp/$r/etc/dm2/trusted.d"
	cp "$tmp/seeder/cert.pem" "$tmp/$r/etc/dm2/trusted.d/seeder.pem"
done
obj() { echo "$1/var/cache/dm2/artifacts/objects/${2:0:2}/$2"; }

# ---- pull from the seed into root 1 ----
expect 0 "$DM2" --root "$tmp/r1" cache pull --remote "$url/seed/" "$key"
grep -qx "pulled $key" "$tmp/out" || fail "pull did not say so"
cmp "$tmp/a.ko" "$(obj "$tmp/r1" "$sha_a")"
cmp "$tmp/Module.symvers" "$(obj "$tmp/r1" "$sha_s")"
expect 0 "$DM2" --root "$tmp/r1" --json cache stat
python3 - "$tmp/out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["entries"] == 1 and s["objects"] == 2, s
assert s["bytes"] > 100000 and s["max_size"] == 2 << 30, s
assert s["oldest_used_usec"] > 0 and s["newest_used_usec"] >= s["oldest_used_usec"], s
PY
expect 0 "$DM2" --root "$tmp/r1" cache stat
grep -q '^Entries: *1$' "$tmp/out" || fail "stat: $(cat "$tmp/out")"

# ---- push everything from root 1 to another prefix, pull into root 2 ----
expect 0 "$DM2" --root "$tmp/r1" cache push --remote "$url/fleet"
for r in r2 r3 r5; do
	openssl x509 -inform DER -in "$tmp/r1/var/lib/dm2/keys/signing_key.x509" \
		-out "$tmp/$r/etc/dm2/trusted.d/r1.pem"
done
cmp "$tmp/a.ko" "$srv/www/fleet/v1/objects/$sha_a"
[ -f "$srv/www/fleet/v1/$key/manifest" ] || fail "no manifest pushed"
expect 0 "$DM2" --root "$tmp/r2" cache pull --remote "$url/fleet" "$key"
cmp "$tmp/a.ko" "$(obj "$tmp/r2" "$sha_a")"
cmp "$tmp/Module.symvers" "$(obj "$tmp/r2" "$sha_s")"

# ---- trust: an unsigned manifest or an unknown signer is refused (13), counted ----
mkdir -p "$srv/www/unsigned/v1/$key" "$srv/www/unsigned/v1/objects"
cp "$srv/www/seed/v1/objects/"* "$srv/www/unsigned/v1/objects/"
cp "$tmp/body" "$srv/www/unsigned/v1/$key/manifest"
expect 13 "$DM2" --root "$tmp/r4" cache pull --remote "$url/unsigned" "$key"
grep -q "/unsigned/v1/$key/manifest' is not signed, refusing it" "$tmp/err" ||
	fail "unsigned: $(cat "$tmp/err")"
mkdir -p "$tmp/r6"
expect 13 "$DM2" --root "$tmp/r6" cache pull --remote "$url/seed" "$key"
grep -q "signed by 'dm2 test seeder' (serial [0-9A-F]*), which is not a trusted key" "$tmp/err" ||
	fail "no trust: $(cat "$tmp/err")"
expect 0 "$DM2" --root "$tmp/r4" --json cache stat
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["entries"] == 0 and s["refused"]["unsigned"] == 1, s' "$tmp/out"
printf 'not a certificate\n' >"$tmp/r6/bad.pem"
mkdir -p "$tmp/r6/etc/dm2" && printf '[Cache]\nTrustedKeys=/bad.pem\n' >"$tmp/r6/etc/dm2/dm2d.conf"
expect 3 "$DM2" --root "$tmp/r6" cache pull --remote "$url/seed" "$key"
grep -q "bad.pem' holds no PEM certificate" "$tmp/err" || fail "bad pem: $(cat "$tmp/err")"

# ---- missing key: exit 4 and a clear message ----
expect 4 "$DM2" --root "$tmp/r2" cache pull --remote "$url/fleet" "$other"
grep -q "No cache entry '$other'" "$tmp/err" || fail "missing key: $(cat "$tmp/err")"
expect 4 "$DM2" --root "$tmp/r2" cache push --remote "$url/fleet" "$other"

# ---- tampered object on the server: refused, exit 6, nothing stored ----
# Flip byte 100 (writing a fixed byte would change nothing when the random data has it).
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(100); b = f.read(1)[0]; f.seek(100); f.write(bytes([b ^ 0xff]))' \
	"$srv/www/fleet/v1/objects/$sha_a"
expect 6 "$DM2" --root "$tmp/r3" cache pull --remote "$url/fleet" "$key"
grep -q "tampered" "$tmp/err" || fail "tamper: $(cat "$tmp/err")"
expect 0 "$DM2" --root "$tmp/r3" --json cache stat
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["entries"] == 0, s' "$tmp/out"

# ---- Remote= and MaxSize= from dm2d.conf; gc ----
mkdir -p "$tmp/r3/etc/dm2"
printf '[Cache]\nRemote=%s/seed\nMaxSize=1K\n' "$url" >"$tmp/r3/etc/dm2/dm2d.conf"
expect 0 "$DM2" --root "$tmp/r3" cache pull "$key"
expect 0 "$DM2" --root "$tmp/r3" cache gc --max-size 1G
grep -q "Evicted 0 entries" "$tmp/out" || fail "gc 1G: $(cat "$tmp/out")"
expect 0 "$DM2" --root "$tmp/r3" cache gc
grep -q "Evicted 1 entries" "$tmp/out" || fail "gc: $(cat "$tmp/out")"
[ ! -e "$(obj "$tmp/r3" "$sha_a")" ] || fail "gc left the object"
expect 0 "$DM2" --root "$tmp/r3" --json cache stat
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["entries"] == 0 and s["bytes"] == 0 and s["max_size"] == 1024, s' "$tmp/out"

# ---- usage errors ----
expect 2 "$DM2" --root "$tmp/r4" cache pull "$key"      # no remote configured
grep -q "No remote cache" "$tmp/err" || fail "no remote: $(cat "$tmp/err")"
expect 2 "$DM2" --root "$tmp/r4" cache pull --remote "$url" not-a-key
expect 2 "$DM2" --root "$tmp/r4" cache pull --remote "$url"
expect 2 "$DM2" --root "$tmp/r4" cache gc --max-size lots
expect 2 "$DM2" --root "$tmp/r4" cache frobnicate
expect 3 "$DM2" --root "$tmp/r4" cache pull --remote "ftp://127.0.0.1/" "$key"
grep -q "not http:// or https://" "$tmp/err" || fail "ftp: $(cat "$tmp/err")"

# ---- https: verified against CAFile= (under --root), refused without it ----
tls=$tmp/nginx-tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dm2 test CA" \
	-keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
	-keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$tls/ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
	-CAcreateserial -days 2 -extfile "$tls/ext" -out "$tls/server.crt" 2>/dev/null
start_nginx nginx-dav-tls.conf "$tls"
surl=https://127.0.0.1:$port/fleet
# Without the CA the server is not trusted: exit 6, naming the certificate problem.
expect 6 "$DM2" --root "$tmp/r1" cache push --remote "$surl" "$key"
grep -qi "certificate" "$tmp/err" || fail "tls: $(cat "$tmp/err")"
for r in r1 r5; do
	cp "$tls/ca.crt" "$tmp/$r/test-ca.pem"
	printf '[Fetch]\nCAFile=/test-ca.pem\n' >"$tmp/$r/etc/dm2/dm2d.conf"
done
expect 0 "$DM2" --root "$tmp/r1" cache push --remote "$surl" "$key"
expect 0 "$DM2" --root "$tmp/r5" cache pull --remote "$surl" "$key"
cmp "$tmp/a.ko" "$(obj "$tmp/r5" "$sha_a")"
expect 6 "$DM2" --root "$tmp/r4" cache pull --remote "$surl" "$key"
grep -qi "certificate" "$tmp/err" || fail "tls: $(cat "$tmp/err")"

echo "ok"
