#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The remote cache in a real OCI registry on 127.0.0.1: Debian's docker-registry (Distribution
# 2.x), started here with its own config (storage under $T, a free port, htpasswd auth, TLS
# with a certificate made here) and stopped here. A builder root builds and pushes; a client
# root installs the same module without compiling; wrong password, registry down and a
# missing tag each give a one-line reason and a local build; no secret is ever printed.
# Entries are signed by the builder's key; clients trust its certificate (etc/dm2/trusted.d)
# and accept nothing else, as over plain HTTP (test-cache-trust.sh).
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cache-lib.sh"

command -v docker-registry >/dev/null || fail "docker-registry is not installed (.ci/setup)"
command -v htpasswd >/dev/null || fail "htpasswd is not installed (apache2-utils, .ci/setup)"

lib_init
lib_copy_recipe dm2-example
NAME=dm2-example
BUILDER=$ROOT
REG=$T/registry
mkdir -p "$REG"

# ---- the registry: TLS with our own CA, htpasswd (bcrypt) auth ----
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dm2 test CA" \
	-keyout "$REG/ca.key" -out "$REG/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
	-keyout "$REG/server.key" -out "$REG/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$REG/ext"
openssl x509 -req -in "$REG/server.csr" -CA "$REG/ca.pem" -CAkey "$REG/ca.key" \
	-CAcreateserial -days 2 -extfile "$REG/ext" -out "$REG/server.pem" 2>/dev/null
htpasswd -Bbn builder 'pa$$word@1' >"$REG/htpasswd" 2>/dev/null

REG_PID=
stop_registry() {
	kill "$REG_PID" 2>/dev/null || true
	wait "$REG_PID" 2>/dev/null || true
}
PORT=$(free_port)
start_registry "$REG" "$PORT" "  tls:
    certificate: $REG/server.pem
    key: $REG/server.key
auth:
  htpasswd:
    realm: dm2-test
    path: $REG/htpasswd" || fail "docker-registry did not start"
REG_PID=$registry_pid
LIB_PIDS+=("$REG_PID")
URL=oci://127.0.0.1:$PORT/dm2/fleet

# configure ROOT PASSWORD: Remote= the registry, credentials in a netrc, our CA.
configure() {
	mkdir -p "$1/etc/dm2"
	cp "$REG/ca.pem" "$1/etc/dm2/registry-ca.pem"
	printf 'machine 127.0.0.1 login builder password %s\n' "$2" >"$1/etc/dm2/netrc"
	chmod 600 "$1/etc/dm2/netrc"
	cat >"$1/etc/dm2/dm2d.conf" <<EOF
[Cache]
Remote=$URL
Push=yes
NetrcFile=/etc/dm2/netrc
CAFile=/etc/dm2/registry-ca.pem
EOF
}
# trust ROOT: ROOT believes the builder's signing certificate (made by its first build).
trust() {
	mkdir -p "$1/etc/dm2/trusted.d"
	openssl x509 -inform DER -in "$BUILDER/var/lib/dm2/keys/signing_key.x509" \
		-out "$1/etc/dm2/trusted.d/builder.pem"
}
# client NAME [PASSWORD]: a fresh root with the same kernel, configured for the registry,
# trusting the builder.
client() {
	local c=$T/$1
	mkdir -p "$c/lib/modules/$KVER"
	ln -sfn "$REAL_TREE" "$c/lib/modules/$KVER/build"
	configure "$c" "${2:-pa\$\$word@1}"
	trust "$c"
	echo "$c"
}
dm2_at() {
	local root=$1
	shift
	"$DM2" --root "$root" --recipes "$RECIPES" "$@"
}
from_cache() {
	dm2_at "$1" status --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
print([m["from_cache"] for m in j["modules"] if m["name"] == sys.argv[1]][0])' "$NAME"
}
no_secret() {
	! grep -q 'pa\$\$word\|s3cret\|tok\$en' "$@" || fail "a secret was printed: $(cat "$@")"
}

