"""The fast path that fills a store (and a Maildir) without SMTP.

Filling 100,000 messages through postroom-smtpd would take longer than
the workloads that read them, so the big-maildrop and big-store
workloads write the rows delivery writes (store/store_deliver.c) with one
SQLite bulk insert per batch: a bodies row (msgid, sender, size, created,
data as CRLF text) and a mailbox row (user_id, body_id, size, a UIDL as
delivery makes it: 32 hex digits, an arrival time in milliseconds then 80
random bits, the times spread over the year before now, received) per
message.  The mailbox
triggers of the schema keep the users' counters, exactly as for a
delivery; `postroom verify` checks the store's invariants
afterwards (docs/BACKUP.md 3).  The daemons must not run while a store is
filled: the rows go in with synchronous=OFF, and the file is synced once
at the end.

The same messages go into a Maildir for Dovecot (LF line ends, as
Postfix's virtual(8) writes them, file names as Postfix makes them).
"""

import os
import secrets
import sqlite3
import time

SENDER = "bench@client.test"
BATCH = 5000


def message(i, size, rcpt, crlf=True):
    """Message number i for rcpt: exactly size octets as stored (CRLF
    line ends), with the Return-Path and Received fields delivery
    prepends."""
    nl = "\r\n" if crlf else "\n"
    head = nl.join([
        "Return-Path: <%s>" % SENDER,
        "Received: from client.test ([127.0.0.1])",
        " by mx.bench.test (postroom) with ESMTP id %016x" % i,
        " for <%s>; Tue, 1 Dec 2026 12:00:00 +0000" % rcpt,
        "From: <%s>" % SENDER,
        "To: <%s>" % rcpt,
        "Subject: bench message %d" % i,
        "Message-ID: <%d.%s@client.test>" % (i, rcpt.replace("@", ".")),
        "Date: Tue, 1 Dec 2026 12:00:00 +0000",
        "", ""])
    # The body fills the rest in lines of 76 octets + line end, counted
    # as stored (CRLF), so that every message has the size asked for.
    stored_head = len(head) + (0 if crlf else head.count("\n"))
    left = size - stored_head
    line = "x" * 76
    body = []
    while left >= 78:
        body.append(line)
        left -= 78
    if left >= 2:
        body.append("y" * (left - 2))
    text = head + nl.join(body) + (nl if body else "")
    return text.encode()


def user_ids(conn):
    return {a: i for i, a in conn.execute("SELECT id, address FROM users")}


def add_users(db_path, addresses, like):
    """Adds users by address (rows as `postroom user add` writes them),
    all with the password hash of user like: filler users that never log
    in cost no argon2id run each."""
    conn = sqlite3.connect(db_path)
    try:
        dom, h = conn.execute("SELECT domain_id, hash FROM users"
                              " WHERE address = ?", (like,)).fetchone()
        now = int(time.time())
        with conn:
            conn.executemany(
                "INSERT OR IGNORE INTO users (domain_id, address, hash,"
                " created) VALUES (?, ?, ?, ?)",
                [(dom, a, h, now) for a in addresses])
    finally:
        conn.close()


def fill_store(db_path, plan, size):
    """plan: [(address, count)], messages of size octets each, delivered
    in rounds over the users (one message per user per round, as mail
    arrives), so that a user's rows are spread over the file as on a
    store that grew over years.  Returns the messages written."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    total = 0
    try:
        conn.execute("PRAGMA synchronous = OFF")
        ids = user_ids(conn)
        remaining = [(ids[a], a, n) for a, n in plan if n > 0]
        now = int(time.time())
        # The UIDLs' times: a year of arrivals, in order, ending now.
        total_plan = sum(n for _a, n in plan)
        t_ms = (now - 365 * 86400) * 1000
        step_ms = max(1, 365 * 86400 * 1000 // max(1, total_plan))
        bodies = {}
        conn.execute("BEGIN")
        in_batch = 0
        rnd = 0
        while remaining:
            nxt = []
            for uid, addr, n in remaining:
                if addr not in bodies:
                    bodies[addr] = message(0, size, addr)
                data = bodies[addr]
                cur = conn.execute(
                    "INSERT INTO bodies (msgid, sender, size, created, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (secrets.token_hex(8), SENDER, len(data), now, data))
                conn.execute(
                    "INSERT INTO mailbox (user_id, body_id, size, uidl,"
                    " received) VALUES (?, ?, ?, ?, ?)",
                    (uid, cur.lastrowid, len(data), "%012x%s" % (
                        t_ms & 0xffffffffffff, secrets.token_hex(10)), now))
                t_ms += step_ms
                total += 1
                in_batch += 1
                if in_batch >= BATCH:
                    conn.execute("COMMIT")
                    conn.execute("BEGIN")
                    in_batch = 0
                if n > 1:
                    nxt.append((uid, addr, n - 1))
            remaining = nxt
            rnd += 1
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    fd = os.open(db_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return total


def fill_maildir(maildir, rcpt, count, size, uid=None, gid=None):
    """count messages for rcpt into maildir/cur, the same text as the
    store's but with LF line ends (Dovecot sends them as CRLF)."""
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    data = message(0, size, rcpt, crlf=False)
    base = int(time.time())
    cur = os.path.join(maildir, "cur")
    for i in range(count):
        # Postfix's virtual(8) names: time.Vdev.Iino.host; Seen flag off.
        name = "%d.V801I%xM%d.bench:2," % (base, i + 1, i)
        with open(os.path.join(cur, name), "wb") as f:
            f.write(data)
    if uid is not None:
        for dirpath, dirs, files in os.walk(os.path.dirname(maildir)):
            os.chown(dirpath, uid, gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), uid, gid)
