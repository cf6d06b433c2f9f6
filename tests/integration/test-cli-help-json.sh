# SPDX-License-Identifier: LGPL-2.1-or-later
# Every verb and subcommand answers --help (exit 0, "Usage: dm2 ..." on stdout, nothing on
# stderr); dm2 --version and dm2 help; every verb that prints data does so as one JSON
# document with "version" under --json, which jq reads.
set -euo pipefail
. "$DM2_SOURCE_DIR/tests/integration/lib.sh"

lib_init
lib_copy_recipe dm2-example

VERBS=(help install uninstall depmod status log fetch trigger build sign verify
	recipe "recipe lint" "recipe list" "recipe show"
	kernel "kernel list"
	key "key generate" "key show" "key status" "key adopt-dkms"
	cache "cache stat" "cache gc" "cache push" "cache pull"
	dkms "dkms import" "dkms list" "dkms status" "dkms takeover")
n=0
for v in "${VERBS[@]}"; do
	for h in --help -h; do
		rc=0
		# shellcheck disable=SC2086 # a subcommand is two words
		dm2 $v $h >"$T/out" 2>"$T/err" || rc=$?
		[ "$rc" = 0 ] || fail "dm2 $v $h: exit $rc: $(cat "$T/err")"
		[ ! -s "$T/err" ] || fail "dm2 $v $h: stderr: $(cat "$T/err")"
		first=$(head -n1 "$T/out")
		case $v in
		help) want="dm2 " ;;
		*) want="Usage: dm2 ${v%% *}" ;;
		esac
		case $first in
		"$want"*) ;;
		*) fail "dm2 $v $h: first line '$first', expected '$want...'" ;;
		esac
		# A subcommand's --help shows that subcommand's usage.
		if [ "${v#* }" != "$v" ]; then
			grep -qF -- "dm2 $v" "$T/out" || fail "dm2 $v $h: not its own usage: $first"
		fi
		n=$((n + 1))
	done
done
pass "$n --help and -h: exit 0, usage on stdout"

ver=$("$DM2" --version)
case $ver in "dm2 "[0-9]*) ;; *) fail "dm2 --version: '$ver'" ;; esac
dm2 help | grep -q "dm2 status" || fail "dm2 help lists no commands"
dm2 help status | grep -q "^Usage: dm2 status" || fail "dm2 help status: $(dm2 help status 2>&1)"
expect_exit 2 dm2 help nosuchverb
pass "--version, help, help VERB"

# Data to show: a key, a built and installed module, a DKMS package.
dm2 key generate >/dev/null
dm2 install dm2-example -k "$KVER" >/dev/null 2>&1 || fail "install dm2-example"
mkdir -p "$ROOT/usr/src/jsonpkg-1.0"
printf 'PACKAGE_NAME=jsonpkg\nPACKAGE_VERSION=1.0\nBUILT_MODULE_NAME[0]=jsonpkg\n' \
	>"$ROOT/usr/src/jsonpkg-1.0/dkms.conf"
MOD=$(find "$ROOT/lib/modules/$KVER/updates/dm2" -name 'dm2_example.ko*' | head -n1)

JSONS=("status" "status dm2-example -k $KVER" "recipe list" "recipe show dm2-example"
	"kernel list" "key show" "key status" "cache stat" "dkms list" "dkms status"
	"dkms import $ROOT/usr/src/jsonpkg-1.0" "verify $MOD" "build dm2-example -k $KVER"
	"fetch dm2-example")
for v in "${JSONS[@]}"; do
	rc=0
	# shellcheck disable=SC2086
	dm2 $v --json >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 0 ] || fail "dm2 $v --json: exit $rc: $(cat "$T/err")"
	jq -e 'type == "object" and (.version | type == "number")' "$T/out" >/dev/null ||
		fail "dm2 $v --json: not one object with a numeric \"version\": $(head -c 300 "$T/out")"
	[ "$(jq -s length "$T/out")" = 1 ] || fail "dm2 $v --json: more than one document"
done
pass "${#JSONS[@]} data verbs: one JSON object each with \"version\""
