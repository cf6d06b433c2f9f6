#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A kernel appears and 20 small out-of-tree modules must be built for it: dm2d (running,
# asked with `dm2 trigger KVER --wait`, which returns once all are installed and depmod ran)
# against `dkms autoinstall -k KVER` (plus one depmod) for the same 20 modules, side by side.
# Then dm2d's idle RSS and wake-ups (context switches) over 10 seconds.
#
# Everything happens in private trees under a temporary directory: dkms gets its own
# --dkmstree/--sourcetree/--installtree and --no-depmod, so the machine's dkms state and
# /lib/modules are not touched (dkms only reads its signing key /var/lib/dkms/mok.key).
# Use a build without sanitizers for meaningful numbers:
#   cmake -S . -B /tmp/build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/build-rel
#   DM2=/tmp/build-rel/dm2 DM2D=/tmp/build-rel/dm2d bench/new-kernel.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
DM2=${DM2:-$HERE/build/dm2}
DM2D=${DM2D:-$HERE/build/dm2d}
N=${N:-20}
KVER=${KVER:-$(ls -d /lib/modules/*/build/.config | head -n 1 | cut -d/ -f4)}
TREE=$(readlink -f "/lib/modules/$KVER/build")
[ -x "$DM2" ] && [ -x "$DM2D" ] || { echo "set DM2 and DM2D to built binaries" >&2; exit 2; }
command -v dkms >/dev/null || { echo "dkms is not installed" >&2; exit 2; }

B=$(mktemp -d /tmp/dm2-bench.XXXXXX)
DPID=
cleanup() {
	[ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	rm -rf "$B"
}
trap cleanup EXIT

# ---- the 20 modules: as dm2 recipes and as dkms packages ----
mkdir -p "$B/recipes" "$B/dkms-src"
for i in $(seq -w 1 "$N"); do
	name=benchmod$i
	src=$B/recipes/$name-src
	mkdir -p "$src"
	sed "s/dm2_example/$name/g" "$HERE/recipes/dm2-example/dm2_example.c" >"$src/$name.c"
	echo "obj-m := $name.o" >"$src/Kbuild"
	printf '[Recipe]\nName=%s\nLicense=GPL-2.0-only\n\n[Source]\nVersion=1.0\nPath=%s-src\n\n[Build]\nModules=%s\n' \
		"$name" "$name" "$name" >"$B/recipes/$name.recipe"
	d=$B/dkms-src/$name-1.0
	mkdir -p "$d"
	cp "$src/$name.c" "$src/Kbuild" "$d/"
	cat >"$d/dkms.conf" <<-EOF
		PACKAGE_NAME="$name"
		PACKAGE_VERSION="1.0"
		BUILT_MODULE_NAME[0]="$name"
		DEST_MODULE_LOCATION[0]="/updates/dkms"
		AUTOINSTALL="yes"
	EOF
done

# ---- dkms ----
DK=$B/dkms
mkdir -p "$DK/tree" "$DK/lib/modules/$KVER"
ln -s "$TREE" "$DK/lib/modules/$KVER/build"
dk() { dkms "$@" --dkmstree "$DK/tree" --sourcetree "$B/dkms-src" --installtree "$DK/lib/modules"; }
for i in $(seq -w 1 "$N"); do
	dk add -m "benchmod$i" -v 1.0 >/dev/null
done
t0=$(date +%s.%N)
dk autoinstall -k "$KVER" --no-depmod >"$B/dkms.log" 2>&1 || { tail "$B/dkms.log"; exit 1; }
depmod -a -b "$DK" "$KVER" 2>/dev/null  # warns about modules.order, irrelevant here
t1=$(date +%s.%N)
dkms_n=$(find "$DK/lib/modules/$KVER" -name 'benchmod*.ko*' | wc -l)
dkms_s=$(echo "$t1 - $t0" | bc)

# ---- dm2d ----
R=$B/root
mkdir -p "$R/etc/dm2" "$R/lib/modules"
printf '[Daemon]\nSettleSec=1\n' >"$R/etc/dm2/dm2d.conf"
"$DM2D" --root "$R" --recipes "$B/recipes" --foreground >"$B/dm2d.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$R/run/dm2/control" ] && break; sleep 0.1; done
t0=$(date +%s.%N)
mkdir "$R/lib/modules/$KVER"
ln -s "$TREE" "$R/lib/modules/$KVER/build"
rc=0
"$DM2" --root "$R" --recipes "$B/recipes" trigger "$KVER" --wait --timeout 1800 >/dev/null || rc=$?
t1=$(date +%s.%N)
[ $rc = 0 ] || { echo "dm2 trigger --wait exited $rc" >&2; tail -20 "$B/dm2d.log" >&2; exit 1; }
dm2_n=$(find "$R/lib/modules/$KVER" -name 'benchmod*.ko*' | wc -l)
dm2_s=$(echo "$t1 - $t0" | bc)

# ---- idle ----
sleep 2
ctx() { awk '/ctxt_switches/ { n += $2 } END { print n }' "/proc/$DPID/status"; }
c0=$(ctx)
sleep 10
c1=$(ctx)
rss=$(awk '/VmRSS/ { print $2 }' "/proc/$DPID/status")
rss_anon=$(awk '/RssAnon/ { print $2 }' "/proc/$DPID/status")
rss_file=$(awk '/RssFile/ { print $2 }' "/proc/$DPID/status")

printf '\n%-34s %12s %12s\n' "new kernel, $N modules, $(nproc) CPUs" "dm2d" "dkms"
printf '%-34s %12s %12s\n' "modules installed" "$dm2_n" "$dkms_n"
printf '%-34s %11.1fs %11.1fs\n' "time until installed (+depmod)" "$dm2_s" "$dkms_s"
printf '%-34s %12.2f\n' "dm2d / dkms" "$(echo "$dm2_s / $dkms_s" | bc -l)"
printf '%-34s %9s KiB\n' "dm2d idle RSS" "$rss"
printf '%-34s %9s KiB\n' "  of which private (RssAnon)" "$rss_anon"
printf '%-34s %9s KiB\n' "  of which shared libs (RssFile)" "$rss_file"
printf '%-34s %12s\n' "dm2d wake-ups in 10 s idle" "$((c1 - c0))"
