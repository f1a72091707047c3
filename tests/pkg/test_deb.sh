#!/bin/bash
# test_deb.sh - the Debian package, end to end, on this machine.
#
# Builds the .deb with packaging/build-deb.sh (or takes $POSTROOM_DEB),
# checks it with lintian, installs it with apt, runs the installed daemons
# the way the systemd units do (as the postroom user, with the installed
# configuration and only the listen addresses moved to free loopback
# ports), creates a domain and a user with the installed CLI, sends mail
# with swaks and fetches it with curl over POP3, reinstalls, removes and
# finally purges the package and checks what is left.  Before all that,
# the 0.1.0 package is installed (the one kept in tests/fixtures/v0.1.0/,
# $POSTROOM_OLD_DEB, or built from the release's sources when that is
# "build"), its daemons are run and given mail and a DKIM key, and the
# new package is installed over it, a real upgrade, while both daemons
# run: nothing may be lost (docs/BACKUP.md 4).  As the system's
# MTA: the sendmail links and the set-group-ID maildrop, a real
# `mail -s subject root` (bsd-mailx) as an unprivileged user into the
# postmaster's mailbox, and mail tools that pull in no other MTA.  The
# package conflicts with postfix (mail-transport-agent), which the other
# tests use as a peer: a postfix that was installed before is installed
# again at the end.
#
# Needs root (dpkg) and must not run where postroom is already installed:
# it would purge that installation.  Exit status: 0 when every check
# passed, 1 when one failed, 77 (skip) when it cannot run here.
#
# The postroom system user stays after the purge, as Debian leaves system
# accounts in place (see packaging/debian/postroom.postrm); the test checks
# exactly that.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
npass=0
nfail=0

pass() { echo "PASS: $*"; npass=$((npass + 1)); }
fail() { echo "FAIL: $*"; nfail=$((nfail + 1)); }
check() { # check NAME COMMAND...: PASS when the command succeeds
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}
not() { ! "$@"; }
skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root to install packages"
for t in dpkg apt-get dpkg-buildpackage swaks curl setpriv python3 openssl; do
	command -v "$t" >/dev/null || skip "$t is not installed"
done
if [ "${POSTROOM_OLD_DEB:-}" = build ] && { ! command -v git >/dev/null ||
    ! git -C "$top" rev-parse --git-dir >/dev/null 2>&1; }; then
	skip "POSTROOM_OLD_DEB=build needs git and a git checkout"
fi
if dpkg-query -W -f '${Status}' postroom 2>/dev/null | grep -qv 'not-installed'; then
	skip "a postroom package is installed here; the test would purge it"
fi

work=$(mktemp -d /tmp/postroom-pkg.XXXXXX)
chmod 0755 "$work"
installed=0
policy_rc=""
pkg_installed() { # pkg_installed PKG: true when dpkg has PKG installed
	dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}
reinstall() { # reinstall PKG: installs PKG again unless it is there
	pkg_installed "$1" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "$1" >/dev/null 2>&1 ||
		echo "# could not reinstall $1"
}
had_postfix=0
pkg_installed postfix && had_postfix=1
# bsd-mailx depends on an MTA: it goes with postroom below, and comes
# back with postfix if the machine had it (the e2e tests use it).
had_mailx=0
pkg_installed bsd-mailx && had_mailx=1
smtpd_pid=""
pop3d_pid=""
old_smtpd_pid=""
old_pop3d_pid=""

