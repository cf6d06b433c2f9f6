#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The remote cache's trust model with real builds and a real nginx WebDAV on 127.0.0.1: a
# builder builds, signs and pushes; a client that trusts the builder's certificate installs
# from the cache without compiling; every tampered, replayed, unsigned or foreign-signed
# entry is refused with a one-line reason, counted, and the client builds locally instead,
# installing nothing that came from the server.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cache-lib.sh"

lib_init
trap 'stop_nginx; lib_cleanup' EXIT
lib_copy_recipe dm2-example
NAME=dm2-example
srv=$T/nginx
start_nginx nginx-dav.conf "$srv"
url=http://127.0.0.1:$port/fleet
www=$srv/www/fleet/v1

dm2r() { local r=$1; shift; "$DM2" --root "$r" --recipes "$RECIPES" "$@"; }
field() { # ROOT FIELD: the job's FIELD from dm2 status --json
	dm2r "$1" status --json | python3 -c 'import json,sys; j=json.load(sys.stdin)
print([m[sys.argv[1]] for m in j["modules"] if m["name"] == sys.argv[2]][0])' "$2" "$NAME"
}
refused() { # ROOT REASON: how often the root refused an entry for REASON
	dm2r "$1" --json cache stat | python3 -c 'import json,sys
print(json.load(sys.stdin)["refused"][sys.argv[1]])' "$2"
}
pem() { openssl x509 -inform DER -in "$1/var/lib/dm2/keys/signing_key.x509"; }

# ---- the builder: builds, signs with its key, pushes a signed manifest ----
printf '[Cache]\nRemote=%s\nPush=yes\n' "$url" >"$ROOT/etc/dm2/dm2d.conf"
dm2 install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "builder install"; }
key=$(ls "$www" | grep -v '^objects$')
[ "$(echo "$key" | wc -l)" = 1 ] || fail "expected one pushed entry: $key"
manifest=$www/$key/manifest
tail -n1 "$manifest" | grep -q '^signature [A-Za-z0-9+/=]*$' || fail "manifest not signed"
grep -qx "recipe $NAME" "$manifest" || fail "manifest names no recipe"
grep -qx "kernel $KVER" "$manifest" || fail "manifest names no kernel"
pem "$ROOT" >"$T/builder.pem"
cp "$manifest" "$T/manifest.good"
ko_sha=$(awk '$1 == "file" && $4 ~ /\.ko$/ {print $2}' "$manifest")
cp "$www/objects/$ko_sha" "$T/ko.good"
pass "builder pushed a signed manifest"

# new_client NAME [TRUSTED.pem]: a fresh root with the remote and (by default) the
# builder's certificate in etc/dm2/trusted.d.
new_client() {
	local r=$T/$1
	mkdir -p "$r/etc/dm2/trusted.d" "$r/lib/modules/$KVER"
	ln -sfn "$REAL_TREE" "$r/lib/modules/$KVER/build"
	printf '[Cache]\nRemote=%s\n' "$url" >"$r/etc/dm2/dm2d.conf"
	cp "${2:-$T/builder.pem}" "$r/etc/dm2/trusted.d/fleet.pem"
	echo "$r"
}
restore() { cp "$T/manifest.good" "$manifest"; cp "$T/ko.good" "$www/objects/$ko_sha"; }

# ---- a trusting client installs from the cache, no compiler ----
c=$(new_client ok)
dm2r "$c" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "client install"; }
[ "$(field "$c" from_cache)" = True ] || fail "trusted entry was not used: $(cat "$T/out")"
[ ! -e "$c/var/lib/dm2/work/$NAME" ] || [ -z "$(ls -A "$c/var/lib/dm2/work/$NAME")" ] ||
	fail "client has a build directory"
[ "$(refused "$c" unsigned)" = 0 ] || fail "counted a refusal"
pass "trusted entry installed from the cache"

# ---- RemoteSigning=builder: a client with no private key installs the builder's module ----
grep -q "^file [0-9a-f]* [0-9]* .*\.ko\.signed$" "$manifest" || fail "no builder-signed module pushed"
c=$(new_client keyless)
printf '[Cache]\nRemote=%s\nRemoteSigning=builder\n' "$url" >"$c/etc/dm2/dm2d.conf"
dm2r "$c" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "keyless install"; }
[ "$(field "$c" from_cache)" = True ] || fail "keyless: not from the cache: $(cat "$T/out")"
[ ! -e "$c/var/lib/dm2/keys/signing_key.pem" ] || fail "keyless: a private key was made"
ko=$(find "$c/lib/modules/$KVER/updates" -name '*.ko*' | head -n1)
bko=$(find "$ROOT/lib/modules/$KVER/updates" -name '*.ko*' | head -n1)
[ "$(modinfo -F sig_key "$ko")" = "$(modinfo -F sig_key "$bko")" ] || fail "keyless: sig_key"
[ "$(modinfo -F signer "$ko")" = "$(modinfo -F signer "$bko")" ] || fail "keyless: signer"
[ "$(field "$c" signed_by)" = "$(modinfo -F signer "$bko")" ] || fail "keyless: status signer"
pass "RemoteSigning=builder: installed the builder-signed module with no private key"

