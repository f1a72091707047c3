#!/usr/bin/python3
"""Outbound relay: COUNT x 10 KiB messages to 10 destination domains,
each with one MX host that is Postfix's smtp-sink on loopback, relayed
by postroom and by Postfix, side by side on the same messages to the
same sinks.

- The sinks: ten `smtp-sink -c` on 127.0.0.20 .. 127.0.0.29, one common
  port; each prints its running counters (sessions ended, messages) on
  stdout, which the harness reads.
- DNS: dnsmasq on loopback (tests/e2e/relay_util.py), authoritative for
  .example with TTL 300: dK.example has MX mx.dK.example, which is
  127.0.0.(20+K).  postroom asks it ([dns] resolver, [relay] mx_port).
- Postfix: a private instance (tests/lib/postfix.py), relaying for
  127.0.0.0/8 (mynetworks), its transport_maps sending dK.example to
  smtp:[127.0.0.(20+K)]:PORT (so Postfix does no DNS lookups at all);
  every other setting is Postfix's default (20 connections per
  destination, the connection cache on demand, cleanup(8) fsyncing the
  queue file before the 250).
- postroom: a fresh data dir, [relay] enabled with its defaults
  (connections_per_domain = 10, sessions kept 5 s for the next message).

The client: SESSIONS sessions at once, each sending COUNT / SESSIONS
messages over one connection (postroom's submission port with AUTH
PLAIN, as relaying needs; Postfix's smtpd port, relaying for
mynetworks), to recipients spread evenly over the ten domains.

Throughput = messages / (time from the first 250 the MTA gave to the
client until the sinks have counted every message).  CPU seconds per
message = user+sys of the MTA's process tree (benchlib.cpu_seconds,
Postfix's master with every child) from before the first message until
the queue is empty.  The connections are the sessions the sinks saw
end, counted once the MTA has closed its idle ones: fewer connections
than messages is connection reuse.  Runs alternate after an unmeasured
warm-up.  Target: postroom >= 3x Postfix.

    sudo bench/relay.py [--count 2000] [--runs 1] [--out FILE] [--perf DIR]
    bench/relay.py --no-postfix --count 200     # postroom only, no root

Stops everything it starts by PID and removes its temporary directory.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
import smtpclient  # noqa: E402

SIZE = 10 * 1024
DOMAINS = 10
SESSIONS = 10
USER = "alice@bench.example"
PASSWORD = "bench-relay-password"
SINK_BASE = 20          # sinks on 127.0.0.20 ..


def sink_host(k):
    return "127.0.0.%d" % (SINK_BASE + k)


def dest_domain(k):
    return "d%d.example" % k


class Sinks:
    """DOMAINS smtp-sinks on sink_host(k):port, counting what they saw."""

    def __init__(self, tmp, port):
        self.port = port
        self.procs = []
        self.outs = []
        for k in range(DOMAINS):
            out = os.path.join(tmp, "sink%d.out" % k)
            argv = ["smtp-sink", "-c", "-m", "1000"]
            if os.geteuid() == 0:
                argv += ["-u", "nobody"]
            argv += ["%s:%d" % (sink_host(k), port), "1024"]
            with open(out, "wb") as f:
                p = subprocess.Popen(argv, stdout=f,
                                     stderr=subprocess.DEVNULL)
            self.procs.append(p)
            self.outs.append(out)
        for k, p in enumerate(self.procs):
            # No banner read: a probe session would count as one.
            benchlib.wait_port(sink_host(k), port, proc=p, banner=False)

    def counts(self):
        """(messages, sessions ended) summed over the sinks; smtp-sink
        -c prints "sess=N quit=N mesg=N" each time one changes."""
        mesg = sess = 0
        for out in self.outs:
            with open(out, "rb") as f:
                try:
                    f.seek(-200, os.SEEK_END)
                except OSError:
                    pass
                tail = f.read().decode("ascii", "replace")
            recs = [r for r in tail.replace("\r", "\n").split("\n")
                    if r.startswith("sess=")]
            if not recs:
                continue
            kv = dict(x.split("=", 1) for x in recs[-1].split())
            mesg += int(kv.get("mesg", 0))
            sess += int(kv.get("sess", 0))
        return mesg, sess

    def established(self):
        """TCP connections now open to the sinks (/proc/net/tcp, state
        01 = ESTABLISHED, local port = the sinks')."""
        n = 0
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                p = line.split()
                if p[3] == "01" and int(p[1].split(":")[1], 16) == \
                        self.port:
                    n += 1
        return n

    def close(self):
        import procs
        for p in self.procs:
            procs.stop_popen(p, 10)
        self.procs = []


def messages(count):
    """(rcpt, message) pairs, round robin over the domains."""
    out = []
    for i in range(count):
        rcpt = "user%d@%s" % (i % 7, dest_domain(i % DOMAINS))
        out.append((rcpt, smtpclient.make_message(SIZE, USER, rcpt,
                                                  "relay%d" % i)))
    return out


def send(host, port, msgs, login, started):
    """msgs over SESSIONS sessions at once, each its share over one
    connection.  The sessions connect (and AUTH PLAIN when login) first;
    then started() is called and the messages go.  Returns (monotonic
    time of the first 250 to a message, of the last)."""
    import base64
    shares = [msgs[k::SESSIONS] for k in range(SESSIONS)]
    conns = []
    for _ in shares:
        c = smtpclient.RawSmtp(host, port, helo="client.bench.example")
        if login:
            tok = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD))
                                   .encode())
            c.command(b"AUTH PLAIN " + tok, 235)
        conns.append(c)
    started()

    def job(c, share):
        def run(sync):
            sync()
            first = None
            for rcpt, m in share:
                c.transaction(USER, rcpt, m)
                if first is None:
                    first = time.monotonic()
            last = time.monotonic()
            c.quit()
            return first, last
        return run

    res, errors, _wall = benchlib.run_together(
        [job(c, s) for c, s in zip(conns, shares)])
    if errors:
        raise RuntimeError("client: " + "; ".join(errors[:3]))
    return min(r[0] for r in res), max(r[1] for r in res)


