# SPDX-License-Identifier: LGPL-2.1-or-later
# A recipe's download URL may carry credentials (userinfo, a token in the query): no message,
# status, log header or build log shows them (issue 15: url_redact() everywhere a URL is
# printed). The server is 127.0.0.1:9 (discard; nothing listens), so every download fails.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
cat >"$RECIPES/secretive.recipe" <<'RECIPE'
[Recipe]
Name=secretive
License=GPL-2.0-only

[Source]
Version=1.0
URL=http://fleetuser:s3cretpw@127.0.0.1:9/secretive-1.0.tar.gz?token=s3crettok
SHA256=0000000000000000000000000000000000000000000000000000000000000000

[Build]
Modules=secretive
RECIPE
chmod a+r "$RECIPES/secretive.recipe"

rc=0
dm2 fetch secretive >"$T/out" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "fetch from a closed port succeeded"
dm2 install secretive -k "$KVER" >>"$T/out" 2>&1 || true
dm2 status --json >>"$T/out" 2>&1 || true
dm2 log secretive -k "$KVER" >>"$T/out" 2>&1 || true
find "$ROOT/var/lib/dm2/logs" -type f -exec cat {} + >>"$T/out" 2>/dev/null || true
grep -q '127.0.0.1:9' "$T/out" || fail "no message names the server: $(cat "$T/out")"
! grep -n 's3cret' "$T/out" || fail "a secret of the URL was printed"
pass "a URL's userinfo and query secrets appear in no output, status or log"
