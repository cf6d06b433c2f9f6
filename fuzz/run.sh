#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run libFuzzer targets (fuzz/README.md).
#   fuzz/run.sh TARGET SECONDS    one target, e.g. fuzz/run.sh dkms-vars 600
#   fuzz/run.sh --all SECONDS     each target in turn (what .ci/run does with 20 s)
#   fuzz/run.sh --list            the targets
# Builds build-fuzz first (cmake --preset fuzz) unless DM2_FUZZ_NO_BUILD=1. New inputs are
# kept in build-fuzz/fuzz/work/TARGET (the committed seeds in fuzz/corpus/TARGET are only
# read); a crash leaves its reproducer in build-fuzz/fuzz/artifacts/TARGET/, printed here.
# Replay one: build-fuzz/fuzz/fuzz-TARGET REPRODUCER. Exits 1 if any target crashed.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${DM2_FUZZ_BUILD:-$src/build-fuzz}

usage() {
	sed -n '3,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

targets() {
	local f
	for f in "$src"/fuzz/fuzz-*.c; do
		f=${f##*/fuzz-}
		[ "$f" = util.c ] || echo "${f%.c}"
	done
}

[ $# -ge 1 ] || usage
if [ "$1" = --list ]; then
	targets
	exit 0
fi
[ $# -eq 2 ] || usage
case $2 in '' | *[!0-9]*) usage ;; esac
seconds=$2
if [ "$1" = --all ]; then
	mapfile -t list < <(targets)
else
	targets | grep -x -- "$1" >/dev/null || { echo "fuzz/run.sh: no target '$1' (fuzz/run.sh --list)" >&2; exit 2; }
	list=("$1")
fi

if [ "${DM2_FUZZ_NO_BUILD:-0}" != 1 ]; then
	(cd "$src" && cmake --preset fuzz >/dev/null &&
		cmake --build --preset fuzz -j"$(nproc)" >"$build/fuzz-build.log" 2>&1) || {
		cat "$build/fuzz-build.log" >&2 2>/dev/null || true
		echo "fuzz/run.sh: building the fuzz targets failed" >&2
		exit 1
	}
fi

# run TARGET: one libFuzzer session; prints one summary line, returns 1 on a crash.
run() {
	local t=$1 bin=$build/fuzz/fuzz-$1 work=$build/fuzz/work/$1 art=$build/fuzz/artifacts/$1
	local log=$build/fuzz/$1.log rc=0 opts=() execs rate repro
	[ -x "$bin" ] || { echo "fuzz-$t: not built ($bin)" >&2; return 1; }
	mkdir -p "$work" "$art" "$src/fuzz/corpus/$t"
	[ -f "$src/fuzz/$t.dict" ] && opts+=(-dict="$src/fuzz/$t.dict")
	# fuzz/TARGET.options: more libFuzzer flags, one a line, '#' comments.
	[ -f "$src/fuzz/$t.options" ] && mapfile -t -O ${#opts[@]} opts < <(grep -v '^#' "$src/fuzz/$t.options")
	# -timeout: an input taking 10 s is a bug (a hang), reported like a crash.
	# -rss_limit_mb: the decompressors may legitimately make a few hundred MiB.
	"$bin" "${opts[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 \
		-print_final_stats=1 -artifact_prefix="$art/" "$work" "$src/fuzz/corpus/$t" \
		>"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	if [ "$rc" != 0 ]; then
		repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
		echo "fuzz-$t: CRASH after ${execs:-?} execs (exit $rc); log $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5 | sed 's/^/  /'
		echo "  reproducer: ${repro:-none written}"
		echo "  replay: $bin ${repro:-}"
		return 1
	fi
	echo "fuzz-$t: ${execs:-0} execs in ${seconds} s (${rate:-0}/s), 0 crashes," \
		"corpus $(find "$work" -type f | wc -l) + $(find "$src/fuzz/corpus/$t" -type f | wc -l) seeds"
}

failed=0
for t in "${list[@]}"; do
	run "$t" || failed=1
done
exit $failed
