#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Benchmark (prints figures; not a test): `dkms status` against `dm2 status` for the same
# N modules x K kernels, all installed, each in a private tree so the machine's own dkms and
# dm2 state are untouched.
#
#   bench/status.sh [DM2_BINARY]        env: N (100), K (3), RUNS (dm2: 50; dkms: 5)
#
# dkms: modules registered with the real `dkms add --dkmstree --sourcetree`, then marked built
# and installed the way dkms records it (DKMS_TREE/NAME/VER/KVER/ARCH/module/NAME.ko and the
# kernel-KVER-ARCH symlink), with a copy under a private --installtree.
# dm2: the state db is created by a real `dm2 install` of recipes/dm2-example (dm2's own code
# creates the schema), then that row is removed and the N x K synthetic rows are inserted with
# sqlite3 exactly as dm2 records installed jobs.
set -eu -o pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
DM2=${1:-${DM2:-$SRC/build/dm2}}
N=${N:-100}
K=${K:-3}
RUNS=${RUNS:-50}
DKMS_RUNS=${DKMS_RUNS:-3} # dkms status takes about a minute at 100 x 3
SKIP_DKMS=${SKIP_DKMS:-} # set to time dm2 only
REAL_KVER=${REAL_KVER:-$(ls -d /lib/modules/*/build/.config | head -n 1 | cut -d/ -f4)}
REAL_TREE=$(readlink -f /lib/modules/$REAL_KVER/build)
ARCH=$(uname -m)

[ -x "$DM2" ] || { echo "usage: $0 PATH/TO/dm2 (not found: $DM2)" >&2; exit 2; }
for t in dkms sqlite3 python3; do
	command -v $t >/dev/null || { echo "$t is needed" >&2; exit 2; }
done

T=$(mktemp -d /tmp/dm2-bench-status.XXXXXX)
chmod 755 "$T"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
ROOT=$T/root
DKMS_TREE=$T/dkms
SOURCE_TREE=$T/src
INSTALL_TREE=$T/installtree
mkdir -p "$ROOT/lib/modules/$REAL_KVER" "$DKMS_TREE" "$SOURCE_TREE" "$INSTALL_TREE"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$REAL_KVER/build"

kernels=()
for ((k = 0; k < K; k++)); do
	kernels+=("6.1.0-$((90 + k))-amd64")
done

echo "== setting up $N modules x $K kernels (dkms: $DKMS_TREE, dm2: $ROOT)"
ko=$T/fake.ko
head -c 65536 /dev/urandom >"$ko"
for ((i = 0; i < N; i++)); do
	m=benchmod$i
	mkdir -p "$SOURCE_TREE/$m-1.0"
	cat >"$SOURCE_TREE/$m-1.0/dkms.conf" <<CONF
PACKAGE_NAME="$m"
PACKAGE_VERSION="1.0"
BUILT_MODULE_NAME[0]="$m"
DEST_MODULE_LOCATION[0]="/updates/dkms"
AUTOINSTALL="yes"
CONF
	[ -z "$SKIP_DKMS" ] || continue
	dkms add -m $m -v 1.0 --dkmstree "$DKMS_TREE" --sourcetree "$SOURCE_TREE" >/dev/null
	for kv in "${kernels[@]}"; do
		mkdir -p "$DKMS_TREE/$m/1.0/$kv/$ARCH/module" "$DKMS_TREE/$m/1.0/$kv/$ARCH/log"
		cp "$ko" "$DKMS_TREE/$m/1.0/$kv/$ARCH/module/$m.ko"
		ln -s "1.0/$kv/$ARCH" "$DKMS_TREE/$m/kernel-$kv-$ARCH"
		mkdir -p "$INSTALL_TREE/$kv/updates/dkms"
		cp "$ko" "$INSTALL_TREE/$kv/updates/dkms/$m.ko"
	done
done

"$DM2" --root "$ROOT" --recipes "$SRC/recipes" -q install dm2-example -k $REAL_KVER >/dev/null
db=$ROOT/var/lib/dm2/state.db
now=$(($(date +%s) * 1000000))
{
	echo "BEGIN;"
	echo "DELETE FROM jobs; DELETE FROM installed_files; DELETE FROM kernels; DELETE FROM recipes;"
	for kv in "${kernels[@]}"; do
		echo "INSERT INTO kernels VALUES ('$kv', '$(echo $kv | sha256sum | cut -c1-64)', '$ARCH', 'complete', NULL, $now);"
	done
	for ((i = 0; i < N; i++)); do
		m=benchmod$i
		echo "INSERT INTO recipes VALUES ('$m', 'vendor', '/usr/share/dm2/recipes/$m.recipe', '$(echo $m | sha256sum | cut -c1-64)');"
		for kv in "${kernels[@]}"; do
			echo "INSERT INTO jobs (recipe, kernel, version, state, log_path, build_key, from_cache, signer, created, started, finished, attempt) VALUES ('$m', '$kv', '1.0', 'installed', '/var/lib/dm2/logs/$m/$kv/build.log', '$(echo $m$kv | sha256sum | cut -c1-64)', 0, 'bench signing key', $now, $now, $now, 1);"
			echo "INSERT INTO installed_files VALUES ('lib/modules/$kv/updates/dm2/$m.ko', '$kv', '$m', '$(sha256sum <"$ko" | cut -c1-64)', NULL);"
		done
	done
	echo "COMMIT;"
} | sqlite3 "$db"

dkms_status() {
	dkms status --dkmstree "$DKMS_TREE" --sourcetree "$SOURCE_TREE" --installtree "$INSTALL_TREE"
}
dm2_status() {
	"$DM2" --root "$ROOT" status
}

rows_dkms=0
[ -n "$SKIP_DKMS" ] || rows_dkms=$(dkms_status | grep -c ': installed' || true)
rows_dm2=$(dm2_status | grep -c ' installed' || true)
echo "rows: dkms status $rows_dkms installed, dm2 status $rows_dm2 installed (expected $((N * K)))"

# Median wall time of a command in ms: hyperfine without a shell (-N) when it is installed
# (.ci/setup installs it), which measures the command and not the harness; else python3.
median_ms() {
	local runs=$1 json
	shift
	if command -v hyperfine >/dev/null; then
		json=$(mktemp)
		local q=() a
		for a in "$@"; do q+=("$(printf '%q' "$a")"); done
		hyperfine -N --warmup 3 -r "$runs" --export-json "$json" "${q[*]}" >/dev/null 2>&1
		python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"][0]; print("%.3f" % (r["median"] * 1000))' "$json"
		rm -f "$json"
		return
	fi
	python3 - "$runs" "$@" <<'PY'
import subprocess, sys, time, statistics
runs = int(sys.argv[1]); cmd = sys.argv[2:]
subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up
t = []
for _ in range(runs):
    s = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    t.append((time.perf_counter() - s) * 1000)
print(f"{statistics.median(t):.3f}")
PY
}

dkms_ms=nan
[ -n "$SKIP_DKMS" ] || dkms_ms=$(median_ms "$DKMS_RUNS" dkms status --dkmstree "$DKMS_TREE" --sourcetree "$SOURCE_TREE" --installtree "$INSTALL_TREE")
dm2_ms=$(median_ms "$RUNS" "$DM2" --root "$ROOT" status)
dm2_json_ms=$(median_ms "$RUNS" "$DM2" --root "$ROOT" status --json)
echo
printf '%-28s %12s\n' "command ($N x $K)" "median ms"
printf '%-28s %12s  (%d runs)\n' "dkms status" "$dkms_ms" "$DKMS_RUNS"
printf '%-28s %12s  (%d runs)\n' "dm2 status" "$dm2_ms" "$RUNS"
printf '%-28s %12s  (%d runs)\n' "dm2 status --json" "$dm2_json_ms" "$RUNS"
python3 - "$dkms_ms" "$dm2_ms" <<'PY'
import sys
dk, dm = float(sys.argv[1]), float(sys.argv[2])
print(f"speed-up: {dk / dm:.0f}x (goal >= 100x); dm2 status {dm:.2f} ms (goal < 5 ms): "
      f"{'met' if dk / dm >= 100 and dm < 5 else 'NOT met'}")
PY
if command -v hyperfine >/dev/null && [ -n "${HYPERFINE:-}" ]; then
	hyperfine -N --warmup 3 "$DM2 --root $ROOT status"
fi
