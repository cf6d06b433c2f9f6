# Attacks on dm2's build sandbox, run from the Kbuild of tests/data/modules/hostile:
#   sh attack.sh ATTACK SRC ARG TAG
# Each writes "dm2-probe KEY VALUE" lines to stderr (the build log) for the test to read.
attack=$1 src=$2 arg=$3 tag=$4

# Kbuild may be read more than once per build: start each attack once.
[ -e "$src/.attack-$attack" ] && exit 0
: >"$src/.attack-$attack"

# The outermost make this script runs under: the build ends when it exits.
top_make() {
	pid=$$ top=
	while [ "$pid" -gt 1 ] && [ -r "/proc/$pid/stat" ]; do
		[ "$(cat "/proc/$pid/comm")" = make ] && top=$pid
		pid=$(sed 's/.*) . \([0-9]*\) .*/\1/' "/proc/$pid/stat")
	done
	echo "$top"
}

detach() { setsid "$@" </dev/null >/dev/null 2>&1 & }

case $attack in
survive)
	# Processes that outlive make, each in a way a process group kill misses or a
	# polite SIGTERM does not end; their sleep durations carry the test's tag.
	detach sleep "31.$tag"
	nohup setsid sleep "32.$tag" </dev/null >/dev/null 2>&1 &
	sh -c "(setsid sleep 33.$tag </dev/null >/dev/null 2>&1 &) &"
	detach sh -c "trap '' TERM HUP INT; exec sleep 34.$tag"
	;;
swap)
	# After make has exited, replace the module and Module.symvers by symlinks to a
	# file only root can read (the signing key, /etc/shadow), so that whoever reads
	# the outputs later by path reads that file instead.
	top=$(top_make)
	detach sh -c "while [ -d /proc/$top ]; do sleep 0.01; done;
		ln -sf '$arg' '$src/dm2_hostile.ko'; ln -sf '$arg' '$src/Module.symvers';
		sleep 30.$tag"
	;;
backdoor)
	# Stay behind and append a MODULE_INFO to the sources of whatever build comes next
	# (ARG: the directory holding the work dirs).
	detach sh -c "end=\$((\$(date +%s) + 40)); while [ \$(date +%s) -lt \$end ]; do
		for f in '$arg'/*/dm2_victim.c /tmp/dm2-build*/dm2_victim.c; do
			[ -w \"\$f\" ] && ! grep -q backdoor \"\$f\" &&
				echo 'MODULE_INFO(backdoor, \"dm2-test\");' >>\"\$f\"
		done; sleep 0.1; done"
	;;
links)
	# Outputs that are links when make ends: to a root-only file, and a second name of
	# a source file; and one its owner, the build user, made unreadable.
	ln -sf /etc/shadow "$src/dm2_symlink.ko"
	ln -f "$src/dm2_hostile.c" "$src/dm2_hardlink.ko"
	echo "not for root's eyes" >"$src/dm2_hidden.ko" && chmod 000 "$src/dm2_hidden.ko"
	# An ELF header with no section-name table (e_shstrndx 0), on which libkmod 30
	# asserts, and one whose .modinfo lies past the end of the file.
	python3 -c '
import struct, sys
def elf(shstrndx, modinfo_off):
    names = b"\0.modinfo\0.shstrtab\0"
    info = b"vermagic=x\0"
    shoff = 64 + len(info) + len(names)
    shoff += -shoff % 8
    eh = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH",
        1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, shstrndx)
    body = (info + names).ljust(shoff - 64, b"\0")
    sh = bytes(64)
    sh += struct.pack("<IIQQQQIIQQ", 1, 1, 2, 0, modinfo_off, len(info), 0, 0, 1, 0)
    sh += struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, 64 + len(info), len(names), 0, 0, 1, 0)
    return eh + body + sh
open(sys.argv[1], "wb").write(elf(0, 64))
open(sys.argv[2], "wb").write(elf(2, 1 << 20))
' "$src/dm2_noshstrtab.ko" "$src/dm2_pastend.ko"
	;;
probe)
	# What of the host can the build see and touch? ARG: a host AF_UNIX socket.
	echo "dm2-probe tmp-entries $(ls -A /tmp | grep -vc '^dm2-build$')" >&2
	touch "/tmp/dm2-leak-$tag" 2>/dev/null && echo "dm2-probe tmp-write yes" >&2
	touch "/dev/shm/dm2-leak-$tag" 2>/dev/null && echo "dm2-probe shm-write yes" >&2
	touch "/var/tmp/dm2-leak-$tag" 2>/dev/null && echo "dm2-probe var-tmp-write yes" >&2
	echo "dm2-probe run-entries $(ls -A /run | wc -l)" >&2
	echo "dm2-probe pids $(ls /proc | grep -c '^[0-9]')" >&2
	echo "dm2-probe uid $(id -u)" >&2
	python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1]); print('dm2-probe unix connected')
except OSError as e:
    print('dm2-probe unix failed', e)
" "$arg" >&2
	;;
forkbomb)
	# More processes than the limit: the shell cannot fork at some point.
	i=0
	while [ $i -lt "$arg" ]; do sleep 5 & i=$((i + 1)); done
	wait
	;;
fill)
	# Write ARG MiB into the work dir.
	dd if=/dev/zero of="$src/fill" bs=1M count="$arg" status=none
	;;
spin)
	# Burn CPU until the CPU time limit ends it.
	while :; do :; done
	;;
esac
exit 0
