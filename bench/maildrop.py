"""Workload "maildrop": a POP3 client that keeps its mail on the server.

A maildrop of N x 4 KiB messages (100,000 in a full run) is written with
the fast path (fill.py) into postroom's store and, the same messages,
into the Maildir Dovecot serves.  One session is: USER/PASS, STAT, UIDL,
LIST, RETR of the 10 newest, QUIT (nothing deleted).  Measured per
server: time from the PASS +OK to the +OK of UIDL (the snapshot the
login took plus STAT), to the end of the UIDL listing, the whole session
from the connection to the QUIT reply, and the peak RSS the session adds
to the serving process (postroom-pop3d: VmHWM after the RETRs minus VmRSS
before the session, the peak reset through /proc/PID/clear_refs;
Dovecot: VmHWM of its per-session pop3 process).

Then a session DELEs half of the maildrop and QUITs (RFC 1939 6: one
UPDATE): the time to the QUIT's +OK (postroom answers once the deletion
is recorded, docs/ARCHITECTURE.md "Big maildrops"), the time until the
last of them is gone from the store (the slices that follow in the
background), and the latency of deliveries to another user that a
client keeps sending meanwhile.
"""

import os
import sqlite3
import statistics
import threading
import time

import sys

import benchlib
import fill
import peers
import pop3client
import smtpclient
from benchlib import Sample, fmt_num, fmt_sample

USER = "mdrop"
OTHER = "mdlv"
SIZE = 4096
NEWEST = 10


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def _status_kib(pid, field):
    """field of /proc/PID/status, in bytes (0 when pid is gone)."""
    return benchlib._proc_kib_field(pid, "status", field)


def _reset_hwm(pid):
    """Resets the peak RSS of pid to its current RSS (proc(5),
    clear_refs 5); False where the kernel does not allow it."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _dovecot_pop3(dv_pid):
    """pids of Dovecot's per-session pop3 processes."""
    out = []
    for p in benchlib.tree(dv_pid):
        try:
            with open("/proc/%d/comm" % p) as f:
                if f.read().strip() == "pop3":
                    out.append(p)
        except OSError:
            pass
    return out


def session(port, addr, password, n, server_pid=None, dovecot=False):
    """One keep-on-server session; returns a dict of seconds and bytes."""
    t0 = time.perf_counter()
    p = pop3client.RawPop3("127.0.0.1", port, timeout=600)
    rss0 = anon0 = 0
    if server_pid and not dovecot:
        anon0 = _status_kib(server_pid, "RssAnon:")
        rss0 = _status_kib(server_pid, "VmRSS:")
    p.login(addr, password)
    t1 = time.perf_counter()
    if server_pid and not dovecot:
        # argon2id's 64 MiB (a pool thread's, unmapped again) would mask
        # the session's own peak: the peak restarts from the RSS now,
        # which holds the maildrop snapshot the login took.
        _reset_hwm(server_pid)
    count, _octets = p.stat()
    if count != n:
        raise pop3client.Pop3Error("%s: STAT says %d, expected %d" % (
            addr, count, n))
    p.s.sendall(b"UIDL\r\n")
    line = p._line()
    t_uidl = time.perf_counter()
    if not line.startswith(b"+OK"):
        raise pop3client.Pop3Error("UIDL: %r" % line)
    lines = _rest_lines(p)
    t_uidl_end = time.perf_counter()
    if len(lines) != n:
        raise pop3client.Pop3Error("UIDL: %d lines, expected %d" % (
            len(lines), n))
    p.s.sendall(b"LIST\r\n")
    if not p._line().startswith(b"+OK"):
        raise pop3client.Pop3Error("LIST refused")
    if len(_rest_lines(p)) != n:
        raise pop3client.Pop3Error("LIST is short")
    for i in range(max(1, n - NEWEST + 1), n + 1):
        p.retr(i)
    peak = anon = 0
    if server_pid and not dovecot:
        peak = _status_kib(server_pid, "VmHWM:") - rss0
        anon = _status_kib(server_pid, "RssAnon:") - anon0
    elif server_pid:
        kids = _dovecot_pop3(server_pid)
        peak = max([_status_kib(q, "VmHWM:") for q in kids] or [0])
        anon = max([_status_kib(q, "RssAnon:") for q in kids] or [0])
    p.quit()
    t2 = time.perf_counter()
    return {"to_uidl": t_uidl - t0, "pass_uidl": t_uidl - t1,
            "uidl_end": t_uidl_end - t0, "session": t2 - t0, "peak": peak,
            "anon": anon}


