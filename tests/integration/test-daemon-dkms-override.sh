#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dm2d and the admin's /etc/dkms/<module>.conf: writing one is a change of that DKMS
# package's recipe, so the package is built again for every kernel with the override.
set -euo pipefail
source "$(dirname "$0")/daemon-lib.sh"

KVER=$REAL_KVER
SRC=$(ls -d /usr/src/acpi-call-*/ 2>/dev/null | head -n 1)
SRC=${SRC%/}
[ -n "$SRC" ] && [ -f "$SRC/dkms.conf" ] || fail "no /usr/src/acpi-call-*: apt-get install acpi-call-dkms"
mkdir -p "$ROOT/usr/src" "$ROOT/etc/dkms" "$ROOT/lib/modules/$KVER"
ln -s "$SRC" "$ROOT/usr/src/$(basename "$SRC")"
ln -s "$REAL_TREE" "$ROOT/lib/modules/$KVER/build"

builds() { grep -c "Building 'acpi-call' for kernel '$KVER'" "$T/dm2d.log" || true; }
start_daemon
wait_for 120 state_is acpi-call "$KVER" installed || fail "acpi-call not installed"
[ "$(builds)" = 1 ] || fail "acpi-call built $(builds) times, expected once"

printf 'STRIP[0]="no"\n' >"$ROOT/etc/dkms/acpi-call.conf.tmp"
mv "$ROOT/etc/dkms/acpi-call.conf.tmp" "$ROOT/etc/dkms/acpi-call.conf"
wait_for 30 grep -q 'event: recipe-changed, recipe=acpi-call' "$T/dm2d.log" ||
	fail "the override was not noticed"
wait_for 120 test "$(builds)" = 2 || fail "acpi-call not built again with the override"
wait_for 120 state_is acpi-call "$KVER" installed || fail "acpi-call not installed again"
json=$(dm2 status acpi-call -k "$KVER" --json)
grep -q '"from_cache":false' <<<"$json" || fail "the rebuild came from the cache: $json"
stop_daemon
echo ok
