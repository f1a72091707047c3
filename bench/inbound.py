#!/usr/bin/python3
"""The cost of the inbound checks: SMTP 10 KiB x 50 sessions into two
postroom instances side by side, one with every check of [inbound] on
(SPF, DKIM, DMARC, a DNS block list, iprev) and one with them off, and
into Postfix with the OpenDKIM and OpenDMARC milters and
postfix-policyd-spf-python (Debian's packages) and a DNS block list, on
the same messages, each DKIM-signed (python3-dkim, RSA 2048).  Runs
alternate between the three, so that other load on the machine falls on
all alike.

Every server asks the same DNS server: dnsmasq on 127.0.0.1 port 53,
authoritative for .example and 127.in-addr.arpa with TTL 300 and an
SOA in negative answers, as a real zone answers.  (.example, RFC 2606,
not .test: OpenDKIM's libunbound answers names under test. itself, RFC
6761 6.2.)  postroom is told it with
[dns] resolver; OpenDKIM with Nameservers; Postfix, OpenDMARC and
policyd-spf read resolv.conf(5), so they run in a mount namespace of
their own (unshare -m) where a resolv.conf of the benchmark's is bound
over /etc/resolv.conf: the machine's stays as it is.

Targets: with the checks on, at least 80% of the throughput with them
off, and at least 3x Postfix's with its checks.  postroom's rate is
messages / the clients' time (its 250 comes after the commit);
Postfix's, as in bench.py, messages / the time until the last is in the
Maildir.  Needs root (Postfix, the namespace, port 53).

    bench/inbound.py [--build-dir DIR] [--count N] [--runs N] [--out FILE]
                     [--no-postfix] [--perf DIR]
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
import smtpclient  # noqa: E402

DOMAIN = "inbound.example"
SENDER = "bench@bench.example"
RCPT = "inbound@" + DOMAIN
SESSIONS = 50
SIZE = 10 * 1024
TTL = 300
MX = "mx." + DOMAIN


def signed_messages(n, priv):
    import dkim
    line = b"x" * 76 + b"\r\n"
    body = line * (SIZE // len(line))
    out = []
    for i in range(n):
        m = ("From: <%s>\r\nTo: <%s>\r\nSubject: bench %d\r\n"
             "Message-ID: <%d.%f@bench.example>\r\n\r\n" % (
                 SENDER, RCPT, i, i, time.time())).encode() + body
        out.append(dkim.sign(m, b"s1", b"bench.example", priv,
                             include_headers=[b"from", b"to", b"subject"],
                             linesep=b"\r\n") + m)
    return out


def send_all(port, msgs):
    """msgs over SESSIONS parallel clients, a new connection per message
    (as smtp-source does).  Returns msg/s."""
    t0 = time.perf_counter()
    smtpclient.source_messages("127.0.0.1", port, SESSIONS, msgs, SENDER,
                               RCPT, helo="client.bench.example")
    return len(msgs) / (time.perf_counter() - t0)


def dns_address():
    """A loopback address whose port 53 is free (UDP and TCP): the
    resolv.conf of the Postfix side can name no other port.  127.0.0.1
    first: dnsmasq answers authoritatively (with the SOA of negative
    answers) only on the addresses of an interface, and lo has only
    that one."""
    for i in range(0, 250):
        host = "127.0.0.1" if i == 0 else "127.53.0.%d" % i
        if i == 1:
            print("127.0.0.1:53 is taken: negative answers come without "
                  "SOA", file=sys.stderr)
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((host, 53))
        except OSError:
            continue
        return host
    raise SystemExit("no loopback address with a free port 53")


def dns_queries(dns):
    """Queries dnsmasq has logged so far (--log-queries: "auth[TYPE]
    name from ..." in authoritative mode)."""
    log = dns.read_log()
    return log.count("auth[") + log.count("query[")


def wait_listen(port, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("%s exited (%s)" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("%s does not listen on %d" % (what, port))


OPENDKIM_CONF = """\
# Verifying only; OpenDKIM's defaults otherwise (opendkim.conf(5)).
Mode v
Socket inet:{port}@127.0.0.1
PidFile {root}/opendkim.pid
Syslog no
AuthservID {mx}
InternalHosts {root}/nobody
Nameservers {dns}
"""


OPENDMARC_CONF = """\
# p=reject enforced (RejectFailures), like [inbound] dmarc_policy =
# enforce; SPF from policyd-spf's Received-SPF, DKIM from OpenDKIM's
# Authentication-Results (opendmarc.conf(5)).
Socket inet:{port}@127.0.0.1
PidFile {root}/opendmarc.pid
Syslog false
AuthservID {mx}
TrustedAuthservIDs {mx}
IgnoreHosts {root}/nobody
RejectFailures true
SPFIgnoreResults false
SPFSelfValidate false
FailureReports false
PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat
"""

# Debian's /etc/postfix-policyd-spf-python/policyd-spf.conf but for
# skip_addresses (loopback by default: the benchmark's client).
POLICYD_SPF_CONF = """\
debugLevel = 0
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
skip_addresses = 192.0.2.255/32
"""


class PostfixChecks:
    """A private Postfix (tests/lib/postfix.py, virtual(8) delivery)
    with policyd-spf as a policy service, OpenDKIM and OpenDMARC as
    milters and reject_rbl_client, all in one mount namespace whose
    /etc/resolv.conf names the benchmark's DNS server."""

    def __init__(self, tmp, dns_host):
        self.procs = []
        self.pf = None
        try:
            self._start(tmp, dns_host)
        except BaseException:
            self.close()
            raise

    def _start(self, tmp, dns_host):
        import peers
        import postfix
        self.root = os.path.join(tmp, "pf-checks")
        # Postfix's unprivileged processes go through tmp.
        os.chmod(tmp, 0o755)
        os.makedirs(self.root)
        os.chmod(self.root, 0o755)
        self.vmail = os.path.join(self.root, "vmail")
        os.makedirs(self.vmail)
        uid, gid = peers.ensure_bench_user()
        os.chown(self.vmail, uid, gid)
        resolv = os.path.join(self.root, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver %s\n" % dns_host)
        os.chmod(resolv, 0o644)
        self.wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                     'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                     resolv]
        with open(os.path.join(self.root, "nobody"), "w") as f:
            f.write("192.0.2.255\n")
        ports = {}
        for name, conf, argv in (
                ("opendkim", OPENDKIM_CONF, ["/usr/sbin/opendkim", "-f",
                                             "-x"]),
                ("opendmarc", OPENDMARC_CONF, ["/usr/sbin/opendmarc", "-f",
                                               "-c"])):
            ports[name] = benchlib.free_port()
            path = os.path.join(self.root, name + ".conf")
            with open(path, "w") as f:
                f.write(conf.format(port=ports[name], root=self.root, mx=MX,
                                    dns=dns_host))
            log = open(os.path.join(self.root, name + ".log"), "wb")
            p = subprocess.Popen(self.wrap + argv + [path], stdout=log,
                                 stderr=subprocess.STDOUT)
            self.procs.append(p)
            wait_listen(ports[name], p, name)
        spf_conf = os.path.join(self.root, "policyd-spf.conf")
        with open(spf_conf, "w") as f:
            f.write(POLICYD_SPF_CONF)
        os.chmod(spf_conf, 0o644)
        self.port = benchlib.free_port()
        self.pf = postfix.Postfix(
            os.path.join(self.root, "postfix"), "127.0.0.1", self.port, {
                "myhostname": MX,
                "mydestination": "localhost",
                "inet_interfaces": "127.0.0.1",
                "smtpd_client_connection_count_limit": "0",
                "smtpd_client_restrictions":
                    "reject_rbl_client bl.bench.example",
                "smtpd_recipient_restrictions":
                    "reject_unauth_destination, "
                    "check_policy_service unix:private/policyd-spf",
                "policyd-spf_time_limit": "3600",
                "smtpd_milters": "inet:127.0.0.1:%d, inet:127.0.0.1:%d" % (
                    ports["opendkim"], ports["opendmarc"]),
                "milter_default_action": "tempfail",
            },
            services="policyd-spf unix - n n - 0 spawn user=nobody "
                     "argv=/usr/bin/policyd-spf %s\n" % spf_conf,
            wrap=self.wrap)
        self.pf.set(postfix.virtual_mailboxes(
            self.pf, DOMAIN, {RCPT: "inbound/Maildir/"}, self.vmail, uid,
            gid))
        self.pf.start()

    def maildir(self):
        return os.path.join(self.vmail, "inbound", "Maildir")

    def delivered(self):
        try:
            return len(os.listdir(os.path.join(self.maildir(), "new")))
        except FileNotFoundError:
            return 0

    def clear(self):
        d = os.path.join(self.maildir(), "new")
        if os.path.isdir(d):
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))

    def milter_logs(self):
        out = []
        for name, p in zip(("opendkim", "opendmarc"), self.procs):
            with open(os.path.join(self.root, name + ".log"), "rb") as f:
                out.append("%s (%s): %s" % (
                    name, "running" if p.poll() is None else
                    "exited %s" % p.returncode,
                    f.read()[-1000:].decode("utf-8", "replace")))
        return "\n".join(out)

    def pids(self):
        return [self.pf.pid] + [p.pid for p in self.procs]

    def send_all(self, msgs, timeout=900):
        """msgs as send_all() does; the rate counts until the last is in
        the Maildir."""
        self.clear()
        t0 = time.perf_counter()
        try:
            smtpclient.source_messages("127.0.0.1", self.port, SESSIONS,
                                       msgs, SENDER, RCPT,
                                       helo="client.bench.example")
        except smtpclient.SmtpError as e:
            raise SystemExit("Postfix: %s\n%s\n%s" % (
                e, self.pf.read_log()[-1500:], self.milter_logs()))
        deadline = time.monotonic() + timeout
        while self.delivered() < len(msgs):
            if time.monotonic() > deadline:
                raise SystemExit("Postfix delivered %d of %d: %s" % (
                    self.delivered(), len(msgs),
                    self.pf.read_log()[-2000:]))
            time.sleep(0.02)
        return len(msgs) / (time.perf_counter() - t0)

    def close(self):
        import procs
        if self.pf is not None and self.pf.pid is not None:
            kids = benchlib.tree(self.pf.pid)
            self.pf.stop(timeout=20)
            benchlib.wait_children_gone(kids, 10)
        for p in self.procs:
            procs.stop_popen(p, 10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get(
        "POSTROOM_BUILD_DIR", os.path.join(HERE, "..", "build")))
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="")
    ap.add_argument("--perf", default="", metavar="DIR",
                    help="perf record the checks-on smtpd of each run into "
                    "DIR/on-N.data (linux-perf)")
    ap.add_argument("--no-postfix", action="store_true",
                    help="postroom only (no root needed for that)")
    args = ap.parse_args()
    harness = benchlib.use_build(args.build_dir)
    from relay_util import Dns, rsa_key
    benchlib.raise_nofile(1 << 16)
    priv, pub = rsa_key()
    # dnsmasq answers only these under .example; bl.bench.example lists nobody
    # (NXDOMAIN), the host record gives iprev its PTR too.
    txt = {"bench.example": "v=spf1 ip4:127.0.0.0/8 -all",
           "_dmarc.bench.example": "v=DMARC1; p=reject",
           "s1._domainkey.bench.example": "v=DKIM1; k=rsa; p=" + pub}
    hosts = {"client.bench.example": "127.0.0.1"}
    print("signing %d messages" % args.count, file=sys.stderr)
    msgs = signed_messages(args.count, priv)
    on = off = pfc = None
    rates = {"on": [], "off": [], "postfix": []}
    cpu = {"on": [], "off": [], "postfix": []}
    queries = {"on": [], "off": [], "postfix": []}
    tmp = tempfile.mkdtemp(prefix="postroom-inbound-", dir="/var/tmp")
    if args.no_postfix:
        dns = Dns(a=hosts, txt=txt, ttl=TTL, zone="example")
    else:
        dns = Dns(a=hosts, txt=txt, ttl=TTL, zone="example",
                  host=dns_address(), port=53)
    common = {"server": {"log_level": "warning"},
              "smtp": {"max_connections_per_ip": "0"},
              "relay": {"enabled": "false"},
              "dns": {"resolver": dns.resolver, "timeout": "2s"}}
    try:
        on = harness.Instance(tls=False, extra=dict(common, inbound={
            "spf": "true", "dkim": "true", "dmarc": "true",
            "dmarc_policy": "enforce", "dnsbl": "bl.bench.example"}))
        off = harness.Instance(tls=False, extra=dict(common, inbound={
            "spf": "false", "dkim": "false", "dmarc": "false",
            "dnsbl": ""}))
        for inst in (on, off):
            inst.add_domain(DOMAIN)
            inst.add_user(RCPT, "bench-password")
            inst.start("smtpd")
        if not args.no_postfix:
            pfc = PostfixChecks(tmp, dns.host)
        # Warm-up, not measured.
        send_all(on.ports["smtp"], msgs[:100])
        send_all(off.ports["smtp"], msgs[:100])
        if pfc is not None:
            pfc.send_all(msgs[:100])
            head = pf_head(pfc)
            for want in (b"dkim=pass", b"dmarc=pass", b"Received-SPF: Pass"):
                if want not in head:
                    raise SystemExit("Postfix: no %s: %r" % (want,
                                                            head[:1500]))
        servers = [("off", off), ("on", on)]
        if pfc is not None:
            servers.append(("postfix", pfc))
        for i in range(args.runs):
            for name, inst in servers:
                pids = (pfc.pids() if name == "postfix" else
                        [inst.procs["smtpd"].pid])
                c0 = sum(benchlib.cpu_seconds(p) for p in pids)
                q0 = dns_queries(dns)
                rec = None
                if args.perf and name == "on":
                    os.makedirs(args.perf, exist_ok=True)
                    rec = subprocess.Popen(
                        ["perf", "record", "-q", "-F", "999", "-g", "-p",
                         str(pids[0]), "-o", os.path.join(
                             args.perf, "on-%d.data" % (i + 1))],
                        stdout=subprocess.DEVNULL)
                    time.sleep(1)
                if name == "postfix":
                    r = pfc.send_all(msgs)
                else:
                    r = send_all(inst.ports["smtp"], msgs)
                c1 = sum(benchlib.cpu_seconds(p) for p in pids)
                if rec is not None:
                    import procs
                    procs.stop_popen(rec, 30, signal.SIGINT)
                nq = dns_queries(dns) - q0
                rates[name].append(r)
                cpu[name].append((c1 - c0) / len(msgs) * 1e6)
                queries[name].append(nq / len(msgs))
                print("run %d %s: %.0f msg/s, %.0f us CPU/msg, %.2f DNS "
                      "queries/msg" % (i + 1, name, r, cpu[name][-1],
                                       queries[name][-1]), file=sys.stderr)
        stored = len(on.mailbox(RCPT))
        want = (100 + args.runs * args.count)
        if stored != want:
            raise SystemExit("checks on: stored %d of %d" % (stored,
                                                             want))
        head = on.stored(RCPT)[-1].split(b"\r\n\r\n", 1)[0]
        if b"dkim=pass" not in head or b"dmarc=pass" not in head:
            raise SystemExit("checks on: no dkim=pass/dmarc=pass: %r"
                             % head[:600])
    finally:
        if pfc is not None:
            pfc.close()
        harness.close_all(on, off, dns)
        shutil.rmtree(tmp, ignore_errors=True)
    med_on = statistics.median(rates["on"])
    med_off = statistics.median(rates["off"])
    ratio = med_on / med_off
    row = ("| SMTP 10 KiB x 50, inbound checks on (SPF, DKIM, DMARC, "
           "DNSBL) vs off (msg/s) | %.0f (%.0f–%.0f) | postroom, checks "
           "off | %.0f (%.0f–%.0f) | %.2fx | >= 0.80x | %s |" % (
               med_on, min(rates["on"]), max(rates["on"]), med_off,
               min(rates["off"]), max(rates["off"]), ratio,
               "yes" if ratio >= 0.8 else "no"))
    row2 = ("| SMTP 10 KiB x 50, smtpd CPU per message, checks on vs off "
            "(us) | %.0f | postroom, checks off | %.0f | %.2fx |  |  |" % (
                statistics.median(cpu["on"]), statistics.median(cpu["off"]),
                statistics.median(cpu["on"]) /
                max(statistics.median(cpu["off"]), 1e-9)))
    rows = [row, row2]
    ok = ratio >= 0.8
    if rates["postfix"]:
        med_pf = statistics.median(rates["postfix"])
        pf_ratio = med_on / med_pf
        ok = ok and pf_ratio >= 3
        rows.append(
            "| SMTP 10 KiB x 50, inbound checks on (SPF, DKIM, DMARC, "
            "DNSBL) (msg/s) | %.0f (%.0f–%.0f) | Postfix + OpenDKIM + "
            "OpenDMARC + policyd-spf | %.0f (%.0f–%.0f) | %.2fx | >= 3x | "
            "%s |" % (med_on, min(rates["on"]), max(rates["on"]), med_pf,
                      min(rates["postfix"]), max(rates["postfix"]),
                      pf_ratio, "yes" if pf_ratio >= 3 else "no"))
        rows.append(
            "| SMTP 10 KiB x 50, CPU per message, checks on (us) | %.0f | "
            "Postfix + milters + policyd-spf (all processes) | %.0f | "
            "%.2fx |  |  |" % (
                statistics.median(cpu["on"]),
                statistics.median(cpu["postfix"]),
                statistics.median(cpu["on"]) /
                max(statistics.median(cpu["postfix"]), 1e-9)))
    for r in rows:
        print(r)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(rows) + "\n")
    return 0 if ok else 1


def pf_head(pfc):
    """The header of a message Postfix delivered."""
    new = os.path.join(pfc.maildir(), "new")
    for n in sorted(os.listdir(new)):
        with open(os.path.join(new, n), "rb") as f:
            return f.read().split(b"\n\n", 1)[0]
    return b""


if __name__ == "__main__":
    sys.exit(main())
