# SPDX-License-Identifier: LGPL-2.1-or-later
# Bad input to the dm2 CLI: every case must exit with its documented code (dm2(1) EXIT
# STATUS), print the expected number of lines on stderr (one, unless the case says
# otherwise) naming the offending thing, and never crash or trip a sanitizer.
set -euo pipefail
. "$DM2_SOURCE_DIR/tests/integration/lib.sh"

lib_init
N=0

# check CODE LINES PATTERN ARGS...: run dm2 ARGS, expect exit CODE, LINES lines on stderr,
# and the extended regular expression PATTERN on stderr (on stdout for --help cases).
check() {
	local want=$1 lines=$2 pattern=$3 rc=0 n
	shift 3
	"$DM2" "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	if grep -qE 'Sanitizer|runtime error|Assertion|Segmentation' "$T/err"; then
		cat "$T/err" >&2
		fail "dm2 $*: crashed"
	fi
	[ "$rc" = "$want" ] || fail "dm2 $*: exit $rc, expected $want; stderr: $(cat "$T/err")"
	n=$(wc -l <"$T/err")
	[ "$n" = "$lines" ] || fail "dm2 $*: $n lines on stderr, expected $lines: $(cat "$T/err")"
	if [ "$want" = 0 ]; then
		grep -qE -- "$pattern" "$T/out" || fail "dm2 $*: no '$pattern' in: $(cat "$T/out")"
	else
		grep -qE -- "$pattern" "$T/err" || fail "dm2 $*: no '$pattern' in: $(cat "$T/err")"
	fi
	N=$((N + 1))
}

# r ARGS...: the same with the test's root and recipe directory.
r() {
	echo --root "$ROOT" --recipes "$RECIPES" "$@"
}

CONF=$ROOT/etc/dm2/dm2d.conf
KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

# ---- global options and verbs ----
check 2 1 "Unknown command 'frobnicate'" $(r frobnicate)
check 2 1 "Option '--root' needs an argument" build x -k 1 --root
check 4 1 "Root directory '/nonexistent-dm2-root'" --root /nonexistent-dm2-root kernel list
check 4 1 "'/etc/passwd'.*Not a directory" --root /etc/passwd kernel list
check 4 1 "Recipe directory '$T/no-recipes'" --root "$ROOT" --recipes "$T/no-recipes" recipe list
check 0 0 "^Usage: dm2 " --help

# ---- --help of every verb and subcommand: usage on stdout, exit 0 ----
for v in build "kernel" "kernel list" recipe "recipe lint" "recipe list" "recipe show" fetch \
	sign verify key cache "cache stat" "cache gc" "cache push" "cache pull"; do
	# shellcheck disable=SC2086 # split "cache gc" into two words
	check 0 0 "^Usage: dm2 ${v%% *}" $(r $v --help)
done

# ---- dm2 build ----
check 2 1 "Unknown option '--frob'.*usage: dm2 build" $(r build x -k "$KVER" --frob)
check 2 1 "Unknown option '-x'" $(r build -x y -k "$KVER")
check 2 1 "Option '-k' needs an argument" $(r build x -k)
check 2 1 "Option '--version' needs an argument" $(r build x -k "$KVER" --version)
check 2 1 "Missing -k KVER" $(r build x)
check 2 1 "Missing argument; usage: dm2 build" $(r build -k "$KVER")
check 2 1 "Unexpected argument 'y'" $(r build x y -k "$KVER")
check 4 1 "No recipe 'nosuch'" $(r build nosuch -k "$KVER")

lib_copy_recipe dm2-example
NAME=dm2-example
check 2 1 "Invalid kernel release '\.\./\.\.'" $(r build "$NAME" -k ../..)
check 4 1 "No kernel '0\.0\.0-none'" $(r build "$NAME" -k 0.0.0-none)

# A recipe file that is invalid is reported once (its first problem), then skipped.
printf '[Recipe]\nName=bad name\nFoo=1\n' >"$RECIPES/bad.recipe"
check 4 2 "bad\.recipe:2: invalid Name=" $(r build bad -k "$KVER")
rm "$RECIPES/bad.recipe"

# ---- dm2 kernel ----
check 2 1 "Unknown command 'dm2 kernel frob'" $(r kernel frob)
check 2 1 "Unexpected argument 'extra'" $(r kernel list extra)
check 2 1 "Unknown option '--frob'" $(r kernel list --frob)

# ---- dm2 recipe ----
check 2 1 "Missing command for 'dm2 recipe'" $(r recipe)
check 2 1 "Unknown command 'dm2 recipe frob'" $(r recipe frob)
check 2 1 "Missing argument; usage: dm2 recipe lint" $(r recipe lint)
check 4 1 "$T/none\.recipe: cannot read" $(r recipe lint "$T/none.recipe")
printf '[Recipe]\nName=x\nLicense=GPL-2.0\n[Source]\nVersion=1\nURL=ftp://h/x.tgz\n[Build]\nModules=x\n' \
	>"$T/ftp.recipe"
