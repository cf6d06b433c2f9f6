# SPDX-License-Identifier: LGPL-2.1-or-later
# The packager's tools of dm2(1) and dm2-recipe(5): `dm2 recipe hash` output pasted into a
# recipe verifies (and a wrong value fails); `Patch=FILE RANGE`; `dm2 recipe test` and
# `dm2 build --all-kernels` over two kernels, touching nothing installed; build logs with a
# header, one per job; a build key that survives editing another kernel's [Source].
#
# The second kernel is a copy of the real build tree under another release
# ($KVER-dm2copy) whose upstream version (include/config/kernel.release) is 99.0.0, so
# Kernel= ranges can tell the two apart on any machine with one set of headers.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
K2=$KVER-dm2copy
copy_kernel() {
	local dst=$T/kernels/$K2 l
	mkdir -p "$T/kernels"
	cp -a "$REAL_TREE" "$dst"
	# Relative links (scripts -> ../../lib/linux-kbuild-X/scripts) point where the original did.
	find "$dst" -type l | while read -r l; do
		case $(readlink "$l") in
		/*) ;;
		*) ln -sfn "$(readlink -f "$REAL_TREE/${l#"$dst"/}")" "$l" ;;
		esac
	done
	sed -i "s/\"$KVER\"/\"$K2\"/" "$dst/include/generated/utsrelease.h"
	echo 99.0.0 >"$dst/include/config/kernel.release"
	lib_add_kernel "$K2" "$dst"
}
copy_kernel
dm2 kernel list | grep -E "^$K2 .* complete" >/dev/null || fail "copied kernel: $(dm2 kernel list)"

# The sources: dm2's example module, with a file a .gitignore hides (GitTree= counts it).
mkdir -p "$T/src"
cp -r "$DM2_SOURCE_DIR/recipes/dm2-example" "$T/src/tk-1.0"
printf '*.o\n' >"$T/src/tk-1.0/.gitignore"
echo "not a build product" >"$T/src/tk-1.0/notes.o"
tar -C "$T/src" -czf "$T/tk-1.0.tar.gz" tk-1.0
chmod -R a+rX "$T/src" "$T/tk-1.0.tar.gz"
cp -r "$T/src/tk-1.0" "$T/src/tk-1.0.orig"
sed -i 's/Hello from dm2/Hello from a patch/' "$T/src/tk-1.0/dm2_example.c"
(cd "$T/src" && diff -u tk-1.0.orig/dm2_example.c tk-1.0/dm2_example.c || true) |
	sed -e 's|^--- tk-1.0.orig/|--- a/|' -e 's|^+++ tk-1.0/|+++ b/|' >"$RECIPES/greet.patch"
cp "$T/src/tk-1.0.orig/dm2_example.c" "$T/src/tk-1.0/dm2_example.c"
printf -- '--- a/dm2_example.c\n+++ b/dm2_example.c\n@@ -1,1 +1,2 @@\n // SPDX-License-Identifier: GPL-2.0-only\n+this is not C;\n' \
	>"$RECIPES/broken.patch"
chmod a+r "$RECIPES"/*.patch

# The archive is served over HTTP on 127.0.0.1, as a forge would serve it.
mkdir -p "$T/www"
cp "$T/tk-1.0.tar.gz" "$T/www/"
python3 "$DM2_SOURCE_DIR/tests/helpers/http-server.py" --dir "$T/www" --port-file "$T/port" \
	--log "$T/http.log" &
LIB_PIDS+=($!)
wait_for 20 test -s "$T/port"
URL=http://127.0.0.1:$(cat "$T/port")/files/tk-1.0.tar.gz

# ---- dm2 recipe hash: ready-to-paste lines for an URL, an archive, a directory ----
dm2 recipe hash "$URL" >"$T/hash.url"
grep -q "^/files/tk-1.0.tar.gz " "$T/http.log" || fail "recipe hash did not download '$URL'"
dm2 recipe hash "$T/tk-1.0.tar.gz" >"$T/hash.file"
check_diff "$T/hash.url" "$T/hash.file"
dm2 recipe hash "file://$T/tk-1.0.tar.gz" >"$T/hash.file"
check_diff "$T/hash.url" "$T/hash.file"
grep -Eq '^SHA256=[0-9a-f]{64}$' "$T/hash.url" && grep -Eq '^GitTree=[0-9a-f]{40}$' "$T/hash.url" &&
	[ "$(wc -l <"$T/hash.url")" = 2 ] || fail "hash output: $(cat "$T/hash.url")"
[ "$(sed -n 's/^SHA256=//p' "$T/hash.url")" = "$(sha256sum "$T/tk-1.0.tar.gz" | cut -d' ' -f1)" ] ||
	fail "SHA256= is not the archive's sha256"
tree=$(sed -n 's/^GitTree=//p' "$T/hash.url")
cp -r "$T/src/tk-1.0" "$T/gitcopy"
git_tree=$(cd "$T/gitcopy" && git init -q . && git add -A -f && git write-tree)
[ "$tree" = "$git_tree" ] || fail "GitTree=$tree, git add -A -f gives $git_tree"
[ "$(dm2 recipe hash "$T/src/tk-1.0")" = "GitTree=$tree" ] || fail "directory hash"
dm2 recipe hash --json "$T/tk-1.0.tar.gz" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["version"] == 1 and len(j["sha256"]) == 64 and len(j["git_tree"]) == 40, j' ||
	fail "hash --json"
expect_exit 4 dm2 recipe hash "$T/no-such.tar.gz"
expect_exit 6 dm2 recipe hash "file://$T/no-such.tar.gz"
pass "recipe hash: SHA256= and GitTree= of an URL, an archive, a directory"

# ---- the pasted lines verify; a wrong GitTree= fails ----
recipe() { # NAME VERSION-LINES...: a recipe of the module with the given [Source] text
	local name=$1
	shift
	{
		printf '[Recipe]\nName=%s\nLicense=GPL-2.0-only\n' "$name"
		printf '%s\n' "$@"
		printf '[Build]\nModules=dm2_example\n'
	} >"$RECIPES/$name.recipe"
}
recipe tk "[Source]" "Version=1.0" "URL=$URL" "$(cat "$T/hash.url")" \
	"Patch=greet.patch >=5" "Patch=broken.patch >=99"
dm2 recipe lint "$RECIPES/tk.recipe" || fail "lint of the pasted recipe"
dm2 fetch tk >/dev/null || fail "fetch with the pasted checksums"
bad=$(echo "$tree" | tr 0-9a-f 1-9a-f0)
recipe tk-bad "[Source]" "Version=1.0" "URL=file://$T/tk-1.0.tar.gz" "GitTree=$bad"
expect_exit 6 dm2 build tk-bad -k "$KVER"
pass "pasted checksums verify, a wrong GitTree= fails"

# ---- install: the log has its header, the patch range picks the patches ----
dm2 install tk -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "install tk"; }
MOD=$ROOT/lib/modules/$KVER/updates/dm2/dm2_example.ko
grep -aq "Hello from a patch" "$MOD" || fail "greet.patch (>=5) was not applied"
LOG=$ROOT/var/lib/dm2/logs/tk/$KVER/build.log
head -1 "$LOG" | grep -q '^# dm2 .* build log$' || fail "log header: $(head -1 "$LOG")"
for want in "# recipe:  tk 1.0 (" "# source:  $URL" "# GitTree= $tree" \
	"# patch:   greet.patch (Kernel=>=5: applied)" \
	"# patch:   broken.patch (Kernel=>=99: not for this kernel)" "# make:    make -C" \
	"# kernel:  $KVER ("; do
	grep -qF -- "$want" "$LOG" || fail "log header lacks '$want': $(head -12 "$LOG")"
done
log_sum=$(sha256sum <"$LOG")
when=$(json_get "[m['when_usec'] for m in j['modules'] if m['name'] == 'tk'][0]")
pass "build log header; Patch= ranges"

# ---- recipe test: both kernels in parallel, a table, nothing installed touched ----
expect_exit 5 dm2 recipe test tk >"$T/table" 2>"$T/err"
cat >"$T/expected" <<EOF
KERNEL SOURCE RESULT LOG
$KVER 1.0 built $ROOT/var/lib/dm2/logs/tk/$KVER/test.log
$K2 1.0 failed at building $ROOT/var/lib/dm2/logs/tk/$K2/test.log
EOF
grep -v '^ ' "$T/table" | tr -s ' ' >"$T/rows"
check_diff "$T/expected" "$T/rows"
grep -E '^ +.*(error|not C)' "$T/table" >/dev/null || fail "no first error line: $(cat "$T/table")"
[ "$(sha256sum <"$LOG")" = "$log_sum" ] || fail "the test build replaced the installed job's log"
dm2 log tk -k "$KVER" | head -1 | grep -q ' build log$' || fail "dm2 log shows the test's log"
[ "$(json_get "[m['when_usec'] for m in j['modules'] if m['name'] == 'tk'][0]")" = "$when" ] &&
	[ "$(json_get "[m['state'] for m in j['modules'] if m['name'] == 'tk'][0]")" = installed ] ||
	fail "the test build changed the installed job"
json_get "[m['kernel'] for m in j['modules'] if m['name'] == 'tk']" | grep -q "$K2" &&
	fail "the test build recorded a job for $K2"
grep -aq "Hello from a patch" "$MOD" || fail "installed module changed"
head -1 "$ROOT/var/lib/dm2/logs/tk/$K2/test.log" | grep -q '^# dm2 .* test build log$' ||
	fail "test log header"
grep -qF "broken.patch (Kernel=>=99: applied)" "$ROOT/var/lib/dm2/logs/tk/$K2/test.log" ||
	fail "broken.patch not applied on the 99.0.0 kernel"
pass "recipe test over two kernels: table, exit 5, installed job untouched"

# --json, and dm2 build --all-kernels of a recipe file: one kernel it does not apply to.
recipe tk-range "[Source]" "Version=1.0" "URL=file://$T/tk-1.0.tar.gz" "$(cat "$T/hash.url")" \
	"Kernel=<99"
dm2 build tk-range --all-kernels --json >"$T/json" || fail "build --all-kernels: $(cat "$T/json")"
python3 - "$T/json" "$KVER" "$K2" <<'EOF' || fail "--json: $(cat "$T/json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["version"] == 1 and j["recipe"] == "tk-range", j
k = {x["kernel"]: x for x in j["kernels"]}
assert set(k) == {sys.argv[2], sys.argv[3]}, k
assert k[sys.argv[2]]["result"] == "built" and k[sys.argv[2]]["source"] == "1.0", k
assert k[sys.argv[2]]["log"].endswith("/test.log"), k
assert k[sys.argv[3]]["result"] == "skipped" and k[sys.argv[3]]["exit_code"] == 10, k
assert "does not match Kernel=<99" in k[sys.argv[3]]["error"], k
EOF
dm2 recipe test "$RECIPES/tk-range.recipe" >"$T/table" || fail "recipe test FILE"
grep -E "^$K2 +- +skipped" "$T/table" >/dev/null || fail "skipped row: $(cat "$T/table")"
expect_exit 2 dm2 build tk -k "$KVER" --all-kernels
pass "--all-kernels --json; recipe test FILE; a kernel the recipe does not apply to"

# ---- a fetch failure is the log dm2 log shows, not the older compile log ----
recipe tk "[Source]" "Version=1.0" "URL=file://$T/gone.tar.gz" "SHA256=$(printf '%064d' 1)"
expect_exit 6 dm2 install tk -k "$KVER"
dm2 log tk -k "$KVER" >"$T/log"
grep -q '^dm2: .*gone.tar.gz' "$T/log" || fail "dm2 log after a fetch failure: $(cat "$T/log")"
grep -q 'CC \[M\]' "$T/log" && fail "dm2 log still shows the older compile"
grep -aq "Hello from a patch" "$MOD" || fail "the failed install removed the module"
pass "dm2 log shows the fetch failure"

# ---- the build key covers what this kernel's build uses ----
key_recipe() { # VERSION2 [BUILD-EXTRA]
	printf '[Recipe]\nName=tkkey\nLicense=GPL-2.0-only\n[Source]\nVersion=1.0\nPath=%s\nKernel=<99\n[Source]\nVersion=%s\nPath=%s\nKernel=>=99\n[Build]\nModules=dm2_example\n%s' \
		"$T/src/tk-1.0" "$1" "$T/src/tk-1.0.orig" "${2:-}" >"$RECIPES/tkkey.recipe"
}
from_cache() {
	json_get "[m['from_cache'] for m in j['modules'] if m['name'] == 'tkkey' and m['kernel'] == '$KVER'][0]"
}
dm2 uninstall tk -k "$KVER" >/dev/null
key_recipe 2.0
dm2 install tkkey -k "$KVER" >/dev/null 2>&1 || fail "install tkkey"
[ "$(from_cache)" = False ] || fail "first build from the cache"
key_recipe 2.1 # another kernel's [Source] edited
dm2 uninstall tkkey -k "$KVER" >/dev/null
dm2 install tkkey -k "$KVER" >/dev/null 2>&1 || fail "reinstall tkkey"
[ "$(from_cache)" = True ] || fail "editing the >=99 source rebuilt the <99 kernel's module"
key_recipe 2.1 "MakeVariable=DM2_TEST=1"$'\n' # [Build] edited: every kernel rebuilds
dm2 uninstall tkkey -k "$KVER" >/dev/null
dm2 install tkkey -k "$KVER" >/dev/null 2>&1 || fail "install tkkey after a [Build] edit"
[ "$(from_cache)" = False ] || fail "a [Build] edit came from the cache"
pass "build key: another kernel's source edited: cache hit; [Build] edited: rebuild"
