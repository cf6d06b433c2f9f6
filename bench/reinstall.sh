#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Benchmark (prints figures; not a test): reinstalling 20 already-built modules.
#   dm2:  `dm2 install m1..m20 -k KVER` where every build key is in the build cache (sign,
#         install, one depmod for the batch), after `dm2 uninstall` of each.
#   dkms: `dkms install -m mI -v 1.0 -k KVER --no-depmod` of the same 20 modules, already
#         built, after `dkms uninstall` of each. dkms runs without depmod because its depmod
#         would write the machine's real /lib/modules/KVER; this favours dkms.
# Everything lives in private trees (--root for dm2; --dkmstree/--sourcetree/--installtree
# for dkms); the kernel build tree is only read. dkms signs with the existing
# /var/lib/dkms/mok.key (only read).
#
#   bench/reinstall.sh [DM2_BINARY]      env: M (20), ROUNDS (3)
set -eu -o pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
DM2=${1:-${DM2:-$SRC/build/dm2}}
M=${M:-20}
ROUNDS=${ROUNDS:-3}
KVER=${KVER:-$(ls -d /lib/modules/*/build/.config | head -n 1 | cut -d/ -f4)}
TREE=$(readlink -f /lib/modules/$KVER/build)

[ -x "$DM2" ] || { echo "usage: $0 PATH/TO/dm2 (not found: $DM2)" >&2; exit 2; }
command -v dkms >/dev/null || { echo "dkms is needed" >&2; exit 2; }

T=$(mktemp -d /tmp/dm2-bench-reinstall.XXXXXX)
chmod 755 "$T"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
ROOT=$T/root
RECIPES=$T/recipes
DKMS=(--dkmstree "$T/dkms" --sourcetree "$T/src" --installtree "$T/installtree")
mkdir -p "$ROOT/lib/modules/$KVER" "$RECIPES" "$T/dkms" "$T/src" "$T/installtree/$KVER"
ln -s "$TREE" "$ROOT/lib/modules/$KVER/build"

names=()
for ((i = 1; i <= M; i++)); do
	n=dm2-bench-$i
	mod=dm2_bench_$i
	names+=("$n")
	for dir in "$RECIPES/$n" "$T/src/$n-1.0"; do
		mkdir -p "$dir"
		sed "s/dm2_example/$mod/g" "$SRC/recipes/dm2-example/dm2_example.c" >"$dir/$mod.c"
		echo "obj-m += $mod.o" >"$dir/Kbuild"
	done
	printf '[Recipe]\nName=%s\nLicense=GPL-2.0-only\n\n[Source]\nVersion=1.0\nPath=%s\n\n[Build]\nModules=%s\n' \
		"$n" "$n" "$mod" >"$RECIPES/$n.recipe"
	printf 'PACKAGE_NAME="%s"\nPACKAGE_VERSION="1.0"\nBUILT_MODULE_NAME[0]="%s"\nDEST_MODULE_LOCATION[0]="/updates/dkms"\nAUTOINSTALL="yes"\n' \
		"$n" "$mod" >"$T/src/$n-1.0/dkms.conf"
done
chmod -R a+rX "$RECIPES" "$T/src"

dm2() {
	"$DM2" --root "$ROOT" --recipes "$RECIPES" -q "$@"
}

echo "== building $M modules once with dm2 (fills the build cache) and with dkms (untimed)"
dm2 install "${names[@]}" -k $KVER >/dev/null
for n in "${names[@]}"; do
	dkms add -m "$n" -v 1.0 "${DKMS[@]}" >/dev/null
	dkms build -m "$n" -v 1.0 -k $KVER "${DKMS[@]}" >/dev/null
done

ms() {
	python3 -c 'import time; print(int(time.perf_counter() * 1000))'
}

dm2_times=() dkms_times=()
for ((r = 1; r <= ROUNDS; r++)); do
	for n in "${names[@]}"; do
		dm2 uninstall "$n" -k $KVER >/dev/null
	done
	t0=$(ms)
	dm2 install "${names[@]}" -k $KVER >/dev/null
	t1=$(ms)
	dm2_times+=($((t1 - t0)))
	cached=$("$DM2" --root "$ROOT" status --json -k $KVER | python3 -c '
import json, sys
print(sum(1 for m in json.load(sys.stdin)["modules"] if m["from_cache"] and m["state"] == "installed"))')
	[ "$cached" = "$M" ] || { echo "only $cached of $M came from the cache" >&2; exit 1; }

	if [ $r -gt 1 ]; then
		for n in "${names[@]}"; do
			dkms uninstall -m "$n" -v 1.0 -k $KVER --no-depmod "${DKMS[@]}" >/dev/null
		done
	fi
	t0=$(ms)
	for n in "${names[@]}"; do
		dkms install -m "$n" -v 1.0 -k $KVER --no-depmod "${DKMS[@]}" >/dev/null
	done
	t1=$(ms)
	dkms_times+=($((t1 - t0)))
done

median() {
	printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}
dm2_med=$(median "${dm2_times[@]}")
dkms_med=$(median "${dkms_times[@]}")
echo
printf '%-52s %10s\n' "reinstall of $M built modules ($ROUNDS rounds)" "median ms"
printf '%-52s %10s  (%s)\n' "dkms install (no depmod)" "$dkms_med" "${dkms_times[*]}"
printf '%-52s %10s  (%s)\n' "dm2 install, from the cache (signs, 1 depmod)" "$dm2_med" "${dm2_times[*]}"
python3 -c "import sys; print(f'speed-up: {$dkms_med / max($dm2_med, 1):.1f}x')"
