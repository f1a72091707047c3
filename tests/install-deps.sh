#!/bin/sh
# Installs the Debian 12 packages needed to build postroom and run its
# tests; does nothing when they are all present already.
set -u
pkgs="build-essential meson ninja-build pkg-config gcc clang libclang-rt-14-dev
libuv1-dev libssl-dev libsqlite3-dev libsodium-dev libc-ares-dev libinih-dev
libpsl-dev libidn2-dev libmicrohttpd-dev libarchive-dev libcurl4-openssl-dev zlib1g-dev faketime
sqlite3 openssl ca-certificates python3 python3-dkim python3-authres
python3-dnslib python3-yaml python3-nacl python3-cryptography
msmtp curl fetchmail mpop
swaks libnet-ssleay-perl libio-socket-ssl-perl libio-socket-inet6-perl
libauthen-sasl-perl
dnsmasq-base iproute2 postfix opendkim-tools testssl.sh fail2ban
unbound nsd ldnsutils bind9-dnsutils
debhelper devscripts dh-exec fakeroot lintian ssl-cert adduser
bsd-mailx mailutils prometheus
rspamd clamav-daemon clamav-milter opendkim"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "run as root (or install:$missing)" >&2
	exit 1
fi
# bsd-mailx and mailutils are the callers of postroom-sendmail in
# tests/e2e/test_sendmail.py; postfix in the same run satisfies their
# dependency on an MTA, so no exim4 comes with them.
# Postfix is only a test peer: no configuration, and never started here.
echo "postfix postfix/main_mailer_type select No configuration" |
    debconf-set-selections
# rspamd, clamd, clamav-milter and opendkim are test peers too, started
# privately by tests/lib/milters.py: their system services (and
# freshclam, which would fetch signatures) must not start on install,
# so invoke-rc.d is told no (policy-rc.d, exit 101) for this install.
export DEBIAN_FRONTEND=noninteractive
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	policy=/usr/sbin/policy-rc.d
fi
apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing
rc=$?
[ -n "$policy" ] && rm -f "$policy"
exit $rc