check 3 1 "ftp\.recipe:6: URL 'ftp://h/x\.tgz'" $(r recipe lint "$T/ftp.recipe")
check 2 1 "Unexpected argument 'x'" $(r recipe list x)
check 2 1 "Unexpected argument 'b'" $(r recipe show a b)
check 4 1 "No recipe 'nosuch'" $(r recipe show nosuch)

# ---- dm2 fetch ----
check 2 1 "Missing argument; usage: dm2 fetch" $(r fetch)
check 2 1 "Option '--version' needs an argument" $(r fetch x --version)
check 4 1 "No recipe 'nosuch'" $(r fetch nosuch)
check 4 1 "Recipe '$NAME' has no source version '9\.9'" $(r fetch "$NAME" --version 9.9)
head -c 4096 /dev/urandom >"$T/garbage.tar.gz"
SUM=$(sha256sum "$T/garbage.tar.gz" | cut -d' ' -f1)
printf '[Recipe]\nName=garbage\nLicense=GPL-2.0\n[Source]\nVersion=1\nURL=file://%s\nSHA256=%s\n[Build]\nModules=g\n' \
	"$T/garbage.tar.gz" "$SUM" >"$RECIPES/garbage.recipe"
check 3 1 "'garbage\.tar\.gz': not a tar or zip archive" $(r fetch garbage)
printf '[Recipe]\nName=badsum\nLicense=GPL-2.0\n[Source]\nVersion=1\nURL=file://%s\nSHA256=%064d\n[Build]\nModules=g\n' \
	"$T/garbage.tar.gz" 0 >"$RECIPES/badsum.recipe"
check 6 1 "garbage\.tar\.gz" $(r fetch badsum)
printf '[Recipe]\nName=noserver\nLicense=GPL-2.0\n[Source]\nVersion=1\nURL=http://127.0.0.1:1/x.tar.gz\n[Build]\nModules=g\n' \
	>"$RECIPES/noserver.recipe"
check 6 1 "'http://127\.0\.0\.1:1/x\.tar\.gz'" $(r fetch noserver)
python3 -c '
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    ti = tarfile.TarInfo("../evil")
    ti.size = 1
    t.addfile(ti, io.BytesIO(b"x"))
' "$T/trav.tar.gz"
printf '[Recipe]\nName=trav\nLicense=GPL-2.0\n[Source]\nVersion=1\nURL=file://%s\n[Build]\nModules=g\n' \
	"$T/trav.tar.gz" >"$RECIPES/trav.recipe"
check 3 1 "entry '\.\./evil': path escapes the source tree" $(r fetch trav)
[ ! -e "$T/evil" ] || fail "an archive wrote outside its directory"
rm "$RECIPES"/{garbage,badsum,noserver,trav}.recipe

# ---- dm2 sign / verify / key ----
check 2 1 "Missing argument; usage: dm2 sign" $(r sign)
check 2 1 "Unexpected argument 'b'" $(r sign a b)
check 4 1 "Cannot read '$T/none\.ko'" $(r sign "$T/none.ko")
check 3 1 "'$T' is not a regular file" $(r sign "$T")
MOD=$T/junk.ko
echo "not a module" >"$MOD"
check 2 1 "Unsupported signature hash 'md5'" $(r sign --hash md5 "$MOD")
check 2 1 "Invalid kernel release '\.\./x'" $(r sign -k ../x "$MOD")
check 4 1 "No kernel '0\.0-none'" $(r sign -k 0.0-none "$MOD")
check 2 1 "--cert needs --key" $(r sign --cert "$MOD" "$MOD")
[ ! -e "$ROOT/var/lib/dm2/keys" ] || fail "a failed 'dm2 sign' generated a key"
check 2 1 "Missing argument; usage: dm2 verify" $(r verify)
check 4 1 "Cannot read module '$T/none\.ko'" $(r verify "$T/none.ko")
check 3 1 "Cannot read module '$T': Is a directory" $(r verify "$T")
check 4 1 "Cannot read dm2's certificate" $(r verify "$MOD")
check 2 1 "Unknown command 'dm2 key frob'" $(r key frob)
check 2 1 "Unknown command 'dm2 key frob'" --root /nonexistent-dm2-root key frob
check 2 1 "Missing argument; usage: dm2 key" $(r key)
check 4 1 "No signing certificate at" $(r key show)

