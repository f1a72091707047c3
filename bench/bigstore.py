"""Workload "bigstore": does postroom slow down as its store grows?

A postroom instance of its own is measured twice: on an empty store, and
after the fast path (fill.py) has written M messages of 10 KiB spread
over U users (1,000,000 over 1,000 in a full run: ~10 GiB; --store-messages
sets M for a smaller disk or a shorter run).  Each time:

- SMTP 10 KiB x 10: smtp-source (or bench/smtpclient.py) with 10
  sessions, a new connection per message; the rate on the big store should
  be >= 90% of the empty one's.
- POP3 login + STAT on a maildrop of 10 messages inside the store: the
  time from the PASS +OK to the STAT +OK (p50 < 2 ms), and the login
  itself (USER..PASS +OK, argon2id included) as a row of its own.  The
  maildrop is locked and listed before the PASS +OK, so the login row
  holds the store's work of a login.

The query plans of the statements a delivery and a login run are written
into the results (EXPLAIN QUERY PLAN), so that a plan that scans shows.
"""

import os
import shutil
import sqlite3
import sys
import time

import benchlib
import fill
import peers
import pop3client
from benchlib import Sample, fmt_num, fmt_sample

KiB = 1024
SINK = "bsink"
SMALL = "bsmall"
SMALL_N = 10

