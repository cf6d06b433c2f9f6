# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole pipeline from the CLI with real everything: kbuild against the installed headers,
# signing, the build cache, atomic install, depmod, the state db, status, log, uninstall.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
lib_copy_recipe dm2-example
NAME=dm2-example
MOD=$ROOT/lib/modules/$KVER/updates/dm2/dm2_example.ko
LOG=$ROOT/var/lib/dm2/logs/$NAME/$KVER/build.log

state() {
	json_get "[m['state'] for m in j['modules'] if m['name'] == '$NAME' and m['kernel'] == '$KVER'][0]"
}
field() {
	json_get "[m['$1'] for m in j['modules'] if m['name'] == '$NAME' and m['kernel'] == '$KVER'][0]"
}

# ---- usage errors and status of an empty root ----
expect_exit 2 dm2 install "$NAME"
expect_exit 4 dm2 install no-such-recipe -k "$KVER"
expect_exit 4 dm2 install "$NAME" -k 0.0.0-no-such-kernel
# (and "secure_boot", dm2 key status' member)
[ "$(dm2 status --json | jq -c '[.version, .modules, .progress]')" = '[1,[],[]]' ] || fail "empty status"
pass "usage errors"

# ---- full cycle: build, sign, install, depmod ----
dm2 install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "install"; }
grep -q "installed (built, signed by" "$T/out" || fail "install output: $(cat "$T/out")"
[ -f "$MOD" ] || fail "module not installed at $MOD"
[ "$(state)" = installed ] || fail "status: $(state)"
signer=$(field signed_by)
[ -n "$signer" ] && [ "$signer" != None ] || fail "no signer in status"
[ "$(field from_cache)" = False ] || fail "first build claims cache"
[ "$(field install_dir)" = updates/dm2 ] || fail "install dir $(field install_dir)"
modinfo -F signer "$MOD" | grep -qxF "$signer" || fail "modinfo signer: $(modinfo -F signer "$MOD")"
[ "$(modinfo -F sig_hashalgo "$MOD")" = sha256 ] || fail "modinfo hash"
grep -q '^updates/dm2/dm2_example.ko:' "$ROOT/lib/modules/$KVER/modules.dep" ||
	fail "modules.dep does not list the module"
dm2 log "$NAME" -k "$KVER" | grep -q 'dm2_example' || fail "dm2 log"
expect_exit 4 dm2 log "$NAME" -k 0.0.0-other
dm2 status | grep -E "^$NAME +1.0 +$KVER .* installed" >/dev/null || fail "table: $(dm2 status)"
pass "build, sign, install, depmod, status, log"

