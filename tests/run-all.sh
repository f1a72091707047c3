#!/bin/sh
# Installs what the tests need (Debian 12), builds postroom twice (plain and
# with ASan+UBSan) plus the libFuzzer targets, runs every test, and ends
# with one line "N passed, N failed".  Exit status 0 only if none failed.
#
#   tests/run-all.sh            everything (as root, or with the packages)
#   tests/run-all.sh --quick    plain build only, no sanitizers/fuzz/package
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
quick=0
[ "${1:-}" = "--quick" ] && quick=1

./tests/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

# As root install-deps.sh has installed every tool a test needs, so a
# skipped test is a test that did not run: it counts as failed.  Without
# root (a developer's machine) a skip is reported as a skip.
strict=""
[ "$(id -u)" -eq 0 ] && strict="--strict"

summary="$top/build-tests/summary.txt"
mkdir -p build-tests
: > "$summary"
failed_stage=0

# run_suite NAME BUILDDIR MESON_SETUP_ARGS... -- MESON_TEST_ARGS...
run_suite() {
	name=$1 dir=$2
	shift 2
	setup=""
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do setup="$setup $1"; shift; done
	[ $# -gt 0 ] && shift
	echo "=== $name: setup and build ($dir)"
	if [ ! -f "$dir/build.ninja" ]; then
		# shellcheck disable=SC2086
		meson setup "$dir" $setup >"build-tests/$name-setup.log" 2>&1 ||
		    { cat "build-tests/$name-setup.log"; echo "$name build 0 1" >>"$summary"; failed_stage=1; return; }
	fi
	if ! ninja -C "$dir" >"build-tests/$name-build.log" 2>&1; then
		tail -40 "build-tests/$name-build.log"
		echo "$name build 0 1" >>"$summary"
		failed_stage=1
		return
	fi
	echo "=== $name: test"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
	/usr/bin/python3 tests/lib/count_results.py $strict "$name" \
	    "$dir/meson-logs/testlog.json" >>"$summary"
}

if [ $quick -eq 1 ]; then
	run_suite plain build-ci --werror -Dbuildtype=debugoptimized -- \
	    --no-suite fuzz
else
	# Every unit, dialog and end-to-end test runs under ASan+UBSan (a
	# sanitizer report fails the test), and again on the optimised
	# build: that one is compiled for the warnings only -O2 and
	# _FORTIFY_SOURCE see, and it is where the memory-bound checks of
	# the e2e tests measure (ASan's quarantine and shadow memory make
	# them no-ops).  The optimised e2e suite takes a few minutes on two
	# cores; the benchmark smoke test runs there too.
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	run_suite asan build-ci-asan --werror -Db_sanitize=address,undefined \
	    -Db_lundef=false -Dbuildtype=debug -- \
	    --suite unit --suite dialog --suite e2e
	run_suite plain build-ci --werror -Dbuildtype=debugoptimized -- \
	    --suite unit --suite dialog --suite e2e --suite bench \
	    --suite tls-scan --suite peers
	CC=clang run_suite fuzz build-ci-fuzz -Dfuzz=true \
	    -Db_lundef=false -- --suite fuzz
	if [ -x tests/pkg/test_deb.sh ]; then
		echo "=== package: build, install, use, purge the .deb"
		tests/pkg/test_deb.sh >build-tests/pkg.log 2>&1
		rc=$?
		grep -E '^(PASS|FAIL|SKIP)' build-tests/pkg.log | tail -100
		case $rc in
		0) echo "package pkg 1 0" >>"$summary" ;;
		77) if [ -n "$strict" ]; then
			echo "package: skipped, counted as failed" >&2
			echo "package pkg 0 1" >>"$summary"
		    else
			echo "package pkg 0 0 1" >>"$summary"
		    fi ;;
		*) tail -60 build-tests/pkg.log
		   echo "package pkg 0 1" >>"$summary" ;;
		esac
	fi
fi

echo
echo "=== summary"
/usr/bin/python3 tests/lib/count_results.py --total "$summary"
