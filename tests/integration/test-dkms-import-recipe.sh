# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2 dkms import DIR --recipe (issue 18) on the real Debian *-dkms packages of
# test-dkms-corpus.sh and on a package that builds in a subdirectory: the recipe written
# lints clean (warnings allowed), marks what it could not translate with "# REVIEW:", and,
# where it translates the build, builds and installs the modules DKMS builds. A dkms.conf
# that fails the checks still shows what bash left.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

DEBS=${DM2_CI_DEBS:-/var/cache/dm2-ci/debs}
lib_init

for d in v4l2loopback-dkms gost-crypto-dkms jool-dkms iptables-netflow-dkms; do
	deb=$(ls "$DEBS/${d}_"*.deb 2>/dev/null | head -n 1 || true)
	[ -n "$deb" ] || fail "no $DEBS/${d}_*.deb: run .ci/setup (it downloads them)"
	dpkg-deb -x "$deb" "$ROOT"
done
rm -rf "$ROOT/etc/dkms"
# A package whose MAKE is kbuild in one subdirectory: Directory= in the recipe.
mkdir -p "$ROOT/usr/src/subm-1.0"
cp -r "$DM2_SOURCE_DIR/tests/data/recipes/frictions/subdir/sub" "$ROOT/usr/src/subm-1.0/"
cat >"$ROOT/usr/src/subm-1.0/dkms.conf" <<'CONF'
PACKAGE_NAME=subm
PACKAGE_VERSION=1.0
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build/sub"
BUILT_MODULE_NAME[0]=subm
BUILT_MODULE_LOCATION[0]=sub/
DEST_MODULE_LOCATION[0]=/kernel/extra
AUTOINSTALL=yes
CONF

# import SRC-DIR NAME: write $RECIPES/NAME.recipe, which must lint without errors.
import() {
	dm2 dkms import "$ROOT/usr/src/$1" --recipe -k "$KVER" >"$RECIPES/$2.recipe" 2>"$T/err" ||
		{ cat "$T/err"; fail "import $1"; }
	dm2 recipe lint "$RECIPES/$2.recipe" 2>"$T/lint" ||
		{ cat "$RECIPES/$2.recipe" "$T/lint"; fail "$2.recipe does not lint"; }
}
import v4l2loopback-0.12.7 v4l2loopback
import gost-crypto-0.3.4 gost-crypto
import jool-dkms-4.1.9 jool-dkms
import ipt-netflow-2.6 ipt-netflow
import subm-1.0 subm
pass "five recipes written, each lints clean"

# What cannot be translated is marked, and named.
grep -q "^# REVIEW: MAKE runs kbuild in 3 directories ('src/mod/common', 'src/mod/nat64', 'src/mod/siit')" \
	"$RECIPES/jool-dkms.recipe" || fail "jool: $(cat "$RECIPES/jool-dkms.recipe")"
grep -q "^# REVIEW: no MODULE_LICENSE" "$RECIPES/jool-dkms.recipe" || fail "jool license"
grep -q "^# REVIEW: PRE_BUILD='./configure " "$RECIPES/ipt-netflow.recipe" || fail "ipt-netflow PRE_BUILD"
grep -qx "Directory=sub" "$RECIPES/subm.recipe" || fail "subm: $(cat "$RECIPES/subm.recipe")"
grep -qx "Modules=subm" "$RECIPES/subm.recipe" || fail "subm modules"
grep -q "ModuleDirectory=subm kernel/extra" "$RECIPES/subm.recipe" || fail "subm DEST_MODULE_LOCATION"
grep -qx "License=GPL" "$RECIPES/v4l2loopback.recipe" || fail "v4l2loopback license"
if grep -q "^# REVIEW:" "$RECIPES/subm.recipe" "$RECIPES/gost-crypto.recipe"; then
	fail "nothing to review in subm and gost-crypto: $(grep REVIEW "$RECIPES"/*.recipe)"
fi
pass "REVIEW comments for jool's three kbuild runs and license, ipt-netflow's PRE_BUILD"

# The recipes that translate the build build the modules DKMS builds (dm2's recipe wins
# over the dkms.conf of the same name).
for c in "v4l2loopback v4l2loopback" \
	"gost-crypto gost-test gost28147_generic gosthash94_generic kuznyechik_generic magma_generic streebog_generic" \
	"subm subm"; do
	set -- $c
	name=$1
	shift
	dm2 recipe list | grep -qE "^$name +[^ ]+ +extra " || fail "$name is not the dm2 recipe: $(dm2 recipe list)"
	dm2 install "$name" -k "$KVER" >"$T/out" 2>&1 ||
		{ cat "$T/out"; dm2 log "$name" -k "$KVER" | tail -n 30; fail "install $name"; }
	for m in "$@"; do
		f=$ROOT/lib/modules/$KVER/updates/dm2/$m.ko
		[ -f "$f" ] || fail "$name: $m.ko not built: $(find "$ROOT/lib/modules/$KVER" -name '*.ko*')"
		[ "$(modinfo -F name "$f")" = "$(echo "$m" | tr - _)" ] || fail "$m.ko: modinfo name"
	done
	echo "$name: $* built from the imported recipe"
done
pass "v4l2loopback, gost-crypto and subm build from their imported recipes"

# A dkms.conf that fails the checks: the problem on stderr, what bash left on stdout.
mkdir -p "$ROOT/usr/src/broken-1.0"
cat >"$ROOT/usr/src/broken-1.0/dkms.conf" <<'CONF'
PACKAGE_NAME=broken
PACKAGE_VERSION=1.0
BUILT_MODULE_NAME[0]=broken
BUILT_MODULE_LOCATION[0]=../outside
CONF
rc=0
dm2 dkms import "$ROOT/usr/src/broken-1.0" -k "$KVER" >"$T/out" 2>"$T/err" || rc=$?
[ $rc = 3 ] || fail "broken: exit $rc"
grep -q "dkms.conf:4: BUILT_MODULE_LOCATION\[0\] '../outside'" "$T/err" || fail "broken: $(cat "$T/err")"
grep -q "^    BUILT_MODULE_NAME\[0\]=broken" "$T/out" || fail "no partial output: $(cat "$T/out")"
rc=0
dm2 dkms import "$ROOT/usr/src/broken-1.0" --recipe >"$T/out" 2>/dev/null || rc=$?
[ $rc = 3 ] || fail "broken --recipe: exit $rc"
if grep -q "^\[Recipe\]" "$T/out"; then fail "a recipe from a broken dkms.conf"; fi
pass "a broken dkms.conf shows what bash left, and gives no recipe"
