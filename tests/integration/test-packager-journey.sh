# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 18's journey, with dm2's own commands alone: Debian's v4l2loopback 0.12.7 becomes a
# dm2 recipe served over HTTP on 127.0.0.1. `dm2 dkms import --recipe` writes the scaffold,
# `dm2 recipe hash` the SHA256=/GitTree= lines, a strlcpy -> strscpy patch is limited to
# kernels >= 6.8 with `Patch=FILE RANGE`, `dm2 recipe lint` finds no error, `dm2 recipe test`
# builds it for every kernel of the root (without installing), and `dm2 install` installs it
# signed. With a second kernel's headers installed (6.8 or later), the patch applies there
# and not on the older one; with one kernel, the range check runs on that one.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

DEBS=${DM2_CI_DEBS:-/var/cache/dm2-ci/debs}
lib_init
deb=$(ls "$DEBS/v4l2loopback-dkms_0.12.7"*.deb 2>/dev/null | head -n 1 || true)
[ -n "$deb" ] || fail "no $DEBS/v4l2loopback-dkms_0.12.7*.deb: run .ci/setup (it downloads it)"
dpkg-deb -x "$deb" "$T/x"
SRC=$T/x/usr/src/v4l2loopback-0.12.7

# Every other kernel whose headers this machine has, so `recipe test` covers them too.
for c in /lib/modules/*/build/.config; do
	k=$(basename "$(dirname "$(dirname "$c")")")
	[ "$k" = "$KVER" ] || lib_add_kernel "$k" "$(readlink -f "/lib/modules/$k/build")"
done

# ---- the source, as a forge serves it ----
mkdir -p "$T/www"
tar -C "$T/x/usr/src" -czf "$T/www/v4l2loopback-0.12.7.tar.gz" v4l2loopback-0.12.7
python3 "$DM2_SOURCE_DIR/tests/helpers/http-server.py" --dir "$T/www" --port-file "$T/port" \
	--log "$T/http.log" &
LIB_PIDS+=($!)
wait_for 20 test -s "$T/port"
URL=http://127.0.0.1:$(cat "$T/port")/files/v4l2loopback-0.12.7.tar.gz

# ---- scaffold, checksums, patch, lint ----
dm2 dkms import "$SRC" --recipe -k "$KVER" >"$T/scaffold" 2>"$T/err" ||
	{ cat "$T/err"; fail "dkms import --recipe"; }
grep -q '^Modules=v4l2loopback$' "$T/scaffold" || fail "scaffold: $(cat "$T/scaffold")"
dm2 recipe hash "$URL" >"$T/hash" || fail "recipe hash $URL"
[ "$(sed -n 's/^SHA256=//p' "$T/hash")" = "$(sha256sum "$T/www/v4l2loopback-0.12.7.tar.gz" | cut -d' ' -f1)" ] ||
	fail "SHA256= is not the archive's: $(cat "$T/hash")"

mkdir -p "$T/a" "$T/b"
cp "$SRC/v4l2loopback.c" "$T/a/"
sed 's/strlcpy(/strscpy(/g' "$T/a/v4l2loopback.c" >"$T/b/v4l2loopback.c"
(cd "$T" && diff -u a/v4l2loopback.c b/v4l2loopback.c || true) >"$RECIPES/v4l2loopback-strscpy.patch"
[ -s "$RECIPES/v4l2loopback-strscpy.patch" ] || fail "no strlcpy in v4l2loopback.c to patch"

# The scaffold's Path= becomes the URL and the pasted lines; the patch goes with it.
awk -v url="$URL" -v hash="$T/hash" '
	/^Path=/ { print "URL=" url; while ((getline l < hash) > 0) print l;
		   print "Patch=v4l2loopback-strscpy.patch >=6.8"; next }
	/^# REVIEW: MAKE/ { next }
	{ print }' "$T/scaffold" >"$RECIPES/v4l2loopback.recipe"
chmod -R a+rX "$RECIPES"
dm2 recipe lint "$RECIPES/v4l2loopback.recipe" >"$T/lint" 2>&1 ||
	{ cat "$RECIPES/v4l2loopback.recipe" "$T/lint"; fail "the recipe does not lint"; }
pass "dkms import --recipe, recipe hash and a ranged patch give a recipe that lints"

# ---- recipe test: every kernel, nothing installed ----
dm2 recipe test v4l2loopback --json >"$T/test.json" 2>"$T/err" || { cat "$T/err"; fail "recipe test"; }
n_kernels=$(ls "$ROOT/lib/modules" | wc -l)
[ "$(jq '[.kernels[] | select(.result == "built")] | length' "$T/test.json")" = "$n_kernels" ] ||
	fail "recipe test did not build for all $n_kernels kernels: $(cat "$T/test.json")"
[ -z "$(find "$ROOT/lib/modules" -name 'v4l2loopback.ko*')" ] || fail "recipe test installed a module"
for k in $(ls "$ROOT/lib/modules"); do
	log=$ROOT/var/lib/dm2/logs/v4l2loopback/$k/test.log
	case $k in
	[0-5].* | 6.[0-7].* | 6.[0-7]) want="not for this kernel" ;;
	*) want="applied" ;;
	esac
	grep -q "^# patch: *v4l2loopback-strscpy.patch (Kernel=>=6.8: $want)" "$log" ||
		fail "$k: the patch line of $log is not '$want': $(grep '^# patch' "$log")"
	grep -q "^# SHA256= *$(sed -n 's/^SHA256=//p' "$T/hash")" "$log" || fail "$k: no SHA256 in the log header"
done
pass "recipe test built for $n_kernels kernel(s), the patch only where the range says"

# ---- install, signed, from the URL ----
dm2 install v4l2loopback --all-kernels >"$T/out" 2>&1 || { cat "$T/out"; fail "install"; }
for k in $(ls "$ROOT/lib/modules"); do
	f=$(find "$ROOT/lib/modules/$k" -name 'v4l2loopback.ko*' | head -n 1)
	[ -n "$f" ] || fail "$k: v4l2loopback not installed"
	[ -n "$(modinfo -F signer "$f")" ] || fail "$k: $f is not signed"
	[ "$(modinfo -F vermagic "$f" | cut -d' ' -f1)" = "$k" ] || fail "$k: $f has another vermagic"
done
pass "installed and signed for every kernel"
