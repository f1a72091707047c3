#!/usr/bin/env python3
"""postroom backup, restore and verify (docs/BACKUP.md) against running
daemons.

A backup is taken while 2,000 messages arrive over SMTP from several
clients and 20 POP3 sessions download and delete mail; it is restored into
a fresh data_dir and verified, and every message that had its 250 before
the backup started is in the restored store exactly once.  A backup with
one octet changed (in the database, the MANIFEST, a DKIM key) is refused
and leaves the store as it was; restore is refused while either daemon
runs; a backup of a newer schema is refused; `postroom verify` reports
inconsistencies made with the sqlite3 CLI, one line each, and --repair
puts right the ones it says it can.
"""

import hashlib
import io
import os
import poplib
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import BIN, Instance, wait_for  # noqa: E402
from tap import Check, skip  # noqa: E402

DOMAIN = "example.test"
PASSWORD = "backup-test-pw"
N_BURST = 2000
N_CLIENTS = 8
BURST_USERS = ["b%d@%s" % (i, DOMAIN) for i in range(10)]
POP_USERS = ["p%02d@%s" % (i, DOMAIN) for i in range(20)]
POP_PRELOAD = 10

t = Check()
if shutil.which("sqlite3") is None:
    skip("the sqlite3 CLI is not installed")


def message(tag, rcpt, body_lines=20):
    return ("From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@remote.test>\r\nX-Burst-Id: %s\r\n\r\n%s" % (
                rcpt, tag, tag, tag,
                "".join("line %d of %s\r\n" % (i, tag)
                        for i in range(body_lines))))


def sqlite(path, sql):
    """Runs sql with Debian's sqlite3 CLI (foreign keys off, as a
    careless hand would have them)."""
    return subprocess.run(["sqlite3", path, sql], capture_output=True,
                          text=True, timeout=60)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def stored_ids(inst):
    """X-Burst-Id of every mailbox entry in inst's store, with repeats."""
    with inst.db() as c:
        rows = c.execute("SELECT b.data FROM mailbox m"
                         " JOIN bodies b ON b.id = m.body_id").fetchall()
    ids = []
    for (data,) in rows:
        m = re.search(rb"\r\nX-Burst-Id: (\S+)\r\n", bytes(data))
        if m:
            ids.append(m.group(1).decode())
    return ids


def member_offset(path, name):
    """Where the data of member name starts in the tar file path."""
    with tarfile.open(path) as tf:
        return tf.getmember(name).offset_data


def flip(src, dst, offset):
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def fresh(name):
    """A second installation (its own config and data_dir), no daemons."""
    inst = Instance(hostname="restored.example.test",
                    extra={"relay": {"enabled": "false"}})
    # Instance() ran `postroom init`: start from an empty data_dir, as an
    # admin restoring onto a new machine does.
    shutil.rmtree(inst.data_dir)
    return inst


src = Instance(extra={"relay": {"enabled": "false"},
                      "pop3": {"max_connections_per_ip": "0"}})
