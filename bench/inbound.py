#!/usr/bin/python3
"""The cost of the inbound checks: SMTP 10 KiB x 50 sessions into two
postroom instances side by side, one with every check of [inbound] on
(SPF, DKIM, DMARC, a DNS block list, iprev; answers from a local DNS
server, dnsmasq, as a caching resolver on the box would give them) and one with them off, on the same messages,
each DKIM-signed (python3-dkim, RSA 2048).  Runs alternate between the
two, so that other load on the machine falls on both alike.

Target: with the checks on, at least 80% of the throughput with them
off.  The comparison with Postfix plus the OpenDKIM and OpenDMARC
milters and postfix-policyd-spf-python is not made here.

    bench/inbound.py [--build-dir DIR] [--count N] [--runs N] [--out FILE]
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
import smtpclient  # noqa: E402

DOMAIN = "example.test"
SENDER = "bench@bench.test"
RCPT = "inbound@" + DOMAIN
SESSIONS = 50
SIZE = 10 * 1024


def signed_messages(n, priv):
    import dkim
    line = b"x" * 76 + b"\r\n"
    body = line * (SIZE // len(line))
    out = []
    for i in range(n):
        m = ("From: <%s>\r\nTo: <%s>\r\nSubject: bench %d\r\n"
             "Message-ID: <%d.%f@bench.test>\r\n\r\n" % (
                 SENDER, RCPT, i, i, time.time())).encode() + body
        out.append(dkim.sign(m, b"s1", b"bench.test", priv,
                             include_headers=[b"from", b"to", b"subject"],
                             linesep=b"\r\n") + m)
    return out


def send_all(port, msgs):
    """msgs over SESSIONS parallel clients, a new connection per message
    (as smtp-source does).  Returns msg/s."""
    t0 = time.perf_counter()
    smtpclient.source_messages("127.0.0.1", port, SESSIONS, msgs, SENDER,
                               RCPT, helo="client.bench.test")
    return len(msgs) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get(
        "POSTROOM_BUILD_DIR", os.path.join(HERE, "..", "build")))
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    harness = benchlib.use_build(args.build_dir)
    from relay_util import Dns, rsa_key
    benchlib.raise_nofile(1 << 16)
    priv, pub = rsa_key()
    # dnsmasq answers only these under .test; bl.bench.test lists nobody
    # (NXDOMAIN), the host record gives iprev its PTR too.
    txt = {"bench.test": "v=spf1 ip4:127.0.0.0/8 -all",
           "_dmarc.bench.test": "v=DMARC1; p=reject",
           "s1._domainkey.bench.test": "v=DKIM1; k=rsa; p=" + pub}
    hosts = {"client.bench.test": "127.0.0.1"}
    print("signing %d messages" % args.count, file=sys.stderr)
    msgs = signed_messages(args.count, priv)
    on = off = None
    rates = {"on": [], "off": []}
    cpu = {"on": [], "off": []}
    dns = Dns(a=hosts, txt=txt)
    common = {"server": {"log_level": "warning"},
              "smtp": {"max_connections_per_ip": "0"},
              "relay": {"enabled": "false"},
              "dns": {"resolver": dns.resolver, "timeout": "2s"}}
    try:
        on = harness.Instance(tls=False, extra=dict(common, inbound={
            "spf": "true", "dkim": "true", "dmarc": "true",
            "dmarc_policy": "enforce", "dnsbl": "bl.bench.test"}))
        off = harness.Instance(tls=False, extra=dict(common, inbound={
            "spf": "false", "dkim": "false", "dmarc": "false",
            "dnsbl": ""}))
        for inst in (on, off):
            inst.add_domain(DOMAIN)
            inst.add_user(RCPT, "bench-password")
            inst.start("smtpd")
        # Warm-up, not measured.
        send_all(on.ports["smtp"], msgs[:100])
        send_all(off.ports["smtp"], msgs[:100])
        for i in range(args.runs):
            for name, inst in (("off", off), ("on", on)):
                pid = inst.procs["smtpd"].pid
                c0 = benchlib.cpu_seconds(pid)
                r = send_all(inst.ports["smtp"], msgs)
                c1 = benchlib.cpu_seconds(pid)
                rates[name].append(r)
                cpu[name].append((c1 - c0) / len(msgs) * 1e6)
                print("run %d %s: %.0f msg/s, smtpd %.0f us CPU/msg" % (
                    i + 1, name, r, cpu[name][-1]), file=sys.stderr)
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
        harness.close_all(on, off, dns)
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
    print(row)
    print(row2)
    if args.out:
        with open(args.out, "a") as f:
            f.write(row + "\n" + row2 + "\n")
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