def wait(cond, timeout, what, poll=0.005):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out: " + what)
        time.sleep(poll)
    return time.monotonic()


class PostroomRelay:
    name = "postroom"

    def __init__(self, harness, tmp, dns, port):
        # The instance's files go under the benchmark's tmp (on disk).
        saved, tempfile.tempdir = tempfile.tempdir, tmp
        try:
            self.inst = harness.Instance(
                hostname="mx.bench.example", tls=False, extra={
                    "server": {"log_level": "warning"},
                    "smtp": {"max_connections_per_ip": "0",
                             "allow_plaintext_auth": "true"},
                    "relay": {"enabled": "true", "mx_port": str(port)},
                    "dns": {"resolver": dns.resolver},
                })
        finally:
            tempfile.tempdir = saved
        self.inst.add_domain("bench.example")
        self.inst.add_user(USER, PASSWORD)
        self.inst.start("smtpd")
        self.pid = self.inst.procs["smtpd"].pid

    def send(self, msgs, started):
        return send(self.inst.host, self.inst.ports["submission"], msgs,
                    True, started)

    def queue_empty(self):
        return not self.inst.queued_rcpts()

    def log_tail(self):
        return self.inst.log("smtpd")[-2000:]

    def close(self):
        self.inst.close()


class PostfixRelay:
    name = "Postfix"

    def __init__(self, tmp, port):
        import postfix
        root = os.path.join(tmp, "postfix")
        transport = os.path.join(tmp, "transport")
        with open(transport, "w") as f:
            for k in range(DOMAINS):
                f.write("%s smtp:[%s]:%d\n" % (dest_domain(k), sink_host(k),
                                              port))
        os.chmod(transport, 0o644)
        self.port = benchlib.free_port()
        self.pf = postfix.Postfix(root, "127.0.0.1", self.port, {
            "myhostname": "mx.bench.example",
            "mydomain": "bench.example",
            "myorigin": "$myhostname",
            "mydestination": "localhost",
            "inet_interfaces": "127.0.0.1",
            "smtpd_client_connection_count_limit": "0",
            "transport_maps": "texthash:" + transport,
        })
        self.pf.start()
        self.pid = self.pf.pid

    def send(self, msgs, started):
        return send("127.0.0.1", self.port, msgs, False, started)

    def queue_empty(self):
        return self.pf.queue_empty()

    def log_tail(self):
        return self.pf.read_log()[-2000:]

    def close(self):
        if self.pf.pid is not None:
            kids = benchlib.tree(self.pf.pid)
            self.pf.stop(timeout=20)
            benchlib.wait_children_gone(kids, 10)
        shutil.rmtree(self.pf.root, ignore_errors=True)


