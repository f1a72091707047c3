#!/usr/bin/env python3
"""A store made by postroom 0.1.0 (tests/fixtures/v0.1.0/, made by
tests/fixtures/make-v0.1.0.sh with that version's own CLI and smtpd)
opened by this postroom: migrated to the current schema with every
message, user, alias, DKIM key and queue entry intact, and served over
POP3 with the users' old passwords; a schema newer than this postroom
knows is refused with a clear message (docs/BACKUP.md 4)."""

import os
import poplib
import shutil
import smtplib
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import BIN, SRC_ROOT, Instance  # noqa: E402
from tap import Check  # noqa: E402

FIXTURE = os.path.join(SRC_ROOT, "tests", "fixtures", "v0.1.0")
PASSWORDS = {"alice@example.org": "alice-password-1",
             "bob@example.org": "bob-password-22",
             "carol@example.org": "carol-password-333"}
# What make-v0.1.0.sh delivered: the fixture messages of each mailbox.
MAILBOXES = {"alice@example.org": [1, 3, 4], "bob@example.org": [2, 3],
             "carol@example.org": [4]}

t = Check()


def snapshot(path):
    """Everything the upgrade must keep, read from the database at path."""
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {
            "users": c.execute(
                "SELECT address, hash, quota, used, messages FROM users"
                " ORDER BY address").fetchall(),
            "domains": c.execute(
                "SELECT name FROM domains ORDER BY name").fetchall(),
            "aliases": c.execute(
                "SELECT alias, target FROM aliases"
                " ORDER BY alias, target").fetchall(),
            "mailbox": c.execute(
                "SELECT u.address, m.uidl, m.size, m.received, b.data"
                " FROM mailbox m JOIN users u ON u.id = m.user_id"
                " JOIN bodies b ON b.id = m.body_id"
                " ORDER BY m.id").fetchall(),
            "queue": c.execute(
                "SELECT q.msgid, q.sender, q.created, r.address, b.data"
                " FROM queue q JOIN queue_rcpt r ON r.queue_id = q.id"
                " JOIN bodies b ON b.id = q.body_id"
                " ORDER BY q.id, r.id").fetchall(),
            "schema": c.execute("PRAGMA user_version").fetchone()[0],
        }
    finally:
        c.close()


def install_fixture(inst, schema=None):
    """Replaces inst's new store by a copy of the 0.1.0 data_dir."""
    shutil.rmtree(inst.data_dir)
    os.mkdir(inst.data_dir, 0o750)
    shutil.copyfile(os.path.join(FIXTURE, "mail.db"),
                    os.path.join(inst.data_dir, "mail.db"))
    shutil.copytree(os.path.join(FIXTURE, "dkim"),
                    os.path.join(inst.data_dir, "dkim"))
    for root, _, files in os.walk(os.path.join(inst.data_dir, "dkim")):
        for f in files:
            os.chmod(os.path.join(root, f), 0o600)
    if schema is not None:
        c = sqlite3.connect(os.path.join(inst.data_dir, "mail.db"))
        c.execute("PRAGMA user_version = %d" % schema)
        c.commit()
        c.close()


old = snapshot(os.path.join(FIXTURE, "mail.db"))
t.ok(len(old["users"]) == 3 and len(old["mailbox"]) == 6 and
     len(old["queue"]) == 1 and len(old["aliases"]) == 5,
     "the fixture holds what make-v0.1.0.sh made", repr(
         {k: (len(v) if isinstance(v, list) else v) for k, v in old.items()}))

inst = Instance(hostname="mx.example.org",
                extra={"relay": {"enabled": "false"}})
other = None
try:
    with inst.db() as c:
        current = c.execute("PRAGMA user_version").fetchone()[0]
    install_fixture(inst)
    print("# fixture schema %d, this postroom's %d" % (old["schema"],
                                                        current))
    r = inst.cli("check", check=False)
    t.eq(r.returncode, 0, "postroom check accepts the 0.1.0 store")
    new = snapshot(os.path.join(inst.data_dir, "mail.db"))
    t.eq(new["schema"], current, "migrated to the current schema")
    for k in ("domains", "users", "aliases", "mailbox", "queue"):
        t.eq(new[k], old[k], "every %s row intact" % k.rstrip("s"))
    r = inst.cli("verify", check=False)
    t.eq(r.returncode, 0, "postroom verify finds nothing wrong")

    r = inst.cli("dkim", "list", check=False)
    t.ok(r.returncode == 0 and "s2026" in r.stdout and
         "active" in r.stdout, "the DKIM key is listed, active", r.stdout)
    r = inst.cli("queue", "list", check=False)
    t.ok("friend@remote.example" in r.stdout and
         "alice@example.org" in r.stdout,
         "the queue entry is listed", r.stdout)
    r = inst.cli("alias", "list", check=False)
    t.ok("fwd@example.org" in r.stdout and
         "friend@remote.example" in r.stdout, "the aliases are listed",
         r.stdout)

    # Old passwords, old UIDLs, the same octets, over POP3.
    inst.start("pop3d")
    for user, nums in MAILBOXES.items():
        p = poplib.POP3(inst.host, inst.ports["pop3"], timeout=60)
        p.user(user)
        p.pass_(PASSWORDS[user])
        uidls = [x.split()[1].decode() for x in p.uidl()[1]]
        want = [row[1] for row in old["mailbox"] if row[0] == user]
        t.eq(uidls, want, "%s: the UIDLs of 0.1.0" % user)
        got = []
        for i in range(1, len(uidls) + 1):
            body = b"\r\n".join(p.retr(i)[1])
            got.append(body)
        p.quit()
        t.ok(all(b"Subject: fixture message %d" % n in g
                 for n, g in zip(nums, got)) and len(got) == len(nums),
             "%s: every message retrieved" % user)
    inst.stop("pop3d")

    # And the upgraded store takes new mail.
    inst.start("smtpd")
    with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=60) as s:
        s.sendmail("x@remote.example", ["team@example.org"],
                   "Subject: after the upgrade\r\n\r\nnew\r\n")
    inst.stop("smtpd")
    t.eq(len(inst.mailbox("bob@example.org")), 3,
         "new mail delivered through a 0.1.0 alias")

    # A schema newer than this postroom knows: refused, clearly.
    other = Instance(hostname="mx.example.org",
                     extra={"relay": {"enabled": "false"}})
    install_fixture(other, schema=current + 1)
    r = other.cli("mailbox", "list", "alice@example.org", check=False)
    t.ok(r.returncode == 1 and "newer than this postroom knows" in
         r.stderr and len(r.stderr.strip().splitlines()) == 1,
         "the CLI refuses a newer schema in one clear line", r.stderr)
    p = subprocess.run([BIN["smtpd"], "-c", other.config],
                       capture_output=True, text=True, timeout=60)
    t.ok(p.returncode != 0 and "newer" in p.stderr,
         "postroom-smtpd refuses to start on it", p.stderr[-500:])
    with other.db() as c:
        t.eq(c.execute("PRAGMA user_version").fetchone()[0], current + 1,
             "and leaves it as it is")
finally:
    inst.close()
    if other is not None:
        other.close()

sys.exit(t.done())
