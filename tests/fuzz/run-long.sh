#!/bin/sh
# Runs every libFuzzer target (or the ones named) for a long time, each
# with its kept corpus and dictionary, and reports per target the
# executions per second and the coverage libFuzzer reached (cov: edges,
# ft: features, corp: corpus size).  CI runs each target for 20 s only
# (meson test --suite fuzz); this is for the hours in between.
#
#   tests/fuzz/run-long.sh [-t SECONDS] [-T SECONDS] [-j JOBS] [-b BUILDDIR]
#                          [TARGET...]
#
#   -t  time per target, default 3600 (one hour)
#   -T  time one input may take before it counts as a hang, default 25;
#       libFuzzer measures it on the wall clock, so on a machine shared
#       with other work (several targets at once, -j) raise it, or a
#       starved process reports a "timeout" that is none (rerun the
#       artifact alone: `fuzz_TARGET FILE`)
#   -j  targets run at once, default 1 (each fuzzer uses one core)
#   -b  the -Dfuzz=true build directory, default build-fuzz (set up with
#       CC=clang when it does not exist yet)
#
# New inputs go to BUILDDIR/tests/fuzz/corpus_<target>/ (the kept corpus
# in the source tree is only read; copy what is worth keeping, after
# `fuzz_<target> -merge=1`), crashes to BUILDDIR/tests/fuzz/artifacts/,
# the full output to BUILDDIR/tests/fuzz/logs/<target>.log.  Exit status
# 0 when no target crashed, 1 otherwise, 2 on usage errors.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=3600
hang=25
jobs=1
build="build-fuzz"
# Every target tests/fuzz/meson.build builds: one fuzz_<target>.c each.
all=$(cd "$top/tests/fuzz" && for f in fuzz_*.c; do
	f=${f#fuzz_}
	printf '%s ' "${f%.c}"
done)
all=${all% }

usage() {
	echo "usage: $0 [-t SECONDS] [-T SECONDS] [-j JOBS] [-b BUILDDIR] [TARGET...]" >&2
	echo "targets: $all" >&2
	exit 2
}

while getopts t:T:j:b:h opt; do
	case $opt in
	t) secs=$OPTARG ;;
	T) hang=$OPTARG ;;
	j) jobs=$OPTARG ;;
	b) build=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
case $secs$hang$jobs in
*[!0-9]*) usage ;;
esac
[ "$jobs" -ge 1 ] || usage
targets=${*:-$all}
for t in $targets; do
	case " $all " in
	*" $t "*) ;;
	*) echo "$0: unknown target '$t'" >&2; usage ;;
	esac
done

cd "$top" || exit 1
case $build in
/*) ;;
*) build=$top/$build ;;
esac
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true -Db_lundef=false \
	    -Dbuildtype=debugoptimized || exit 1
fi
bins=""
for t in $targets; do bins="$bins tests/fuzz/fuzz_$t"; done
# shellcheck disable=SC2086
ninja -C "$build" $bins || exit 1

out=$build/tests/fuzz
mkdir -p "$out/logs" "$out/artifacts"

# The fuzzers this script started, stopped by PID on an interrupt.
# shellcheck disable=SC2317
stop() {
	for t in $targets; do
		[ -f "$out/logs/$t.pid" ] && kill "$(cat "$out/logs/$t.pid")" \
		    2>/dev/null
	done
	exit 130
}
trap stop INT TERM

run_one() {
	t=$1
	src=$top/tests/fuzz
	dict=""
	for d in "$src/$t.dict" "$src/${t%_proto}.dict"; do
		if [ -f "$d" ]; then dict="-dict=$d"; break; fi
	done
	mkdir -p "$out/corpus_$t" "$out/artifacts/$t"
	# shellcheck disable=SC2086
	"$out/fuzz_$t" -max_total_time="$secs" -timeout="$hang" \
	    -rss_limit_mb=2048 -print_final_stats=1 $dict \
	    -artifact_prefix="$out/artifacts/$t/" \
	    "$out/corpus_$t" "$src/corpus_$t" >"$out/logs/$t.log" 2>&1 &
	echo $! >"$out/logs/$t.pid"
	wait $!
	echo $? >"$out/logs/$t.rc"
	rm -f "$out/logs/$t.pid"
}

echo "running: $targets ($secs s each, $jobs at once)"
n=0
for t in $targets; do
	rm -f "$out/logs/$t.rc"
	run_one "$t" &
	n=$((n + 1))
	if [ "$n" -ge "$jobs" ]; then
		wait
		n=0
	fi
done
wait

# libFuzzer's last status line ("#N DONE cov: C ft: F corp: K/S ...")
# and its final stats.
status=0
printf '%-14s %8s %10s %7s %7s %12s  %s\n' target exec/s execs cov ft \
    corpus result
for t in $targets; do
	log=$out/logs/$t.log
	rc=$(cat "$out/logs/$t.rc" 2>/dev/null || echo '?')
	# -a: a log can hold an input's bytes (a crash report); tr keeps the
	# table printable.
	last=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -1 | tr -cd '[:print:]')
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\/[0-9]*[A-Za-z]*\).*/\1/p')
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
	    tail -1)
	if [ "$rc" = 0 ]; then
		result=ok
	else
		result="CRASH (rc $rc): $(find "$out/artifacts/$t" -type f |
		    head -1)"
		status=1
	fi
	printf '%-14s %8s %10s %7s %7s %12s  %s\n' "$t" "${eps:-?}" \
	    "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
exit $status
