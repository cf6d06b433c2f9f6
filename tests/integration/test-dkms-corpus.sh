# SPDX-License-Identifier: LGPL-2.1-or-later
# Real Debian *-dkms packages whose dkms.conf DKMS reads with bash (issue 13), on the
# installed headers: v4l2loopback (`. $kernel_source_dir/.config`, `sort -V -C`),
# gost-crypto (a Makefile using $(PWD)), jool (MODULE_LICENSE(JOOL_LICENSE), judged from
# the built modules), iptables-netflow (`pushd \`dirname $BASH_SOURCE\``, a PRE_BUILD
# ./configure). Each is unpacked from its .deb (.ci/setup downloads them into
# $DM2_CI_DEBS) into a fake root's usr/src, installed with dm2, and must give the module
# names DKMS installs, in updates/dkms where DKMS puts them on Debian, signed.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

DEBS=${DM2_CI_DEBS:-/var/cache/dm2-ci/debs}
lib_init

# deb-name recipe-name modules...
cases=(
	"v4l2loopback-dkms v4l2loopback v4l2loopback"
	"gost-crypto-dkms gost-crypto gost-test gost28147_generic gosthash94_generic kuznyechik_generic magma_generic streebog_generic"
	"jool-dkms jool-dkms jool jool_common jool_siit"
	"iptables-netflow-dkms ipt-netflow ipt_NETFLOW"
)
for c in "${cases[@]}"; do
	set -- $c
	deb=$(ls "$DEBS/${1}_"*.deb 2>/dev/null | head -n 1 || true)
	[ -n "$deb" ] || fail "no $DEBS/${1}_*.deb: run .ci/setup (it downloads them)"
	dpkg-deb -x "$deb" "$ROOT"
done
rm -rf "$ROOT/etc/dkms" # the packages ship none that matter; keep the root plain

for c in "${cases[@]}"; do
	set -- $c
	name=$2
	shift 2
	dm2 install "$name" -k "$KVER" >"$T/out" 2>&1 ||
		{ cat "$T/out"; dm2 log "$name" -k "$KVER" | tail -n 30; fail "install $name"; }
	for m in "$@"; do
		f=$ROOT/lib/modules/$KVER/updates/dkms/$m.ko
		[ -f "$f" ] || fail "$name: $m.ko not in updates/dkms: $(find "$ROOT/lib/modules/$KVER" -name '*.ko*')"
		[ -n "$(modinfo -F signer "$f")" ] || fail "$name: $m.ko is not signed"
	done
	echo "$name: $* installed"
done
# Nothing else: the same set DKMS installs.
(cd "$ROOT/lib/modules/$KVER/updates/dkms" && ls | sed 's/\.ko.*//' | sort) >"$T/got"
for c in "${cases[@]}"; do set -- $c; shift 2; printf '%s\n' "$@"; done | sort >"$T/want"
check_diff "$T/want" "$T/got"
pass "v4l2loopback, gost-crypto, jool, iptables-netflow built and installed as DKMS does"