# ---- builder: build, then push to the registry ----
configure "$BUILDER" 'pa$$word@1'
dm2_at "$BUILDER" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "build"; }
[ "$(from_cache "$BUILDER")" = False ] || fail "the builder did not build"
grep -q "Pushing" "$T/out" && fail "push failed: $(cat "$T/out")"
KEY=$(dm2_at "$BUILDER" --json cache stat >/dev/null; sqlite3 "$BUILDER/var/cache/dm2/artifacts/index.db" 'SELECT key FROM entries')
[ -n "$KEY" ] || fail "no cache entry on the builder"
curl -sf --cacert "$REG/ca.pem" -u 'builder:pa$$word@1' \
	"https://127.0.0.1:$PORT/v2/dm2/fleet/tags/list" >"$T/tags"
grep -q "dm2-$KEY" "$T/tags" || fail "no tag dm2-$KEY in the registry: $(cat "$T/tags")"
curl -sf --cacert "$REG/ca.pem" -u 'builder:pa$$word@1' \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"https://127.0.0.1:$PORT/v2/dm2/fleet/manifests/dm2-$KEY" >"$T/image.json"
python3 - "$T/image.json" <<'PY' || fail "image manifest: $(cat "$T/image.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["schemaVersion"] == 2 and m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
assert m["config"]["mediaType"] == "application/vnd.dm2.cache.manifest.v1"
assert len(m["layers"]) >= 2, m  # the .ko and Module.symvers
assert all(l["digest"].startswith("sha256:") for l in m["layers"])
PY
CONFIG=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$T/image.json")
curl -sfL --cacert "$REG/ca.pem" -u 'builder:pa$$word@1' \
	"https://127.0.0.1:$PORT/v2/dm2/fleet/blobs/$CONFIG" >"$T/manifest"
head -n1 "$T/manifest" | grep -qx 'dm2-cache-manifest 2' || fail "config blob: $(cat "$T/manifest")"
tail -n1 "$T/manifest" | grep -q '^signature [A-Za-z0-9+/=]*$' || fail "config blob not signed"
pass "builder built and pushed: tag dm2-<key>, image manifest referencing every object, signed"

# ---- a client that trusts nobody: refused over OCI too, counted, built locally ----
C0=$T/c0
mkdir -p "$C0/lib/modules/$KVER"
ln -sfn "$REAL_TREE" "$C0/lib/modules/$KVER/build"
configure "$C0" 'pa$$word@1'
sed -i '/^Push=/d' "$C0/etc/dm2/dm2d.conf" # its own build must not replace the builder's
dm2_at "$C0" cache pull "$KEY" >"$T/out" 2>"$T/err" && fail "an untrusted entry was pulled"
[ "$(wc -l <"$T/err")" = 1 ] || fail "untrusted: not one line: $(cat "$T/err")"
grep -q "dm2/fleet:dm2-$KEY' is signed by .*not a trusted key" "$T/err" ||
	fail "untrusted: $(cat "$T/err")"
dm2_at "$C0" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "c0 install"; }
[ "$(from_cache "$C0")" = False ] || fail "client 0 installed an untrusted entry"
dm2_at "$C0" --json cache stat | python3 -c 'import json, sys
assert json.load(sys.stdin)["refused"]["unknown-signer"] == 2' || fail "refusals not counted"
pass "a client trusting nobody refuses the registry's entry (one line, counted) and builds"

# ---- client: installed from the registry, no compiler run ----
C1=$(client c1)
dm2_at "$C1" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "client install"; }
[ "$(from_cache "$C1")" = True ] || fail "client 1 built instead of pulling: $(cat "$T/out")"
[ ! -e "$C1/var/lib/dm2/logs/$NAME/$KVER/build.log" ] || fail "client 1 ran a build"
modinfo -F signer "$C1/lib/modules/$KVER/updates/dm2/dm2_example.ko" >/dev/null ||
	fail "client module not signed"
no_secret "$T/out"
pass "client installed from the registry without compiling"