dst = bad = None
try:
    src.add_domain(DOMAIN)
    for u in BURST_USERS + POP_USERS:
        src.add_user(u, PASSWORD)
    src.cli("alias", "add", "all-b@" + DOMAIN, ",".join(BURST_USERS))
    src.cli("dkim", "keygen", DOMAIN)
    key = os.path.join(src.data_dir, "dkim", DOMAIN, "postroom.key")
    # The MTA-STS policy last written (`postroom dns` prints its id).
    src.cli("mta-sts", DOMAIN, "--mode", "enforce")
    policy = os.path.join(src.data_dir, "mta-sts", DOMAIN + ".txt")
    src.start("smtpd")
    src.start("pop3d")

    # Mail for the POP3 sessions to download and delete during the backup.
    with smtplib.SMTP(src.host, src.ports["smtp"], timeout=120) as s:
        for i in range(POP_PRELOAD):
            s.sendmail("sender@remote.test", POP_USERS,
                       message("pre-%d" % i, "pop users"))

    # --- the burst --------------------------------------------------------
    acked = []          # burst ids in the order their 250 came back
    refused = []
    lock = threading.Lock()

    def client(c):
        n = N_BURST // N_CLIENTS
        s = smtplib.SMTP(src.host, src.ports["smtp"], timeout=300)
        try:
            for i in range(n):
                tag = "burst-%d-%d" % (c, i)
                rcpt = BURST_USERS[(c * n + i) % len(BURST_USERS)]
                try:
                    s.sendmail("sender@remote.test", [rcpt],
                               message(tag, rcpt))
                except smtplib.SMTPException as e:
                    with lock:
                        refused.append((tag, repr(e)))
                    continue
                with lock:
                    acked.append(tag)
        finally:
            try:
                s.quit()
            except Exception:
                pass

    pop_results = []

    def pop_session(u):
        try:
            p = poplib.POP3(src.host, src.ports["pop3"], timeout=300)
            p.user(u)
            p.pass_(PASSWORD)
            n = len(p.list()[1])
            for i in range(1, n + 1):
                p.retr(i)
                p.dele(i)
            p.quit()
            r = n
        except Exception as e:
            r = e
        with lock:
            pop_results.append(r)

    clients = [threading.Thread(target=client, args=(c,))
               for c in range(N_CLIENTS)]
    for th in clients:
        th.start()
    # The backup starts in the middle of the burst.
    t.ok(wait_for(lambda: len(acked) >= N_BURST // 3, timeout=600),
         "a third of the burst acknowledged before the backup",
         "%d acked, refused %r" % (len(acked), refused[:3]))
    pops = [threading.Thread(target=pop_session, args=(u,))
            for u in POP_USERS]
    for th in pops:
        th.start()
    with lock:
        before = list(acked)
    archive = os.path.join(src.tmp, "backup.tar")
    t0 = time.monotonic()
    b = src.cli("backup", archive, check=False)
    took = time.monotonic() - t0
    with lock:
        during = len(acked) - len(before)
    t.eq(b.returncode, 0, "backup under load exits 0")
    t.ok(b.stderr == "", "backup says nothing on stderr", b.stderr)
    print("# backup taken after %d acks; %d more came in during its %.1f s"
          % (len(before), during, took))
    for th in clients + pops:
        th.join(600)
    t.eq(len(acked), N_BURST, "all %d burst messages acknowledged" %
         N_BURST)
    t.eq(refused, [], "no burst message refused")
    t.ok(all(r == POP_PRELOAD for r in pop_results) and
         len(pop_results) == len(POP_USERS),
         "20 POP3 sessions downloaded and deleted during the backup",
         repr(pop_results))
    t.ok(not b.returncode and os.path.exists(archive), "the archive exists")
    t.eq(os.stat(archive).st_mode & 0o777, 0o600, "the archive is 0600")
    print("# archive: %d octets" % os.path.getsize(archive))

    with tarfile.open(archive) as tf:
        names = tf.getnames()
        manifest = tf.extractfile("MANIFEST").read().decode()
    t.eq(names[0], "MANIFEST", "MANIFEST is the first member")
    t.ok("mail.db" in names and
         "dkim/%s/postroom.key" % DOMAIN in names and
         "mta-sts/%s.txt" % DOMAIN in names,
         "the archive holds mail.db, the DKIM key and the MTA-STS policy",
         repr(names))
    t.ok(manifest.startswith("postroom-backup 1\n") and
         re.search(r"^schema \d+$", manifest, re.M) and
         re.search(r"^users %d$" % (len(BURST_USERS) + len(POP_USERS)),
                   manifest, re.M) and
         re.search(r"^file mail\.db \d+ [0-9a-f]{64}$", manifest, re.M),
         "the MANIFEST has the format, schema, counts and checksums",
         manifest)

    # `-` writes the same kind of archive to stdout.
    piped = os.path.join(src.tmp, "piped.tar")
    with open(piped, "wb") as f:
        r = subprocess.run([BIN["cli"], "-c", src.config, "backup", "-"],
                           stdout=f, stderr=subprocess.PIPE, timeout=120)
    t.eq(r.returncode, 0, "backup - exits 0")
    with tarfile.open(piped) as tf:
        t.eq(tf.getnames()[0], "MANIFEST", "backup - writes a tar archive")

    # --- restore refused while a daemon runs ------------------------------
    db_sum = sha(os.path.join(src.data_dir, "mail.db"))
    r = src.cli("restore", archive, check=False)
    t.eq(r.returncode, 1, "restore refused while both daemons run")
    t.ok("postroom-smtpd" in r.stderr and "running" in r.stderr,
         "the refusal names the running daemon", r.stderr)
    src.stop("smtpd")
    r = src.cli("restore", archive, check=False)
    t.eq(r.returncode, 1, "restore refused while postroom-pop3d runs")
    t.ok("postroom-pop3d" in r.stderr, "the refusal names pop3d", r.stderr)
    t.eq(sorted(x for x in os.listdir(src.data_dir)
                if x.startswith(("pre-restore", "restore."))), [],
         "a refused restore leaves nothing behind")
    src.stop("pop3d")

    # --- restore into a fresh data_dir and verify --------------------------
    dst = fresh("dst")
    r = dst.cli("restore", archive, check=False)
    t.eq(r.returncode, 0, "restore into a fresh data_dir exits 0")
    t.ok("restored" in r.stdout, "restore says what it restored",
         r.stdout + r.stderr)
    r = dst.cli("verify", check=False)
    t.eq((r.returncode, r.stdout.strip()), (0, "verify: no problems found"),
         "verify of the restored store finds nothing")
    ids = stored_ids(dst)
    counts = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    missing = [i for i in before if counts.get(i, 0) == 0]
    twice = [i for i, n in counts.items() if n > 1 and
             i.startswith("burst-")]
    t.eq(missing, [], "every message acknowledged before the backup "
         "(%d) is in the restored store" % len(before))
    t.eq(twice, [], "no message is in it twice")
    extra = len([i for i in counts if i.startswith("burst-")]) - len(before)
    print("# restored store: %d burst messages, %d of them acknowledged "
          "during the backup" % (len(before) + extra, extra))
    t.ok(0 <= extra <= during + N_CLIENTS,
         "the rest are messages acknowledged while the backup ran")
    t.eq(sha(os.path.join(dst.data_dir, "dkim", DOMAIN, "postroom.key")),
         sha(key), "the DKIM key is restored as it was")
    t.eq(sha(os.path.join(dst.data_dir, "mta-sts", DOMAIN + ".txt")),
         sha(policy), "the MTA-STS policy file is restored as it was")
    dk = dst.cli("dkim", "list", check=False)
    t.ok(dk.returncode == 0 and DOMAIN in dk.stdout,
         "postroom dkim list reads the restored key", dk.stdout + dk.stderr)
    with dst.db() as c:
        users = c.execute("SELECT count(*) FROM users").fetchone()[0]
        alias = c.execute("SELECT count(*) FROM aliases WHERE alias = ?",
                          ("all-b@" + DOMAIN,)).fetchone()[0]
    t.eq(users, len(BURST_USERS) + len(POP_USERS), "every user restored")
    t.eq(alias, len(BURST_USERS), "the alias restored")
    # The restored installation works: mail in, POP3 out.
    dst.start("smtpd")
    dst.start("pop3d")
    with smtplib.SMTP(dst.host, dst.ports["smtp"], timeout=60) as s:
        s.sendmail("sender@remote.test", [BURST_USERS[0]],
                   message("after-restore", BURST_USERS[0]))
    p = poplib.POP3(dst.host, dst.ports["pop3"], timeout=60)
    p.user(BURST_USERS[0])
    p.pass_(PASSWORD)
    n = len(p.list()[1])
    last = b"\r\n".join(p.retr(n)[1])
    p.quit()
    t.ok(b"X-Burst-Id: after-restore" in last,
         "the restored store takes mail and serves it over POP3")
    dst.stop("smtpd")
    dst.stop("pop3d")

    # --- a damaged backup is refused, the store untouched -------------------
    dst_db = os.path.join(dst.data_dir, "mail.db")
    before_sum = sha(dst_db)
    for what, member, delta in (
            ("the database", "mail.db", 40000),
            ("the MANIFEST", "MANIFEST", 30),
            ("a DKIM key", "dkim/%s/postroom.key" % DOMAIN, 100)):
        broken = os.path.join(src.tmp, "broken.tar")
        flip(archive, broken, member_offset(archive, member) + delta)
        r = dst.cli("restore", broken, check=False)
        t.eq(r.returncode, 1, "one octet changed in %s: restore refused"
             % what)
        t.ok(len(r.stderr.strip().splitlines()) == 1 and
             r.stderr.startswith("postroom: "),
             "the refusal is one line on stderr", r.stderr)
        t.eq(sha(dst_db), before_sum, "one octet changed in %s: the store "
             "is untouched" % what)
        left = [x for x in os.listdir(dst.data_dir)
                if x.startswith(("pre-restore", "restore."))]
        t.eq(left, [], "one octet changed in %s: nothing left behind"
             % what)
    # A fresh data_dir gets no store from a damaged backup either.
    bad = fresh("bad")
    flip(archive, os.path.join(src.tmp, "broken.tar"),
         member_offset(archive, "mail.db") + 4096)
    r = bad.cli("restore", os.path.join(src.tmp, "broken.tar"),
                check=False)
    t.ok(r.returncode == 1 and "damaged" in r.stderr and
         not os.path.exists(os.path.join(bad.data_dir, "mail.db")),
         "a damaged mail.db is named and not restored", r.stderr)

    # A backup of a schema newer than this postroom, checksums and all.
    newer_db = os.path.join(src.tmp, "newer.db")
    with tarfile.open(archive) as tf:
        with open(newer_db, "wb") as f:
            f.write(tf.extractfile("mail.db").read())
    sqlite(newer_db, "PRAGMA user_version = 9999")
    m = re.sub(r"^schema \d+$", "schema 9999", manifest, flags=re.M)
    m = re.sub(r"^file mail\.db .*$", "file mail.db %d %s" % (
        os.path.getsize(newer_db), sha(newer_db)), m, flags=re.M)
    m = "\n".join(x for x in m.splitlines()
                  if not x.startswith("file dkim/")) + "\n"
    newer = os.path.join(src.tmp, "newer.tar")
    with tarfile.open(newer, "w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("MANIFEST")
        ti.size = len(m)
        tf.addfile(ti, io.BytesIO(m.encode()))
        tf.add(newer_db, arcname="mail.db")
    r = dst.cli("restore", newer, check=False)
    t.ok(r.returncode == 1 and "newer" in r.stderr and
         sha(dst_db) == before_sum,
         "a backup of a newer schema is refused, clearly", r.stderr)

    # --- verify and --repair ---------------------------------------------
    with dst.db() as c:
        body = c.execute("SELECT body_id FROM mailbox LIMIT 1").fetchone()[0]
        n_mailbox = c.execute("SELECT count(*) FROM mailbox").fetchone()[0]
    r = sqlite(dst_db,
               "UPDATE users SET used = used + 12345 WHERE address = '%s';"
               "INSERT INTO bodies (msgid, sender, size, created, data)"
               " VALUES ('orphan@x', '', 3, 0, X'616263');"
               "INSERT INTO mailbox (user_id, body_id, size, uidl, received)"
               " VALUES (99999, %d, 10, 'ghost-uidl', 0);"
               "INSERT INTO queue (msgid, body_id, sender, created,"
               " next_attempt) VALUES ('norcpt@x', %d, '', 0, 0);"
               % (BURST_USERS[1], body, body))
    t.eq(r.returncode, 0, "inconsistencies injected with sqlite3")
    r = dst.cli("verify", check=False)
    problems = [x for x in r.stdout.splitlines() if x.startswith("problem:")]
    t.eq(r.returncode, 1, "verify exits 1 on an inconsistent store")
    t.eq(len(problems), 4, "one line per problem")
    for word, what in ((BURST_USERS[1], "the quota sum"),
                       ("orphan@x", "the orphan body"),
                       ("deleted user 99999", "the deleted user's row"),
                       ("norcpt@x", "the queue entry without recipients")):
        t.ok(any(word in x for x in problems), "verify names %s" % what,
             r.stdout)
    t.ok(len(r.stderr.strip().splitlines()) == 1, "and one summary line "
         "on stderr", r.stderr)
    r = dst.cli("verify", "--repair", check=False)
    t.eq(r.returncode, 0, "verify --repair puts them right")
    t.eq(len([x for x in r.stdout.splitlines()
              if x.startswith("repaired:")]), 4, "it says what it repaired")
    r = dst.cli("verify", check=False)
    t.eq(r.returncode, 0, "verify after --repair finds nothing")
    with dst.db() as c:
        t.eq(c.execute("SELECT count(*) FROM mailbox").fetchone()[0],
             n_mailbox, "the repair kept every real mailbox entry")
    # A problem --repair leaves to the admin: a queue entry whose body is
    # gone (its sender may need a bounce).
    sqlite(dst_db, "INSERT INTO queue (msgid, body_id, sender, created,"
           " next_attempt) VALUES ('00000000deadbeef', 987654, '', 0, 0);"
           "INSERT INTO queue_rcpt (queue_id, address) SELECT id,"
           " 'r@remote.test' FROM queue WHERE msgid = '00000000deadbeef';")
    r = dst.cli("verify", "--repair", check=False)
    t.ok(r.returncode == 1 and "problem: queue entry" in r.stdout and
         "00000000deadbeef" in r.stdout,
         "a lost queue body is left to the admin",
         r.stdout + r.stderr)
    r = dst.cli("queue", "del", "00000000deadbeef", check=False)
    t.eq(r.returncode, 0, "postroom queue del takes the lost entry")
    r = dst.cli("verify", check=False)
    t.eq(r.returncode, 0, "after postroom queue del, verify is clean")
finally:
    for i in (src, dst, bad):
        if i is not None:
            i.close()

sys.exit(t.done())