# ---- dm2 cache ----
check 2 1 "Missing command for 'dm2 cache'" $(r cache)
check 2 1 "Unknown command 'dm2 cache frob'" $(r cache frob)
check 2 1 "Unexpected argument 'x'" $(r cache stat x)
check 2 1 "Invalid size 'lots' for --max-size" $(r cache gc --max-size lots)
check 2 1 "Option '--max-size' needs an argument" $(r cache gc --max-size)
# A unit without a number read before the string (issue 12, attack 7).
check 2 1 "Invalid size 'k' for --max-size" $(r cache gc --max-size k)
check 2 1 "Invalid size 'KB' for --max-size" $(r cache gc --max-size KB)
check 2 1 "Missing argument; usage: dm2 cache pull" $(r cache pull)
check 2 1 "'zz' is not a cache key" $(r cache pull zz)
check 2 1 "No remote cache: set Remote=" $(r cache push)
check 3 1 "not http:// or https://" $(r cache pull --remote ftp://x/ "$KEY")

# ---- etc/dm2/dm2d.conf: file:line and the setting ----
conf() { printf "$1" >"$CONF"; }
conf '[Daemon]\nJobs=abc\n'
check 3 1 "etc/dm2/dm2d.conf:2: invalid value 'abc' for Jobs=" $(r kernel list)
# An unknown key (a newer dm2's) is one warning naming the real file and line, then ignored.
conf '[Daemon]\nJobs=1\nFrob=1\n'
"$DM2" $(r kernel list) >"$T/out" 2>"$T/err" || fail "unknown key: exit $?: $(cat "$T/err")"
[ "$(cat "$T/err")" = "dm2: $ROOT/etc/dm2/dm2d.conf:3: unknown setting 'Frob' in section [Daemon], ignoring" ] ||
	fail "unknown key: $(cat "$T/err")"
conf '[Build]\nMemoryMax=12Q\n'
check 3 1 "etc/dm2/dm2d.conf:2: invalid value '12Q' for MemoryMax=" $(r recipe list)
conf '[Cache]\nMaxSize=k\n'
check 3 1 "etc/dm2/dm2d.conf:2: invalid value 'k' for MaxSize=" $(r cache stat)
conf '[Build]\nAllowNonGPL=maybe\n'
check 3 1 "etc/dm2/dm2d.conf:2: invalid value 'maybe' for AllowNonGPL=" $(r cache stat)
conf '[Signing]\nHash=md5\n'
check 3 1 "etc/dm2/dm2d.conf:2: invalid value 'md5' for Hash=" $(r kernel list)
conf '[Cache]\nRemote=not a url\n'
check 3 1 "etc/dm2/dm2d.conf:2: invalid value 'not a url' for Remote=" $(r kernel list)
conf '[Fetch]\nMirror=only-one\n'
check 3 1 "etc/dm2/dm2d.conf:2: Mirror= takes two URL prefixes" $(r kernel list)
conf '[Daemon\n'
check 3 1 "etc/dm2/dm2d.conf:1: " $(r kernel list)
conf 'Jobs=1\n'
check 3 1 "etc/dm2/dm2d.conf:1: " $(r kernel list)
seq 1 50 >"$CONF"
check 3 6 "etc/dm2/dm2d.conf: 45 more errors not shown" $(r kernel list)
rm "$CONF"
mkdir "$CONF"
check 3 1 "Failed to read '$ROOT/etc/dm2/dm2d.conf': Is a directory" $(r kernel list)
rmdir "$CONF"

# ---- garbage arguments: never a crash or a multi-line dump ----
TOKENS=(build kernel list recipe lint show fetch sign verify key generate cache stat gc push
	pull -k --kernel --version --help -x --x - -- --= ../.. "$KVER" x /dev/null --max-size 1Q
	--remote --hash md5 -o --key --cert "%s%n" "$(printf 'a\tb')" --force)
VERBS=(build kernel recipe fetch sign verify key cache)
RANDOM=42
for _ in $(seq 1 60); do
	args=("${VERBS[RANDOM % ${#VERBS[@]}]}")
	for _ in $(seq 1 $((RANDOM % 5))); do
		args+=("${TOKENS[RANDOM % ${#TOKENS[@]}]}")
	done
	rc=0
	"$DM2" --root "$ROOT" --recipes "$RECIPES" "${args[@]}" >/dev/null 2>"$T/err" </dev/null ||
		rc=$?
	grep -qE 'Sanitizer|runtime error|Assertion|Segmentation' "$T/err" &&
		fail "dm2 ${args[*]}: crashed: $(cat "$T/err")"
	[ "$rc" -le 13 ] || fail "dm2 ${args[*]}: exit $rc"
	[ "$(wc -l <"$T/err")" -le 2 ] || fail "dm2 ${args[*]}: stderr: $(cat "$T/err")"
done

pass "$N bad-input cases and 60 garbage command lines"