# ---- the CLI: pull by key, credentials in the URL, a missing tag ----
C2=$(client c2)
dm2_at "$C2" cache pull "$KEY" >"$T/out" 2>&1 || { cat "$T/out"; fail "pull by key"; }
grep -qx "pulled $KEY" "$T/out" || fail "pull by key: $(cat "$T/out")"
OTHER=$(printf 'no such build' | sha256sum | cut -c1-64)
dm2_at "$C2" cache pull "$OTHER" >"$T/out" 2>"$T/err" && fail "pull of a missing tag succeeded"
[ "$(wc -l <"$T/err")" = 1 ] || fail "missing tag: not one line: $(cat "$T/err")"
grep -q "No cache entry '$OTHER'.*no tag 'dm2-$OTHER'" "$T/err" || fail "missing tag: $(cat "$T/err")"
# Basic credentials in the URL (percent-encoded), never shown.
dm2_at "$BUILDER" cache push --remote "oci://builder:pa%24%24word%401@127.0.0.1:$PORT/dm2/other" \
	"$KEY" >"$T/out" 2>&1 || { cat "$T/out"; fail "push with URL credentials"; }
pass "pull by key; a missing tag: one line; credentials in the URL"

# ---- wrong password: one line without the secret, the module built locally ----
C3=$(client c3 's3cret-but-wrong')
dm2_at "$C3" cache pull "$KEY" >"$T/out" 2>"$T/err" && fail "pull with a wrong password succeeded"
[ "$(wc -l <"$T/err")" = 1 ] || fail "401: not one line: $(cat "$T/err")"
grep -q "HTTP 401 (permission denied)" "$T/err" || fail "401: $(cat "$T/err")"
no_secret "$T/err"
dm2_at "$C3" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "c3 install"; }
[ "$(from_cache "$C3")" = False ] || fail "client 3 used the cache with a wrong password"
grep -q "Remote cache: .*HTTP 401" "$T/out" || fail "401 not reported: $(cat "$T/out")"
no_secret "$T/out"
dm2_at "$C3" cache push --remote "oci://builder:s3cret@127.0.0.1:$PORT/dm2/fleet" "$KEY" \
	>"$T/out" 2>"$T/err" && fail "push with a wrong password in the URL succeeded"
grep -q "oci://\*\*\*@127.0.0.1:$PORT/dm2/fleet\|https://127.0.0.1:$PORT/v2/dm2/fleet" "$T/err" ||
	fail "401 push: $(cat "$T/err")"
no_secret "$T/err"
pass "wrong password: one line, no secret, local build"

# ---- the issue's example: an http:// URL with credentials, nothing listening ----
dm2_at "$BUILDER" cache push --remote 'http://user:s3cret@127.0.0.1:9/' "$KEY" \
	>"$T/out" 2>"$T/err" && fail "push to port 9 succeeded"
grep -q "http://\*\*\*@127.0.0.1:9" "$T/err" || fail "port 9: $(cat "$T/err")"
no_secret "$T/err"
dm2_at "$BUILDER" cache pull --remote 'ftp://user:s3cret@127.0.0.1/x?token=s3cret' "$KEY" \
	>"$T/out" 2>"$T/err" && fail "ftp pull succeeded"
grep -q "ftp://\*\*\*@127.0.0.1/x?token=\*\*\*" "$T/err" || fail "ftp: $(cat "$T/err")"
no_secret "$T/err"
printf '[Cache]\nRemote=ftp://user:s3cret@127.0.0.1/\n' >"$T/bad.conf"
mkdir -p "$T/badroot/etc/dm2"
cp "$T/bad.conf" "$T/badroot/etc/dm2/dm2d.conf"
"$DM2" --root "$T/badroot" cache stat >"$T/out" 2>"$T/err" && fail "bad Remote= accepted"
grep -q "ftp://\*\*\*@127.0.0.1/" "$T/err" || fail "bad Remote=: $(cat "$T/err")"
no_secret "$T/err"
# A download mirror with credentials (dm2d.conf [Fetch] Mirror=): its failure is shown
# without them.
mkdir -p "$T/fetchroot/etc/dm2" "$T/fetchrecipes"
printf '[Fetch]\nMirror=http://127.0.0.1:9/src/ http://mirror:s3cret@127.0.0.1:9/m/?key=s3cret&x=1\nRetries=0\n' \
	>"$T/fetchroot/etc/dm2/dm2d.conf"
