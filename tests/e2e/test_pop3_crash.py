#!/usr/bin/env python3
"""postroom-pop3d crash and shutdown semantics (RFC 1939 6): deletions
happen at QUIT and only then; kill -9 before QUIT deletes nothing and
leaves no lock that blocks the next login; SIGTERM ends sessions without
applying their deletions."""

import os
import poplib
import signal
import sqlite3
import sys
import time
import unittest

from pop3_util import DOMAIN, Raw, deliver, message, new_instance
import tap  # noqa: E402

ALICE = ("alice@" + DOMAIN, "alice-password")


def locks(inst):
    """Rows of the store's maildrop lock table (read-only peek)."""
    db = sqlite3.connect("file:%s?mode=ro" %
                         os.path.join(inst.data_dir, "mail.db"), uri=True,
                         timeout=30)
    try:
        return db.execute("SELECT user_id, pid FROM maildrop_locks").fetchall()
    finally:
        db.close()


class Pop3Crash(unittest.TestCase):
    def setUp(self):
        self.inst = new_instance([ALICE])
        self.msgs = [message("keep %d" % i) for i in range(3)]
        for m in self.msgs:
            deliver(self.inst, m, ALICE[0])

    def tearDown(self):
        self.inst.close()

    def login(self):
        p = poplib.POP3(self.inst.host, self.inst.ports["pop3"], timeout=30)
        p.user(ALICE[0])
        p.pass_(ALICE[1])
        return p

    def test_kill9_before_quit_deletes_nothing(self):
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        r.login(*ALICE)
        for i in (1, 2, 3):
            self.assertTrue(r.cmd("DELE %d" % i).startswith(b"+OK"))
        self.assertEqual(len(locks(self.inst)), 1)
        self.inst.kill("pop3d")
        r.close()
        self.assertEqual(len(self.inst.mailbox(ALICE[0])), 3)
        # The dead process's lock does not block the next login.
        self.inst.start("pop3d")
        p = self.login()
        self.assertEqual(p.stat(), (3, sum(len(m) for m in self.msgs)))
        for i, m in enumerate(self.msgs, 1):
            _, lines, _ = p.retr(i)
            self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), m)
        p.quit()
        self.assertEqual(locks(self.inst), [])

    def test_kill9_after_quit_keeps_deletions(self):
        p = self.login()
        p.dele(1)
        p.dele(3)
        self.assertIn(b"2 messages deleted", p.quit())
        # +OK came after the commit, so a crash now cannot undo it.
        self.inst.kill("pop3d")
        self.assertEqual(len(self.inst.mailbox(ALICE[0])), 1)
        self.inst.start("pop3d")
        p = self.login()
        _, lines, _ = p.retr(1)
        self.assertEqual(b"".join(ln + b"\r\n" for ln in lines),
                         self.msgs[1])
        p.quit()

    def test_kill9_mid_retr(self):
        big = message("big", (b"z" * 998 + b"\r\n") * 8000)
        deliver(self.inst, big, ALICE[0])
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        r.login(*ALICE)
        self.assertTrue(r.cmd("DELE 1").startswith(b"+OK"))
        r.send("RETR 4\r\n")
        r.sock.recv(1000)
        self.inst.kill("pop3d")
        r.close()
        self.inst.start("pop3d")
        p = self.login()
        self.assertEqual(p.stat()[0], 4)
        p.quit()

    def test_sigterm_drops_sessions_without_update(self):
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        r.login(*ALICE)
        self.assertTrue(r.cmd("DELE 2").startswith(b"+OK"))
        t = time.monotonic()
        rc = self.inst.stop("pop3d", sig=signal.SIGTERM)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t, 10)
        self.assertEqual(r.line(), b"-ERR [SYS/TEMP] Server shutting down")
        self.assertTrue(r.closed(5))
        self.assertEqual(len(self.inst.mailbox(ALICE[0])), 3)
        # The lock was released in the orderly shutdown.
        self.assertEqual(locks(self.inst), [])


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
