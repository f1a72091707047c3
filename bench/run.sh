#!/bin/sh
# bench/run.sh - postroom benchmarks side by side with Postfix and Dovecot.
#
#   bench/run.sh [bench.py options]     e.g. --scale 0.2, --only smtp,pop3
#
# Installs the peers from Debian when missing (postfix with smtp-source and
# smtp-sink, dovecot-pop3d, valgrind), builds postroom in build-bench/
# (release) unless POSTROOM_BUILD_DIR names another build, raises the open
# files limit and runs bench/bench.py, which starts private Postfix,
# smtp-sink, Dovecot and postroom instances on 127.0.0.1, runs the
# workloads, stops what it started and writes bench/results/<date>-<host>.md.
# Needs root (private Postfix/Dovecot instances, a system user 'prbench'
# owning their Maildirs).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${POSTROOM_BUILD_DIR:-$root/build-bench}

if [ "$(id -u)" != 0 ]; then
	echo "run.sh: run as root (private Postfix and Dovecot instances)" >&2
	exit 1
fi

# Debian packages: the peers and the profilers.
pkgs="postfix dovecot-core dovecot-pop3d valgrind python3 meson ninja-build
opendkim opendmarc postfix-policyd-spf-python dnsmasq-base python3-dkim
linux-perf"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "run.sh: installing$missing"
	# Postfix only runs as the harness's private instance: no system
	# configuration, and the packages' own services are not started.
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing
fi

# A release build with symbols (same code; callgrind and perf can then
# name file:function).
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$root" -Dbuildtype=release -Dc_args=-g
fi
ninja -C "$build"

# 10,000 idle sessions need as many descriptors in the client and in
# each daemon; the daemons inherit this limit.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 65536 ]; then
	ulimit -Hn 65536 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec /usr/bin/python3 "$here/bench.py" --build-dir "$build" "$@"