printf '[Recipe]\nName=fetchme\nLicense=GPL-2.0-only\n\n[Source]\nVersion=1\nURL=http://127.0.0.1:9/src/a.tar.gz\nSHA256=%s\n\n[Build]\nModules=fetchme\n' \
	"$(printf x | sha256sum | cut -c1-64)" >"$T/fetchrecipes/fetchme.recipe"
"$DM2" --root "$T/fetchroot" --recipes "$T/fetchrecipes" fetch fetchme >"$T/out" 2>"$T/err" &&
	fail "fetch from port 9 succeeded"
grep -qF "http://***@127.0.0.1:9/m/?key=***&x=***" "$T/err" || fail "mirror: $(cat "$T/err")"
no_secret "$T/err"
pass "URLs in messages have no userinfo or query secrets"

# ---- the token flow: a registry with token auth, a token server of our own ----
# The registry answers 401 "WWW-Authenticate: Bearer realm=...,service=...,scope=..."; dm2
# gets a token from the realm with its basic credentials and retries with it. The token is
# a JWT signed RS256 (openssl) with a certificate the registry trusts (rootcertbundle).
TOK=$T/token
mkdir -p "$TOK"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dm2 test token signer" \
	-keyout "$TOK/sign.key" -out "$TOK/sign.pem" 2>/dev/null
