#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Benchmark (prints figures; not a test): a fleet sharing builds through an OCI registry.
#   One builder root and N client roots, the same kernel and M modules, one local registry
#   (Debian's docker-registry on 127.0.0.1, plain http: Remote=oci+http://...):
#   - dm2 builder: `dm2 install m1..mM` builds, signs, installs and pushes (Push=yes);
#   - dm2 clients: the same command in each fresh client root pulls instead of compiling
#     (checked: every module from the cache, and no build started, so no cc1 ran);
#   - dkms: the same N+1 machines (a private dkms tree each), every one compiling;
#   - registry stopped halfway: N more fresh clients, the registry killed after the first
#     half of them; the rest fall back to building (checked: nothing from the cache).
# Everything lives in private trees (--root for dm2; --dkmstree/--sourcetree/--installtree
# for dkms); the kernel build tree is only read. dkms signs with the existing
# /var/lib/dkms/mok.key (only read) and runs without depmod (its depmod would write the
# machine's /lib/modules/KVER); this favours dkms.
#
#   bench/fleet.sh [DM2_BINARY]      env: M (20), N (10), KEEP (keep the trees)
set -eu -o pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
DM2=${1:-${DM2:-$SRC/build/dm2}}
M=${M:-20}
N=${N:-10}
KVER=${KVER:-$(ls -d /lib/modules/*/build/.config | head -n 1 | cut -d/ -f4)}
TREE=$(readlink -f /lib/modules/$KVER/build)

[ -x "$DM2" ] || { echo "usage: $0 PATH/TO/dm2 (not found: $DM2)" >&2; exit 2; }
for p in dkms docker-registry; do
	command -v $p >/dev/null || { echo "$p is needed" >&2; exit 2; }
done

T=$(mktemp -d /tmp/dm2-bench-fleet.XXXXXX)
chmod 755 "$T"
REG_PID=
cleanup() {
	[ -z "$REG_PID" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null; } || true
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
RECIPES=$T/recipes
mkdir -p "$RECIPES" "$T/src"

names=()
for ((i = 1; i <= M; i++)); do
	n=dm2-fleet-$i
	mod=dm2_fleet_$i
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

# ---- the registry: plain http on a free port, storage under $T ----
# (start_registry and free_port: the tests' helpers)
source "$SRC/tests/integration/cache-lib.sh"
PORT=$(free_port)
start_registry "$T/registry" "$PORT" || { echo "docker-registry did not start" >&2; exit 1; }
REG_PID=$registry_pid
REMOTE=oci+http://127.0.0.1:$PORT/dm2/fleet

# machine NAME: a fresh dm2 root with the kernel, Remote= the registry, Push=yes.
machine() {
	local r=$T/$1
	mkdir -p "$r/lib/modules/$KVER" "$r/etc/dm2"
	ln -s "$TREE" "$r/lib/modules/$KVER/build"
	printf '[Cache]\nRemote=%s\nPush=yes\n[Fetch]\nConnectTimeoutSec=2\n' "$REMOTE" \
		>"$r/etc/dm2/dm2d.conf"
	echo "$r"
}
# trust_builder ROOT: clients accept only entries signed by a certificate they trust, the
# builder's (made by its first build).
trust_builder() {
	mkdir -p "$1/etc/dm2/trusted.d"
	openssl x509 -inform DER -in "$B/var/lib/dm2/keys/signing_key.x509" \
		-out "$1/etc/dm2/trusted.d/builder.pem"
}
ms() {
	python3 -c 'import time; print(int(time.perf_counter() * 1000))'
}
# from_cache ROOT: how many of the M modules are installed from the cache.
from_cache() {
	"$DM2" --root "$1" status --json -k "$KVER" | python3 -c '
import json, sys
print(sum(1 for m in json.load(sys.stdin)["modules"] if m["from_cache"] and m["state"] == "installed"))'
}
# installed ROOT: how many are installed at all.
installed() {
	"$DM2" --root "$1" status --json -k "$KVER" | python3 -c '
import json, sys
print(sum(1 for m in json.load(sys.stdin)["modules"] if m["state"] == "installed"))'
}
# dm2_machine ROOT: time `dm2 install` of all M modules there, in ms.
dm2_machine() {
	local t0 t1
	t0=$(ms)
	"$DM2" --root "$1" --recipes "$RECIPES" -q install "${names[@]}" -k "$KVER" \
		>"$1.out" 2>&1 || { cat "$1.out" >&2; echo "dm2 install failed in $1" >&2; exit 1; }
	t1=$(ms)
	echo $((t1 - t0))
}
# builds_started ROOT: build logs written there (a build started, so the compiler ran).
builds_started() {
	find "$1/var/lib/dm2/logs" -name build.log 2>/dev/null | wc -l
}

echo "== dm2: builder builds and pushes $M modules"
B=$(machine builder)
builder_ms=$(dm2_machine "$B")
[ "$(installed "$B")" = "$M" ] || { echo "the builder installed $(installed "$B") of $M" >&2; exit 1; }

echo "== dm2: $N clients install from the registry"
client_ms=()
for ((c = 1; c <= N; c++)); do
	C=$(machine client-$c)
	trust_builder "$C"
	client_ms+=("$(dm2_machine "$C")")
	[ "$(from_cache "$C")" = "$M" ] || { echo "client $c: $(from_cache "$C") of $M from the cache" >&2; exit 1; }
	[ "$(builds_started "$C")" = 0 ] || { echo "client $c started a build" >&2; exit 1; }
done

echo "== dkms: the same $((N + 1)) machines, each compiling"
dkms_ms=()
for ((c = 0; c <= N; c++)); do
	D=(--dkmstree "$T/dkms-$c" --sourcetree "$T/src" --installtree "$T/dkms-$c-install")
	mkdir -p "$T/dkms-$c" "$T/dkms-$c-install/$KVER"
	t0=$(ms)
	for n in "${names[@]}"; do
		dkms add -m "$n" -v 1.0 "${D[@]}" >/dev/null
		dkms build -m "$n" -v 1.0 -k "$KVER" "${D[@]}" >/dev/null
		dkms install -m "$n" -v 1.0 -k "$KVER" --no-depmod "${D[@]}" >/dev/null
	done
	t1=$(ms)
	dkms_ms+=($((t1 - t0)))
done

echo "== dm2: $N more clients, the registry stopped after $((N / 2)) of them"
up_ms=() down_ms=()
for ((c = 1; c <= N; c++)); do
	if [ $c = $((N / 2 + 1)) ]; then
		kill "$REG_PID"
		wait "$REG_PID" 2>/dev/null || true
		REG_PID=
	fi
	C=$(machine late-$c)
	trust_builder "$C"
	t=$(dm2_machine "$C")
	if [ -n "$REG_PID" ]; then
		up_ms+=("$t")
		[ "$(from_cache "$C")" = "$M" ] || { echo "late client $c missed the cache" >&2; exit 1; }
	else
		down_ms+=("$t")
		[ "$(from_cache "$C")" = 0 ] && [ "$(installed "$C")" = "$M" ] ||
			{ echo "late client $c: registry down, yet from the cache or not installed" >&2; exit 1; }
	fi
done

median() {
	printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}
echo
printf '%-58s %10s\n' "fleet of 1 builder + $N clients, $M modules, kernel $KVER" "ms"
printf '%-58s %10s\n' "dm2 builder: build, sign, install, push" "$builder_ms"
printf '%-58s %10s  (%s)\n' "dm2 client: pull, sign, install (median; no compiler)" \
	"$(median "${client_ms[@]}")" "${client_ms[*]}"
printf '%-58s %10s  (%s)\n' "dkms machine: build and install (median; each compiles)" \
	"$(median "${dkms_ms[@]}")" "${dkms_ms[*]}"
[ ${#up_ms[@]} = 0 ] ||
	printf '%-58s %10s  (%s)\n' "dm2 client, registry up (median)" "$(median "${up_ms[@]}")" "${up_ms[*]}"
[ ${#down_ms[@]} = 0 ] ||
	printf '%-58s %10s  (%s)\n' "dm2 client, registry down: local build (median)" \
		"$(median "${down_ms[@]}")" "${down_ms[*]}"
