# SPDX-License-Identifier: LGPL-2.1-or-later
# The licence gate judges what was built (issue 13): a DKMS package whose sources carry a
# non-GPL MODULE_LICENSE in a file it never builds installs; one whose built module says
# "Proprietary" (modinfo) is refused with the module and its licence in the status.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"

lib_init
pkg() { # NAME LICENSE
	local d=$ROOT/usr/src/$1-1
	mkdir -p "$d/unused"
	cat >"$d/dkms.conf" <<-C
		PACKAGE_NAME=$1
		PACKAGE_VERSION=1
		BUILT_MODULE_NAME[0]=$1
		AUTOINSTALL=yes
	C
	echo "obj-m := $1.o" >"$d/Kbuild"
	cat >"$d/$1.c" <<-C
		#include <linux/module.h>
		static int __init i(void) { return 0; }
		module_init(i);
		MODULE_LICENSE("$2");
	C
	# Never built: must not count.
	echo 'MODULE_LICENSE("Digium Commercial");' >"$d/unused/other.c"
}
pkg lic_gpl GPL
pkg lic_prop Proprietary

dm2 install lic_gpl -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "install lic_gpl"; }
[ -f "$ROOT/lib/modules/$KVER/updates/dkms/lic_gpl.ko" ] || fail "lic_gpl.ko not installed"
if dm2 install lic_prop -k "$KVER" >"$T/out" 2>&1; then
	fail "lic_prop installed: $(cat "$T/out")"
fi
grep -q "module 'lic_prop.ko' has license 'Proprietary', which is not GPL-compatible" "$T/out" ||
	fail "no licence reason: $(cat "$T/out")"
[ ! -e "$ROOT/lib/modules/$KVER/updates/dkms/lic_prop.ko" ] || fail "lic_prop.ko installed"
dm2 status | grep lic_prop | grep -q "not GPL-compatible" || fail "status: $(dm2 status)"
pass "licences judged from the built modules"
