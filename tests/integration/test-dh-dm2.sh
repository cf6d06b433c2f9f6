# SPDX-License-Identifier: LGPL-2.1-or-later
# dh_dm2 (debian/helper) builds the example package debian/examples/hello-dm2 with
# dpkg-buildpackage: the recipe in /usr/share/dm2/recipes, the sources in /usr/src, Depends
# on dm2, postinst/prerm snippets, lintian clean; dm2 builds the module from what the .deb
# installs; bad recipes are refused with file and reason. The chroot test
# (tests/system/test-debian.sh) installs it with apt and checks the hooks build it.
set -euo pipefail
. "$DM2_SOURCE_DIR/tests/integration/lib.sh"

command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null ||
	fail "dpkg-dev and debhelper are needed (.ci/setup)"
lib_init
H=$DM2_SOURCE_DIR/debian/helper
export PATH=$H:$PATH PERL5LIB=$H DH_DATAFILES=$H
podchecker "$H/dh_dm2" >/dev/null 2>&1 || fail "dh_dm2's POD: $(podchecker "$H/dh_dm2" 2>&1)"
pod2man --section=1 "$H/dh_dm2" >"$T/dh_dm2.1"
mandoc -Tlint -W warning "$T/dh_dm2.1" || fail "dh_dm2.1 is not clean"

cp -r "$DM2_SOURCE_DIR/debian/examples/hello-dm2" "$T/"
# -d: dh-sequence-dm2 is this tree's debian/helper, not an installed dh-dm2.
(cd "$T/hello-dm2" && dpkg-buildpackage -us -uc -b -d) >"$T/build.log" 2>&1 ||
	{ tail -n 20 "$T/build.log"; fail "dpkg-buildpackage of hello-dm2"; }
DEB=$T/hello-dm2_1.0_all.deb
dpkg-deb -c "$DEB" | awk '{ print $6 }' >"$T/files"
for f in ./usr/share/dm2/recipes/hello-dm2.recipe ./usr/src/hello-dm2-1.0/dm2_hello.c \
	./usr/src/hello-dm2-1.0/Kbuild; do
	grep -qxF "$f" "$T/files" || fail "$f not in the .deb: $(cat "$T/files")"
done
[ "$(dpkg-deb -f "$DEB" Depends)" = dm2 ] || fail "Depends: $(dpkg-deb -f "$DEB" Depends)"
dpkg-deb -e "$DEB" "$T/ctl"
grep -q 'dm2 trigger --wait' "$T/ctl/postinst" || fail "postinst: $(cat "$T/ctl/postinst")"
grep -q 'dm2 install hello-dm2 --all-kernels' "$T/ctl/postinst" || fail "postinst fallback"
grep -q 'dm2 uninstall hello-dm2 -k' "$T/ctl/prerm" || fail "prerm: $(cat "$T/ctl/prerm")"
sh -n "$T/ctl/postinst" && sh -n "$T/ctl/prerm" || fail "maintainer scripts do not parse"
if [ "$(id -u)" != 0 ] || [ -n "${DM2_LINTIAN:-1}" ]; then
	lintian --fail-on error,warning "$T"/hello-dm2_*.changes >"$T/lintian" 2>&1 ||
		fail "lintian: $(cat "$T/lintian")"
fi
pass "hello-dm2 built with dh_dm2: recipe, sources, Depends: dm2, snippets, lintian clean"

# What the .deb installs is a recipe dm2 builds.
dpkg-deb -x "$DEB" "$ROOT"
dm2 recipe lint "$ROOT/usr/share/dm2/recipes/hello-dm2.recipe" || fail "recipe lint"
# dm2 takes an absolute Path= as it is, not beneath --root: point it at the unpacked tree
# (the chroot test uses the recipe as installed).
sed "s|^Path=/usr/src/|Path=$ROOT/usr/src/|" "$ROOT/usr/share/dm2/recipes/hello-dm2.recipe" \
	>"$RECIPES/hello-dm2.recipe"
chmod -R a+rX "$ROOT/usr/src" "$RECIPES"
dm2 install hello-dm2 -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "dm2 install hello-dm2"; }
modinfo -F name "$ROOT/lib/modules/$KVER/updates/dm2/dm2_hello.ko" | grep -qx dm2_hello ||
	fail "dm2_hello.ko not installed"
pass "dm2 builds and installs dm2_hello from the .deb's files"

# Bad recipes: one line naming the file and what is wrong, and the build stops.
P=$T/hello-dm2
bad() { # recipe-text expected-message
	printf "$1" >"$P/debian/hello-dm2.dm2"
	rc=0
	(cd "$P" && dh_dm2 -phello-dm2 dm2_hello.c) >"$T/err" 2>&1 || rc=$?
	[ $rc != 0 ] || fail "dh_dm2 accepted: $1"
	grep -qF "$2" "$T/err" || fail "dh_dm2 on '$1': $(cat "$T/err")"
}
bad '[Recipe]\nLicense=GPL\n' "debian/hello-dm2.dm2: no Name= in [Recipe]"
bad '[Recipe]\nName=x\n[Source]\nVersion=1\nPath=/opt/x\n' "Path=/opt/x is not below /usr/src"
bad '[Recipe]\nName=x\n[Source]\nVersion=1\nURL=https://example.org/x.tar.gz\n' \
	"sources given but no [Source] with Path="
bad '[Recipe]\nName=x\nnonsense\n' "debian/hello-dm2.dm2:3: expected 'Key=Value' or '[Section]'"
pass "dh_dm2 refuses bad recipes with file and reason"
