#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A new kernel appears and real Debian dkms packages must be built for it, all in one root:
# dm2d (running, `dm2 trigger KVER --wait`) against `dkms autoinstall -k KVER` on the same
# packages in private trees (as bench/new-kernel.sh does). Prints both walls, the CPU
# seconds of all builds (user+sys of the children each tool waited for), the limit (CPU
# seconds / cores) and each tool's ratio to it.
#
# The packages come from bench/dkms-corpus.sh's download cache (run it once first):
#   CACHE=/var/cache/dm2-bench/dkms-corpus PACKAGES="apfs-dkms evdi-dkms" bench/new-kernel-real.sh
# JOBS=N caps both tools: dm2d Jobs=N (and so N jobserver tokens), dkms -jN.
# KEEP=1 keeps the work directory (both tools' logs and trees) and prints where it is.
# Use a build without sanitizers for meaningful numbers (see bench/new-kernel.sh).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
DM2=${DM2:-$HERE/build/dm2}
DM2D=${DM2D:-$HERE/build/dm2d}
CACHE=${CACHE:-/var/cache/dm2-bench/dkms-corpus}
PACKAGES=${PACKAGES:-"apfs-dkms evdi-dkms openvpn-dco-dkms xtables-addons-dkms falcosecurity-scap-dkms tp-smapi-dkms"}
JOBS=${JOBS:-$(nproc)}
KVER=${KVER:-$(ls -d /lib/modules/*/build/.config | head -n 1 | cut -d/ -f4)}
TREE=$(readlink -f "/lib/modules/$KVER/build")
[ -x "$DM2" ] && [ -x "$DM2D" ] || { echo "set DM2 and DM2D to built binaries" >&2; exit 2; }
command -v dkms >/dev/null || { echo "dkms is not installed" >&2; exit 2; }
case $JOBS in '' | *[!0-9]* | 0) echo "JOBS=$JOBS: want a number of at least 1" >&2; exit 2 ;; esac

B=$(mktemp -d /tmp/dm2-bench-real.XXXXXX)
DPID=
cleanup() {
	[ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	if [ -n "${KEEP:-}" ]; then echo "kept: $B (dkms.log, dm2d.log, root/)" >&2; else rm -rf "$B"; fi
}
trap cleanup EXIT

src_dirs() { find "$CACHE/src/$1/usr/src" -mindepth 1 -maxdepth 1 -type d -exec test -f {}/dkms.conf \; -print 2>/dev/null; }
conf_var() { (set +eu; kernelver=$KVER; . "$1/dkms.conf" >/dev/null 2>&1; eval "echo \"\${$2}\""); }

R=$B/root DK=$B/dkms
mkdir -p "$B/src" "$R/usr/src" "$R/etc/dm2" "$R/lib/modules" "$DK/tree" "$DK/lib/modules/$KVER"
n_pkg=0 modules=()
for p in $PACKAGES; do
	[ -d "$CACHE/src/$p" ] || { echo "$p: not in $CACHE/src (run bench/dkms-corpus.sh)" >&2; exit 2; }
	while read -r d; do
		name=$(conf_var "$d" PACKAGE_NAME) ver=$(conf_var "$d" PACKAGE_VERSION)
		[ -n "$name" ] && [ -n "$ver" ] || { echo "$d/dkms.conf: no PACKAGE_NAME/VERSION" >&2; exit 2; }
		cp -a "$d" "$B/src/$name-$ver"
		cp -a "$d" "$R/usr/src/"
		modules+=("$name/$ver")
	done < <(src_dirs "$p")
	n_pkg=$((n_pkg + 1))
done

# user+sys seconds of the children `times` reports (second line: "XmY.YYYs XmZ.ZZZs")
child_cpu() { awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } print s }'; }

# ---- dkms: its own -j, capped to JOBS ----
ln -s "$TREE" "$DK/lib/modules/$KVER/build"
dk() { dkms "$@" --dkmstree "$DK/tree" --sourcetree "$B/src" --installtree "$DK/lib/modules"; }
# The name and version as the dkms.conf says (apfs is linux-apfs-rw 0.3.0-1: a directory
# name cannot be split at its last dash).
for nv in "${modules[@]}"; do
	dk add -m "${nv%%/*}" -v "${nv#*/}" >>"$B/dkms.log" 2>&1 ||
		{ echo "dkms add ${nv%%/*} ${nv#*/} failed (see $B/dkms.log)" >&2; exit 1; }
done
t0=$(date +%s.%N)
dkms_cpu=$( { dk autoinstall -k "$KVER" --no-depmod -j "$JOBS" >>"$B/dkms.log" 2>&1 || true
	depmod -a -b "$DK" "$KVER" 2>/dev/null; times; } | child_cpu)
t1=$(date +%s.%N)
dkms_s=$(echo "$t1 - $t0" | bc)
dkms_n=$(find "$DK/lib/modules/$KVER" -name '*.ko*' | wc -l)
dkms_bad=$(grep -c '^Error! Bad return status' "$B/dkms.log" || true)
[ "$dkms_bad" = 0 ] || echo "dkms: $dkms_bad builds failed (KEEP=1 keeps $B/dkms.log)" >&2

# ---- dm2d: Jobs=JOBS, one jobserver of JOBS tokens ----
# dkms installs any licence; for the same work dm2's licence gate is opened (openafs is IPL).
printf '[Daemon]\nSettleSec=1\nJobs=%s\n[Build]\nAllowNonGPL=yes\n' "$JOBS" >"$R/etc/dm2/dm2d.conf"
"$DM2D" --root "$R" --foreground >"$B/dm2d.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$R/run/dm2/control" ] && break; sleep 0.1; done
cpu0=$(awk '{ print $16 + $17 }' "/proc/$DPID/stat")
t0=$(date +%s.%N)
mkdir "$R/lib/modules/$KVER"
ln -s "$TREE" "$R/lib/modules/$KVER/build"
rc=0
"$DM2" --root "$R" trigger "$KVER" --wait --timeout 3600 >/dev/null || rc=$?
t1=$(date +%s.%N)
[ $rc = 0 ] || echo "dm2 trigger --wait exited $rc (see the failures below)" >&2
cpu1=$(awk '{ print $16 + $17 }' "/proc/$DPID/stat")
hz=$(getconf CLK_TCK)
dm2_cpu=$(echo "($cpu1 - $cpu0) / $hz" | bc -l)
dm2_s=$(echo "$t1 - $t0" | bc)
dm2_n=$(find "$R/lib/modules/$KVER" -path "$R/lib/modules/$KVER/build" -prune -o -name '*.ko*' -print | wc -l)
"$DM2" --root "$R" status 2>/dev/null | grep -i failed >&2 || true

# The limit: the work's CPU seconds spread over the cores it may use.
cores=$(( JOBS < $(nproc) ? JOBS : $(nproc) ))
limit=$(echo "$dkms_cpu / $cores" | bc -l)
printf '\n%-36s %12s %12s\n' "new kernel, $n_pkg packages, $cores cores" "dm2d" "dkms"
printf '%-36s %12s %12s\n' "modules installed" "$dm2_n" "$dkms_n"
printf '%-36s %11.1fs %11.1fs\n' "time until installed (+depmod)" "$dm2_s" "$dkms_s"
printf '%-36s %11.1fs %11.1fs\n' "CPU seconds of the builds" "$dm2_cpu" "$dkms_cpu"
printf '%-36s %11.1fs\n' "limit (dkms CPU s / cores)" "$limit"
printf '%-36s %12.2f %12.2f\n' "ratio to the limit" "$(echo "$dm2_s / $limit" | bc -l)" \
	"$(echo "$dkms_s / $limit" | bc -l)"
printf '%-36s %12.2f\n' "dm2d / dkms" "$(echo "$dm2_s / $dkms_s" | bc -l)"
