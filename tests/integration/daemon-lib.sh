# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the dm2d process-level tests (sourced, not run). Every test gets a fake root
# (mktemp -d) whose lib/modules/KVER/build points at trees made of symlinks into the
# installed Debian headers, so real kbuild builds real modules.

: "${DM2:?DM2 must point at the dm2 binary}"
: "${DM2D:?DM2D must point at the dm2d binary}"
: "${DM2_SOURCE_DIR:?}"

# The installed kernel build tree (Debian's linux-headers-amd64 may bring a newer ABI than the
# one this was written on, so never hard-code the release).
if [ -z "${REAL_KVER:-}" ]; then
	for _b in /lib/modules/*/build; do
		if [ -f "$_b/.config" ]; then
			REAL_KVER=$(basename "$(dirname "$_b")")
			break
		fi
	done
fi
REAL_KVER=${REAL_KVER:-none}
REAL_TREE=$(readlink -f /lib/modules/$REAL_KVER/build)
# Sanitizer builds: child processes inherit these; keep leak reports fatal.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

T=$(mktemp -d /tmp/dm2-daemon-test.XXXXXX)
chmod 755 "$T"
ROOT=$T/root
RECIPES=$T/recipes
# Files a test build waits on: builds see a private /tmp, so they go to /var/tmp, which
# builds see read-only. HOLD is the prefix (HOLD-NAME, ...); cleanup removes them.
HOLD=/var/tmp/${T##*/}.hold
DAEMON_PID=
NOTIFY_PID=
mkdir -p "$ROOT/etc/dm2" "$ROOT/lib/modules" "$RECIPES"
printf '[Daemon]\nSettleSec=1\nJobs=2\n' >"$ROOT/etc/dm2/dm2d.conf"
export DM2_LOCK_TIMEOUT_SEC=120

