#!/usr/bin/env python3
"""Big maildrops (docs/ARCHITECTURE.md, "Big maildrops"): a maildrop of
20,000 messages is listed completely and correctly by UIDL and LIST
(every line, the terminating dot) to Python's poplib and to a client that
stops reading, without the server buffering the whole listing for it;
QUITs that delete 8,000, 10,000 and 1,000 of them are all or nothing even
when the daemon is killed with SIGKILL in the middle of it (RFC 1939 6),
or a login follows the +OK at once (the deletion is recorded, then
finished in the background), and deliveries to another mailbox go on
while it runs."""

import os
import poplib
import re
import smtplib
import socket
import sqlite3
import sys
import threading
import time
import unittest

from pop3_util import DOMAIN, deliver, message, new_instance, pid_rss_kib
import tap  # noqa: E402

ALICE = ("alice@" + DOMAIN, "alice-password")
BOB = ("bob@" + DOMAIN, "bob-password")
N = 20000
FIRST = 8000
DELETE = 10000


def ro(inst):
    return sqlite3.connect("file:%s?mode=ro" %
                           os.path.join(inst.data_dir, "mail.db"), uri=True,
                           timeout=30)


def rows(inst, address):
    """(uidl, size) of address's mailbox rows in arrival order, read from
    the file itself."""
    db = ro(inst)
    try:
        return db.execute(
            "SELECT m.uidl, m.size FROM mailbox m JOIN users u"
            " ON u.id = m.user_id WHERE u.address = ? ORDER BY m.id",
            (address,)).fetchall()
    finally:
        db.close()


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.002)


