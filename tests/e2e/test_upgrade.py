#!/usr/bin/env python3
"""A store made by postroom 0.1.0 (tests/fixtures/v0.1.0/, made by
tests/fixtures/make-v0.1.0.sh with that release's own CLI and smtpd, so
at the schema of 0.1.0) opened by this postroom: taken through every
migration since to the current schema with every domain, user, alias,
message, DKIM key and queue entry intact, the key 0.1.0 signed with
still the active one, and served over POP3 and SMTP AUTH with the users'
old passwords and the UIDLs of 0.1.0; a schema newer than this postroom
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
# Its DKIM keys: 0.1.0 signed with the newest, named by dkim/DOMAIN/selector.
DKIM = {"s2025": ("ed25519-sha256", "retired"),
        "s2026": ("rsa-sha256", "active")}
# The schema of 0.1.0: its one migration, the initial schema.
SCHEMA_010 = 1

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


def dkim_files(root):
    """{relative path: content} of the key directory under root."""
    out = {}
    for d, _, files in os.walk(os.path.join(root, "dkim")):
        for f in files:
            path = os.path.join(d, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


old = snapshot(os.path.join(FIXTURE, "mail.db"))
old_keys = dkim_files(FIXTURE)
t.ok(len(old["users"]) == 3 and len(old["mailbox"]) == 6 and
     len(old["queue"]) == 1 and len(old["aliases"]) == 5 and
     old["domains"] == [("example.org",)],
     "the fixture holds what make-v0.1.0.sh made", repr(
         {k: (len(v) if isinstance(v, list) else v) for k, v in old.items()}))
t.eq(old["schema"], SCHEMA_010, "the fixture has the schema of 0.1.0")
t.eq(sorted(old_keys), ["dkim/example.org/s2025.key",
                        "dkim/example.org/s2026.key",
                        "dkim/example.org/selector"],
     "the fixture has the key files of 0.1.0")
t.ok(all(h.startswith("$argon2id$") for _, h, _, _, _ in old["users"]),
     "0.1.0 stored argon2id hashes")

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
    t.ok(current > SCHEMA_010, "this postroom has migrations after 0.1.0",
         "%d" % current)
    t.eq(new["schema"], current, "migrated to the current schema")
    for k, what in (("domains", "domain"), ("users", "user"),
                    ("aliases", "alias"), ("mailbox", "mailbox"),
                    ("queue", "queue")):
        t.eq(new[k], old[k], "every %s row intact" % what)
    r = inst.cli("verify", check=False)
    t.eq(r.returncode, 0, "postroom verify finds nothing wrong")

    new_keys = dkim_files(inst.data_dir)
    t.ok(all(new_keys.get(k) == v for k, v in old_keys.items()
             if k.endswith(".key")), "the DKIM private keys are unchanged")
    r = inst.cli("dkim", "list", "example.org", check=False)
    got = {f[1]: (f[2], f[3]) for f in
           (line.split() for line in r.stdout.splitlines()) if len(f) >= 4}
    t.ok(got == DKIM, "the key 0.1.0 signed with is active, the older one"
         " retired", r.stdout + r.stderr)
    r = inst.cli("queue", "list", check=False)
    t.ok("friend@remote.example" in r.stdout and
         "alice@example.org" in r.stdout and old["queue"][0][0] in r.stdout,
         "the queue entry is listed", r.stdout)
    r = inst.cli("user", "list", check=False)
    t.ok(r.returncode == 0 and all(u in r.stdout for u in PASSWORDS),
         "the users are listed", r.stdout)
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

    # And the upgraded store takes new mail, and submission with an old
    # password.
    inst.start("smtpd")
    with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=60) as s:
        s.sendmail("x@remote.example", ["team@example.org"],
                   "Subject: after the upgrade\r\n\r\nnew\r\n")
    with smtplib.SMTP(inst.host, inst.ports["submission"], timeout=60) as s:
        code = s.login("carol@example.org", PASSWORDS["carol@example.org"])[0]
        s.sendmail("carol@example.org", ["carol@example.org"],
                   "From: carol@example.org\r\nSubject: submitted\r\n\r\n"
                   "after the upgrade\r\n")
    t.eq(code, 235, "SMTP AUTH with a password set by 0.1.0")
    inst.stop("smtpd")
    t.eq(len(inst.mailbox("carol@example.org")), 2,
         "the submitted message delivered")
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