# refused NAME REASON MESSAGE: a fresh client refuses the server's entry for REASON with a
# line matching MESSAGE, builds locally, signs with its own key, and keeps nothing of it.
expect_refused() {
	local c ko
	c=$(new_client "$1" "${4:-}")
	printf '%s' "${EXTRA_CONF:-}" >>"$c/etc/dm2/dm2d.conf"
	dm2r "$c" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "$1: install"; }
	grep -q "Remote cache: .*$3.*; building '$NAME' locally" "$T/out" ||
		fail "$1: no reason matching '$3': $(cat "$T/out")"
	[ "$(grep -c 'Remote cache:' "$T/out")" = 1 ] || fail "$1: not one line: $(cat "$T/out")"
	[ "$(field "$c" from_cache)" = False ] || fail "$1: installed from the cache"
	[ "$(refused "$c" "$2")" = 1 ] || fail "$1: not counted as $2"
	ko=$(find "$c/lib/modules/$KVER/updates" -name '*.ko*' | head -n1)
	modinfo -F signer "$ko" | grep -qxF "$(field "$c" signed_by)" || fail "$1: signer"
	! cmp -s <(pem "$c") "$T/builder.pem" || fail "$1: client key is the builder's"
	pass "$1: refused ($2), built locally"
}

# unsigned: the signature line removed
restore
head -n -1 "$T/manifest.good" >"$manifest"
expect_refused unsigned unsigned "is not signed"

# bad signature: one object line altered after signing
restore
sed -i "s/^file $ko_sha \([0-9]*\)/file $ko_sha 1\1/" "$manifest"
expect_refused altered bad-signature "does not match its signature"

# unknown key: the client trusts only some other certificate
restore
make_cert "$T/other" "some other fleet"
expect_refused unknown unknown-signer "not a trusted key" "$T/other/cert.pem"

# re-signed by an untrusted key, pointing at the attacker's blob
restore
make_cert "$T/evil" "attacker"
head -c 4096 /dev/urandom >"$T/evil.ko"
evil_sha=$(sha256sum "$T/evil.ko" | cut -d' ' -f1)
cp "$T/evil.ko" "$www/objects/$evil_sha"
head -n -1 "$T/manifest.good" |
	sed "s/^file $ko_sha [0-9]* /file $evil_sha 4096 /" >"$T/evil.body"
sign_manifest "$T/evil.body" "$T/evil/key.pem" "$T/evil/cert.pem" >"$manifest"
expect_refused resigned unknown-signer "'attacker'.*not a trusted key"
[ -z "$(find "$T/resigned" -name "$evil_sha")" ] || fail "the attacker's blob was stored"

# swapped blob: the object's content replaced by one of the same size
restore
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(100); b = f.read(1)[0]; f.seek(100); f.write(bytes([b ^ 0xff]))' \
	"$www/objects/$ko_sha"
expect_refused swapped object-mismatch "refusing the tampered object"

# truncated blob
restore
head -c 1000 "$T/ko.good" >"$www/objects/$ko_sha"
expect_refused truncated truncated "is truncated: 1000 of"

# replay: the builder's genuine signature over another entry's manifest (another key)
restore
other=$(printf 'another entry' | sha256sum | cut -d' ' -f1)
head -n -1 "$T/manifest.good" | sed "s/^key .*/key $other/" >"$T/replay.body"
sign_manifest "$T/replay.body" "$ROOT/var/lib/dm2/keys/signing_key.pem" "$T/builder.pem" \
	>"$manifest"
expect_refused replay-key replay "signed for key $other, not $key (replayed)"

# replay: signed by the builder for the same key but another kernel's identity
restore
head -n -1 "$T/manifest.good" | sed "s/^identity .*/identity $other/" >"$T/replay.body"
sign_manifest "$T/replay.body" "$ROOT/var/lib/dm2/keys/signing_key.pem" "$T/builder.pem" \
	>"$manifest"
expect_refused replay-kernel replay "identity $other, not this kernel's"

# builder mode, but the entry (signed by the builder) has no builder-signed module
restore
head -n -1 "$T/manifest.good" | grep -v '\.signed$' >"$T/nosig.body"
sign_manifest "$T/nosig.body" "$ROOT/var/lib/dm2/keys/signing_key.pem" "$T/builder.pem" \
	>"$manifest"