cat >"$TOK/server.py" <<'PY'
import base64, http.server, json, os, ssl, subprocess, sys, time, urllib.parse
port_file, cert, key, sign_key, sign_pem, user, password, log = sys.argv[1:]
der = subprocess.run(["openssl", "x509", "-in", sign_pem, "-outform", "DER"],
                     capture_output=True, check=True).stdout
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
class Token(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="token"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        access = []
        for s in q.get("scope", []):
            typ, name, actions = s.split(":")
            access.append({"type": typ, "name": name, "actions": actions.split(",")})
        with open(log, "a") as f:
            f.write(" ".join(q.get("scope", [])) + "\n")
        now = int(time.time())
        head = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": "dm2-test-issuer", "sub": user, "aud": q["service"][0],
                  "exp": now + 300, "nbf": now - 60, "iat": now, "jti": os.urandom(8).hex(),
                  "access": access}
        signed = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", sign_key],
                             input=signed.encode(), capture_output=True, check=True).stdout
        body = json.dumps({"token": signed + "." + b64(sig), "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = http.server.HTTPServer(("127.0.0.1", 0), Token)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
PY
python3 "$TOK/server.py" "$TOK/port" "$REG/server.pem" "$REG/server.key" "$TOK/sign.key" \
	"$TOK/sign.pem" builder 'tok$en-pass' "$TOK/log" 2>"$TOK/err" &
LIB_PIDS+=("$!")
wait_for 20 test -s "$TOK/port"
TPORT=$(cat "$TOK/port")
TREG_PORT=$(free_port)
start_registry "$TOK/registry" "$TREG_PORT" "  tls:
    certificate: $REG/server.pem
    key: $REG/server.key
auth:
  token:
    realm: https://127.0.0.1:$TPORT/token
    service: dm2-test-registry
    issuer: dm2-test-issuer
    rootcertbundle: $TOK/sign.pem" || fail "the token registry did not start"
LIB_PIDS+=("$registry_pid")
TURL=oci://127.0.0.1:$TREG_PORT/dm2/tokens
printf 'machine 127.0.0.1 login builder password %s\n' 'tok$en-pass' >"$BUILDER/etc/dm2/netrc"
dm2_at "$BUILDER" cache push --remote "$TURL" "$KEY" >"$T/out" 2>&1 ||
	{ cat "$T/out" "$TOK/err" "$TOK/registry/log"; fail "push with the token flow"; }
# The registry names the actions in either order.
grep -qE "repository:dm2/tokens:(pull,push|push,pull)" "$TOK/log" || fail "no token for push: $(cat "$TOK/log")"
C5=$(client c5 'tok$en-pass')
dm2_at "$C5" cache pull --remote "$TURL" "$KEY" >"$T/out" 2>&1 ||
	{ cat "$T/out" "$TOK/registry/log"; fail "pull with the token flow"; }
grep -qx "repository:dm2/tokens:pull" "$TOK/log" || fail "no token for pull: $(cat "$TOK/log")"
(cd "$BUILDER/var/cache/dm2/artifacts/objects" && find . -type f) >"$T/objects"
while read -r o; do
	cmp "$BUILDER/var/cache/dm2/artifacts/objects/$o" "$C5/var/cache/dm2/artifacts/objects/$o" ||
		fail "object $o differs after the token-flow pull"
done <"$T/objects"
C6=$(client c6 'wrong-token-pass')
dm2_at "$C6" cache pull --remote "$TURL" "$KEY" >"$T/out" 2>"$T/err" &&
	fail "token flow with a wrong password succeeded"
[ "$(wc -l <"$T/err")" = 1 ] || fail "token 401: not one line: $(cat "$T/err")"
grep -qF "https://127.0.0.1:$TPORT/token?service=***&scope=***' failed: HTTP 401 (permission denied)" "$T/err" ||
	fail "token 401: $(cat "$T/err")"
no_secret "$T/err"
printf 'machine 127.0.0.1 login builder password %s\n' 'pa$$word@1' >"$BUILDER/etc/dm2/netrc"
pass "token flow: 401 Bearer challenge, token from the realm, retried; wrong password refused"

# ---- BearerTokenFile=, HeaderFile=, ClientCertificate=/ClientKey= ----
# configure_only ROOT LINES...: a client root whose [Cache] is exactly these lines.
configure_only() {
	local c=$T/$1
	shift
	mkdir -p "$c/lib/modules/$KVER" "$c/etc/dm2"
	ln -sfn "$REAL_TREE" "$c/lib/modules/$KVER/build"
	cp "$REG/ca.pem" "$c/etc/dm2/registry-ca.pem"
	printf '[Cache]\nCAFile=/etc/dm2/registry-ca.pem\n' >"$c/etc/dm2/dm2d.conf"
	printf '%s\n' "$@" >>"$c/etc/dm2/dm2d.conf"
	trust "$c"
	echo "$c"
}
# A token obtained beforehand (as a CI job would), sent as "Authorization: Bearer".
C7=$(configure_only c7 "Remote=$TURL" BearerTokenFile=/etc/dm2/token)
curl -sf --cacert "$REG/ca.pem" -u 'builder:tok$en-pass' \
	"https://127.0.0.1:$TPORT/token?service=dm2-test-registry&scope=repository:dm2/tokens:pull" |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' >"$C7/etc/dm2/token"
tokens_before=$(wc -l <"$TOK/log")
dm2_at "$C7" cache pull "$KEY" >"$T/out" 2>&1 || { cat "$T/out"; fail "pull with BearerTokenFile="; }
[ "$(wc -l <"$TOK/log")" = "$tokens_before" ] || fail "BearerTokenFile=: dm2 asked for a token anyway"
printf 'two words\n' >"$C7/etc/dm2/token"
dm2_at "$C7" cache pull "$KEY" >"$T/out" 2>"$T/err" && fail "a bad token file was accepted"
grep -q "BearerTokenFile '.*/etc/dm2/token': the token contains a space" "$T/err" ||
	fail "bad token file: $(cat "$T/err")"
no_secret "$T/err"
grep -q "two" "$T/err" && fail "the token file's content was printed"
# Basic credentials as a header of HeaderFile=, against the htpasswd registry.
C8=$(configure_only c8 "Remote=$URL" HeaderFile=/etc/dm2/headers)
{
	echo "# sent with every request to the registry"
	echo "Authorization: Basic $(printf '%s' 'builder:pa$$word@1' | base64 -w0)"
	echo "X-Dm2-Test: yes"
} >"$C8/etc/dm2/headers"
dm2_at "$C8" cache pull "$KEY" >"$T/out" 2>&1 || { cat "$T/out"; fail "pull with HeaderFile="; }
printf 'Authorization: Basic %s\nnot a header\n' "$(printf 'x:s3cret' | base64 -w0)" >"$C8/etc/dm2/headers"
dm2_at "$C8" cache pull "$KEY" >"$T/out" 2>"$T/err" && fail "a bad header file was accepted"
grep -q "HeaderFile '.*/etc/dm2/headers' line 2: not a 'Name: value' header" "$T/err" ||
	fail "bad header file: $(cat "$T/err")"
pass "BearerTokenFile= and HeaderFile=, their errors without their content"

# A registry that wants a TLS client certificate (http.tls.clientcas), no password.
openssl req -newkey rsa:2048 -nodes -subj "/CN=dm2 fleet client" \
	-keyout "$REG/client.key" -out "$REG/client.csr" 2>/dev/null
openssl x509 -req -in "$REG/client.csr" -CA "$REG/ca.pem" -CAkey "$REG/ca.key" \
	-CAcreateserial -days 2 -out "$REG/client.pem" 2>/dev/null
CPORT=$(free_port)
start_registry "$REG/mtls" "$CPORT" "  tls:
    certificate: $REG/server.pem
    key: $REG/server.key
    clientcas:
      - $REG/ca.pem" || fail "the client-certificate registry did not start"
LIB_PIDS+=("$registry_pid")
CURL_M=oci://127.0.0.1:$CPORT/dm2/mtls
C9=$(configure_only c9 "Remote=$CURL_M" ClientCertificate=/etc/dm2/client.pem \
	ClientKey=/etc/dm2/client.key)
cp "$REG/client.pem" "$REG/client.key" "$C9/etc/dm2/"
mkdir -p "$BUILDER/etc/dm2"
cp "$REG/client.pem" "$REG/client.key" "$BUILDER/etc/dm2/"
printf 'ClientCertificate=/etc/dm2/client.pem\nClientKey=/etc/dm2/client.key\n' \
	>>"$BUILDER/etc/dm2/dm2d.conf"
dm2_at "$BUILDER" cache push --remote "$CURL_M" "$KEY" >"$T/out" 2>&1 ||
	{ cat "$T/out" "$REG/mtls/log"; fail "push with a client certificate"; }
dm2_at "$C9" cache pull "$KEY" >"$T/out" 2>&1 || { cat "$T/out"; fail "pull with a client certificate"; }
C10=$(configure_only c10 "Remote=$CURL_M")
dm2_at "$C10" cache pull "$KEY" >"$T/out" 2>"$T/err" && fail "pull without a client certificate succeeded"
[ "$(wc -l <"$T/err")" = 1 ] || fail "no client certificate: not one line: $(cat "$T/err")"
pass "ClientCertificate= and ClientKey=: a registry that wants them, and one line without"

# ---- a registry that accepts connections and never answers: StallTimeoutSec= ends it ----
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
__import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
while True:
    c, _ = s.accept()
    held.append(c)
' "$T/silent.port" &
LIB_PIDS+=("$!")
wait_for 20 test -s "$T/silent.port"
C11=$(configure_only c11 "Remote=oci+http://127.0.0.1:$(cat "$T/silent.port")/dm2/fleet")
printf '[Fetch]\nStallTimeoutSec=1\nConnectTimeoutSec=2\n' >>"$C11/etc/dm2/dm2d.conf"
start=$(date +%s)
dm2_at "$C11" cache pull "$KEY" >"$T/out" 2>"$T/err" && fail "pull from a silent registry succeeded"
[ $(($(date +%s) - start)) -lt 20 ] || fail "a silent registry held the pull for too long"
[ "$(wc -l <"$T/err")" = 1 ] || fail "silent: not one line: $(cat "$T/err")"
grep -q "failed: stalled or timed out: " "$T/err" || fail "silent: $(cat "$T/err")"
pass "a registry that never answers: one line after StallTimeoutSec="

# ---- registry down: one line, local build ----
stop_registry
C4=$(client c4)
dm2_at "$C4" cache pull "$KEY" >"$T/out" 2>"$T/err" && fail "pull from a stopped registry succeeded"
[ "$(wc -l <"$T/err")" = 1 ] || fail "down: not one line: $(cat "$T/err")"
grep -qi "connect" "$T/err" || fail "down: $(cat "$T/err")"
dm2_at "$C4" install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "c4 install"; }
[ "$(from_cache "$C4")" = False ] || fail "client 4 claims the cache with the registry down"
grep -q "Remote cache: " "$T/out" || fail "down not reported: $(cat "$T/out")"
pass "registry down: one line, local build"

echo "ok"
