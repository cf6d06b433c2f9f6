#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The systemd units as configured by units/install.cmake pass `systemd-analyze verify`, keep
# the hardening dm2d needs, and the hook scripts are valid sh.
set -euo pipefail
: "${DM2_BUILD_DIR:?}" "${DM2D:?}"
U=$DM2_BUILD_DIR/units
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The configured ExecStart= points at the install location; verify needs an existing binary.
sed "s#^ExecStart=.*#ExecStart=$DM2D#" "$U/dm2d.service" >"$T/dm2d.service"
cp "$U/dm2d.socket" "$T/"
out=$(cd "$T" && systemd-analyze verify --man=no ./dm2d.service ./dm2d.socket 2>&1) ||
	fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify is not clean: $out"

for want in Type=notify WatchdogSec= NoNewPrivileges=yes ProtectSystem=strict \
	ReadWritePaths= PrivateTmp=yes ProtectHome=yes CPUWeight=idle IOSchedulingClass=idle; do
	grep -q "^$want" "$U/dm2d.service" || fail "dm2d.service lacks $want"
done
grep -q '^ProtectKernelModules' "$U/dm2d.service" && fail "ProtectKernelModules hides /usr/lib/modules"
grep -q '^ListenStream=/run/dm2/control$' "$U/dm2d.socket" || fail "socket path"

# Hardening (issue 16): 7.8 EXPOSED before; each exception is justified in the unit.
score=$(systemd-analyze security --offline=yes "$T/dm2d.service" 2>&1 |
	sed -n 's/.*Overall exposure level for dm2d.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no exposure score from systemd-analyze security"
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || fail "dm2d.service exposure $score > 3.0"
for want in 'CapabilityBoundingSet=CAP_SYS_ADMIN' SystemCallArchitectures=native \
	'RestrictNamespaces=mnt net pid ipc' 'RestrictAddressFamilies=AF_UNIX' \
	ProtectKernelTunables=yes PrivateDevices=yes 'SystemCallFilter=@system-service @mount'; do
	grep -q "^$want" "$U/dm2d.service" || fail "dm2d.service lacks $want"
done
for cap in CAP_SYS_MODULE CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_KILL; do
	grep -q "^CapabilityBoundingSet=.*$cap" "$U/dm2d.service" && fail "dm2d.service keeps $cap"
done
grep -q '^SystemCallFilter=~.*@resources' "$U/dm2d.service" || fail "dm2d.service allows @resources"
# The hook scripts.
for f in dm2-kernel-hook 40-dm2.install debian-postinst debian-header-postinst debian-prerm; do
	[ -x "$U/$f" ] || fail "$f is not executable"
	sh -n "$U/$f" || fail "$f is not valid sh"
	grep -q '@DM2_' "$U/$f" && fail "$f has unsubstituted placeholders"
done
echo ok