EXTRA_CONF='RemoteSigning=builder
' expect_refused builder-unsigned module-signature "holds no builder-signed copy"

# ---- cache stat shows the counts ----
dm2r "$T/truncated" cache stat | grep -qx 'Refused:    1 (truncated 1)' ||
	fail "cache stat: $(dm2r "$T/truncated" cache stat)"
pass "cache stat counts refusals"

# ---- offline: export from the builder, import on a client that trusts it ----
restore
dm2 cache export --recipe "$NAME" --kernel "$KVER" "$T/fleet.tar" >"$T/out" 2>&1 ||
	{ cat "$T/out"; fail "export"; }
grep -qx "exported $key" "$T/out" || fail "export: $(cat "$T/out")"
expect_exit 4 dm2 cache export --recipe no-such-recipe "$T/none.tar"
[ ! -e "$T/none.tar" ] || fail "an empty export left a file"
c=$(new_client offline)
printf '' >"$c/etc/dm2/dm2d.conf" # no remote at all: an air-gapped machine
dm2r "$c" cache import "$T/fleet.tar" >"$T/out" 2>&1 || { cat "$T/out"; fail "import"; }
grep -qx "imported $key" "$T/out" || fail "import: $(cat "$T/out")"
dm2r "$c" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "offline install"; }
[ "$(field "$c" from_cache)" = True ] || fail "imported entry was not used"
pass "export, import, install without a compiler or a network"

# A client that trusts someone else imports nothing.
c=$(new_client offline-untrusting "$T/other/cert.pem")
expect_exit 13 dm2r "$c" cache import "$T/fleet.tar" 2>"$T/err"
grep -q "fleet.tar:v1/$key/manifest' is signed by .* not a trusted key" "$T/err" ||
	fail "untrusted import: $(cat "$T/err")"
[ "$(dm2r "$c" --json cache stat | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])')" = 0 ] ||
	fail "untrusted import stored something"

# A tampered archive is refused entry by entry: the good entry goes in, a swapped object
# and a replayed manifest (the builder's real signature, under another key) do not.
mkdir -p "$T/x" && tar -xf "$T/fleet.tar" -C "$T/x"
mkdir -p "$T/x/v1/$other"
cp "$T/x/v1/$key/manifest" "$T/x/v1/$other/manifest"
third=$(printf 'third entry' | sha256sum | cut -d' ' -f1)
mkdir -p "$T/x/v1/$third"
head -n -1 "$T/x/v1/$key/manifest" | sed "s/^key .*/key $third/" >"$T/third.body"
sign_manifest "$T/third.body" "$ROOT/var/lib/dm2/keys/signing_key.pem" "$T/builder.pem" \
	>"$T/x/v1/$third/manifest"
(cd "$T/x" && tar -cf "$T/mixed.tar" v1)
c=$(new_client mixed)
expect_exit 13 dm2r "$c" cache import "$T/mixed.tar" >"$T/out" 2>"$T/err"
grep -qx "imported $key" "$T/out" || fail "mixed: good entry: $(cat "$T/out" "$T/err")"
grep -q "v1/$other/manifest' is signed for key $key, not $other (replayed)" "$T/err" ||
	fail "mixed: replay: $(cat "$T/err")"
[ "$(refused "$c" replay)" = 1 ] || fail "mixed: replay not counted"
# The third entry is genuinely signed for its key; its objects are the good ones: it goes in.
grep -qx "imported $third" "$T/out" || fail "mixed: third: $(cat "$T/out")"
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(100); b = f.read(1)[0]; f.seek(100); f.write(bytes([b ^ 0xff]))' \
	"$T/x/v1/objects/$ko_sha"
(cd "$T/x" && rm -r "v1/$other" "v1/$third" && tar -cf "$T/swapped.tar" v1)
c=$(new_client swapped-archive)
expect_exit 6 dm2r "$c" cache import "$T/swapped.tar" >"$T/out" 2>"$T/err"
grep -q "swapped.tar:v1/objects/$ko_sha' has sha256 .* refusing the tampered object" "$T/err" ||
	fail "swapped archive: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "swapped archive imported: $(cat "$T/out")"
[ "$(refused "$c" object-mismatch)" = 1 ] || fail "swapped archive: not counted"
head -c 3000 "$T/fleet.tar" >"$T/cut.tar"
expect_exit 3 dm2r "$c" cache import "$T/cut.tar" 2>"$T/err"
grep -q "cut.tar" "$T/err" || fail "cut archive: $(cat "$T/err")"
pass "a tampered archive is refused entry by entry"