# ---- --json validates against the schema documented in dm2(1) ----
cat >"$T/schema.json" <<'EOF'
{
  "type": "object", "additionalProperties": false,
  "required": ["version", "modules", "progress"],
  "properties": {
    "version": {"const": 1},
    "secure_boot": {
      "type": "object", "additionalProperties": false,
      "required": ["efi", "enabled", "mok", "certificate", "enroll_command"],
      "properties": {
        "efi": {"type": "boolean"}, "enabled": {"type": ["boolean", "null"]},
        "mok": {"enum": ["enrolled", "pending", "not-enrolled", "no-certificate", "unknown"]},
        "certificate": {"type": ["string", "null"]},
        "enroll_command": {"type": ["string", "null"]}}},
    "progress": {"type": "array", "items": {
      "type": "object", "additionalProperties": false,
      "required": ["kernel", "done", "running", "queued", "left_sec", "untimed"],
      "properties": {
        "kernel": {"type": "string"}, "done": {"type": "integer", "minimum": 0},
        "running": {"type": "integer", "minimum": 0}, "queued": {"type": "integer", "minimum": 0},
        "left_sec": {"type": "integer", "minimum": 0}, "untimed": {"type": "integer", "minimum": 0}
      }}},
    "modules": {"type": "array", "items": {
      "type": "object", "additionalProperties": false,
      "required": ["name", "version", "installed_version", "kernel", "arch", "state", "stage",
                   "reason", "state_text", "signed_by", "from_cache", "when", "when_usec",
                   "install_dir", "files", "overrides_intree", "log"],
      "properties": {
        "name": {"type": "string"}, "version": {"type": ["string", "null"]},
        "installed_version": {"type": ["string", "null"]}, "kernel": {"type": "string"},
        "arch": {"type": ["string", "null"]},
        "state": {"enum": ["queued", "fetching", "building", "signing", "installing",
                           "installed", "failed", "skipped", "waiting", "built", "not-built"]},
        "stage": {"type": ["string", "null"]}, "reason": {"type": ["string", "null"]},
        "state_text": {"type": "string"}, "signed_by": {"type": ["string", "null"]},
        "from_cache": {"type": "boolean"},
        "when": {"type": ["string", "null"], "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"},
        "when_usec": {"type": "integer", "minimum": 0},
        "install_dir": {"type": ["string", "null"]},
        "files": {"type": "array", "items": {"type": "string"}},
        "overrides_intree": {"type": "array", "items": {"type": "string"}},
        "log": {"type": ["string", "null"]}
      }}}
  }
}
EOF
validate() {
	dm2 status --json "$@" | python3 -c '
import json, sys, jsonschema
jsonschema.validate(json.load(sys.stdin), json.load(open(sys.argv[1])))' "$T/schema.json" ||
		fail "status --json $* does not match the schema"
}
validate
validate -k "$KVER" "$NAME"
pass "--json schema"

# ---- second install after removing the install hits the cache: no compiler run ----
log_sum=$(sha256sum "$LOG")
log_mtime=$(stat -c %Y.%y "$LOG")
dm2 uninstall "$NAME" -k "$KVER" >/dev/null
[ ! -e "$MOD" ] || fail "uninstall left the module"
grep -q 'dm2_example' "$ROOT/lib/modules/$KVER/modules.dep" && fail "modules.dep still lists it"
[ "$(state)" = not-built ] || fail "status after uninstall: $(state)"
expect_exit 4 dm2 uninstall "$NAME" -k "$KVER"
dm2 install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "reinstall"; }
[ "$(field from_cache)" = True ] || fail "reinstall did not come from the cache"
# The build's log is still there, and status still names it (it said null before).
[ "$(field log)" = "$LOG" ] || fail "status after a cache reinstall: log $(field log), not $LOG"
[ "$(sha256sum "$LOG")" = "$log_sum" ] && [ "$(stat -c %Y.%y "$LOG")" = "$log_mtime" ] ||
	fail "build.log was rewritten: the compiler ran"
[ ! -d "$ROOT/var/lib/dm2/work" ] || [ -z "$(ls -A "$ROOT/var/lib/dm2/work")" ] ||
	fail "work dir left behind"
modinfo -F signer "$MOD" | grep -qxF "$signer" || fail "cached module not signed"
pass "uninstall; reinstall from the cache without compiling"

# ---- uninstall keeps a file changed by the admin ----
dm2 uninstall "$NAME" -k "$KVER" >/dev/null
dm2 install "$NAME" -k "$KVER" >/dev/null 2>&1
echo "admin" >>"$MOD"
dm2 uninstall "$NAME" -k "$KVER" >/dev/null 2>"$T/err"
[ -f "$MOD" ] || fail "uninstall removed a modified file"
grep -q "changed" "$T/err" || fail "no warning about the kept file"
# The file is no longer ours: installing over it is refused, exit 8, and it stays.
expect_exit 8 dm2 install "$NAME" -k "$KVER"
tail -c 6 "$MOD" | grep -q admin || fail "foreign file overwritten"
[ "$(state)" = failed ] && [ "$(field stage)" = installing ] || fail "state $(state)"
rm -f "$MOD"
pass "uninstall keeps a modified file; foreign file not overwritten"

