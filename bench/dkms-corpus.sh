#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every *-dkms package of Debian's archive, built by dkms and by dm2 for every installed
# kernel build tree, side by side: package, kernel, each tool's result and time, the number
# of modules, whether both installed the same files (names and directories), and whether
# every module dm2 installed is signed.
#
# The packages are fetched with `apt-get download` into a cache directory (not the repo)
# and unpacked there once. Nothing of the machine's own state is touched: dkms gets private
# --dkmstree/--sourcetree/--installtree per package and kernel, dm2 a fake --root per
# package and kernel whose lib/modules/KVER/build links to the real tree.
#
#   bench/dkms-corpus.sh [PACKAGE...]        default: every *-dkms package but dh-dkms
#   CACHE=/var/cache/dm2-bench KERNELS="6.1.0-57-amd64" DM2=build-release/dm2 ...
#
# A package that needs another one's source (west-chamber needs xtables-addons) gets it
# in the same source tree. Output: one row per package x kernel, then the totals; the raw
# logs stay in $OUT (printed at the end).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
DM2=${DM2:-$HERE/build/dm2}
CACHE=${CACHE:-/var/cache/dm2-bench/dkms-corpus}
OUT=${OUT:-$(mktemp -d /tmp/dm2-corpus.XXXXXX)}
KERNELS=${KERNELS:-$(for c in /lib/modules/*/build/.config; do [ -e "$c" ] && basename "$(dirname "$(dirname "$c")")"; done)}
[ -x "$DM2" ] || { echo "set DM2 to a built dm2 (e.g. build-release/dm2)" >&2; exit 2; }
# dm2 runs the engine next to it, else the installed one: an older build would be measured.
[ -x "$(dirname "$DM2")/dm2-engine" ] ||
	{ echo "no dm2-engine next to $DM2: build it too (cmake --build ... --target dm2-engine)" >&2; exit 2; }
command -v dkms >/dev/null || { echo "dkms is not installed" >&2; exit 2; }
[ -n "$KERNELS" ] || { echo "no kernel build tree under /lib/modules" >&2; exit 2; }

# ---- fetch and unpack, once ----
mkdir -p "$CACHE/debs" "$CACHE/src"
if [ $# -gt 0 ]; then
	packages=("$@")
else
	mapfile -t packages < <(apt-cache search -- -dkms | awk '{ print $1 }' |
		grep -- '-dkms$' | grep -v '^dh-dkms$' | sort)
fi
for p in "${packages[@]}"; do
	[ -d "$CACHE/src/$p" ] && continue
	if ! ls "$CACHE/debs/${p}_"*.deb >/dev/null 2>&1; then
		(cd "$CACHE/debs" && apt-get download -q "$p" >/dev/null 2>&1) ||
			{ echo "$p: apt-get download failed" >&2; continue; }
	fi
	mkdir -p "$CACHE/src/$p.tmp"
	dpkg-deb -x "$CACHE/debs/${p}_"*.deb "$CACHE/src/$p.tmp"
	mv "$CACHE/src/$p.tmp" "$CACHE/src/$p"
done

# The /usr/src/NAME-VERSION directories of one unpacked package.
src_dirs() { find "$CACHE/src/$1/usr/src" -mindepth 1 -maxdepth 1 -type d -exec test -f {}/dkms.conf \; -print 2>/dev/null; }
# PACKAGE_NAME / PACKAGE_VERSION of a dkms.conf, as dkms reads them (a bash subshell).
# Not under set -e: a dkms.conf whose commands fail (lttng-modules' greps) still sets them.
conf_var() {
	(set +eu; kernelver=$2 arch=$(uname -m) kernel_source_dir=/lib/modules/$2/build \
		dkms_tree=/var/lib/dkms source_tree=/usr/src
	 cd "$1" && . ./dkms.conf >/dev/null 2>&1; eval "echo \"\${$3}\"") 2>/dev/null || true
}
# Packages whose dkms.conf reads another package's source tree.
extra_for() { case "$1" in west-chamber-dkms) echo xtables-addons-dkms ;; esac; }
# Packages whose dkms.conf names the machine's paths (west-chamber: PSRC=/usr/src/NAME-VER,
# PDEST=/var/lib/dkms/..., `find /usr/src`): dkms runs them in a mount namespace of its own
# where /usr/src shows the private source tree over the machine's (a writable overlay in the
# work dir) and /var/lib/dkms is the private dkms tree, as on a machine they are installed on.
at_machine_paths() { case "$1" in west-chamber-dkms) return 0 ;; esac; return 1; }

# The installed modules below lib/modules/KVER, as sorted "dir/name" lines (.ko suffixes
# dropped so compression does not count as a difference).
module_set() { (cd "$1" 2>/dev/null && find . -path ./build -prune -o \( -name '*.ko' -o -name '*.ko.*' \) -print |
	sed -e 's|^\./||' -e 's/\.ko\(\.[a-z]*\)\?$//' | sort); }

now() { date +%s.%N; }
# Whether every module dm2 installed below $1 carries a signature (kmod's modinfo reads
# compressed ones too): yes, NO (naming the first unsigned one on stderr), - for none.
all_signed() {
	local n=0 f
	while read -r f; do
		n=$((n + 1))
		[ -n "$(modinfo -F sig_id "$f" 2>/dev/null)" ] || { echo "  unsigned: $f" >&2; echo NO; return; }
	done < <(find "$1" -path "$1/build" -prune -o \( -name '*.ko' -o -name '*.ko.*' \) -print 2>/dev/null)
	[ "$n" -gt 0 ] && echo yes || echo -
}

printf '%-26s %-22s %-9s %7s %-9s %7s %4s %-4s %s\n' package kernel dkms time dm2 time mods same signed
rows=0 dkms_ok=0 dm2_ok=0 dm2_only_fail=0 dm2_nongpl=0 dm2_unsigned=0
for p in "${packages[@]}"; do
	[ -d "$CACHE/src/$p" ] || continue
	for k in $KERNELS; do
		tree=$(readlink -f "/lib/modules/$k/build")
		w=$OUT/$p/$k
		mkdir -p "$w/src" "$w/dkms/tree" "$w/dkms/lib/modules/$k" "$w/root/lib/modules/$k" "$w/root/usr/src"
		ln -s "$tree" "$w/dkms/lib/modules/$k/build"
		ln -s "$tree" "$w/root/lib/modules/$k/build"
		for q in $(extra_for "$p") "$p"; do
			while read -r d; do
				cp -a "$d" "$w/src/"
				cp -a "$d" "$w/root/usr/src/"
			done < <(src_dirs "$q")
		done

		# ---- dkms: add + build + install each source of this package (extras first) ----
		dk() { dkms "$@" --dkmstree "$w/dkms/tree" --sourcetree "$w/src" --installtree "$w/dkms/lib/modules"; }
		if at_machine_paths "$p"; then
			mkdir -p "$w/ovl/up" "$w/ovl/work"
			dk() {
				unshare -m --propagation private sh -ec '
					mount -t overlay overlay -o "lowerdir=$1/src:/usr/src,upperdir=$1/ovl/up,workdir=$1/ovl/work" /usr/src
					mount --bind "$1/dkms/tree" /var/lib/dkms
					shift
					exec dkms "$@" --dkmstree /var/lib/dkms --sourcetree /usr/src --installtree "$0"
				' "$w/dkms/lib/modules" "$w" "$@"
			}
		fi
		dres=ok
		t0=$(now)
		for d in "$w"/src/*/; do
			d=${d%/}
			name=$(conf_var "$d" "$k" PACKAGE_NAME) ver=$(conf_var "$d" "$k" PACKAGE_VERSION)
			[ -n "$name" ] && [ -n "$ver" ] || { dres=noconf; continue; }
			[ "$(basename "$d")" = "$name-$ver" ] || mv "$d" "$w/src/$name-$ver"
			rc=0
			{ dk add -m "$name" -v "$ver" && dk build -m "$name" -v "$ver" -k "$k" &&
				dk install -m "$name" -v "$ver" -k "$k" --no-depmod; } >>"$w/dkms.log" 2>&1 || rc=$?
			case $rc in 0) ;; 77) [ "$dres" = ok ] && dres=skipped ;; *) dres=failed ;; esac
		done
		t1=$(now)
		dt=$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")

		# ---- dm2: install every recipe of origin dkms in the fake root ----
		mres=ok
		t0=$(now)
		names=$("$DM2" --root "$w/root" recipe list --json 2>>"$w/dm2.log" |
			python3 -c 'import json,sys; j = json.load(sys.stdin); j = j["recipes"] if isinstance(j, dict) else j; print(" ".join(r["name"] for r in j if r.get("origin") == "dkms"))' 2>>"$w/dm2.log") || names=
		if [ -z "$names" ]; then
			mres=norecipe
		else
			rc=0
			# shellcheck disable=SC2086
			"$DM2" --root "$w/root" install $names -k "$k" >>"$w/dm2.log" 2>&1 || rc=$?
			case $rc in 0) ;; 10) mres=skipped ;; *) mres=failed ;; esac
			# dm2's licence gate (DKMS has none): built, and refused to install.
			[ "$mres" = failed ] && grep -q "which is not GPL-compatible: not installed" "$w/dm2.log" &&
				mres=non-gpl
		fi
		t1=$(now)
		mt=$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")

		dset=$(module_set "$w/dkms/lib/modules/$k")
		mset=$(module_set "$w/root/lib/modules/$k")
		nmod=$(printf '%s' "$dset" | grep -c . || true)
		same=-
		[ "$dres" = ok ] && [ "$mres" = ok ] && { [ "$dset" = "$mset" ] && same=yes || same=NO; }
		signed=$(all_signed "$w/root/lib/modules/$k")
		printf '%-26s %-22s %-9s %6ss %-9s %6ss %4s %-4s %s\n' "$p" "$k" "$dres" "$dt" "$mres" "$mt" "$nmod" "$same" "$signed"
		rows=$((rows + 1))
		[ "$dres" = ok ] && dkms_ok=$((dkms_ok + 1))
		[ "$mres" = ok ] && dm2_ok=$((dm2_ok + 1))
		[ "$dres" = ok ] && [ "$mres" = non-gpl ] && dm2_nongpl=$((dm2_nongpl + 1))
		[ "$dres" = ok ] && [ "$mres" != ok ] && [ "$mres" != non-gpl ] && dm2_only_fail=$((dm2_only_fail + 1))
		[ "$signed" = NO ] && dm2_unsigned=$((dm2_unsigned + 1))
		[ "$same" = NO ] && { echo "  dkms: $(echo $dset)"; echo "  dm2:  $(echo $mset)"; }
	done
done
printf '\n%d package x kernel pairs: dkms built %d, dm2 built %d; dkms-only successes (dm2 failures): %d;\n' \
	"$rows" "$dkms_ok" "$dm2_ok" "$dm2_only_fail"
printf 'built by dm2 and not installed by its licence gate (non-gpl; [Build] AllowNonGPL=yes installs them): %d\n' "$dm2_nongpl"
printf 'pairs where a module dm2 installed is unsigned: %d\n' "$dm2_unsigned"
echo "logs: $OUT/PACKAGE/KERNEL/{dkms,dm2}.log"
