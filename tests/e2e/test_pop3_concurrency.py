#!/usr/bin/env python3
"""postroom-pop3d under concurrency: 200 users downloading at once, mail
arriving during sessions, many logins racing for one maildrop."""

import os
import poplib
import sqlite3
import sys
import threading
import time
import unittest

from pop3_util import DOMAIN, count_log, deliver, message, new_instance
import tap  # noqa: E402

N_USERS = 200


def pop_login(inst, user, timeout=300):
    p = poplib.POP3(inst.host, inst.ports["pop3"], timeout=timeout)
    p.user(user[0])
    p.pass_(user[1])
    return p


class Pop3Concurrency(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.users = [("u%03d@%s" % (i, DOMAIN), "pw-shared")
                     for i in range(N_USERS)]
        cls.inst = new_instance(extra={
            "pop3": {"max_connections_per_ip": "0"}}, start=False)
        # One argon2id hash costs ~0.2 s of CPU here: the first user is
        # added by the CLI, the others share its hash (same password),
        # which only shortens the set-up.  Every login still verifies.
        cls.inst.add_user(*cls.users[0])
        db = sqlite3.connect(os.path.join(cls.inst.data_dir, "mail.db"),
                             timeout=30)
        with db:
            db.executemany(
                "INSERT INTO users (domain_id, address, hash, created) "
                "SELECT domain_id, ?, hash, created FROM users "
                "WHERE address = ?",
                [(u[0], cls.users[0][0]) for u in cls.users[1:]])
        db.close()
        cls.inst.add_user("shared@" + DOMAIN, "shared-password")
        cls.inst.add_user("busy@" + DOMAIN, "busy-password")
        cls.inst.start("pop3d")

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def test_200_users_at_once(self):
        m1 = message("first for everyone", b".dot\r\n" + b"x" * 500 +
                     b"\r\n")
        m2 = message("second for everyone", b"y\r\n" * 2000)
        # One body, 200 mailbox references each (docs/ARCHITECTURE.md 4.2).
        deliver(self.inst, m1, *[u[0] for u in self.users])
        deliver(self.inst, m2, *[u[0] for u in self.users])
        barrier = threading.Barrier(N_USERS)
        errors = []

        def run(user):
            try:
                barrier.wait(timeout=60)
                p = pop_login(self.inst, user)
                if p.stat() != (2, len(m1) + len(m2)):
                    raise AssertionError("stat %r" % (p.stat(),))
                for i, m in ((1, m1), (2, m2)):
                    _, lines, _ = p.retr(i)
                    if b"".join(ln + b"\r\n" for ln in lines) != m:
                        raise AssertionError("message %d differs" % i)
                    p.dele(i)
                if not p.quit().startswith(b"+OK"):
                    raise AssertionError("QUIT failed")
            except Exception as e:  # noqa: BLE001 - collected and reported
                errors.append("%s: %r" % (user[0], e))

        t = time.monotonic()
        threads = [threading.Thread(target=run, args=(u,))
                   for u in self.users]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        elapsed = time.monotonic() - t
        self.assertEqual(errors, [])
        print("# %d users logged in, downloaded 2 messages each and "
              "deleted them in %.1f s" % (N_USERS, elapsed))
        self.assertEqual(count_log(self.inst,
                                   r"auth client=\S+ status=ok user=u\d+@"),
                         N_USERS)
        # The last disconnect lines follow the QUIT replies closely.
        deadline = time.monotonic() + 10
        while (count_log(self.inst, r"user=u\d+@\S+ retrieved=2 deleted=2")
               < N_USERS and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual(count_log(self.inst, r"user=u\d+@\S+ retrieved=2 "
                                   r"deleted=2"), N_USERS)
        for u in self.users[::40]:
            self.assertEqual(self.inst.mailbox(u[0]), [])

    def test_delivery_during_session(self):
        addr = ("shared@" + DOMAIN, "shared-password")
        for i in range(3):
            deliver(self.inst, message("old %d" % i), addr[0])
        p = pop_login(self.inst, addr)
        stop = threading.Event()

        def keep_delivering():
            n = 0
            while not stop.is_set() and n < 20:
                deliver(self.inst, message("new %d" % n), addr[0])
                n += 1

        th = threading.Thread(target=keep_delivering)
        th.start()
        try:
            for _ in range(10):
                self.assertEqual(p.stat()[0], 3)
                _, lst, _ = p.list()
                self.assertEqual(len(lst), 3)
                _, lines, _ = p.retr(3)
                self.assertIn(b"Subject: old 2", lines)
                time.sleep(0.05)
            for i in (1, 2, 3):
                p.dele(i)
        finally:
            stop.set()
            th.join()
        p.quit()
        # Only the three old messages went; every new one is there.
        p = pop_login(self.inst, addr)
        count = p.stat()[0]
        _, uidls, _ = p.uidl()
        for i in range(1, count + 1):
            _, lines, _ = p.top(i, 0)
            self.assertTrue(any(ln.startswith(b"Subject: new ")
                                for ln in lines))
        p.quit()
        self.assertEqual(count, len(self.inst.mailbox(addr[0])))
        self.assertGreater(count, 0)

    def test_logins_race_for_one_maildrop(self):
        addr = ("busy@" + DOMAIN, "busy-password")
        deliver(self.inst, message("contended"), addr[0])
        barrier = threading.Barrier(8)
        results = []

        def run():
            p = poplib.POP3(self.inst.host, self.inst.ports["pop3"],
                            timeout=60)
            p.user(addr[0])
            barrier.wait(timeout=30)
            try:
                p.pass_(addr[1])
                results.append(("ok", p))
            except poplib.error_proto as e:
                results.append((e.args[0], p))

        threads = [threading.Thread(target=run) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        oks = [p for r, p in results if r == "ok"]
        busy = [r for r, p in results if r != "ok"]
        self.assertEqual(len(oks), 1, results)
        self.assertEqual(len(busy), 7)
        for r in busy:
            self.assertTrue(r.startswith(b"-ERR [IN-USE]"), r)
        for r, p in results:
            p.quit()
        # Every lock went with its session: a new login works at once.
        p = pop_login(self.inst, addr)
        self.assertEqual(p.stat()[0], 1)
        p.quit()


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