# ---- a corrupted cache object is discarded and the module rebuilt ----
find "$ROOT/var/cache/dm2/artifacts/objects" -type f -size +1k | while read -r f; do
	chmod u+w "$f"
	printf 'garbage' >>"$f"
done
dm2 install "$NAME" -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "install after corruption"; }
[ "$(field from_cache)" = False ] || fail "corrupted object was used"
{ [ "$(sha256sum "$LOG")" != "$log_sum" ] || [ "$(stat -c %Y.%y "$LOG")" != "$log_mtime" ]; } ||
	fail "no rebuild after corruption"
modinfo -F signer "$MOD" >/dev/null || fail "rebuilt module unreadable"
pass "corrupted cache object rebuilt"

# ---- two concurrent installs for the same kernel both succeed, one after the other ----
dm2 uninstall "$NAME" -k "$KVER" >/dev/null
dm2 install "$NAME" -k "$KVER" >"$T/c1" 2>&1 &
p1=$!
dm2 install "$NAME" -k "$KVER" >"$T/c2" 2>&1 &
p2=$!
LIB_PIDS+=("$p1" "$p2")
rc1=0 rc2=0
wait "$p1" || rc1=$?
wait "$p2" || rc2=$?
LIB_PIDS=()
[ $rc1 = 0 ] && [ $rc2 = 0 ] || fail "concurrent installs: $rc1 $rc2: $(cat "$T/c1" "$T/c2")"
[ "$(state)" = installed ] || fail "state after concurrent installs: $(state)"
[ "$(sqlite3 "$ROOT/var/lib/dm2/state.db" "SELECT count(*) FROM jobs WHERE state NOT IN
	('installed','failed','skipped','waiting','built')")" = 0 ] || fail "unfinished jobs left"
modinfo -F signer "$MOD" >/dev/null || fail "module after concurrent installs"
pass "concurrent installs"

# ---- an incomplete kernel tree: waiting, exit 9 ----
mkdir -p "$ROOT/lib/modules/9.9.9-incomplete/build"
expect_exit 9 dm2 install "$NAME" -k 9.9.9-incomplete
[ "$(json_get "[m['state'] for m in j['modules'] if m['kernel'] == '9.9.9-incomplete'][0]")" = waiting ] ||
	fail "incomplete kernel not waiting"
pass "waiting for an incomplete kernel"

# ---- a job queued (by the daemon) for a recipe that is gone is closed, not left queued ----
sqlite3 "$ROOT/var/lib/dm2/state.db" "INSERT INTO jobs (recipe, kernel, state, created)
	VALUES ('ghost', '$KVER', 'queued', 1)"
expect_exit 4 dm2 install ghost -k "$KVER"
[ "$(sqlite3 "$ROOT/var/lib/dm2/state.db" "SELECT state || ':' || reason FROM jobs
	WHERE recipe = 'ghost'")" = "failed:no such recipe" ] || fail "ghost job not closed"
pass "queued job for a missing recipe closed"

# ---- a failing rebuild keeps the old module ----
old_sum=$(sha256sum "$MOD")
echo 'this is not C;' >>"$RECIPES/dm2-example/dm2_example.c"
expect_exit 5 dm2 install "$NAME" -k "$KVER"
[ "$(sha256sum "$MOD")" = "$old_sum" ] || fail "failed build replaced the module"
[ "$(state)" = failed ] && [ "$(field stage)" = building ] || fail "state $(state)"
[ -n "$(field reason)" ] || fail "no reason"
[ "$(field installed_version)" = 1.0 ] || fail "installed_version $(field installed_version)"
grep -q 'dm2_example' "$ROOT/lib/modules/$KVER/modules.dep" || fail "modules.dep lost it"
dm2 log "$NAME" -k "$KVER" | grep -q 'error' || fail "log of the failed build"
dm2 status | grep -q "failed at building" || fail "table shows no failure"
validate
pass "failed rebuild keeps the old module"