def measure(mta, sinks, msgs, perf=None):
    """One run: (msg/s, CPU s per message, connections the sinks saw).
    With perf (a file name), the MTA's main process is recorded with
    perf record -g from the first message until the queue is empty."""
    n = len(msgs)
    wait(lambda: sinks.established() == 0, 120,
         "%s: sessions to the sinks left open" % mta.name, 0.2)
    m0, s0 = sinks.counts()
    c0 = [None]
    rec = []

    def started():
        # After the logins: what one AUTH costs (argon2id) is the
        # session's, not the relay's.
        if perf:
            rec.append(subprocess.Popen(
                ["perf", "record", "-q", "-F", "299", "--call-graph=dwarf,16384", "-p",
                 str(mta.pid), "-o", perf], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            # The store's flushes and the system calls, per message.
            rec.append(subprocess.Popen(
                ["perf", "stat", "-x", ",", "-o", perf + ".stat", "-e",
                 "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,"
                 "raw_syscalls:sys_enter,context-switches", "-p",
                 str(mta.pid)], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            time.sleep(1)
        c0[0] = benchlib.cpu_seconds(mta.pid)

    first, last = mta.send(msgs, started)
    try:
        done = wait(lambda: sinks.counts()[0] - m0 >= n, 900,
                    "%s: sinks saw %d of %d" % (mta.name,
                                                sinks.counts()[0] - m0, n))
    except RuntimeError as e:
        raise RuntimeError("%s\n%s" % (e, mta.log_tail()))
    wait(mta.queue_empty, 120, "%s: queue not empty" % mta.name, 0.1)
    c1 = benchlib.cpu_seconds(mta.pid)
    if rec:
        import procs
        import signal
        for p in rec:
            procs.stop_popen(p, 60, signal.SIGINT)
        with open(perf + ".stat") as f:
            for line in f:
                v = line.split(",")
                if len(v) > 2 and v[0].strip().isdigit():
                    print("%s: %s per message: %.2f" % (
                        mta.name, v[2], int(v[0]) / n), file=sys.stderr)
    # Idle sessions end (QUIT) after the MTA's idle time; then every
    # connection of the run has been counted.
    wait(lambda: sinks.established() == 0, 120,
         "%s: idle sessions not closed" % mta.name, 0.2)
    m1, s1 = sinks.counts()
    if m1 - m0 != n:
        raise RuntimeError("%s: sinks got %d messages, sent %d" % (
            mta.name, m1 - m0, n))
    print("%s: accepted at %.0f msg/s, the sinks had the last %.2f s "
          "after the last 250" % (mta.name, (n - 1) / max(last - first,
                                                          1e-9),
                                  done - last), file=sys.stderr)
    return n / (done - first), (c1 - c0[0]) / n, s1 - s0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_build = os.path.join(ROOT, "build-bench")
    if not os.path.isdir(default_build):
        default_build = os.path.join(ROOT, "build")
    ap.add_argument("--build-dir", default=os.environ.get(
        "POSTROOM_BUILD_DIR", default_build))
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", default="",
                    help="append the result rows to this file")
    ap.add_argument("--no-postfix", action="store_true",
                    help="postroom only (needs no root)")
    ap.add_argument("--tmp", default="/var/tmp")
    ap.add_argument("--perf", default="", metavar="DIR",
                    help="one more postroom run, not measured, under perf"
                    " record (DWARF call graphs) into DIR/postroom.data"
                    " and perf stat (fdatasync, system calls, context"
                    " switches per message)")
    args = ap.parse_args()
    if args.count < SESSIONS or args.runs < 1:
        ap.error("--count must be at least %d, --runs at least 1" %
                 SESSIONS)
    if not shutil.which("smtp-sink"):
        raise SystemExit("smtp-sink is not installed (Debian: postfix)")
    harness = benchlib.use_build(args.build_dir)
    import postfix
    if not args.no_postfix:
        why = postfix.available()
        if why:
            raise SystemExit(why + " (or --no-postfix)")
    from relay_util import Dns, free_port_on
    benchlib.raise_nofile(1 << 16)
    tmp = tempfile.mkdtemp(prefix="postroom-bench-relay-", dir=args.tmp)
    os.chmod(tmp, 0o755)
    port = free_port_on([sink_host(k) for k in range(DOMAINS)])
    dns = sinks = None
    mtas = []
    res = {}
    load0 = os.getloadavg()
    try:
        dns = Dns(mx={dest_domain(k): [(10, "mx." + dest_domain(k))]
                      for k in range(DOMAINS)},
                  a={"mx." + dest_domain(k): sink_host(k)
                     for k in range(DOMAINS)},
                  ttl=300, zone="example")
        sinks = Sinks(tmp, port)
        mtas.append(PostroomRelay(harness, tmp, dns, port))
        if not args.no_postfix:
            mtas.append(PostfixRelay(tmp, port))
        res = {m.name: {"rate": [], "cpu": [], "conns": []} for m in mtas}
        warm = messages(max(args.count // 10, SESSIONS))
        msgs = messages(args.count)
        for m in mtas:
            print("warm-up %s (%d messages)" % (m.name, len(warm)),
                  file=sys.stderr)
            measure(m, sinks, warm)
        for i in range(args.runs):
            for m in mtas:
                rate, cpu, conns = measure(m, sinks, msgs)
                res[m.name]["rate"].append(rate)
                res[m.name]["cpu"].append(cpu)
                res[m.name]["conns"].append(conns)
                print("run %d %s: %.1f msg/s, %.2f ms CPU/msg, %d "
                      "connections for %d messages" % (
                          i + 1, m.name, rate, cpu * 1e3, conns,
                          len(msgs)), file=sys.stderr)
        if args.perf:
            # One more postroom run under perf (not in the table:
            # recording costs the daemon time).
            os.makedirs(args.perf, exist_ok=True)
            perf = os.path.join(args.perf, "postroom.data")
            rate, cpu, conns = measure(mtas[0], sinks, msgs, perf)
            print("perf run postroom: %.1f msg/s, %.2f ms CPU/msg; perf "
                  "report -i %s --children" % (rate, cpu * 1e3, perf),
                  file=sys.stderr)
    finally:
        for m in mtas:
            m.close()
        for x in (sinks, dns):
            if x is not None:
                x.close()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(name, key):
        return statistics.median(res[name][key])

    def span(name, key, fmt, scale=1.0):
        v = [x * scale for x in res[name][key]]
        s = fmt % statistics.median(v)
        if len(v) > 1:
            s += " (%s–%s)" % (fmt % min(v), fmt % max(v))
        return s

    title = "Relay %d x 10 KiB to %d domains (smtp-sink MX)" % (
        args.count, DOMAINS)
    rows = []
    ok = True
    if "Postfix" in res:
        ratio = med("postroom", "rate") / med("Postfix", "rate")
        ok = ratio >= 3
        rows += [
            "| %s (msg/s) | %s | Postfix | %s | %.2fx | >= 3x | %s |" % (
                title, span("postroom", "rate", "%.0f"),
                span("Postfix", "rate", "%.0f"), ratio,
                "yes" if ok else "no"),
            "| Relay, CPU per message, MTA process tree (ms) | %s | "
            "Postfix (all processes) | %s | %.2fx |  |  |" % (
                span("postroom", "cpu", "%.2f", 1e3),
                span("Postfix", "cpu", "%.2f", 1e3),
                med("postroom", "cpu") / max(med("Postfix", "cpu"), 1e-9)),
            "| Relay, connections the sinks saw for %d messages | %s | "
            "Postfix | %s |  |  |  |" % (
                args.count, span("postroom", "conns", "%d"),
                span("Postfix", "conns", "%d")),
        ]
    else:
        rows += [
            "| %s (msg/s) | %s |" % (title, span("postroom", "rate",
                                                 "%.0f")),
            "| Relay, CPU per message (ms) | %s |" % span(
                "postroom", "cpu", "%.2f", 1e3),
            "| Relay, connections for %d messages | %s |" % (
                args.count, span("postroom", "conns", "%d")),
        ]
    load1 = os.getloadavg()
    print("load average at the start: %.2f %.2f %.2f, at the end: %.2f "
          "%.2f %.2f" % (load0 + load1), file=sys.stderr)
    benchlib.emit_rows(rows, args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
