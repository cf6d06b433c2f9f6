#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# End to end on a real Debian 12: build the .debs (dpkg-buildpackage), make a throwaway
# bookworm chroot with mmdebstrap from Debian's archive, install them with apt, then the
# kernel headers and acpi-call-dkms, and check what the real kernel hooks did. A chroot has
# no systemd: the hooks run the engine inline (no daemon), which is what is tested.
#
#   DM2_DEBS=DIR          use the .debs in DIR instead of building them
#   DM2_DEBIAN_MIRROR=URL Debian mirror (default: the one this machine's apt uses)
#   DM2_TEST_KEEP=1       keep the chroot (printed) on failure
#
# Needs root, mmdebstrap, dpkg-dev/debhelper (.ci/setup) and network. Takes about 130-220 s
# (build included); .ci/run runs it unless DM2_SYSTEM_TESTS=0.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
# The Debian archive this machine's apt already uses (deb822 URIs: or one-line deb entries),
# so the test reaches exactly what the machine reaches.
host_mirror() {
	local u
	u=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ { print $2 }' | grep -v -- '-security' | head -n 1)
	[ -n "$u" ] || u=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }')
	echo "${u%/}"
}
MIRROR=${DM2_DEBIAN_MIRROR:-$(host_mirror)}
[ -n "$MIRROR" ] || { echo "FAIL: no Debian mirror in this machine's apt sources; set DM2_DEBIAN_MIRROR" >&2; exit 1; }
T=$(mktemp -d /var/tmp/dm2-system.XXXXXX)
C=$T/chroot
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }
cleanup() {
	local rc=$?
	for m in dev/pts dev proc sys ""; do
		mountpoint -q "$C/$m" 2>/dev/null && umount -l "$C/$m"
	done
	if [ $rc != 0 ] && [ -n "${DM2_TEST_KEEP:-}" ]; then
		echo "kept $T" >&2
	else
		rm -rf --one-file-system "$T"
	fi
	exit $rc
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || fail "run as root (mmdebstrap, chroot)"
start=$(date +%s)

# ---- the packages ----
if [ -z "${DM2_DEBS:-}" ]; then
	mkdir -p "$T/src"
	tar -C "$SRC" --exclude=./build --exclude='./build-*' --exclude=./.git -c . |
		tar -C "$T/src" -x
	(cd "$T/src" && dpkg-buildpackage -us -uc -b) >"$T/dpkg.log" 2>&1 ||
		{ tail -n 30 "$T/dpkg.log"; fail "dpkg-buildpackage"; }
	DM2_DEBS=$T
	lintian --fail-on error,warning "$T"/dm2_*.changes >"$T/lintian.log" 2>&1 ||
		fail "lintian: $(cat "$T/lintian.log")"
	pass "packages built, lintian clean ($(( $(date +%s) - start )) s)"
fi

# ---- a bookworm chroot ----
mmdebstrap --variant=apt --include=ca-certificates bookworm "$C" \
	"deb $MIRROR bookworm main" "deb $MIRROR-security bookworm-security main" \
	>"$T/mmdebstrap.log" 2>&1 || { tail -n 20 "$T/mmdebstrap.log"; fail "mmdebstrap"; }
# A mount point of its own, and the API file systems the builds use.
mount --bind "$C" "$C"
mount -t proc proc "$C/proc"
mount -t sysfs sysfs "$C/sys"
mount --rbind /dev "$C/dev"
in_chroot() { chroot "$C" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
apt_in() { in_chroot apt-get install -y -q --no-install-recommends "$@"; }
# mmdebstrap leaves no package lists behind.
in_chroot apt-get update -q >"$T/update.log" 2>&1 || fail "apt-get update: $(tail "$T/update.log")"
mkdir -p "$C/tmp/debs" "$C/tmp/pkg"
cp "$DM2_DEBS"/dm2_*.deb "$DM2_DEBS"/libkbuild-wrap1_*.deb "$C/tmp/debs/"
pass "chroot ($(( $(date +%s) - start )) s)"

# ---- the example package of dh_dm2, built with the dh-dm2 .deb's own files ----
dpkg-deb -x "$(ls "$DM2_DEBS"/dh-dm2_*.deb)" "$T/dh-dm2"
cp -r "$SRC/debian/examples/hello-dm2" "$T/"
(cd "$T/hello-dm2" && PATH=$T/dh-dm2/usr/bin:$PATH PERL5LIB=$T/dh-dm2/usr/share/perl5 \
	DH_DATAFILES=$T/dh-dm2/usr/share/debhelper dpkg-buildpackage -us -uc -b -d) \
	>"$T/hello.log" 2>&1 || { tail -n 20 "$T/hello.log"; fail "dpkg-buildpackage hello-dm2"; }
cp "$T"/hello-dm2_*.deb "$C/tmp/pkg/"
pass "hello-dm2 built with the packaged dh_dm2"

# ---- dm2 first, then the headers: the header hook builds, inline ----
debs=()
for f in "$C"/tmp/debs/*.deb; do debs+=("/tmp/debs/${f##*/}"); done
apt_in "${debs[@]}" >"$T/apt1.log" 2>&1 ||
	{ tail -n 30 "$T/apt1.log"; fail "apt install dm2"; }
[ -f "$C/etc/dm2/dm2d.conf" ] || fail "no /etc/dm2/dm2d.conf"
apt_in linux-headers-amd64 >"$T/apt2.log" 2>&1 || { tail -n 30 "$T/apt2.log"; fail "headers"; }
K1=$(basename "$(ls -d "$C"/usr/src/linux-headers-*-amd64 | sort -V | tail -n 1)")
K1=${K1#linux-headers-}
grep -q '^dm2: ' "$T/apt2.log" && grep -q 'fail' "$T/apt2.log" &&
	fail "the header hook reported a failure: $(grep '^dm2:' "$T/apt2.log")"
MOD=$C/lib/modules/$K1/updates/dm2/dm2_example.ko
[ -f "$MOD" ] || fail "header hook did not install dm2_example for $K1: $(cat "$T/apt2.log")"
in_chroot dm2 status -k "$K1" | grep -q 'dm2-example .*installed' ||
	fail "status: $(in_chroot dm2 status -k "$K1")"
signer=$(in_chroot modinfo -F signer "/lib/modules/$K1/updates/dm2/dm2_example.ko")
[ -n "$signer" ] || fail "dm2_example.ko is not signed"
in_chroot dm2 verify --cert /var/lib/dm2/keys/signing_key.x509 \
	"/lib/modules/$K1/updates/dm2/dm2_example.ko" >/dev/null || fail "dm2 verify"
pass "the header hook built, signed ($signer) and installed dm2-example for $K1 ($(( $(date +%s) - start )) s)"

# ---- a package made with dh_dm2: its postinst builds the module for the installed kernel ----
apt_in /tmp/pkg/hello-dm2_1.0_all.deb >"$T/apt-hello.log" 2>&1 ||
	{ tail -n 30 "$T/apt-hello.log"; fail "apt install hello-dm2"; }
[ -f "$C/usr/share/dm2/recipes/hello-dm2.recipe" ] || fail "hello-dm2's recipe not installed"
in_chroot modinfo -F name "/lib/modules/$K1/updates/dm2/dm2_hello.ko" 2>/dev/null | grep -qx dm2_hello ||
	fail "hello-dm2's postinst did not build dm2_hello for $K1: $(cat "$T/apt-hello.log")"
pass "hello-dm2 (dh_dm2) installed with apt: its postinst built dm2_hello for $K1"

# ---- dkms and acpi-call-dkms: each package is built by one of the two, none fails ----
apt_in acpi-call-dkms >"$T/apt3.log" 2>&1 || { tail -n 30 "$T/apt3.log"; fail "acpi-call-dkms"; }
in_chroot dkms status >"$T/dkms.status"
grep -q "acpi-call.*$K1.*installed" "$T/dkms.status" || fail "dkms: $(cat "$T/dkms.status")"
# dm2 made its own key for dm2-example: sign with DKMS' (the enrolled one) from now on.
in_chroot dm2 key adopt-dkms --force >"$T/adopt" 2>&1 || fail "adopt-dkms: $(cat "$T/adopt")"
in_chroot dm2 dkms takeover acpi-call -k "$K1" >"$T/takeover" 2>&1 ||
	fail "takeover: $(cat "$T/takeover")"
grep -q "no-autoinstall" "$T/takeover" || fail "takeover left DKMS on: $(cat "$T/takeover")"
pass "dm2 dkms takeover acpi-call ($(( $(date +%s) - start )) s)"

# ---- a second kernel's headers: built for it too, by dm2 alone ----
K2=$(in_chroot apt-cache search --names-only '^linux-headers-[0-9.]+-[0-9]+-amd64$' |
	sed 's/^linux-headers-\([^ ]*\) .*/\1/' | grep -vx "$K1" | sort -V | tail -n 1)
[ -n "$K2" ] || fail "no second bookworm kernel to install"
apt_in "linux-headers-$K2" >"$T/apt4.log" 2>&1 || { tail -n 30 "$T/apt4.log"; fail "headers $K2"; }
[ -f "$C/lib/modules/$K2/updates/dm2/dm2_example.ko" ] ||
	fail "nothing built for $K2: $(grep -i 'dm2\|dkms' "$T/apt4.log")"
[ -f "$C/lib/modules/$K2/updates/dm2/dm2_hello.ko" ] ||
	fail "the hooks did not build hello-dm2 for $K2: $(grep -i 'dm2\|dkms' "$T/apt4.log")"
[ -f "$C/lib/modules/$K2/updates/dkms/acpi_call.ko" ] ||
	fail "acpi_call not built for $K2: $(grep -i 'dm2\|dkms' "$T/apt4.log")"
in_chroot dm2 status -k "$K2" | grep -q 'acpi-call .*installed' ||
	fail "acpi-call is not dm2's on $K2: $(in_chroot dm2 status -k "$K2")"
in_chroot dkms status -k "$K2" | grep -q installed &&
	fail "DKMS built too (double work): $(in_chroot dkms status -k "$K2")"
grep -q 'failed' "$T/apt4.log" && fail "a hook failed: $(grep -i 'dm2\|dkms' "$T/apt4.log")"
pass "second kernel $K2: dm2 built dm2-example and acpi-call, DKMS nothing ($(( $(date +%s) - start )) s)"

# ---- removing that kernel removes dm2's modules for it ----
# Debian's headers packages run no hook on removal (only header_postinst.d), and modules
# must stay while the kernel image does; the image's prerm runs /etc/kernel/prerm.d, as
# here (no image is installed in the chroot, so its prerm is played by run-parts).
in_chroot apt-get purge -y -q "linux-headers-$K2" >"$T/apt5.log" 2>&1 ||
	{ tail -n 30 "$T/apt5.log"; fail "purge headers $K2"; }
in_chroot env DEB_MAINT_PARAMS="'remove'" run-parts --report --exit-on-error --arg="$K2" \
	--arg="/boot/vmlinuz-$K2" /etc/kernel/prerm.d >"$T/prerm.log" 2>&1 ||
	fail "prerm.d failed: $(cat "$T/prerm.log")"
left=$(find "$C/lib/modules/$K2" -name '*.ko*' 2>/dev/null || true)
[ -z "$left" ] || fail "modules left for $K2 after its prerm: $left"
[ ! -e "$C/lib/modules/$K2/updates/dm2" ] || fail "empty updates/dm2 left for $K2"
in_chroot dm2 status -k "$K2" | grep -q installed &&
	fail "dm2 still lists modules of $K2: $(in_chroot dm2 status -k "$K2")"
pass "the prerm hooks of $K2 removed dm2's modules and their directory"

# ---- removing a dh_dm2 package removes its modules ----
in_chroot apt-get remove -y -q hello-dm2 >"$T/apt-hello2.log" 2>&1 ||
	fail "remove hello-dm2: $(tail "$T/apt-hello2.log")"
[ ! -e "$C/lib/modules/$K1/updates/dm2/dm2_hello.ko" ] || fail "hello-dm2's prerm left dm2_hello.ko"
[ -f "$C/lib/modules/$K1/updates/dm2/dm2_example.ko" ] || fail "hello-dm2's prerm removed dm2-example"
pass "removing hello-dm2 removed dm2_hello from $K1, nothing else"

# ---- remove without purge: a kernel upgrade prints nothing of dm2; purge removes state ----
in_chroot apt-get remove -y -q dm2 >"$T/apt6.log" 2>&1 || fail "remove dm2: $(tail "$T/apt6.log")"
[ -d "$C/var/lib/dm2" ] || fail "remove lost /var/lib/dm2"
in_chroot sh -c "DEB_MAINT_PARAMS=\"'configure'\" run-parts --arg=$K1 /etc/kernel/header_postinst.d" \
	>"$T/hook.out" 2>&1 || true
grep -q 'dm2\|kernel-hook' "$T/hook.out" && fail "removed dm2's hook speaks: $(cat "$T/hook.out")"
in_chroot apt-get purge -y -q dm2 >"$T/apt7.log" 2>&1 || fail "purge dm2: $(tail "$T/apt7.log")"
[ ! -e "$C/var/lib/dm2" ] && [ ! -e "$C/var/cache/dm2" ] && [ ! -e "$C/etc/dm2" ] ||
	fail "purge left $(ls -d "$C"/var/lib/dm2 "$C"/var/cache/dm2 "$C"/etc/dm2 2>/dev/null)"
pass "remove keeps state and is silent on kernel hooks; purge removes it"
echo "ok ($(( $(date +%s) - start )) s)"
