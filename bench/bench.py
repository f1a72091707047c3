#!/usr/bin/python3
"""postroom benchmarks, side by side with Postfix and Dovecot.

Runs the same workloads against a private postroom installation (fresh
data dir), a private Postfix instance (virtual(8) delivery into Maildirs),
Postfix's smtp-sink (accept and discard: the ceiling) and a private Dovecot
POP3 server on Postfix's Maildirs, all on 127.0.0.1, each on its own
unprivileged port.  Prints one table (medians of --runs runs with min–max,
postroom/peer ratios, targets) and writes it with the machine's
description to bench/results/<date>-<host>.md.

Usually started through bench/run.sh, which installs the peers first.
--smoke is the test suite's variant: tiny counts, postroom only.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
from benchlib import Sample, fmt_bytes, fmt_num, fmt_sample  # noqa: E402
import bigstore  # noqa: E402
import idle  # noqa: E402
import maildrop  # noqa: E402
import memory  # noqa: E402
import peers  # noqa: E402
import pop3client  # noqa: E402
import smtpclient  # noqa: E402
import tls  # noqa: E402

KiB = 1024
MiB = 1024 * 1024
SENDER = "bench@client.test"

# Counts of a full run (scaled by --scale) and of the smoke run.
FULL = {
    "runs": 3,
    "smtp_sizes": [1 * KiB, 10 * KiB, 100 * KiB],
    "smtp_conc": [1, 10, 50],
    "smtp_count": {1 * KiB: 1000, 10 * KiB: 1000, 100 * KiB: 500},
    "warmup": 200,
    "pop_small": (1000, 10 * KiB),
    "pop_big": (100, 1 * MiB),
    "pop_users": 20,
    "pop_user_msgs": 50,
    "lat_smtp": {1: 300, 50: 20},   # sessions: transactions per session
    "lat_pop": {1: 500, 50: 40},    # sessions: RETRs per session
    "idle": 10000,
    "big": (50, 10 * 1000 * 1000),
    "cg_smtp": (100, 10 * KiB, 10),
    "cg_pop_reps": 4,
    # bench/maildrop.py, bench/bigstore.py
    "maildrop": 100000,
    "bigstore": (1000, 1000000),   # users, messages (--store-messages)
    "bigstore_smtp": (1000, 10),   # messages per run, sessions
    "bigstore_logins": 200,
}
SMOKE = {
    "runs": 2,
    "smtp_sizes": [1 * KiB, 10 * KiB],
    "smtp_conc": [1, 10],
    "smtp_count": {1 * KiB: 20, 10 * KiB: 20},
    "warmup": 5,
    "pop_small": (20, 10 * KiB),
    "pop_big": (3, 1 * MiB),
    "pop_users": 2,
    "pop_user_msgs": 5,
    "lat_smtp": {1: 10, 4: 3},
    "lat_pop": {1: 10, 2: 3},
    "idle": 200,
    "big": (4, 1 * 1000 * 1000),
    "cg_smtp": (0, 0, 0),
    "cg_pop_reps": 0,
    # bench/maildrop.py, bench/bigstore.py
    "maildrop": 300,
    "bigstore": (20, 400),
    "bigstore_smtp": (20, 4),
    "bigstore_logins": 10,
}

ALL_WORKLOADS = ["smtp", "latency", "big", "pop3", "idle", "profile",
                 "maildrop", "bigstore",
                 # TLS on every session and memory after a burst
                 # (bench/tls.py, bench/memory.py)
                 "tls", "memory"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- report ------------------------------------------------------------------

class Report:
    """Rows of the table plus the details that go below it."""

    def __init__(self):
        self.rows = []      # (workload, postroom, peer name, peer, ratio, target, met)
        self.details = []   # markdown lines
        self.errors = []
        self.targets = []   # (description, met or None, evidence)

    def row(self, workload, pr, peer_name="", peer=None, ratio=None,
            target="", met=None):
        self.rows.append((workload, pr, peer_name, peer, ratio, target, met))

    def detail(self, line=""):
        self.details.append(line)

    def error(self, what, exc):
        msg = "%s: %s" % (what, exc)
        self.errors.append(msg)
        log("ERROR", msg)

    def table(self):
        head = ("Workload", "postroom", "peer", "peer value",
                "postroom/peer", "target", "met")
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join("---" for _ in head) + "|"]
        for w, pr, pn, pv, ratio, target, met in self.rows:
            m = "" if met is None else ("yes" if met else "**no**")
            lines.append("| %s |" % " | ".join([
                w, pr, pn, pv if pv is not None else "",
                "" if ratio is None else "%.2fx" % ratio, target, m]))
        return "\n".join(lines)


def ratio_of(a, b):
    if not a or not b or not b.median:
        return None
    return a.median / b.median


# --- the bench ---------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.c = dict(SMOKE if args.smoke else FULL)
        if args.runs:
            self.c["runs"] = args.runs
        if args.scale != 1.0:
            self.scale(args.scale)
        self.report = Report()
        self.build = args.build_dir
        self.tmp = None
        self.pr = self.pf = self.dv = self.sink = None
        self.peers = not args.no_peers
        self.smtp_source = shutil.which("smtp-source")
        self.fsync_s = None
        self.samples = {}
        self.started = time.time()
        with open("/proc/loadavg") as f:
            self.load_start = f.read().split()[:3]

    def scale(self, f):
        def sc(n):
            return max(1, int(round(n * f)))
        c = self.c
        c["smtp_count"] = {k: sc(v) for k, v in c["smtp_count"].items()}
        c["warmup"] = sc(c["warmup"])
        c["pop_small"] = (sc(c["pop_small"][0]), c["pop_small"][1])
        c["pop_big"] = (sc(c["pop_big"][0]), c["pop_big"][1])
        c["pop_user_msgs"] = sc(c["pop_user_msgs"])
        c["lat_smtp"] = {k: sc(v) for k, v in c["lat_smtp"].items()}
        c["lat_pop"] = {k: sc(v) for k, v in c["lat_pop"].items()}
        c["idle"] = sc(c["idle"])
        c["big"] = (sc(c["big"][0]), c["big"][1])
        n, s, conc = c["cg_smtp"]
        c["cg_smtp"] = (sc(n) if n else 0, s, conc)
        c["maildrop"] = sc(c["maildrop"])
        c["bigstore"] = (c["bigstore"][0], sc(c["bigstore"][1]))
        c["bigstore_smtp"] = (sc(c["bigstore_smtp"][0]),
                              c["bigstore_smtp"][1])

    # users of each server: one maildrop per workload
    def users(self):
        u = ["smtp", "lat", "big", "pdl", "pbig", "cg"]
        u += [maildrop.USER, maildrop.OTHER]
        nconc = max([self.c["pop_users"]] + list(self.c["lat_pop"]))
        u += ["c%02d" % i for i in range(1, nconc + 1)]
        return u

    def conc_users(self, n):
        return ["c%02d" % i for i in range(1, n + 1)]

    # --- setup / teardown -----------------------------------------------

    def setup(self):
        benchlib.raise_nofile(1 << 20)
        base = self.args.tmp or tempfile.gettempdir()
        self.tmp = tempfile.mkdtemp(prefix="postroom-bench-", dir=base)
        os.chmod(self.tmp, 0o755)
        self.fsync_s = benchlib.fsync_cost(self.tmp,
                                           n=50 if self.args.smoke else 300)
        users = self.users()
        if self.peers:
            missing = [p for p in ("postfix", "smtp-source", "smtp-sink",
                                   "dovecot", "doveadm")
                       if not shutil.which(p)]
            if missing:
                raise SystemExit("missing %s: run bench/run.sh, which "
                                 "installs them" % ", ".join(missing))
            if os.geteuid() != 0:
                raise SystemExit("the peers need root (private Postfix and "
                                 "Dovecot instances); use --no-peers")
            peers.ensure_bench_user()
            vmail = os.path.join(self.tmp, "vmail")
            os.makedirs(vmail)
            uid, gid = peers.bench_ids()
            os.chown(vmail, uid, gid)
            log("starting Postfix, smtp-sink and Dovecot")
            self.pf = peers.Postfix(self.tmp, vmail, users)
            self.pf.start()
            self.sink = peers.Sink(self.tmp)
            self.sink.start()
            self.dv = peers.Dovecot(self.tmp, vmail, users)
            self.dv.start()
        if not self.args.no_postroom:
            log("setting up postroom (%d users)" % len(users))
            self.pr = peers.Postroom(self.tmp, users, self.build)
            self.pr.start("smtpd")
            self.pr.start("pop3d")

    def teardown(self):
        for s in (self.pr, self.pf, self.dv, self.sink):
            if s is None:
                continue
            try:
                s.close() if s is self.pr else s.stop()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (s.name, e))
        if self.tmp and not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            log("kept", self.tmp)

    # --- SMTP load -------------------------------------------------------

    def send(self, port, conc, count, size, rcpt, timeout=600):
        """Sends count messages of size with conc parallel sessions;
        returns wall seconds."""
        t0 = time.perf_counter()
        if self.smtp_source:
            r = subprocess.run(
                [self.smtp_source, "-s", str(conc), "-m", str(count),
                 "-l", str(size), "-M", "client.test", "-f", SENDER,
                 "-t", rcpt, "127.0.0.1:%d" % port],
                capture_output=True, text=True, timeout=timeout)
            if r.returncode != 0 or r.stderr.strip():
                raise RuntimeError("smtp-source: exit %d: %s" % (
                    r.returncode, r.stderr.strip()[-500:]))
        else:
            smtpclient.source("127.0.0.1", port, conc, count, size,
                              SENDER, rcpt)
        return time.perf_counter() - t0

    def postfix_deliver(self, conc, count, size, user, timeout=600):
        """One Postfix run: returns (seconds until the last message is in
        the Maildir, CPU seconds of all Postfix processes)."""
        pf = self.pf
        self.wait_postfix_idle()
        pf.clear(user)
        cpu0 = benchlib.cpu_seconds(pf.pid)
        t0 = time.perf_counter()
        self.send(pf.port, conc, count, size, "%s@%s" % (user, peers.DOMAIN))
        deadline = time.monotonic() + timeout
        while pf.delivered(user) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("Postfix delivered %d of %d: %s" % (
                    pf.delivered(user), count, pf.log_tail(5)))
            time.sleep(0.005)
        t = time.perf_counter() - t0
        if pf.delivered(user) != count:
            raise RuntimeError("Postfix delivered %d, expected %d" % (
                pf.delivered(user), count))
        return t, benchlib.cpu_seconds(pf.pid) - cpu0

    def wait_postfix_idle(self, timeout=120):
        deadline = time.monotonic() + timeout
        while not self.pf.queue_empty():
            if time.monotonic() > deadline:
                raise RuntimeError("Postfix queue does not drain")
            time.sleep(0.05)

    def postroom_accept(self, conc, count, size, user):
        pid = self.pr.pid("smtpd")
        cpu0 = benchlib.cpu_seconds(pid)
        t = self.send(self.pr.smtp_port, conc, count, size,
                      "%s@%s" % (user, peers.DOMAIN))
        return t, benchlib.cpu_seconds(pid) - cpu0

    def populate(self, user, count, size, conc=10):
        """Puts count messages of size into user's maildrop on postroom
        and (with peers) Postfix's Maildir, through their SMTP servers."""
        rcpt = "%s@%s" % (user, peers.DOMAIN)
        if self.pr:
            before = self.pr.mailbox_count(user)
            self.send(self.pr.smtp_port, conc, count, size, rcpt)
            got = self.pr.mailbox_count(user) - before
            if got != count:
                raise RuntimeError("postroom stored %d of %d for %s" % (
                    got, count, user))
        if self.pf:
            self.send(self.pf.port, conc, count, size, rcpt)
            deadline = time.monotonic() + 300
            while self.pf.delivered(user) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError("Postfix: %s has %d of %d" % (
                        user, self.pf.delivered(user), count))
                time.sleep(0.02)

    # --- workload 1: SMTP acceptance -----------------------------------

    def w_smtp(self):
        c = self.c
        runs = c["runs"]
        rep = self.report
        one_fsync = 1.0 / self.fsync_s if self.fsync_s else None
        # Warm-up (not measured): first connections, page cache, SQLite
        # and Postfix processes.
        if self.pr:
            self.postroom_accept(10, c["warmup"], 10 * KiB, "smtp")
        if self.pf:
            self.postfix_deliver(10, c["warmup"], 10 * KiB, "smtp")
        self.samples["smtp"] = {}
        for size in c["smtp_sizes"]:
            count = c["smtp_count"][size]
            for conc in c["smtp_conc"]:
                label = "SMTP %s x %d" % (size_label(size), conc)
                log("%s: %d messages, %d runs" % (label, count, runs))
                pr, pf, sk = Sample(), Sample(), Sample()
                pr_cpu, pf_cpu = Sample(), Sample()
                before = self.pr.mailbox_count("smtp") if self.pr else 0
                for _ in range(runs):
                    if self.pr:
                        t, cpu = self.postroom_accept(conc, count, size,
                                                      "smtp")
                        pr.add(count / t)
                        pr_cpu.add(cpu / count)
                    if self.pf:
                        t, cpu = self.postfix_deliver(conc, count, size,
                                                      "smtp")
                        pf.add(count / t)
                        pf_cpu.add(cpu / count)
                    if self.sink:
                        sk.add(count / self.send(self.sink.port, conc, count,
                                                 size, "sink@sink.test"))
                stored = self.pr.mailbox_count("smtp") - before \
                    if self.pr else count * runs
                if stored != count * runs:
                    raise RuntimeError("%s: postroom stored %d of %d" % (
                        label, stored, count * runs))
                self.samples["smtp"][(size, conc)] = (pr, pf, sk, pr_cpu,
                                                      pf_cpu)
                target, met = "", None
                ratio = ratio_of(pr, pf)
                if size == 10 * KiB and conc in (10, 50):
                    target = ">= 3x Postfix delivered"
                    if ratio is not None:
                        met = ratio >= 3.0
                        rep.targets.append(("%s >= 3x Postfix" % label, met,
                                            "%.2fx" % ratio))
                    if one_fsync and pr:
                        gc = pr.median > one_fsync
                        ev = "%s msg/s" % fmt_num(pr.median)
                        if sk:
                            ev += "; smtp-sink, which stores nothing, " \
                                "takes %s msg/s from this client here" % (
                                    fmt_num(sk.median))
                        rep.targets.append((
                            "%s faster than one fsync per message allows "
                            "(> 1 / %s ms = %s msg/s)" % (
                                label, fmt_num(self.fsync_s * 1000),
                                fmt_num(one_fsync)), gc, ev))
                rep.row(label + " (msg/s)", fmt_sample(pr),
                        "Postfix" if pf else "",
                        fmt_sample(pf) if pf else None, ratio, target, met)
                if sk:
                    rep.row(label + " (msg/s)", fmt_sample(pr), "smtp-sink",
                            fmt_sample(sk), ratio_of(pr, sk),
                            "fraction of ceiling")

    # --- workload 4a: SMTP latency --------------------------------------

    def w_latency_smtp(self):
        rcpt = "lat@%s" % peers.DOMAIN
        for sessions, per in sorted(self.c["lat_smtp"].items()):
            res = {}
            for name, port in self.smtp_targets():
                if name == "smtp-sink":
                    continue
                lat = smtpclient.latency("127.0.0.1", port, sessions, per,
                                         10 * KiB, SENDER, rcpt,
                                         warmup=max(1, per // 10))
                res[name] = lat
            self.latency_rows("SMTP transaction 10 KiB, %d session%s" % (
                sessions, "s" if sessions > 1 else ""), res, "Postfix")

    def latency_rows(self, label, res, peer):
        pr = res.get("postroom")
        pe = res.get(peer)
        for p in (50, 99):
            a = benchlib.percentile(pr, p) if pr else None
            b = benchlib.percentile(pe, p) if pe else None
            self.report.row("%s p%d (ms)" % (label, p),
                            fmt_num(a * 1000) if a is not None else "n/a",
                            peer if pe else "",
                            fmt_num(b * 1000) if b is not None else None,
                            (a / b) if (a and b) else None,
                            "report (lower is better)")

    def smtp_targets(self):
        t = [("postroom", self.pr.smtp_port)] if self.pr else []
        if self.pf:
            t.append(("Postfix", self.pf.port))
        return t

    # --- workload 6: big messages ---------------------------------------

    def w_big(self):
        n, size = self.c["big"]
        rcpt = "big@%s" % peers.DOMAIN
        res = {}
        servers = [("postroom", self.pr.pid("smtpd"), self.pr.smtp_port)] \
            if self.pr else []
        if self.pf:
            servers.append(("Postfix", self.pf.pid, self.pf.port))
        for name, pid, port in servers:
            base = benchlib.tree_pss(pid)
            sampler = benchlib.PssSampler(pid)
            proc_args = [self.smtp_source, "-s", str(n), "-m", str(n),
                         "-l", str(size), "-M", "client.test", "-f", SENDER,
                         "-t", rcpt, "127.0.0.1:%d" % port]
            if name == "Postfix":
                self.wait_postfix_idle()
                self.pf.clear("big")
            t0 = time.perf_counter()
            if self.smtp_source:
                p = subprocess.Popen(proc_args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
                deadline = time.monotonic() + 600
                while p.poll() is None:
                    sampler.poll()
                    if time.monotonic() > deadline:
                        p.kill()
                        raise RuntimeError("big messages: timeout")
                    time.sleep(0.02)
                err = p.stderr.read()
                p.stderr.close()
                if p.returncode != 0 or err.strip():
                    raise RuntimeError("smtp-source: %s" % err.strip()[-300:])
            else:
                import threading
                th = threading.Thread(target=smtpclient.source, args=(
                    "127.0.0.1", port, n, n, size, SENDER, rcpt))
                th.start()
                while th.is_alive():
                    sampler.poll()
                    time.sleep(0.02)
            if name == "Postfix":
                deadline = time.monotonic() + 600
                while self.pf.delivered("big") < n:
                    sampler.poll()
                    if time.monotonic() > deadline:
                        raise RuntimeError("Postfix: big messages stuck")
                    time.sleep(0.02)
            t = time.perf_counter() - t0
            sampler.poll()
            res[name] = (base, sampler.peak, t, sampler.samples)
        if self.pr and self.pr.mailbox_count("big") < n:
            raise RuntimeError("postroom stored %d of %d big messages" % (
                self.pr.mailbox_count("big"), n))
        pr = res.get("postroom", (0, 0, 0, 0))
        pe = res.get("Postfix")
        hwm = benchlib.hwm_bytes(self.pr.pid("smtpd")) if self.pr else 0
        self.report.row(
            "%d sessions x %s message at once: peak PSS" % (n, size_label(size)),
            fmt_bytes(pr[1]) if self.pr else "n/a", "Postfix" if pe else "",
            fmt_bytes(pe[1]) if pe else None,
            (pr[1] / pe[1]) if pe and pe[1] and self.pr else None,
            "bounded (report)")
        if self.pr:
            self.report.detail(
                "- Big messages: %d x %s at once. postroom-smtpd PSS %s "
                "before, peak %s (%d samples, %.1f s), VmHWM %s; %s in "
                "flight in total." % (
                    n, size_label(size), fmt_bytes(pr[0]), fmt_bytes(pr[1]),
                    pr[3], pr[2], fmt_bytes(hwm), fmt_bytes(n * size)))
        if pe:
            self.report.detail(
                "  Postfix (all its processes) PSS %s before, peak %s, "
                "%.1f s until the last one was in the Maildir." % (
                    fmt_bytes(pe[0]), fmt_bytes(pe[1]), pe[2]))

    # --- workload 2: POP3 download -------------------------------------

    def pop3_targets(self):
        t = [("postroom", self.pr.pop3_port, self.pr.pid("pop3d"))] \
            if self.pr else []
        if self.dv:
            t.append(("Dovecot", self.dv.port, self.dv.pid))
        return t

    def w_pop3(self):
        c = self.c
        runs = c["runs"]
        rep = self.report
        n_small, s_small = c["pop_small"]
        n_big, s_big = c["pop_big"]
        nusers, per_user = c["pop_users"], c["pop_user_msgs"]
        log("POP3: populating maildrops")
        self.populate("pdl", n_small, s_small)
        self.populate("pbig", n_big, s_big, conc=4)
        nconc = max([nusers] + list(c["lat_pop"]))
        for u in self.conc_users(nconc):
            self.populate(u, per_user, 10 * KiB)
        pw = peers.password_for
        work = [
            ("pdl", n_small, s_small, ">= 1.5x Dovecot", 1.5),
            ("pbig", n_big, s_big, ">= 1x Dovecot", 1.0),
        ]
        logins = {}
        for user, n, size, target, need in work:
            # One unmeasured download per server first: Dovecot builds its
            # index and cache, both servers warm the page cache.
            for name, port, pid in self.pop3_targets():
                pop3client.download("127.0.0.1", port,
                                    "%s@%s" % (user, peers.DOMAIN),
                                    pw(user), "raw", expect=n)
            for client in ("poplib", "raw"):
                label = "POP3 %d x %s, %s client" % (n, size_label(size),
                                                     client)
                log(label)
                addr = "%s@%s" % (user, peers.DOMAIN)
                res = {name: (Sample(), Sample())
                       for name, _p, _d in self.pop3_targets()}
                # Runs alternate between the servers, so that a change of
                # load on the machine hits both alike.
                for _ in range(runs):
                    for name, port, pid in self.pop3_targets():
                        rate, cpu = res[name]
                        c0 = [0.0]

                        def mark():
                            c0[0] = benchlib.cpu_seconds(pid)
                        r = pop3client.download("127.0.0.1", port, addr,
                                                pw(user), client, expect=n,
                                                on_login=mark)
                        cpu.add((benchlib.cpu_seconds(pid) - c0[0]) / n)
                        rate.add(n / r["seconds"])
                        logins.setdefault(name, []).append(r["login_s"])
                for name, v in res.items():
                    self.samples.setdefault("pop3", {})[(label, name)] = v
                pr = res["postroom"][0] if "postroom" in res else Sample()
                dv = res["Dovecot"][0] if "Dovecot" in res else None
                ratio = ratio_of(pr, dv)
                met = None if ratio is None else ratio >= need
                if ratio is not None:
                    rep.targets.append(("%s %s" % (label, target), met,
                                        "%.2fx" % ratio))
                rep.row(label + " (msg/s)", fmt_sample(pr),
                        "Dovecot" if dv else "", fmt_sample(dv) if dv else None,
                        ratio, target, met)
        users = self.conc_users(nusers)
        for name, port, pid in self.pop3_targets():
            pop3client.parallel_download("127.0.0.1", port,
                                         [u + "@" + peers.DOMAIN
                                          for u in users],
                                         lambda a: pw(a.split("@")[0]),
                                         "raw", expect=per_user)
        for client in ("poplib", "raw"):
            label = "POP3 %d users at once x %d x 10 KiB, %s client" % (
                nusers, per_user, client)
            log(label)
            res = {name: Sample() for name, _p, _d in self.pop3_targets()}
            for _ in range(runs):
                for name, port, pid in self.pop3_targets():
                    msgs, _b, wall, lg = pop3client.parallel_download(
                        "127.0.0.1", port,
                        [u + "@" + peers.DOMAIN for u in users],
                        lambda a: pw(a.split("@")[0]), client,
                        expect=per_user)
                    res[name].add(msgs / wall)
            pr = res.get("postroom", Sample())
            dv = res.get("Dovecot")
            rep.row(label + " (msg/s)", fmt_sample(pr),
                    "Dovecot" if dv else "", fmt_sample(dv) if dv else None,
                    ratio_of(pr, dv), "report")
        if logins:
            a = benchlib.percentile(logins.get("postroom"), 50)
            b = benchlib.percentile(logins.get("Dovecot"), 50)
            rep.row("POP3 login USER/PASS, argon2id both, p50 (ms)",
                    fmt_num(a * 1000) if a else "n/a", "Dovecot" if b else "",
                    fmt_num(b * 1000) if b else None,
                    (a / b) if (a and b) else None, "report")

    # --- workload 4b: POP3 latency --------------------------------------

    def w_latency_pop3(self):
        pw = peers.password_for
        for sessions, per in sorted(self.c["lat_pop"].items()):
            users = [u + "@" + peers.DOMAIN
                     for u in self.conc_users(sessions)]
            res = {}
            for name, port, _pid in self.pop3_targets():
                res[name] = pop3client.retr_latency(
                    "127.0.0.1", port, users,
                    lambda a: pw(a.split("@")[0]), per,
                    warmup=max(1, per // 10))
            self.latency_rows("POP3 RETR 10 KiB, %d session%s" % (
                sessions, "s" if sessions > 1 else ""), res, "Dovecot")

    # --- workload 3: idle sessions --------------------------------------

    def w_idle(self):
        if not self.pr:
            return
        n = self.c["idle"]
        daemons = ("smtpd", "pop3d")
        limit = 64 * 1000 * 1000

        def pss():
            return {d: benchlib.tree_pss(self.pr.pid(d)) for d in daemons}

        # What the daemons hold after the workloads that ran before (heap
        # they did not give back); then each protocol is measured on
        # freshly started daemons, so the result does not depend on the
        # order of the workloads.
        kept = pss()
        self.report.row("PSS of postroom-smtpd / postroom-pop3d after the "
                        "workloads above",
                        "%s / %s" % (fmt_bytes(kept["smtpd"]),
                                     fmt_bytes(kept["pop3d"])),
                        "", None, None, "report")
        for proto, daemon, port, greeting in (
                ("SMTP", "smtpd", self.pr.smtp_port, b"220"),
                ("POP3", "pop3d", self.pr.pop3_port, b"+OK")):
            for d in daemons:
                self.pr.stop(d)
                self.pr.start(d)
            time.sleep(0.5)
            before = pss()
            sess = idle.IdleSessions("127.0.0.1", port, n, greeting)
            try:
                log("idle: %d %s connections" % (n, proto))
                greeted = sess.open()
                time.sleep(0.5)
                held = pss()
                alive = sess.alive()
            finally:
                sess.close()
            time.sleep(1.0)
            after = pss()
            total = sum(held.values())
            per = ((held[daemon] - before[daemon]) / greeted
                   if greeted else None)
            ok = greeted == n and alive == n and total < limit
            self.report.targets.append((
                "%d idle %s sessions: all greeted, total PSS of postroom "
                "< 64 MB" % (n, proto), ok,
                "%d greeted, %d still open, PSS %s (postroom-%s %s, "
                "postroom-%s %s)" % (
                    greeted, alive, fmt_bytes(total), daemon,
                    fmt_bytes(held[daemon]),
                    [d for d in daemons if d != daemon][0],
                    fmt_bytes(sum(v for d, v in held.items()
                                  if d != daemon)))))
            self.report.row(
                "%d idle %s sessions: postroom total PSS" % (n, proto),
                "%s (%s/conn)" % (fmt_bytes(total),
                                  fmt_bytes(per) if per is not None else "?"),
                "", None, None, "< 64 MB, all greeted", ok)
            self.report.detail(
                "- Idle %s: %d of %d greeted in %.1f s (%d failed), %d still "
                "open after 0.5 s. PSS smtpd / pop3d: %s / %s just started, "
                "%s / %s with them, %s / %s 1 s after they closed; "
                "postroom-%s grew by %s per connection." % (
                    proto, greeted, n, sess.seconds, sess.failed, alive,
                    fmt_bytes(before["smtpd"]), fmt_bytes(before["pop3d"]),
                    fmt_bytes(held["smtpd"]), fmt_bytes(held["pop3d"]),
                    fmt_bytes(after["smtpd"]), fmt_bytes(after["pop3d"]),
                    daemon, fmt_bytes(per) if per is not None else "n/a"))
            if greeted != n:
                raise RuntimeError("idle %s: only %d of %d greeted" % (
                    proto, greeted, n))

    # --- workload 5: CPU per message, fsyncs, profiles --------------------

    def w_cpu_rows(self):
        """CPU per message from the SMTP and POP3 runs above."""
        sm = self.samples.get("smtp", {})
        for key in ((10 * KiB, 10), (10 * KiB, 50)):
            if key not in sm:
                continue
            pr, pf, _sk, pr_cpu, pf_cpu = sm[key]
            self.report.row(
                "CPU per message, SMTP %s x %d (us, user+sys)" % (
                    size_label(key[0]), key[1]),
                fmt_sample(pr_cpu, scale=1e6), "Postfix" if pf_cpu else "",
                fmt_sample(pf_cpu, scale=1e6) if pf_cpu else None,
                ratio_of(pr_cpu, pf_cpu), "report (lower is better)")
        pop = self.samples.get("pop3", {})
        for (label, name), (_rate, cpu) in list(pop.items()):
            if name != "postroom" or "raw" not in label:
                continue
            dv = pop.get((label, "Dovecot"))
            self.report.row(
                "CPU per message, %s (us)" % label.replace(", raw client", ""),
                fmt_sample(cpu, scale=1e6), "Dovecot" if dv else "",
                fmt_sample(dv[1], scale=1e6) if dv else None,
                ratio_of(cpu, dv[1]) if dv else None,
                "report (lower is better)")

    def w_profile(self):
        self.w_cpu_rows()
        if not self.pr or self.args.smoke:
            return
        perf = shutil.which("perf")
        if perf:
            try:
                self.syscalls_per_message(perf)
            except Exception as e:
                self.report.error("system calls per message", e)
            try:
                self.profiles(perf)
            except Exception as e:
                self.report.error("perf profile", e)
        if shutil.which("valgrind") and self.c["cg_smtp"][0]:
            try:
                self.callgrind()
            except Exception as e:
                self.report.error("callgrind", e)

    def perf_count(self, perf, pid, events, action):
        """Counts events (perf stat, in kernel) of every thread of pid
        while action() runs; returns ({event: count}, action's result)."""
        out = os.path.join(self.tmp, "perf-stat.txt")
        p = subprocess.Popen(
            [perf, "stat", "-x", ",", "-o", out, "-e", ",".join(events),
             "-p", str(pid)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        try:
            res = action()
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=30)
        counts = {}
        with open(out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[2] in events:
                    try:
                        counts[parts[2]] = int(parts[0])
                    except ValueError:
                        raise RuntimeError("perf cannot count %s: %s" % (
                            parts[2], line.strip()))
        return counts, res

    def perf_record(self, perf, pid, action, title):
        """Flat CPU profile (cpu-clock samples, all threads of pid) while
        action() runs, into the details."""
        data = os.path.join(self.tmp, "perf.data")
        p = subprocess.Popen(
            [perf, "record", "-e", "cpu-clock", "-F", "2000", "-o", data,
             "-p", str(pid)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        try:
            action()
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=60)
        r = benchlib.run([perf, "report", "-i", data, "--stdio",
                          "--no-children", "--sort", "dso,sym",
                          "--percent-limit", "1"], timeout=120)
        lines = [ln for ln in r.stdout.splitlines()
                 if ln.strip() and not ln.startswith("#")]
        self.report.detail("")
        self.report.detail("### perf: %s (cpu-clock samples, self time "
                           ">= 1%%)" % title)
        self.report.detail("")
        self.report.detail("```")
        self.report.details += lines[:30]
        self.report.detail("```")

    SYSCALL_EVENTS = ["syscalls:sys_enter_fsync",
                      "syscalls:sys_enter_fdatasync",
                      "raw_syscalls:sys_enter", "context-switches"]

    def ensure_cg_maildrop(self):
        """The maildrop 'cg' (profiling) holds pop_user_msgs x 10 KiB."""
        n = self.c["pop_user_msgs"]
        have = self.pr.mailbox_count("cg")
        if have < n:
            self.send(self.pr.smtp_port, 10, n - have, 10 * KiB,
                      "cg@" + peers.DOMAIN)
        return n

    def syscalls_per_message(self, perf):
        """System calls, fsyncs and context switches of postroom-smtpd per
        message (10 KiB x 50) and of postroom-pop3d per RETR."""
        count = self.c["smtp_count"][10 * KiB]
        counts, t = self.perf_count(
            perf, self.pr.pid("smtpd"), self.SYSCALL_EVENTS,
            lambda: self.send(self.pr.smtp_port, 50, count, 10 * KiB,
                              "smtp@" + peers.DOMAIN))
        fs = (counts.get("syscalls:sys_enter_fsync", 0) +
              counts.get("syscalls:sys_enter_fdatasync", 0))
        per = fs / count
        self.report.row("fsync+fdatasync per message, SMTP 10 KiB x 50",
                        fmt_num(per), "", None, None,
                        "< 1 (group commit)", per < 1.0)
        self.report.targets.append((
            "group commit: fewer than one fsync per message (10 KiB x 50)",
            per < 1.0, "%d fsyncs for %d messages (%.0f msg/s during the "
            "count)" % (fs, count, count / t)))
        self.syscall_row("per message, SMTP 10 KiB x 50", counts, count)
        n = self.ensure_cg_maildrop()
        reps = 10
        sess = self.cg_session()
        try:
            counts, _ = self.perf_count(perf, self.pr.pid("pop3d"),
                                        self.SYSCALL_EVENTS,
                                        lambda: self.retr_all(sess, n, reps))
        finally:
            sess.quit()
        self.syscall_row("per RETR, POP3 10 KiB", counts, n * reps)

    def syscall_row(self, what, counts, n):
        """A report row: system calls and context switches per unit."""
        self.report.row(
            "system calls / context switches " + what,
            "%s / %s" % (fmt_num(counts.get("raw_syscalls:sys_enter", 0) / n),
                         fmt_num(counts.get("context-switches", 0) / n)),
            "", None, None, "report")

    def profiles(self, perf):
        count = self.c["smtp_count"][10 * KiB]
        self.perf_record(
            perf, self.pr.pid("smtpd"),
            lambda: self.send(self.pr.smtp_port, 50, count, 10 * KiB,
                              "smtp@" + peers.DOMAIN),
            "postroom-smtpd, SMTP %d x 10 KiB, 50 sessions" % count)
        n = self.ensure_cg_maildrop()
        sess = self.cg_session()
        try:
            self.perf_record(perf, self.pr.pid("pop3d"),
                             lambda: self.retr_all(sess, n, 40),
                             "postroom-pop3d, %d RETRs of 10 KiB on one "
                             "session (raw client)" % (40 * n))
        finally:
            sess.quit()

    def cg_session(self):
        """A logged-in raw POP3 session on the maildrop 'cg'."""
        c = pop3client.RawPop3("127.0.0.1", self.pr.pop3_port, timeout=600)
        c.login("cg@" + peers.DOMAIN, peers.password_for("cg"))
        return c

    @staticmethod
    def retr_all(sess, n, reps):
        for _ in range(reps):
            for i in range(1, n + 1):
                sess.retr(i)

    def callgrind(self):
        n, size, conc = self.c["cg_smtp"]
        pr = self.pr
        out_dir = self.args.callgrind_dir or self.tmp
        os.makedirs(out_dir, exist_ok=True)
        # Uncompressed names: every dump is readable on its own.
        prefix_of = lambda d: ["valgrind", "--tool=callgrind",
                               "--compress-strings=no", "--compress-pos=no",
                               "--callgrind-out-file=%s/callgrind.%s.%%p"
                               % (out_dir, d)]
        results = []
        # SMTP: n messages of size with conc sessions.
        pr.stop("smtpd")
        p = pr.start("smtpd", prefix=prefix_of("smtpd"), wait=120)
        try:
            self.send(pr.smtp_port, 1, 2, size, "smtp@" + peers.DOMAIN)
            benchlib.run(["callgrind_control", "-z", str(p.pid)], timeout=60)
            self.send(pr.smtp_port, conc, n, size, "smtp@" + peers.DOMAIN,
                      timeout=900)
            benchlib.run(["callgrind_control", "-d", "measured",
                          str(p.pid)], timeout=120)
        finally:
            pr.stop("smtpd", timeout=120)
        results.append(("postroom-smtpd",
                        "SMTP message %s (%d sessions)" % (size_label(size),
                                                           conc),
                        n, self.callgrind_file(out_dir, "smtpd", p.pid)))
        pr.start("smtpd")
        # POP3: RETR every message of the maildrop 'cg' `reps` times.
        reps = self.c["cg_pop_reps"]
        per_user = self.c["pop_user_msgs"]
        if reps:
            self.ensure_cg_maildrop()
            pr.stop("pop3d")
            p = pr.start("pop3d", prefix=prefix_of("pop3d"), wait=120)
            try:
                # Logins are argon2id by design; measure the transfer
                # path: one login, then RETRs over the same session.
                c = self.cg_session()
                self.retr_all(c, per_user, 1)
                benchlib.run(["callgrind_control", "-z", str(p.pid)],
                             timeout=60)
                self.retr_all(c, per_user, reps)
                benchlib.run(["callgrind_control", "-d", "measured",
                              str(p.pid)], timeout=120)
                c.quit()
            finally:
                pr.stop("pop3d", timeout=120)
            results.append(("postroom-pop3d",
                            "POP3 RETR 10 KiB (one session)",
                            reps * per_user,
                            self.callgrind_file(out_dir, "pop3d", p.pid)))
            pr.start("pop3d")
        for daemon, what, count, path in results:
            ir, top = callgrind_summary(path)
            self.report.row("callgrind: %s instructions per %s" % (daemon,
                                                                   what),
                            fmt_num(ir / count), "", None, None, "report")
            self.report.detail("")
            self.report.detail("### callgrind: %s, %d x %s (%s Ir per "
                               "message)" % (daemon, count, what,
                                             fmt_num(ir / count)))
            self.report.detail("")
            self.report.detail("```")
            self.report.details += top
            self.report.detail("```")

    @staticmethod
    def callgrind_file(out_dir, daemon, pid):
        base = os.path.join(out_dir, "callgrind.%s.%d" % (daemon, pid))
        cands = sorted(f for f in os.listdir(out_dir)
                       if f.startswith("callgrind.%s.%d." % (daemon, pid)))
        if not cands:
            raise RuntimeError("no callgrind dump for %s" % daemon)
        return os.path.join(out_dir, cands[-1]) if cands else base

    # --- driver ------------------------------------------------------------

    # bench/maildrop.py and bench/bigstore.py
    def w_maildrop(self):
        maildrop.run(self)

    def w_bigstore(self):
        bigstore.run(self)

    def run(self, which):
        steps = {
            "smtp": [self.w_smtp],
            "latency": [self.w_latency_smtp],
            "big": [self.w_big],
            "pop3": [self.w_pop3, self.w_latency_pop3],
            "idle": [self.w_idle],
            "profile": [self.w_profile],
            "maildrop": [self.w_maildrop],
            "bigstore": [self.w_bigstore],
            "tls": [lambda: tls.w_tls(self)],
            "memory": [lambda: memory.w_memory(self)],
        }
        for w in ALL_WORKLOADS:
            if w not in which:
                continue
            for fn in steps[w]:
                name = w if fn.__name__ == "<lambda>" else fn.__name__[2:]
                t = time.monotonic()
                try:
                    fn()
                except Exception as e:
                    self.report.error(name, e)
                    traceback.print_exc()
                log("%s done in %.1f s" % (name, time.monotonic() - t))


def size_label(n):
    if n % MiB == 0:
        return "%d MiB" % (n // MiB)
    if n % KiB == 0:
        return "%d KiB" % (n // KiB)
    if n % 1000000 == 0:
        return "%d MB" % (n // 1000000)
    return "%d B" % n


def callgrind_parse(path):
    """Reads a callgrind dump written with --compress-strings=no
    --compress-pos=no.  Returns (total Ir, self cost per function, cost
    including callees per function, self cost per source line); functions
    are (file, name, object) and lines (file, line)."""
    from collections import Counter
    self_c, incl, lines = Counter(), Counter(), Counter()
    ob = fl = fi = fn = None
    in_call = False
    total = 0
    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit():
                parts = line.split()
                if len(parts) < 2:
                    continue
                v = int(parts[1])
                key = (fl, fn, ob)
                incl[key] += v
                if in_call:
                    in_call = False
                else:
                    self_c[key] += v
                    lines[(fi or fl, int(parts[0]))] += v
                    total += v
            elif line.startswith("fn="):
                fn = line[3:].strip()
                fi = None
            elif line.startswith("fl="):
                fl = line[3:].strip()
                fi = None
            elif line.startswith(("fi=", "fe=")):
                fi = line[3:].strip()
            elif line.startswith("ob="):
                ob = line[3:].strip()
            elif line.startswith("calls="):
                in_call = True
    return total, self_c, incl, lines


def short_path(p):
    """Source paths relative to the tree (build dirs say 'BUILD/../x.c')."""
    if p is None:
        return "???"
    i = p.find("/../")
    if p.startswith(SRC_ROOT) and i >= 0:
        return os.path.normpath(p[i + 4:])
    if p.startswith(SRC_ROOT + "/"):
        return p[len(SRC_ROOT) + 1:]
    return p


def callgrind_summary(path, top=20):
    """Total Ir of a callgrind dump and report lines: the top functions by
    self cost (with their cost including callees), then the hottest
    source lines of the tree's own code."""
    total, self_c, incl, lines = callgrind_parse(path)
    if not total:
        raise RuntimeError("no costs in %s" % path)
    out = ["  self  incl.  function (object)"]
    for (fl, fn, ob), v in self_c.most_common(top):
        out.append("%5.1f%% %5.1f%%  %s:%s (%s)" % (
            100.0 * v / total, 100.0 * incl[(fl, fn, ob)] / total,
            short_path(fl), fn, os.path.basename(ob or "?")))
    own = [(k, v) for k, v in lines.most_common()
           if k[0] and k[0].startswith(SRC_ROOT)][:12]
    if own:
        out.append("")
        out.append("  hottest lines of postroom's own code (self Ir):")
        for (fl, ln), v in own:
            out.append("%5.1f%%  %s:%d" % (100.0 * v / total,
                                          short_path(fl), ln))
    return total, out


# --- machine description ------------------------------------------------------

def describe_machine(bench):
    d = {}
    d["date"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S %z")
    d["host"] = socket.gethostname()
    d["nproc"] = os.cpu_count()
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    d["cpu"] = cpu
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    d["memory"] = fmt_bytes(int(line.split()[1]) * 1024)
    except OSError:
        pass
    d["kernel"] = "%s %s" % (platform.system(), platform.release())
    try:
        with open("/etc/debian_version") as f:
            d["debian"] = f.read().strip()
    except OSError:
        pass
    d["loadavg"] = open("/proc/loadavg").read().split()[:3]
    if bench.tmp:
        r = benchlib.run(["df", "-T", bench.tmp], check=False)
        try:
            d["filesystem"] = r.stdout.splitlines()[1].split()[1]
        except IndexError:
            pass
    d["fsync"] = bench.fsync_s
    pk = {}
    for p in ("postfix", "dovecot-core", "dovecot-pop3d", "libsqlite3-0",
              "libuv1", "libsodium23", "libssl3", "python3", "valgrind",
              "linux-perf"):
        r = benchlib.run(["dpkg-query", "-W", "-f", "${Version}", p],
                         check=False)
        if r.returncode == 0 and r.stdout:
            pk[p] = r.stdout
    d["packages"] = pk
    try:
        with open(os.path.join(bench.build, "meson-info",
                               "intro-buildoptions.json")) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
        d["build"] = "buildtype=%s optimization=%s debug=%s c_args=%s" % (
            opts.get("buildtype"), opts.get("optimization"),
            opts.get("debug"), " ".join(opts.get("c_args", [])) or "-")
    except (OSError, ValueError, KeyError):
        d["build"] = "unknown"
    d["commit"] = benchlib.source_version(SRC_ROOT, bench.build)
    return d


def render(bench, machine, which):
    rep = bench.report
    c = bench.c
    out = []
    out.append("# postroom benchmarks, %s on %s" % (machine["date"][:10],
                                                  machine["host"]))
    out.append("")
    out.append("## Machine")
    out.append("")
    out.append("- %s CPUs: %s; memory %s; %s; Debian %s" % (
        machine["nproc"], machine["cpu"], machine.get("memory", "?"),
        machine["kernel"], machine.get("debian", "?")))
    out.append("- data on %s; one 4 KiB write+fdatasync: %s ms "
               "(one fsync per message caps at %s msg/s)" % (
                   machine.get("filesystem", "?"),
                   fmt_num(machine["fsync"] * 1000),
                   fmt_num(1 / machine["fsync"])))
    out.append("- packages: " + ", ".join(
        "%s %s" % kv for kv in sorted(machine["packages"].items())))
    out.append("- postroom %s, build: %s" % (machine["commit"],
                                             machine["build"]))
    out.append("- load average at the start: %s, at the end: %s (other "
               "work on the machine competes for the CPUs)" % (
                   " ".join(bench.load_start), " ".join(machine["loadavg"])))
    out.append("- workloads: %s; %d runs each (median, min–max); "
               "peers: %s" % (", ".join(which), c["runs"],
                              "Postfix %s (virtual(8) into Maildir), "
                              "smtp-sink, Dovecot POP3" % machine[
                                  "packages"].get("postfix", "")
                              if bench.peers else "none"))
    out.append("")
    out.append("## Results")
    out.append("")
    out.append(rep.table())
    out.append("")
    if rep.targets:
        out.append("## Targets")
        out.append("")
        for what, met, ev in rep.targets:
            out.append("- [%s] %s: %s" % ("x" if met else " ", what, ev))
        out.append("")
    if rep.details:
        out.append("## Details")
        out.append("")
        out += rep.details
        out.append("")
    if rep.errors:
        out.append("## Errors")
        out.append("")
        out += ["- " + e for e in rep.errors]
        out.append("")
    out.append("## Method")
    out.append("")
    out.append(METHOD)
    return "\n".join(out) + "\n"


METHOD = """\
- SMTP acceptance: `smtp-source -s C -m N -l S` (a new connection per
  message).  postroom answers 250 only after the message is committed
  (SQLite WAL, synchronous=FULL), so its rate is N / smtp-source's wall
  time.  Postfix's rate is N / time until the last message is in the
  Maildir (virtual(8) delivery, Postfix's default fsyncs).  smtp-sink
  accepts and discards: the ceiling of this client on this machine.
- POP3: USER/PASS, STAT, RETR 1..n, QUIT, nothing deleted; rate = n / time
  from STAT to the QUIT reply (the login, argon2id on both servers, is
  reported on its own).  One warm-up download per maildrop and server is
  not measured.  "poplib" is Python's poplib, "raw" reads 64 KiB at a time.
- Latency: one transaction = MAIL FROM .. final 250 of a 10 KiB message on
  an open session; one RETR of a 10 KiB message on an open session.
- Idle: connections from 127.0.0.2.. held after their greeting, on
  freshly restarted daemons; PSS is the sum of /proc/PID/smaps_rollup of
  postroom-smtpd and postroom-pop3d; 64 MB = 64,000,000 bytes.
- CPU per message: utime+stime (own and reaped children) of the server's
  process tree from /proc/PID/stat, divided by the messages of the run.
"""


# --- main ---------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get(
        "POSTROOM_BUILD_DIR", os.path.join(SRC_ROOT, "build-bench")))
    ap.add_argument("--runs", type=int, default=0,
                    help="runs per measurement (default 3)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply message and connection counts")
    ap.add_argument("--only", default=",".join(ALL_WORKLOADS),
                    help="comma-separated subset of: " +
                    ", ".join(ALL_WORKLOADS))
    ap.add_argument("--no-peers", action="store_true",
                    help="postroom only (no Postfix, smtp-sink, Dovecot)")
    ap.add_argument("--no-postroom", action="store_true",
                    help="peers only (to try the harness out)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny counts, postroom only, no results file")
    ap.add_argument("--tmp", default="/var/tmp",
                    help="directory for the servers' data (default "
                    "/var/tmp: on disk, not tmpfs)")
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument("--callgrind-dir", default=None,
                    help="keep callgrind dumps here")
    ap.add_argument("--store-messages", type=int, default=0,
                    help="messages of the bigstore workload's big store "
                    "(default 1,000,000, ~10 GiB)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    args = ap.parse_args()
    if args.smoke:
        args.no_peers = True
        args.no_results = True
        if not os.path.isdir(args.tmp) or not os.access(args.tmp, os.W_OK):
            args.tmp = tempfile.gettempdir()
    which = [w.strip() for w in args.only.split(",") if w.strip()]
    bad = [w for w in which if w not in ALL_WORKLOADS]
    if bad:
        ap.error("unknown workload(s): %s" % ", ".join(bad))
    for b in ("tools/postroom", "smtpd/postroom-smtpd", "pop3d/postroom-pop3d"):
        if not args.no_postroom and not os.access(os.path.join(args.build_dir, b), os.X_OK):
            ap.error("%s/%s is not built (ninja -C %s)" % (
                args.build_dir, b, args.build_dir))

    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    try:
        bench.setup()
        bench.run(which)
        machine = describe_machine(bench)
    finally:
        bench.teardown()
    text = render(bench, machine, which)
    print(text)
    log("total %.0f s" % (time.monotonic() - t0))
    if not args.no_results:
        os.makedirs(args.results_dir, exist_ok=True)
        # The TLS and memory workloads alone (--only tls,memory) have
        # a results file of their own.
        name = "tls" if set(which) <= {"tls", "memory"} else machine["host"]
        path = os.path.join(args.results_dir, "%s-%s.md" % (
            datetime.date.today().isoformat(), name))
        with open(path, "w") as f:
            f.write(text)
        log("results written to", path)
    return 1 if bench.report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