cleanup() {
	local p
	for p in $smtpd_pid $pop3d_pid $old_smtpd_pid $old_pop3d_pid; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	if [ "$installed" -eq 1 ]; then
		dpkg --purge postroom >/dev/null 2>&1
	fi
	if [ "$had_postfix" -eq 1 ] && ! pkg_installed postfix; then
		echo "postfix postfix/main_mailer_type select No configuration" |
			debconf-set-selections
		reinstall postfix
	fi
	[ "$had_mailx" -eq 1 ] && reinstall bsd-mailx
	[ -n "$policy_rc" ] && rm -f "$policy_rc"
	if [ -n "${POSTROOM_KEEP_TMP:-}" ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- build --------------------------------------------------------------

if [ -n "${POSTROOM_DEB:-}" ]; then
	deb=$POSTROOM_DEB
else
	echo "# building the package (log: $work/build.log)"
	if "$top/packaging/build-deb.sh" "$work/out" >"$work/build.log" 2>&1; then
		pass "dpkg-buildpackage -us -uc -b"
	else
		tail -n 40 "$work/build.log"
		fail "dpkg-buildpackage -us -uc -b"
		echo "$npass passed, $nfail failed"
		exit 1
	fi
	deb=$(ls "$work"/out/postroom_*.deb)
fi
deb=$(readlink -f "$deb")

# The 0.1.0 package: $POSTROOM_OLD_DEB, else the one kept in
# tests/fixtures/v0.1.0/ (how it was made: tests/fixtures/make-v0.1.0.sh),
# so no git is needed; POSTROOM_OLD_DEB=build builds it from the release's
# sources, the tag when the repository has it, else the commit it was
# made from.
old_deb=${POSTROOM_OLD_DEB:-$top/tests/fixtures/v0.1.0/postroom_0.1.0-1_amd64.deb}
if [ "$old_deb" != build ]; then
	[ -f "$old_deb" ] || {
		fail "the 0.1.0 package $old_deb exists"
		echo "$npass passed, $nfail failed"
		exit 1
	}
	old_deb=$(readlink -f "$old_deb")
else
	old_ref=501a5ff1cf0767c39a69494102f75147971debfd
	git -C "$top" rev-parse -q --verify 'v0.1.0^{commit}' >/dev/null 2>&1 &&
		old_ref=v0.1.0
	echo "# building the 0.1.0 package from $old_ref (log: $work/old-build.log)"
	mkdir -p "$work/old/src"
	if git -C "$top" archive "$old_ref" | tar -x -C "$work/old/src" &&
	    "$work/old/src/packaging/build-deb.sh" "$work/old/out" \
	    >"$work/old-build.log" 2>&1; then
		pass "the 0.1.0 package builds from $old_ref"
	else
		tail -n 40 "$work/old-build.log"
		fail "the 0.1.0 package builds from $old_ref"
		echo "$npass passed, $nfail failed"
		exit 1
	fi
	old_deb=$(ls "$work"/old/out/postroom_0.1.0-1_*.deb)
fi
check "the old package is postroom 0.1.0-1" \
	test "$(dpkg-deb -f "$old_deb" Package Version)" = \
	"$(printf 'Package: postroom\nVersion: 0.1.0-1')"

quiet_apt() {
	DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$work/apt.log" 2>&1
}

# --- the .deb -------------------------------------------------------------

contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||')
has() { grep -qx "$1" <<<"$contents"; }
for f in /usr/sbin/postroom-smtpd /usr/sbin/postroom-pop3d /usr/bin/postroom \
    /etc/postroom/postroom.conf \
    /lib/systemd/system/postroom-smtpd.service \
    /lib/systemd/system/postroom-pop3d.service \
    /usr/share/man/man8/postroom.8.gz /usr/share/man/man8/postroom-smtpd.8.gz \
    /usr/share/man/man8/postroom-pop3d.8.gz \
    /usr/share/man/man5/postroom.conf.5.gz \
    /usr/sbin/postroom-sendmail /usr/share/man/man8/postroom-sendmail.8.gz \
    /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases \
    /usr/share/man/man8/sendmail.8.gz \
    /usr/share/doc/postroom/copyright \
    /usr/share/doc/postroom/examples/fail2ban/filter.d/postroom.conf \
    /usr/share/doc/postroom/examples/fail2ban/jail.d/postroom.conf; do
	check "package contains $f" has "$f"
done
check "postroom.conf is a conffile" \
	grep -qx /etc/postroom/postroom.conf \
	<(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)
depends=$(dpkg-deb -f "$deb" Depends)
check "Depends has adduser and ssl-cert" \
	grep -Eq 'adduser.*ssl-cert' <<<"$depends"
# Debian Policy 11.6: one MTA at a time.
for fld in Provides Conflicts Replaces; do
	check "$fld: mail-transport-agent" \
		grep -qw mail-transport-agent <<<"$(dpkg-deb -f "$deb" "$fld")"
done

if command -v lintian >/dev/null; then
	lintian --info --display-info "$deb" >"$work/lintian.log" 2>&1
	sed 's/^/# /' "$work/lintian.log"
	check "lintian reports no errors" not grep -q '^E:' "$work/lintian.log"
fi

# --- install --------------------------------------------------------------

# Where systemd runs, keep the postinst from starting the units on the
# real ports; the test runs the daemons itself.
if [ -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
	policy_rc=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
	chmod 0755 "$policy_rc"
fi

# test_conf OUT: the installed configuration with only the listen
# addresses moved to free loopback ports (p_smtp ... p_pop3s).
test_conf() {
	read -r p_smtp p_sub p_subs p_pop3 p_pop3s < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
	awk -v a_smtp="127.0.0.1:$p_smtp" -v a_sub="127.0.0.1:$p_sub" \
	    -v a_subs="127.0.0.1:$p_subs" -v a_pop3="127.0.0.1:$p_pop3" \
	    -v a_pop3s="127.0.0.1:$p_pop3s" '
		/^\[/ { sec = $0 }
		sec == "[smtp]" && /^listen *=/ { print "listen = " a_smtp; next }
		sec == "[smtp]" && /^submission *=/ { print "submission = " a_sub; next }
		sec == "[smtp]" && /^submissions *=/ { print "submissions = " a_subs; next }
		sec == "[pop3]" && /^listen *=/ { print "listen = " a_pop3; next }
		sec == "[pop3]" && /^pop3s *=/ { print "pop3s = " a_pop3s; next }
		{ print }' /etc/postroom/postroom.conf >"$1"
	chmod 0644 "$1"
}

wait_port() { # wait_port PID PORT...: all ports accept, PID still alive
	local pid=$1 port i
	shift
	for port in "$@"; do
		for i in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || return 1
			(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
			[ "$i" -eq 100 ] && return 1
			sleep 0.1
		done
	done
}

# The units: User=postroom, NoNewPrivileges, no capability needed on
# unprivileged ports, foreground, log on stderr.
run_as_unit() {
	exec setpriv --reuid=postroom --regid=postroom --init-groups \
		--no-new-privs --inh-caps=-all --bounding-set=-all "$@"
}

stop() { # stop PID: SIGTERM, then the exit status within 20 s
	local i
	kill -TERM "$1" || return 1
	for i in $(seq 200); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	wait "$1"
}

# --- 0.1.0 first, with mail, then the upgrade -----------------------------

installed=1
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "$old_deb" >"$work/install-old.log" 2>&1; then
	pass "apt-get install the 0.1.0 package"
else
	sed 's/^/# /' "$work/install-old.log"
	fail "apt-get install the 0.1.0 package"
	echo "$npass passed, $nfail failed"
	exit 1
fi
old_conf=$work/postroom-old.conf
test_conf "$old_conf"
postroom -c "$old_conf" domain add old.example.test
postroom -c "$old_conf" user add carol@old.example.test --password-stdin \
	<<<"carol's old password"
postroom -c "$old_conf" alias add team@old.example.test carol@old.example.test
postroom -c "$old_conf" dkim keygen old.example.test >/dev/null
old_key=$(find /var/lib/postroom/dkim/old.example.test -name '*.key' |
	head -n 1)
old_key_sum=$(sha256sum <"$old_key")
(run_as_unit /usr/sbin/postroom-smtpd -c "$old_conf") 2>"$work/old-smtpd.log" &
old_smtpd_pid=$!
(run_as_unit /usr/sbin/postroom-pop3d -c "$old_conf") 2>"$work/old-pop3d.log" &
old_pop3d_pid=$!
old_listen() {
	wait_port "$old_smtpd_pid" "$p_smtp" &&
		wait_port "$old_pop3d_pid" "$p_pop3"
}
check "0.1.0 daemons listen" old_listen
old_sent=0
for i in 1 2 3; do
	swaks --server 127.0.0.1 --port "$p_smtp" --timeout 20 \
	    --from sender@example.net --to team@old.example.test \
	    --header "Subject: before the upgrade $i" \
	    --body "kept across the upgrade $i" >>"$work/old-swaks.log" 2>&1 &&
		old_sent=$((old_sent + 1))
done
check "0.1.0 smtpd took 3 messages" test "$old_sent" -eq 3

# The new package over the old one, the old daemons running (as on a
# host where the postinst cannot restart them: policy-rc.d above).
new_version=$(dpkg-deb -f "$deb" Version)
check "the new package ($new_version) is newer than 0.1.0-1" \
	dpkg --compare-versions "$new_version" gt 0.1.0-1
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "$deb" >"$work/install.log" 2>&1; then
	pass "apt-get install ./$(basename "$deb") over 0.1.0"
else
	sed 's/^/# /' "$work/install.log"
	fail "apt-get install ./$(basename "$deb") over 0.1.0"
	echo "$npass passed, $nfail failed"
	exit 1
fi
check "apt upgraded 0.1.0-1 to $new_version" \
	grep -q "Unpacking postroom ($new_version) over (0.1.0-1)" \
	"$work/install.log"
check "dpkg has $new_version installed" \
	test "$(dpkg-query -W -f '${Version}' postroom)" = "$new_version"
check "the new CLI says it is ${new_version%-*}" \
	test "$(/usr/bin/postroom -V)" = "postroom ${new_version%-*}"
check "the new CLI is installed (it has verify)" \
	grep -q 'postroom verify' <<<"$(/usr/bin/postroom --help)"
check "the 0.1.0 daemons ran through the upgrade" \
	kill -0 "$old_smtpd_pid" "$old_pop3d_pid"
check "the new CLI reads the store while they run" \
	test "$(postroom -c "$old_conf" mailbox list carol@old.example.test |
	grep -c .)" -eq 3
check "0.1.0 smtpd exits 0 on SIGTERM" stop "$old_smtpd_pid"
old_smtpd_pid=""
check "0.1.0 pop3d exits 0 on SIGTERM" stop "$old_pop3d_pid"
old_pop3d_pid=""
check "after the upgrade: postroom verify finds nothing wrong" \
	setpriv --reuid=postroom --regid=postroom --init-groups \
	/usr/bin/postroom -c "$old_conf" verify
check "after the upgrade: the DKIM key is the same" \
	test "$(sha256sum <"$old_key")" = "$old_key_sum"
check "after the upgrade: the alias is there" \
	grep -q team@old.example.test <<<"$(postroom -c "$old_conf" alias list)"
(run_as_unit /usr/sbin/postroom-pop3d -c "$old_conf") 2>"$work/new-pop3d.log" &
pop3d_pid=$!
wait_port "$pop3d_pid" "$p_pop3"
old_list=$(curl -s --max-time 20 -k --ssl-reqd \
	-u "carol@old.example.test:carol's old password" \
	"pop3://127.0.0.1:$p_pop3/")
check "after the upgrade: curl fetches the 3 messages with the old password" \
	test "$(grep -c . <<<"$old_list")" -eq 3
old_msg=$(curl -s --max-time 20 -k --ssl-reqd \
	-u "carol@old.example.test:carol's old password" \
	"pop3://127.0.0.1:$p_pop3/3")
check "after the upgrade: the message is whole" \
	grep -q "kept across the upgrade 3" <<<"$old_msg"
stop "$pop3d_pid"
pop3d_pid=""

check "binaries installed" test -x /usr/sbin/postroom-smtpd -a \
	-x /usr/sbin/postroom-pop3d -a -x /usr/bin/postroom
check "postroom -V runs" /usr/bin/postroom -V
pw=$(getent passwd postroom)
check "system user postroom exists" test -n "$pw"
uid=$(cut -d: -f3 <<<"$pw")
check "postroom is a system uid ($uid)" test "${uid:-1000}" -lt 1000
check "postroom's home is /var/lib/postroom" \
	test "$(cut -d: -f6 <<<"$pw")" = /var/lib/postroom
check "postroom has no login shell" \
	grep -Eq '/(nologin|false)$' <<<"$(cut -d: -f7 <<<"$pw")"
check "postroom is in group ssl-cert" \
	grep -qw ssl-cert <<<"$(id -nG postroom)"
check "/var/lib/postroom is 750 postroom:postroom" \
	test "$(stat -c '%a %U:%G' /var/lib/postroom)" = "750 postroom:postroom"
check "postinst created mail.db owned by postroom" \
	test "$(stat -c %U /var/lib/postroom/mail.db 2>/dev/null)" = postroom
check "snakeoil certificate present" test -r /etc/ssl/certs/ssl-cert-snakeoil.pem
check "packaged config points at the snakeoil pair" \
	grep -q '^cert = /etc/ssl/certs/ssl-cert-snakeoil.pem' /etc/postroom/postroom.conf
check "packaged config keeps plaintext auth off" \
	not grep -Eq '^allow_plaintext_auth *= *(true|yes|on|1)' \
	/etc/postroom/postroom.conf
check "postroom check passes as the postroom user" \
	setpriv --reuid=postroom --regid=postroom --init-groups \
	/usr/bin/postroom check
check "postroom init again is idempotent" \
	setpriv --reuid=postroom --regid=postroom --init-groups \
	/usr/bin/postroom init

# --- the system's MTA ----------------------------------------------------

check "postroom-sendmail is 2755 root:postroom-drop" \
	test "$(stat -c '%a %U:%G' /usr/sbin/postroom-sendmail)" = \
	"2755 root:postroom-drop"
check "the maildrop is 1730 postroom:postroom-drop" \
	test "$(stat -c '%a %U:%G' /var/spool/postroom/maildrop)" = \
	"1730 postroom:postroom-drop"
for l in /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq \
    /usr/bin/newaliases; do
	check "$l is postroom-sendmail" \
		test "$(readlink -f "$l")" = /usr/sbin/postroom-sendmail
done
mta_re='^Inst (exim4|postfix|sendmail-bin|nullmailer|dma|opensmtpd|msmtp-mta|courier-mta|ssmtp|esmtp-run)'
apt-get install -s bsd-mailx logwatch >"$work/apt-sim.log" 2>&1
sed 's/^/# /' "$work/apt-sim.log" | grep '^# Inst' || true
check "apt-get install -s bsd-mailx logwatch plans no other MTA" \
	not grep -Eq "$mta_re|^Remv postroom" "$work/apt-sim.log"
check "apt-get install -s bsd-mailx logwatch can be done" \
	not grep -q '^E:' "$work/apt-sim.log"
check "apt-get install bsd-mailx" quiet_apt install -y -q \
	--no-install-recommends bsd-mailx
check "postroom is still installed after bsd-mailx" pkg_installed postroom

if command -v systemd-analyze >/dev/null; then
	for u in postroom-smtpd postroom-pop3d; do
		unit=/lib/systemd/system/$u.service
		check "systemd-analyze verify $u.service" \
			systemd-analyze verify "$unit"
		score=$(cd /lib/systemd/system &&
		    systemd-analyze security --offline=yes "$u.service" 2>/dev/null |
		    sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
		echo "# $u.service exposure: ${score:-unknown}"
		check "$u.service exposure below 2.0" \
			awk -v s="${score:-99}" 'BEGIN { exit !(s < 2.0) }'
	done
fi

# --- run the installed daemons like the units do ------------------------

conf=$work/postroom.conf
test_conf "$conf"
check "test config differs only in listen addresses" \
	test "$(diff /etc/postroom/postroom.conf "$conf" | grep -c '^>')" -eq 5
# Local mail to root and the other system accounts goes here.
sed -i '/^\[server\]/a postmaster = alice@example.test' "$conf"

# As root, as an admin would: the daemons must still own their store.
check "postroom domain add (as root)" \
	postroom -c "$conf" domain add example.test
check "postroom user add (as root)" \
	postroom -c "$conf" user add alice@example.test --password-stdin \
	<<<"correct horse battery"

(run_as_unit /usr/sbin/postroom-smtpd -c "$conf") 2>"$work/smtpd.log" &
smtpd_pid=$!
(run_as_unit /usr/sbin/postroom-pop3d -c "$conf") 2>"$work/pop3d.log" &
pop3d_pid=$!

check "postroom-smtpd listens on 25/587/465 stand-ins" \
	wait_port "$smtpd_pid" "$p_smtp" "$p_sub" "$p_subs"
check "postroom-pop3d listens on 110/995 stand-ins" \
	wait_port "$pop3d_pid" "$p_pop3" "$p_pop3s"
check "postroom-smtpd runs as postroom" \
	test "$(stat -c %U "/proc/$smtpd_pid")" = postroom
check "postroom-pop3d runs as postroom" \
	test "$(stat -c %U "/proc/$pop3d_pid")" = postroom

swaks_out=$work/swaks.log
sw() { # the last dialog is also in $work/swaks.last
	swaks --server 127.0.0.1 --timeout 20 "$@" >"$work/swaks.last" 2>&1
	local r=$?
	cat "$work/swaks.last" >>"$swaks_out"
	return $r
}
check "swaks: MX delivery on port 25 with STARTTLS" \
	sw --port "$p_smtp" --tls --from sender@example.net \
	--to alice@example.test --header "Subject: pkg test one" \
	--body "first message through the packaged smtpd"
check "swaks: submission on 587 with STARTTLS and AUTH PLAIN" \
	sw --port "$p_sub" --tls --auth PLAIN \
	--auth-user alice@example.test --auth-password "correct horse battery" \
	--from alice@example.test --to alice@example.test \
	--header "Subject: pkg test two" --body "second message, submitted"
check "swaks: submissions on 465 (implicit TLS) with AUTH LOGIN" \
	sw --port "$p_subs" --tls-on-connect --auth LOGIN \
	--auth-user alice@example.test --auth-password "correct horse battery" \
	--from alice@example.test --to alice@example.test \
	--header "Subject: pkg test three" --body "third message, implicit TLS"
sw --port "$p_sub" --auth PLAIN --auth-user alice@example.test \
	--auth-password "correct horse battery" --from alice@example.test \
	--to alice@example.test
check "no AUTH advertised without TLS by default" \
	grep -q 'Host did not advertise authentication' "$work/swaks.last"
sw --port "$p_smtp" --tls --from sender@example.net --to someone@example.net
check "no relaying for unauthenticated clients (554 5.7.1)" \
	grep -q '<~\* *554 5\.7\.1' "$work/swaks.last"

# README step 3: DKIM key and the records to publish.
check "postroom dkim keygen (as root)" \
	postroom -c "$conf" dkim keygen example.test >"$work/dkim.out"
check "the DKIM key belongs to the daemons' group" \
	test -n "$(find /var/lib/postroom/dkim -type f -group postroom)"
check "everything the root CLI made belongs to postroom" \
	test -z "$(find /var/lib/postroom ! -user postroom)"
postroom -c "$conf" dns example.test >"$work/dns.out"
has_records() {
	local re
	for re in 'IN[[:space:]]+MX' 'v=spf1' 'v=DKIM1' 'v=DMARC1'; do
		grep -Eq "$re" "$work/dns.out" || return 1
	done
}
check "postroom dns prints MX, SPF, DKIM and DMARC records" has_records

# README step 4: a real certificate, readable by the postroom group,
# put in force by a reload (ExecReload sends SIGHUP).
install -d -m 0750 -g postroom "$work/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.test \
	-keyout "$work/tls/privkey.pem" -out "$work/tls/fullchain.pem" \
	>/dev/null 2>&1
chgrp postroom "$work/tls/privkey.pem"
chmod 0640 "$work/tls/privkey.pem"
sed -i -e "s|^cert = .*|cert = $work/tls/fullchain.pem|" \
	-e "s|^key = .*|key = $work/tls/privkey.pem|" "$conf"
served_cn() {
	openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null |
		openssl x509 -noout -subject 2>/dev/null
}
kill -HUP "$smtpd_pid" "$pop3d_pid"
sleep 0.5
check "SIGHUP puts the new certificate in force on 465" \
	grep -q mail.example.test <<<"$(served_cn "$p_subs")"
check "SIGHUP puts the new certificate in force on 995" \
	grep -q mail.example.test <<<"$(served_cn "$p_pop3s")"
check "postroom-smtpd still serves after SIGHUP (ExecReload)" \
	sw --port "$p_smtp" --tls --from sender@example.net \
	--to alice@example.test --header "Subject: after reload" \
	--body "after reload"

mbox=$(postroom -c "$conf" mailbox list alice@example.test)
check "postroom mailbox list shows 4 messages" \
	test "$(grep -c . <<<"$mbox")" -eq 4

cu() { curl -s --max-time 20 -k -u "alice@example.test:correct horse battery" "$@"; }
list=$(cu --ssl-reqd "pop3://127.0.0.1:$p_pop3/")
check "curl: POP3 with STLS lists 4 messages" \
	test "$(grep -c . <<<"$list")" -eq 4
msg=$(cu "pop3s://127.0.0.1:$p_pop3s/2")
check "curl: POP3S retrieves the submitted message" \
	grep -q "second message, submitted" <<<"$msg"
cu "pop3://127.0.0.1:$p_pop3/" -o /dev/null
check "curl: login without TLS refused (curl exit 67)" test $? -eq 67

# bsd-mailx through /usr/sbin/sendmail, as a user without privileges:
# kept in the maildrop by the set-group-ID program, delivered by smtpd
# to the postmaster, since root has no alias.
check "echo body | mail -s subject root (bsd-mailx, as nobody)" \
	env HOME=/tmp setpriv --reuid=nobody --regid=nogroup --clear-groups \
	sh -c 'echo "body from the package test" | mail -s "pkg sendmail" root'
five() {
	local i
	for i in $(seq 100); do
		[ "$(postroom -c "$conf" mailbox list alice@example.test |
		    grep -c .)" -eq 5 ] && return 0
		sleep 0.1
	done
	return 1
}
check "the mail to root reaches the postmaster's mailbox" five
msg=$(cu --ssl-reqd "pop3://127.0.0.1:$p_pop3/5")
check "POP3: it is the bsd-mailx message" grep -q "pkg sendmail" <<<"$msg"
check "its Received field names the uid" \
	grep -q "from userid $(id -u nobody) (nobody)" <<<"$msg"
check "mailq runs as root" sh -c "/usr/bin/mailq >/dev/null"

check "postroom-smtpd exits 0 on SIGTERM" stop "$smtpd_pid"
smtpd_pid=""
check "postroom-pop3d exits 0 on SIGTERM" stop "$pop3d_pid"
pop3d_pid=""
check "daemons logged to stderr" test -s "$work/smtpd.log" -a -s "$work/pop3d.log"
if [ "$nfail" -gt 0 ]; then
	echo "# smtpd log:"; tail -n 30 "$work/smtpd.log" | sed 's/^/#   /'
	echo "# pop3d log:"; tail -n 30 "$work/pop3d.log" | sed 's/^/#   /'
	echo "# swaks:"; tail -n 60 "$swaks_out" | sed 's/^/#   /'
fi

# --- reinstall (the upgrade path), remove, purge -------------------------

quiet() { "$@" >>"$work/install.log" 2>&1; }
check "dpkg -i again (upgrade path)" quiet dpkg -i "$deb"
check "upgrade keeps the mail store" \
	test "$(postroom -c "$conf" mailbox list alice@example.test | grep -c .)" -eq 5

# bsd-mailx (installed above) needs an MTA: dpkg refuses to remove the
# only one under it, as it should.
check "dpkg --remove refuses while bsd-mailx needs the MTA" \
	not quiet dpkg --remove postroom
check "dpkg --remove bsd-mailx postroom" quiet dpkg --remove bsd-mailx postroom
check "remove deletes the binaries" \
	test ! -e /usr/sbin/postroom-smtpd -a ! -e /usr/bin/postroom
check "remove keeps the config and the mail store" \
	test -f /etc/postroom/postroom.conf -a -f /var/lib/postroom/mail.db

check "dpkg --purge" quiet dpkg --purge postroom
installed=0
for f in /usr/sbin/postroom-smtpd /usr/sbin/postroom-pop3d /usr/bin/postroom \
    /etc/postroom /var/lib/postroom /var/spool/postroom \
    /usr/sbin/sendmail /usr/bin/mailq \
    /lib/systemd/system/postroom-smtpd.service \
    /lib/systemd/system/postroom-pop3d.service; do
	check "purge removed $f" test ! -e "$f"
done
check "purge removes the statoverride of postroom-sendmail" \
	not dpkg-statoverride --list /usr/sbin/postroom-sendmail
check "purge leaves the postroom system user (Debian keeps system accounts)" \
	getent passwd postroom

echo "$npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