cleanup() {
	local rc=$?
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	if [ -n "$NOTIFY_PID" ]; then
		kill "$NOTIFY_PID" 2>/dev/null || true
		wait "$NOTIFY_PID" 2>/dev/null || true
	fi
	# Builds orphaned by kill -9/SIGTERM of their dm2 (kbuild runs in its own session) may
	# still be compiling in our tree: stop exactly those, found by their working directory.
	local p cwd
	for p in /proc/[0-9]*; do
		cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
		case "$cwd" in "$T"/*) kill -KILL "${p#/proc/}" 2>/dev/null || true ;; esac
	done
	if [ $rc != 0 ] && [ -f "$T/dm2d.log" ]; then
		echo "---- dm2d log ----" >&2
		tail -n 60 "$T/dm2d.log" >&2
	fi
	rm -rf "$T" "$HOLD"*
	exit $rc
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

dm2() {
	"$DM2" --root "$ROOT" --recipes "$RECIPES" "$@"
}

# A recipe named $1 building module $2 from a copy of the example source; $3 = "broken" makes
# the C file fail to compile.
make_recipe() {
	local name=$1 mod=$2 broken=${3:-}
	local src=$RECIPES/$name-src
	mkdir -p "$src"
	echo "obj-m := $mod.o" >"$src/Kbuild"
	sed "s/dm2_example/$mod/g" "$DM2_SOURCE_DIR/recipes/dm2-example/dm2_example.c" >"$src/$mod.c"
	[ "$broken" = broken ] && echo 'this is not C;' >>"$src/$mod.c"
	cat >"$RECIPES/$name.recipe.tmp" <<-EOF
		[Recipe]
		Name=$name
		Description=test module $mod
		License=GPL-2.0-only

		[Source]
		Version=1.0
		Path=$name-src

		[Build]
		Modules=$mod
	EOF
	mv "$RECIPES/$name.recipe.tmp" "$RECIPES/$name.recipe"
}

# A tree for the real kernel: a directory of symlinks to the top-level entries of the real one.
# $1 = directory; the remaining arguments are the entries to link now (default: all).
link_tree_entries() {
	local dir=$1
	shift
	mkdir -p "$dir"
	for e in "$@"; do
		ln -s "$REAL_TREE/$e" "$dir/$e"
	done
}
TREE_ENTRIES=(Makefile .kernelvariables arch scripts tools include .config Module.symvers)

# A build tree for another release $2 in directory $1: top-level files copied, directories
# linked, include/generated/utsrelease.h rewritten to say the other release.
make_other_tree() {
	local dir=$1 kver=$2
	mkdir -p "$dir/include/generated"
	for e in .config .kernelvariables Makefile Module.symvers; do
		cp "$REAL_TREE/$e" "$dir/$e"
	done
	for e in arch scripts tools; do
		ln -s "$REAL_TREE/$e" "$dir/$e"
	done
	for e in "$REAL_TREE"/include/*; do
		[ "$(basename "$e")" = generated ] || ln -s "$e" "$dir/include/"
	done
	for e in "$REAL_TREE"/include/generated/*; do
		[ "$(basename "$e")" = utsrelease.h ] || ln -s "$e" "$dir/include/generated/"
	done
	echo "#define UTS_RELEASE \"$kver\"" >"$dir/include/generated/utsrelease.h"
}

# Listen on a NOTIFY_SOCKET; every datagram is appended (one line per field) to $T/notify.
start_notify_listener() {
	export NOTIFY_SOCKET=$T/notify.sock
	python3 - "$NOTIFY_SOCKET" "$T/notify" <<-'EOF' &
		import socket, sys
		s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
		s.bind(sys.argv[1])
		while True:
		    data = s.recv(65536)
		    with open(sys.argv[2], "a") as f:
		        f.write(data.decode() + "\n")
	EOF
	NOTIFY_PID=$!
	for _ in $(seq 50); do
		[ -S "$NOTIFY_SOCKET" ] && return 0
		sleep 0.1
	done
	fail "notify listener did not start"
}

# dm2d runs with no more capabilities than units/dm2d.service leaves it
# (CapabilityBoundingSet=) and with no_new_privs (NoNewPrivileges=), so every daemon test
# shows that the unit's hardening still lets it build, sign, install and stop builds.
# DM2D_FULL_CAPS=1 runs it with all of root's.
unit_caps() {
	local caps
	caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$DM2_SOURCE_DIR/units/dm2d.service")
	[ -n "$caps" ] || fail "units/dm2d.service has no CapabilityBoundingSet="
	printf -- '-all'
	for c in $caps; do c=${c#CAP_}; printf ',+%s' "${c,,}"; done
}
DAEMON_WRAP=()
if [ -z "${DM2D_FULL_CAPS:-}" ] && [ "$(id -u)" = 0 ]; then
	command -v setpriv >/dev/null || fail "setpriv (util-linux) is missing"
	DAEMON_WRAP=(setpriv --bounding-set="$(unit_caps)" --no-new-privs)
fi

start_daemon() {
	[ -S "$ROOT/run/dm2/control" ] && fail "a stale control socket is left from an earlier dm2d"
	"${DAEMON_WRAP[@]}" "$DM2D" --root "$ROOT" --recipes "$RECIPES" --foreground "$@" \
		>>"$T/dm2d.log" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 100); do
		[ -S "$ROOT/run/dm2/control" ] && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || fail "dm2d exited at start"
		sleep 0.1
	done
	fail "dm2d did not create its control socket"
}

stop_daemon() {
	kill -TERM "$DAEMON_PID"
	local rc=0
	wait "$DAEMON_PID" || rc=$?
	DAEMON_PID=
	[ $rc = 0 ] || fail "dm2d exited with $rc after SIGTERM"
}

# wait_for SECONDS COMMAND...: poll until the command succeeds.
wait_for() {
	local secs=$1
	shift
	local end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		"$@" && return 0
		sleep 0.3
	done
	return 1
}

job_state() { # recipe kver -> state word from dm2 status --json
	dm2 status "$1" -k "$2" --json 2>/dev/null |
		grep -o '"state":"[a-z]*"' | head -n1 | cut -d'"' -f4
}

state_is() { [ "$(job_state "$1" "$2")" = "$3" ]; }

module_installed() { # kver module
	[ -f "$ROOT/lib/modules/$1/updates/dm2/$2.ko" ]
}