class Pop3BigDrop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = new_instance([ALICE, BOB], tls=False,
                                extra={"pop3": {"allow_plaintext_auth":
                                                "true"},
                                       "smtp": {"max_connections_per_ip":
                                                "0"}})
        cls.msg = message("big maildrop", b"line\r\n" * 20)
        deliver(cls.inst, cls.msg, ALICE[0], count=N)
        cls.want = rows(cls.inst, ALICE[0])
        assert len(cls.want) == N

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def login(self, who=ALICE):
        p = poplib.POP3(self.inst.host, self.inst.ports["pop3"], timeout=120)
        p.user(who[0])
        p.pass_(who[1])
        return p

    def test_1_listings_with_poplib(self):
        p = self.login()
        self.assertEqual(p.stat(), (N, sum(s for _u, s in self.want)))
        _resp, lines, _o = p.uidl()
        self.assertEqual(lines, [b"%d %s" % (i, u.encode())
                                 for i, (u, _s) in enumerate(self.want, 1)])
        _resp, lines, _o = p.list()
        self.assertEqual(lines, [b"%d %d" % (i, s)
                                 for i, (_u, s) in enumerate(self.want, 1)])
        # Single-message forms agree with the listing.
        self.assertEqual(p.uidl(N), b"+OK %d %s" % (
            N, self.want[-1][0].encode()))
        p.quit()

    def test_2_slow_reader(self):
        pid = self.inst.procs["pop3d"].pid
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((self.inst.host, self.inst.ports["pop3"]))
        s.settimeout(120)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"+OK"))
        for c in (b"USER " + ALICE[0].encode(), b"PASS " +
                  ALICE[1].encode()):
            s.sendall(c + b"\r\n")
            self.assertTrue(f.readline().startswith(b"+OK"))
        base = pid_rss_kib(pid)
        s.sendall(b"UIDL\r\nLIST\r\n")
        # The client reads nothing for a while: the server stops at its
        # output bound instead of formatting 20,000 lines into memory.
        time.sleep(2)
        grown = pid_rss_kib(pid) - base
        # The other sessions carry on meanwhile.
        p = self.login(BOB)
        self.assertEqual(p.stat()[0], 0)
        p.quit()
        want_uidl = [b"%d %s\r\n" % (i, u.encode())
                     for i, (u, _s) in enumerate(self.want, 1)]
        want_list = [b"%d %d\r\n" % (i, sz)
                     for i, (_u, sz) in enumerate(self.want, 1)]
        for want in (want_uidl, want_list):
            self.assertTrue(f.readline().startswith(b"+OK"))
            got = []
            while True:
                line = f.readline()
                self.assertTrue(line.endswith(b"\r\n"), line)
                if line == b".\r\n":
                    break
                got.append(line)
            self.assertEqual(got, want)
        s.sendall(b"QUIT\r\n")
        self.assertTrue(f.readline().startswith(b"+OK"))
        s.close()
        # The listing is about 600 KB; held whole it would show.
        self.assertLess(grown, 400, "pop3d grew by %d KiB while the "
                        "client did not read" % grown)

    def test_3_quit_all_or_nothing_and_deliveries_flow(self):
        inst = self.inst
        inst.start("smtpd")
        stop = threading.Event()
        done = []          # (start, end) of each delivery to bob
        errors = []

        def deliveries():
            try:
                c = smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=60)
                while not stop.is_set():
                    t = time.monotonic()
                    c.sendmail("s@example.org", [BOB[0]],
                               message("during quit"))
                    done.append((t, time.monotonic()))
                c.quit()
            except Exception as e:  # reported below
                errors.append(e)

        # First: a QUIT that runs to the end while bob gets mail.
        p = self.login()
        for i in range(1, FIRST + 1):
            p.dele(i)
        th = threading.Thread(target=deliveries, daemon=True)
        th.start()
        wait_for(lambda: len(done) >= 3, 60, "deliveries to start")
        mark = len(inst.log("pop3d"))
        # The +OK comes once the deletion is recorded; the slices run
        # after it, in the background.
        self.assertTrue(p.quit().startswith(b"+OK"))
        t0 = time.monotonic()
        # A login right away waits for the deletion to end (its listing
        # would otherwise finish it in one go on the store worker) and
        # sees none of it.
        p = self.login()
        self.assertEqual(p.stat()[0], N - FIRST)
        p.quit()
        log = inst.log("pop3d")[mark:]
        m = re.search(r"deletion finished user=%s deleted=%d ms=(\d+)" %
                      (re.escape(ALICE[0]), FIRST), log)
        self.assertIsNotNone(m, log[-3000:])
        self.assertLess(m.start(), log.index("auth client="),
                        "the next login is served after the deletion")
        t1 = t0 + int(m.group(1)) / 1000.0
        time.sleep(0.2)
        stop.set()
        th.join(60)
        self.assertEqual(errors, [])
        left = rows(inst, ALICE[0])
        self.assertEqual(left, self.want[FIRST:])
        # Deliveries to bob went on while the slices ran.
        during = [e for (s, e) in done if t0 < e < t1]
        self.assertTrue(during, "no delivery during a deletion of %.2f s"
                        % (t1 - t0))

        # Then: SIGKILL once the QUIT's commit has begun to delete.
        p = self.login()
        for i in range(1, DELETE + 1):
            p.dele(i)
        p.sock.sendall(b"QUIT\r\n")
        n = len(left)
        wait_for(lambda: len(rows(inst, ALICE[0])) < n, 120,
                 "the QUIT to start deleting")
        inst.kill("pop3d")
        p.close()
        partial = len(rows(inst, ALICE[0]))
        self.assertTrue(n - DELETE < partial < n, "killed in the middle "
                        "of the deletion (%d rows left)" % partial)
        # The file holds a part, recorded as a committed deletion: the
        # next owner of the maildrop finishes it before listing it.
        inst.start("pop3d")
        p = self.login()
        self.assertEqual(p.stat()[0], n - DELETE,
                         "killed with %d rows left" % partial)
        _r, lines, _o = p.uidl()
        self.assertEqual(lines, [b"%d %s" % (i, u.encode()) for i, (u, _s)
                                 in enumerate(left[DELETE:], 1)])
        p.quit()
        self.assertEqual(rows(inst, ALICE[0]), left[DELETE:])
        db = ro(inst)
        try:
            self.assertEqual(db.execute("SELECT count(*) FROM "
                                        "maildrop_deletions").fetchone(),
                             (0,))
            self.assertEqual(db.execute(
                "SELECT messages FROM users WHERE address = ?",
                (ALICE[0],)).fetchone(), (n - DELETE,))
        finally:
            db.close()

        # A login right after a big QUIT's +OK never sees a part of it:
        # the recorded deletion is finished before the listing.
        rest = left[DELETE:]
        p = self.login()
        for i in range(1, len(rest) // 2 + 1):
            p.dele(i)
        self.assertTrue(p.quit().startswith(b"+OK"))
        p = self.login()
        self.assertEqual(p.stat()[0], len(rest) - len(rest) // 2)
        _r, lines, _o = p.uidl()
        self.assertEqual(lines, [b"%d %s" % (i, u.encode()) for i, (u, _s)
                                 in enumerate(rest[len(rest) // 2:], 1)])
        p.quit()
        self.assertEqual(rows(inst, ALICE[0]), rest[len(rest) // 2:])

        r = inst.cli("verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
