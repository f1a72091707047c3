#!/bin/sh
# Builds postroom and runs it locally on unprivileged loopback ports with a
# demo domain and user, in the foreground (Ctrl-C stops both daemons).
#
#   SMTP 127.0.0.1:2525  submission :5870 (STARTTLS)  submissions :4650 (TLS)
#   POP3 127.0.0.1:1100 (STLS)  pop3s :9950 (TLS)
#   user demo@example.test, password demo-password
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
demo="$top/demo"

./tests/install-deps.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build

mkdir -p "$demo"
if [ ! -f "$demo/key.pem" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
	    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	    -keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null
	chmod 600 "$demo/key.pem"
fi
cat > "$demo/postroom.conf" <<CONF
# Demo configuration: loopback only, unprivileged ports.
[server]
hostname = localhost
data_dir = $demo/data
user =
log_level = info

[smtp]
listen = 127.0.0.1:2525
submission = 127.0.0.1:5870
submissions = 127.0.0.1:4650
# Loopback demo only: lets clients log in without TLS.
allow_plaintext_auth = true

[pop3]
listen = 127.0.0.1:1100
pop3s = 127.0.0.1:9950
allow_plaintext_auth = true

[tls]
cert = $demo/cert.pem
key = $demo/key.pem

[relay]
enabled = false
CONF

export POSTROOM_CONFIG="$demo/postroom.conf"
cli="$top/build/tools/postroom"
$cli init
$cli domain list | grep -qx example.test || $cli domain add example.test
if ! $cli user list example.test | grep -q '^demo@example.test'; then
	echo demo-password | $cli user add demo@example.test --password-stdin
fi

cat <<MSG

postroom demo: config $demo/postroom.conf, data $demo/data
  user demo@example.test, password demo-password
  send:  swaks --server 127.0.0.1:2525 --to demo@example.test
  fetch: curl -s pop3://127.0.0.1:1100/1 -u demo@example.test:demo-password
  list:  $cli mailbox list demo@example.test   (with POSTROOM_CONFIG set)
Ctrl-C stops both daemons.

MSG

pids=""
stop() {
	trap - INT TERM EXIT
	[ -n "$pids" ] && kill $pids 2>/dev/null
	wait 2>/dev/null
	exit 0
}
trap stop INT TERM EXIT
"$top/build/smtpd/postroom-smtpd" & pids="$pids $!"
"$top/build/pop3d/postroom-pop3d" & pids="$pids $!"
wait
