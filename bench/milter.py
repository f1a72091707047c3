#!/usr/bin/python3
"""SMTP through a content filter: 10 KiB x 10 sessions (a new connection
per message) into postroom and into Postfix, both with the same rspamd
as their milter (rspamd's proxy worker in milter mode, scanning itself;
tests/lib/milters.py), side by side on the same messages.  postroom's
rate is messages / wall time of the client (its 250 comes after the
commit); Postfix's is messages / time until the last one is in the
Maildir, as in bench/bench.py.

Target: postroom at least as fast as Postfix (the filter is the
bottleneck of both).  The CPU seconds per message of rspamd, of each
MTA and of the client show where the time goes.

    bench/milter.py [--build-dir DIR] [--count N] [--runs N] [--out FILE]

Needs root (Postfix, the prbench Maildir owner) and rspamd, postfix
installed; stops everything it starts by PID.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
import peers  # noqa: E402
import smtpclient  # noqa: E402

SESSIONS = 10
SIZE = 10 * 1024
USER = "milter"
RCPT = "%s@%s" % (USER, peers.DOMAIN)
SENDER = "bench@client.test"


def perf_profile(pids, fn, tmp):
    """perf record (cycles, all threads of pids) around fn(); the
    samples by command and shared object, perf report's text."""
    import signal
    import subprocess
    data = os.path.join(tmp, "perf.data")
    p = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-o", data,
                          "-p", ",".join(str(x) for x in pids)],
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        fn()
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(60)
    r = subprocess.run(["perf", "report", "-i", data, "--stdio",
                        "--sort", "comm,dso", "--percent-limit", "2"],
                       capture_output=True, text=True, timeout=300)
    return "\n".join(ln for ln in r.stdout.splitlines()
                     if ln.strip() and not ln.startswith("#"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get(
        "POSTROOM_BUILD_DIR", os.path.join(HERE, "..", "build")))
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", default="")
    ap.add_argument("--profile", action="store_true",
                    help="one more postroom run under perf record (rspamd"
                    " and postroom-smtpd): where the CPU goes, by process"
                    " and library")
    args = ap.parse_args()
    harness = benchlib.use_build(args.build_dir)
    import milters
    why = milters.available("rspamd")
    if why:
        raise SystemExit(why)
    benchlib.raise_nofile(1 << 16)
    peers.ensure_bench_user()
    tmp = tempfile.mkdtemp(prefix="postroom-bench-milter-", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    vmail = os.path.join(tmp, "vmail")
    os.makedirs(vmail)
    uid, gid = peers.bench_ids()
    os.chown(vmail, uid, gid)
    msg = smtpclient.make_message(SIZE, SENDER, RCPT, "milter")
    rs = pr = pf = None
    rates = {"postroom": [], "Postfix": []}
    cpu = {k: {"mta": [], "rspamd": []} for k in rates}
    try:
        print("starting rspamd", file=sys.stderr)
        rs = milters.Rspamd()
        rs.start(timeout=600)
        pr = harness.Instance(hostname="mx." + peers.DOMAIN, tls=False,
                              extra={
                                  "server": {"log_level": "warning"},
                                  "smtp": {"max_connections_per_ip": "0"},
                                  "relay": {"enabled": "false"},
                                  "milter": {"servers": rs.milter,
                                             "timeout": "120s",
                                             "on_failure": "tempfail"},
                              })
        pr.add_domain(peers.DOMAIN)
        pr.add_user(RCPT, "bench-password")
        pr.start("smtpd")
        pf = peers.Postfix(tmp, vmail, [USER])
        # Postfix's milter settings as a Postfix + rspamd installation
        # has them: protocol 6, tempfail when the filter fails (like
        # postroom's on_failure = tempfail), Postfix's default macros.
        pf.pf.set({"smtpd_milters": rs.milter, "milter_protocol": "6",
                   "milter_default_action": "tempfail"})
        pf.start()

        def run_postroom():
            pid = pr.procs["smtpd"].pid
            c0, r0 = benchlib.cpu_seconds(pid), benchlib.cpu_seconds(rs.pid)
            t0 = time.perf_counter()
            smtpclient.source_messages("127.0.0.1", pr.ports["smtp"],
                                       SESSIONS, [msg] * args.count,
                                       SENDER, RCPT)
            t = time.perf_counter() - t0
            return (t, benchlib.cpu_seconds(pid) - c0,
                    benchlib.cpu_seconds(rs.pid) - r0)

        def run_postfix():
            deadline = time.monotonic() + 300
            while not pf.queue_empty():
                if time.monotonic() > deadline:
                    raise RuntimeError("Postfix queue does not drain")
                time.sleep(0.05)
            pf.clear(USER)
            c0, r0 = benchlib.cpu_seconds(pf.pid), \
                benchlib.cpu_seconds(rs.pid)
            t0 = time.perf_counter()
            smtpclient.source_messages("127.0.0.1", pf.port, SESSIONS,
                                       [msg] * args.count, SENDER, RCPT)
            deadline = time.monotonic() + 600
            while pf.delivered(USER) < args.count:
                if time.monotonic() > deadline:
                    raise RuntimeError("Postfix delivered %d of %d: %s" % (
                        pf.delivered(USER), args.count, pf.log_tail(5)))
                time.sleep(0.005)
            t = time.perf_counter() - t0
            return (t, benchlib.cpu_seconds(pf.pid) - c0,
                    benchlib.cpu_seconds(rs.pid) - r0)

        # Warm-up, not measured (rspamd's caches, both MTAs' first
        # connections).
        warm = max(args.count // 10, 10)
        smtpclient.source_messages("127.0.0.1", pr.ports["smtp"], SESSIONS,
                                   [msg] * warm, SENDER, RCPT)
        smtpclient.source_messages("127.0.0.1", pf.port, SESSIONS,
                                   [msg] * warm, SENDER, RCPT)
        for i in range(args.runs):
            for name, fn in (("postroom", run_postroom),
                             ("Postfix", run_postfix)):
                t, c_mta, c_rs = fn()
                rates[name].append(args.count / t)
                cpu[name]["mta"].append(c_mta / args.count * 1e3)
                cpu[name]["rspamd"].append(c_rs / args.count * 1e3)
                print("run %d %s: %.1f msg/s, MTA %.2f ms CPU/msg, rspamd"
                      " %.2f ms CPU/msg" % (i + 1, name, rates[name][-1],
                                            cpu[name]["mta"][-1],
                                            cpu[name]["rspamd"][-1]),
                      file=sys.stderr)
        profile = ""
        if args.profile:
            profile = perf_profile(
                benchlib.tree(rs.pid) + [pr.procs["smtpd"].pid],
                run_postroom, tmp)
            print(profile, file=sys.stderr)
        stored = len(pr.mailbox(RCPT))
        want = warm + (args.runs + (1 if args.profile else 0)) * args.count
        if stored != want:
            raise SystemExit("postroom stored %d of %d" % (stored, want))
        last = pr.stored(RCPT)[-1].split(b"\r\n\r\n", 1)[0]
        if b"X-Rspamd-Server:" not in last:
            raise SystemExit("postroom's mail was not filtered: %r" %
                             last[:800])
        pmsgs = sorted(os.listdir(pf.maildir_new(USER)))
        with open(os.path.join(pf.maildir_new(USER), pmsgs[-1]), "rb") as f:
            if b"X-Rspamd-Server:" not in f.read().split(b"\n\n", 1)[0]:
                raise SystemExit("Postfix's mail was not filtered")
    finally:
        for x in (pr, pf, rs):
            if x is not None:
                x.close() if hasattr(x, "close") else x.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(v):
        return statistics.median(v)
    a, b = med(rates["postroom"]), med(rates["Postfix"])
    ratio = a / b
    rows = [
        "| SMTP 10 KiB x 10 through rspamd-milter (msg/s) | %.1f | Postfix"
        " + the same rspamd | %.1f | %.2fx | >= 1.0x | %s |" % (
            a, b, ratio, "yes" if ratio >= 1.0 else "no"),
        "| CPU per message, MTA (ms) | %.2f | Postfix (all processes) |"
        " %.2f | %.2fx |  |  |" % (
            med(cpu["postroom"]["mta"]), med(cpu["Postfix"]["mta"]),
            med(cpu["postroom"]["mta"]) /
            max(med(cpu["Postfix"]["mta"]), 1e-9)),
        "| CPU per message, rspamd (ms) | %.2f | rspamd behind Postfix |"
        " %.2f | %.2fx |  |  |" % (
            med(cpu["postroom"]["rspamd"]), med(cpu["Postfix"]["rspamd"]),
            med(cpu["postroom"]["rspamd"]) /
            max(med(cpu["Postfix"]["rspamd"]), 1e-9)),
    ]
    for r in rows:
        print(r)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(rows) + "\n")
            if profile:
                f.write("\n```\n%s\n```\n" % profile)
    return 0 if ratio >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