# The hot statements of a delivery and a login (store/store_deliver.c,
# store/store_users.c), with representative arguments.
PLANS = [
    ("maildrop listing", "SELECT id, size, received, uidl FROM mailbox"
     " WHERE user_id = 2 ORDER BY id"),
    ("quota check", "SELECT used, messages, quota FROM users WHERE id = 2"),
    ("login lookup", "SELECT id, hash FROM users WHERE address ="
     " 'bsmall@bench.test'"),
    ("delete at QUIT", "DELETE FROM mailbox WHERE id = 5 AND user_id = 2"),
    ("body refcount", "SELECT 1 FROM mailbox WHERE body_id = 5"),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def login_stat(port, addr, password, n, expect):
    """n sessions of USER/PASS, STAT, QUIT; returns (login seconds,
    PASS +OK to STAT +OK seconds) lists."""
    lg, st = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        p = pop3client.RawPop3("127.0.0.1", port)
        p.login(addr, password)
        t1 = time.perf_counter()
        cnt, _ = p.stat()
        t2 = time.perf_counter()
        p.quit()
        if cnt != expect:
            raise pop3client.Pop3Error("STAT says %d, expected %d" % (
                cnt, expect))
        lg.append(t1 - t0)
        st.append(t2 - t1)
    return lg, st


def measure(bench, pr, label):
    c = bench.c
    count, conc = c["bigstore_smtp"]
    rcpt = "%s@%s" % (SINK, peers.DOMAIN)
    rate = Sample()
    bench.send(pr.smtp_port, conc, max(1, count // 5), 10 * KiB, rcpt)
    for _ in range(c["runs"]):
        t = bench.send(pr.smtp_port, conc, count, 10 * KiB, rcpt)
        rate.add(count / t)
    addr = "%s@%s" % (SMALL, peers.DOMAIN)
    login_stat(pr.pop3_port, addr, peers.password_for(SMALL), 3, SMALL_N)
    lg, st = login_stat(pr.pop3_port, addr, peers.password_for(SMALL),
                        c["bigstore_logins"], SMALL_N)
    log("bigstore %s: %.0f msg/s, STAT p50 %.2f ms" % (
        label, rate.median, benchlib.percentile(st, 50) * 1000))
    return rate, lg, st


def plans(db):
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    out = []
    try:
        for what, sql in PLANS:
            rows = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            out.append("  - %s: %s" % (what, "; ".join(r[-1] for r in rows)))
    finally:
        conn.close()
    return out


def run(bench):
    if bench.args.no_postroom:
        return
    c = bench.c
    rep = bench.report
    nusers, nmsgs = c["bigstore"]
    if bench.args.store_messages:
        nmsgs = bench.args.store_messages
    need = nmsgs * 11 * KiB
    free = shutil.disk_usage(bench.tmp).free
    if need > free * 0.8:
        raise RuntimeError("bigstore: %d messages need ~%.1f GiB, %s has "
                           "%.1f GiB free (use --store-messages)" % (
                               nmsgs, need / 2 ** 30, bench.tmp,
                               free / 2 ** 30))
    tmp = os.path.join(bench.tmp, "bigstore")
    os.makedirs(tmp)
    pr = peers.Postroom(tmp, [SINK, SMALL], bench.build)
    try:
        db = os.path.join(pr.data_dir, "mail.db")
        small = "%s@%s" % (SMALL, peers.DOMAIN)
        fill.fill_store(db, [(small, SMALL_N)], 4 * KiB)
        pr.start("smtpd")
        pr.start("pop3d")
        e_rate, e_lg, e_st = measure(bench, pr, "empty")
        pr.stop()
        fillers = ["f%05d@%s" % (i, peers.DOMAIN) for i in range(nusers)]
        fill.add_users(db, fillers, small)
        per = nmsgs // nusers
        log("bigstore: filling %d messages of 10 KiB over %d users" % (
            per * nusers, nusers))
        t = time.monotonic()
        got = fill.fill_store(db, [(a, per) for a in fillers], 10 * KiB)
        fill_s = time.monotonic() - t
        size = os.path.getsize(db)
        t = time.monotonic()
        benchlib.run([pr.bin["cli"], "-c", pr.inst.config,
                      "verify"], env=pr.inst.env(), timeout=3600)
        verify_s = time.monotonic() - t
        # A cold start on the big file, as after a reboot or an upgrade.
        pr.start("smtpd", wait=120)
        pr.start("pop3d", wait=120)
        b_rate, b_lg, b_st = measure(bench, pr, "big")
        ratio = b_rate.median / e_rate.median if e_rate.median else None
        met = ratio is not None and ratio >= 0.9
        label = "%d messages, %.1f GiB" % (got, size / 2 ** 30)
        rep.row("SMTP 10 KiB x 10 on an empty store (msg/s)",
                fmt_sample(e_rate), "", None, None, "", None)
        rep.row("SMTP 10 KiB x 10 on a store of %s (msg/s)" % label,
                fmt_sample(b_rate), "empty store", fmt_sample(e_rate),
                ratio, ">= 0.9x the empty store", met)
        rep.targets.append(("SMTP 10 KiB x 10 on a store of %s >= 90%% of "
                            "the empty store's rate" % label, met,
                            "%.2fx" % (ratio or 0)))
        for what, st, lg in (("empty store", e_st, e_lg),
                             ("store of " + label, b_st, b_lg)):
            p50 = benchlib.percentile(st, 50)
            big = what != "empty store"
            rep.row("POP3 PASS +OK to STAT +OK, %d-message maildrop, %s, "
                    "p50 (ms)" % (SMALL_N, what), fmt_num(p50 * 1000),
                    "", None, None, "< 2 ms" if big else "",
                    (p50 < 0.002) if big else None)
            if big:
                rep.targets.append((
                    "POP3 STAT after login on a store of %s < 2 ms p50"
                    % label, p50 < 0.002, "%.3f ms" % (p50 * 1000)))
            rep.row("POP3 login USER..PASS +OK (argon2id included), %s, "
                    "p50 (ms)" % what,
                    fmt_num(benchlib.percentile(lg, 50) * 1000), "", None,
                    None, "report", None)
        rep.detail("- bigstore: %d users x %d messages of 10 KiB written "
                   "with the fast path in %.0f s; `postroom verify` "
                   "of the %.1f GiB store: %.0f s" % (
                       nusers, per, fill_s, size / 2 ** 30, verify_s))
        rep.detail("- bigstore query plans on the big store:")
        rep.details += plans(db)
    finally:
        pr.close()