def _rest_lines(p):
    """The lines of a multi-line reply up to the terminating dot."""
    data = p.pending
    while not (data.endswith(b"\r\n.\r\n") or data == b".\r\n"):
        d = p.s.recv(65536)
        if not d:
            raise pop3client.Pop3Error("connection closed in a listing")
        data += d
    p.pending = b""
    body = data[:-3]
    return body.split(b"\r\n")[:-1] if body else []


class Deliveries:
    """Keeps sending 4 KiB messages to OTHER, one open session, and
    records (start time, seconds) of each transaction."""

    def __init__(self, port, rcpt):
        self.port, self.rcpt = port, rcpt
        self.stop = threading.Event()
        self.lat = []
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        msg = smtpclient.make_message(SIZE, fill.SENDER, self.rcpt, "dl")
        try:
            c = smtpclient.RawSmtp("127.0.0.1", self.port)
            while not self.stop.is_set():
                t = time.perf_counter()
                self.lat.append((t, c.transaction(fill.SENDER, self.rcpt,
                                                  msg)))
            c.quit()
        except Exception as e:  # reported by the caller
            self.error = e

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(timeout=120)


def stored(pr, addr):
    """addr's message counter, read from mail.db (read-only): a
    `postroom mailbox list` would finish a recorded deletion itself."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(
        pr.data_dir, "mail.db"), uri=True, timeout=30)
    try:
        row = db.execute("SELECT messages FROM users WHERE address = ?",
                         (addr,)).fetchone()
    finally:
        db.close()
    return row[0] if row else 0


def delete_half(port, addr, password, n):
    """DELE of the older half, QUIT; returns (QUIT seconds, t0, t1)."""
    p = pop3client.RawPop3("127.0.0.1", port, timeout=600)
    p.login(addr, password)
    half = n // 2
    # Pipelined in blocks: the DELEs are not what is measured.
    for lo in range(1, half + 1, 500):
        hi = min(half, lo + 499)
        p.s.sendall(b"".join(b"DELE %d\r\n" % i for i in range(lo, hi + 1)))
        for _ in range(lo, hi + 1):
            line = p._line()
            if not line.startswith(b"+OK"):
                raise pop3client.Pop3Error("DELE: %r" % line)
    t0 = time.perf_counter()
    p.quit()
    t1 = time.perf_counter()
    return t1 - t0, t0, t1


def run(bench):
    """The workload, rows into bench.report."""
    rep = bench.report
    n = bench.c["maildrop"]
    addr = "%s@%s" % (USER, peers.DOMAIN)
    pw = peers.password_for(USER)
    pr, dv = bench.pr, bench.dv
    if pr is None:
        return
    log("maildrop: filling %d x %d octets" % (n, SIZE))
    t = time.monotonic()
    pr.stop("pop3d")
    pr.stop("smtpd")
    db = os.path.join(pr.data_dir, "mail.db")
    fill.fill_store(db, [(addr, n)], SIZE)
    fill_s = time.monotonic() - t
    r = benchlib.run([pr.bin["cli"], "-c", pr.inst.config,
                      "verify"], env=pr.inst.env(), check=False,
                     timeout=1800)
    if r.returncode != 0:
        raise RuntimeError("postroom verify after the fill: %s" % (
            r.stderr.strip() or r.stdout.strip()))
    pr.start("smtpd")
    pr.start("pop3d")
    targets = [("postroom", pr.pop3_port, pr.pid("pop3d"), False)]
    if dv is not None:
        uid, gid = peers.bench_ids()
        fill.fill_maildir(os.path.join(bench.tmp, "vmail", USER, "Maildir"), addr, n,
                          SIZE, uid, gid)
        targets.append(("Dovecot", dv.port, dv.pid, True))
    rep.detail("- maildrop: %d x %d octets written with the fast path "
               "(bench/fill.py) in %.1f s; `postroom verify` "
               "passed" % (n, SIZE, fill_s))
    # One unmeasured session each: Dovecot builds its index and cache
    # (it reads every file once), both servers warm the page cache.
    for name, port, pid, dov in targets:
        session(port, addr, pw, n)
    res = {name: {k: Sample() for k in ("to_uidl", "pass_uidl", "uidl_end",
                                        "session", "peak", "anon")}
           for name, *_ in targets}
    for _ in range(bench.c["runs"]):
        for name, port, pid, dov in targets:
            s = session(port, addr, pw, n, pid, dov)
            for k, v in s.items():
                res[name][k].add(v)
    pv = res["postroom"]
    dvr = res.get("Dovecot")
    label = "POP3 keep-on-server, %d x 4 KiB" % n
    for key, what, target, need in (
            ("to_uidl", "connect to UIDL +OK (ms)", ">= 2x faster", 2.0),
            ("pass_uidl", "PASS +OK to UIDL +OK (ms)", "report", None),
            ("uidl_end", "connect to the end of UIDL (ms)", "report", None),
            ("session", "whole session (ms)", ">= 2x faster", 2.0)):
        a = pv[key]
        b = dvr[key] if dvr else None
        ratio = (b.median / a.median) if (b and a.median) else None
        met = None if (ratio is None or need is None) else ratio >= need
        if met is not None:
            rep.targets.append(("%s, %s: postroom %s" % (label, what,
                                                         target), met,
                                "%.2fx" % ratio))
        rep.row("%s: %s" % (label, what), fmt_sample(a, scale=1000),
                "Dovecot" if b else "", fmt_sample(b, scale=1000)
                if b else None, ratio, target, met)
    for key, what in (("peak", "peak RSS of the session, mapped file "
                       "pages included (MiB)"),
                      ("anon", "heap (RssAnon) held after the RETRs (MiB)")):
        a = pv[key]
        b = dvr[key] if dvr else None
        rep.row("%s: %s" % (label, what),
                fmt_sample(a, scale=1.0 / (1 << 20)),
                "Dovecot pop3" if b else "",
                fmt_sample(b, scale=1.0 / (1 << 20)) if b else None,
                (b.median / a.median) if (b and a.median) else None,
                "bounded", None)
    rep.detail("- peak RSS: postroom-pop3d's VmHWM after the RETRs minus "
               "its VmRSS before the session (peak reset with clear_refs "
               "5), which counts the pages of mail.db the session touched "
               "through SQLite's mmap (page cache, shared and "
               "reclaimable); heap: RssAnon after the RETRs minus before "
               "the session.  Dovecot: VmHWM and RssAnon of the session's "
               "pop3 process (its whole process)")
    # The QUIT that deletes half, with deliveries to another user.
    base = Deliveries(pr.smtp_port, "%s@%s" % (OTHER, peers.DOMAIN))
    with base:
        time.sleep(2 if not bench.args.smoke else 0.3)
    with Deliveries(pr.smtp_port, "%s@%s" % (OTHER, peers.DOMAIN)) as d:
        time.sleep(0.5 if not bench.args.smoke else 0.1)
        quit_s, q0, q1 = delete_half(pr.pop3_port, addr, pw, n)
        # The slices after the +OK: until the store holds the other
        # half only (a read of the file, not a login, which would
        # finish the deletion itself).
        deadline = time.monotonic() + 600
        while stored(pr, addr) > n - n // 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the QUIT's deletion does not finish")
            time.sleep(0.02)
        q2 = time.perf_counter()
        time.sleep(0.2)
    for x in (base, d):
        if x.error:
            raise RuntimeError("deliveries: %s" % x.error)
    during = [s for (t, s) in d.lat if t < q2 and t + s > q0]
    left = pop3client.RawPop3("127.0.0.1", pr.pop3_port)
    left.login(addr, pw)
    cnt, _ = left.stat()
    left.quit()
    if cnt != n - n // 2:
        raise RuntimeError("after the QUIT %d messages remain, expected %d"
                           % (cnt, n - n // 2))
    rep.row("POP3 QUIT deleting %d of %d: to its +OK (ms)" % (n // 2, n),
            fmt_num(quit_s * 1000), "", None, None, "report", None)
    rep.row("POP3 QUIT deleting %d of %d: until the last is deleted (ms)"
            % (n // 2, n), fmt_num((q2 - q0) * 1000), "", None, None,
            "report", None)
    bl = [s for _t, s in base.lat]
    rep.row("SMTP delivery to another user during that deletion: max, "
            "p50 (ms)", "%s, %s (%d msgs)" % (
                fmt_num(max(during) * 1000) if during else "n/a",
                fmt_num(statistics.median(during) * 1000) if during
                else "n/a", len(during)),
            "same, no QUIT", "%s, %s" % (
                fmt_num(max(bl) * 1000) if bl else "n/a",
                fmt_num(statistics.median(bl) * 1000) if bl else "n/a"),
            None, "deliveries keep flowing", None)
    bench.samples.setdefault("maildrop", {})["quit_s"] = quit_s
