#!/usr/bin/env python3
"""postroom-pop3d end to end over loopback, with Python's poplib and a
byte-level client: RFC 1939 commands against the real store, failed
logins, limits, timeouts, big maildrops and big messages."""

import hashlib
import os
import poplib
import sys
import threading
import time
import unittest

from pop3_util import (DOMAIN, Raw, count_log, deliver, message,
                       new_instance, pid_rss_kib, sanitized, unstuff,
                       wait_idle, wait_log)
import tap  # noqa: E402

ALICE = ("alice@" + DOMAIN, "alice-password")
BOB = ("bob@" + DOMAIN, "bob pw with spaces")
CAROL = ("carol@" + DOMAIN, "carol-password")
DAVE = ("dave@" + DOMAIN, "dave-password")
ERIN = ("erin@" + DOMAIN, "erin-password")
FRANK = ("frank@" + DOMAIN, "frank-password")
HEIDI = ("heidi@" + DOMAIN, "heidi-password")

# Content that trips naive servers: lines starting with dots, a lone dot
# line, the CRLF.CRLF sequence, a 998-octet line, 8-bit bytes, a body
# not ending in a blank line.
TRICKY = message("tricky", b"".join([
    b".leading dot\r\n", b"..two\r\n", b".\r\n", b"\r\n.\r\n",
    b"x" * 998 + b"\r\n", b"caf\xc3\xa9 \xff\xfe\r\n", b"end\r\n"]))


class Pop3Basic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = new_instance([ALICE, BOB, CAROL, DAVE, ERIN, FRANK,
                                 HEIDI])

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def pop(self, user):
        p = poplib.POP3(self.inst.host, self.inst.ports["pop3"], timeout=30)
        p.user(user[0])
        p.pass_(user[1])
        return p

    def mailbox(self, addr):
        return self.inst.mailbox(addr)

    def test_capa_and_greeting(self):
        p = poplib.POP3(self.inst.host, self.inst.ports["pop3"], timeout=10)
        self.assertEqual(p.getwelcome(),
                         b"+OK mx.example.test POP3 server ready")
        caps = p.capa()
        for c in ("TOP", "USER", "UIDL", "RESP-CODES", "AUTH-RESP-CODE",
                  "PIPELINING", "STLS"):
            self.assertIn(c, caps)
        self.assertEqual(caps["SASL"], ["PLAIN"])
        self.assertEqual(caps["IMPLEMENTATION"], ["postroom"])
        self.assertNotIn("APOP", caps)
        p.quit()

    def test_retr_byte_exact_and_sizes(self):
        m2 = message("second", b"line\r\n" * 100)
        deliver(self.inst, TRICKY, ALICE[0])
        deliver(self.inst, m2, ALICE[0])
        p = self.pop(ALICE)
        self.assertEqual(p.stat(), (2, len(TRICKY) + len(m2)))
        resp, lst, _ = p.list()
        self.assertEqual(lst, [b"1 %d" % len(TRICKY), b"2 %d" % len(m2)])
        resp, lines, octets = p.retr(1)
        self.assertEqual(resp, b"+OK %d octets" % len(TRICKY))
        self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), TRICKY)
        resp, lines, _ = p.retr(2)
        self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), m2)
        p.quit()
        # The raw wire form: exactly RFC 1939 dot-stuffing.
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        r.login(*ALICE)
        self.assertEqual(r.cmd("RETR 1"), b"+OK %d octets" % len(TRICKY))
        wire = r.multi()
        self.assertIn(b"..leading dot", wire)
        self.assertIn(b"...two", wire)
        self.assertIn(b"..", wire)
        self.assertEqual(unstuff(wire), TRICKY)
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        self.assertEqual(len(self.mailbox(ALICE[0])), 2)

    def test_sizes_are_what_retr_sends(self):
        # RFC 1939 11: a size counts the octets as sent, CRLF line ends
        # included, the dot-stuffing not.  Messages that come through the
        # store API without a final CRLF or with bare LFs or CRs.
        msgs = [b"Subject: no final crlf\r\n\r\nlast line",
                b"Subject: bare lf\n\nline\n.dot\nend\n",
                b"Subject: mixed\r\n\nbare\rcr\r\n.\nno end",
                b"Subject: fine\r\n\r\nbody\r\n"]
        for m in msgs:
            deliver(self.inst, m, HEIDI[0])
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        r.login(*HEIDI)
        self.assertTrue(r.cmd("LIST").startswith(b"+OK 4 messages"))
        sizes = [int(ln.split()[1]) for ln in r.multi()]
        stat = r.cmd("STAT").split()
        self.assertEqual(int(stat[2]), sum(sizes))
        for i, size in enumerate(sizes, 1):
            self.assertEqual(r.cmd("LIST %d" % i), b"+OK %d %d" % (i, size))
            r.send("RETR %d\r\n" % i)
            wire = b""
            while not wire.endswith(b"\r\n.\r\n"):
                chunk = r.sock.recv(65536)
                self.assertTrue(chunk, "connection closed in RETR")
                wire += chunk
            status, _, body = wire.partition(b"\r\n")
            self.assertEqual(status, b"+OK %d octets" % size)
            body = body[:-3]  # ".\r\n", the terminator
            self.assertNotRegex(body, rb"(?<!\r)\n",
                                "message %d: a bare LF went out" % i)
            self.assertNotRegex(body, rb"\r(?!\n)",
                                "message %d: a bare CR went out" % i)
            # Undo the dot-stuffing, then count: that is the size.
            lines = body.split(b"\r\n")
            self.assertEqual(lines[-1], b"", "message %d ends in CRLF" % i)
            sent = sum(len(ln) - (1 if ln.startswith(b".") else 0) + 2
                       for ln in lines[:-1])
            self.assertEqual(sent, size,
                             "message %d: octets sent = LIST size" % i)
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        # poplib counts the same way.
        p = self.pop(HEIDI)
        for i, size in enumerate(sizes, 1):
            _, lines, octets = p.retr(i)
            self.assertEqual(sum(len(ln) + 2 for ln in lines), size)
        p.quit()

    def test_top(self):
        m = message("top", b"one\r\ntwo\r\n.three\r\nfour\r\n")
        deliver(self.inst, m, BOB[0])
        p = self.pop(BOB)
        _, lines, _ = p.top(1, 2)
        head = m.split(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertEqual(lines, head + [b"", b"one", b"two"])
        _, lines, _ = p.top(1, 0)
        self.assertEqual(lines, head + [b""])
        _, lines, _ = p.top(1, 3)
        self.assertEqual(lines[-1], b".three")  # poplib un-stuffed it
        _, lines, _ = p.top(1, 99)
        self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), m)
        p.quit()

    def test_dele_quit_uidl_stable(self):
        msgs = [message("m%d" % i) for i in range(4)]
        for m in msgs:
            deliver(self.inst, m, CAROL[0])
        p = self.pop(CAROL)
        _, uidls, _ = p.uidl()
        uidls = [u.split()[1] for u in uidls]
        self.assertEqual(len(set(uidls)), 4)
        # RFC 1939 7: each unique-id is 1..70 chars of 0x21..0x7E.
        for u in uidls:
            self.assertTrue(1 <= len(u) <= 70)
            self.assertTrue(all(0x21 <= b <= 0x7E for b in u))
        p.dele(1)
        p.dele(3)
        self.assertEqual(p.stat()[0], 2)
        with self.assertRaises(poplib.error_proto):
            p.retr(1)
        # RSET unmarks, then mark again and commit.
        p.rset()
        self.assertEqual(p.stat()[0], 4)
        p.dele(1)
        p.dele(3)
        self.assertIn(b"2 messages deleted", p.quit())
        self.assertEqual(len(self.mailbox(CAROL[0])), 2)
        p = self.pop(CAROL)
        _, after, _ = p.uidl()
        # Renumbered from 1, but the unique-ids never change.
        self.assertEqual(after, [b"1 " + uidls[1], b"2 " + uidls[3]])
        _, lines, _ = p.retr(2)
        self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), msgs[3])
        p.quit()

    def test_drop_deletes_nothing(self):
        deliver(self.inst, message("keep1"), DAVE[0])
        deliver(self.inst, message("keep2"), DAVE[0])
        before = count_log(self.inst, r"disconnect client=\S+ user=dave@")
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        r.login(*DAVE)
        self.assertTrue(r.cmd("DELE 1").startswith(b"+OK"))
        self.assertTrue(r.cmd("DELE 2").startswith(b"+OK"))
        r.close()
        wait_log(self.inst, r"(?s)(disconnect client=\S+ user=dave@.*){%d}" %
                 (before + 1))
        self.assertEqual(len(self.mailbox(DAVE[0])), 2)
        # The lock went with the connection.
        p = self.pop(DAVE)
        self.assertEqual(p.stat()[0], 2)
        p.quit()

    def test_failed_logins(self):
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        self.assertTrue(r.line().startswith(b"+OK"))
        times = []
        for user, pw in ((ERIN[0], "wrong-1"), ("nobody@" + DOMAIN,
                                                 "wrong-2"),
                         (ERIN[0], "wrong-3")):
            self.assertTrue(r.cmd("USER " + user).startswith(b"+OK"))
            t = time.monotonic()
            self.assertEqual(r.cmd("PASS " + pw),
                             b"-ERR [AUTH] Invalid credentials")
            times.append(time.monotonic() - t)
        # The third failure ends the session.
        self.assertTrue(r.closed(5))
        r.close()
        # A growing delay of at least 0.5, 1 and 2 seconds (argon2id and
        # a loaded machine add to it, never take from it).
        self.assertGreater(times[0], 0.49)
        self.assertGreater(times[1], 0.99)
        self.assertGreater(times[2], 1.99)
        log = self.inst.log("pop3d")
        self.assertIn("auth client=127.0.0.1 status=failed "
                      "user=erin@example.test",
                      log)
        self.assertIn("status=failed user=nobody@example.test", log)
        for pw in ("wrong-1", "wrong-2", "wrong-3", ERIN[1]):
            self.assertNotIn(pw, log)
        # The right password still works on a new connection.
        p = self.pop(ERIN)
        p.quit()

    def test_auth_plain(self):
        import base64
        ir = base64.b64encode(b"\0" + FRANK[0].encode() + b"\0" +
                              FRANK[1].encode()).decode()
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertEqual(r.cmd("AUTH PLAIN"), b"+ ")
        self.assertEqual(r.cmd("*"), b"-ERR [AUTH] Authentication cancelled")
        self.assertEqual(r.cmd("AUTH PLAIN"), b"+ ")
        self.assertTrue(r.cmd(ir).startswith(b"+OK Logged in"))
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        r.close()
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertTrue(r.cmd("AUTH PLAIN " + ir).startswith(b"+OK"))
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        self.assertNotIn(FRANK[1], self.inst.log("pop3d"))

    def test_long_lines_and_garbage(self):
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertEqual(r.cmd("USER " + "a" * 300), b"-ERR Line too long")
        r.send(b"X" * 100000 + b"\r\n")
        self.assertEqual(r.line(), b"-ERR Line too long")
        self.assertEqual(r.cmd("NOOP"), b"-ERR Command not valid before login")
        self.assertEqual(r.cmd("FOO"), b"-ERR Unknown command")
        self.assertTrue(r.cmd("USER " + FRANK[0]).startswith(b"+OK"))
        self.assertTrue(r.cmd("PASS " + FRANK[1]).startswith(b"+OK"))
        self.assertEqual(r.cmd("NOOP"), b"+OK")
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        # 20 bad commands close the session.
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        self.assertTrue(r.line().startswith(b"+OK"))
        r.send(b"BAD\r\n" * 25)
        lines = [r.line() for _ in range(20)]
        self.assertEqual(lines[-1],
                         b"-ERR Too many invalid commands, closing connection")
        self.assertTrue(r.closed(5))
        self.assertEqual(r.buf, b"")

    def test_pipelining(self):
        m = message("pipe", b".x\r\n")
        deliver(self.inst, m, FRANK[0])
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        self.assertTrue(r.line().startswith(b"+OK"))
        r.send("USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nRETR 1\r\nUIDL 1\r\n"
               "NOOP\r\nQUIT\r\n" % FRANK)
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertTrue(r.line().startswith(b"+OK Logged in"))
        n = int(r.line().split()[1])
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertEqual(len(r.multi()), n)
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertIn(b"..x", r.multi())
        self.assertTrue(r.line().startswith(b"+OK 1 "))
        self.assertEqual(r.line(), b"+OK")
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertTrue(r.closed(5))

    def test_pipelined_retrs_small_and_big(self):
        """Bodies up to 256 KiB are read on the daemon's loop thread,
        bigger ones on its store thread: a pipeline mixing both, to a
        client that does not read at first, gets every response whole
        and in order."""
        addr = "grace@" + DOMAIN
        self.inst.add_user(addr, "grace-password")

        def sized(subject, size):
            m = message(subject, b"")
            lines = []
            n = len(m)
            i = 0
            while size - n > 100:
                ln = (b"." if i % 5 == 0 else b"") + b"%06d " % i
                lines.append(ln + b"y" * 70 + b"\r\n")
                n += len(lines[-1])
                i += 1
            lines.append(b"z" * (size - n - 2) + b"\r\n")
            m += b"".join(lines)
            assert len(m) == size, (len(m), size)
            return m

        def wire(m):
            out = [b"+OK %d octets\r\n" % len(m)]
            for ln in m.split(b"\r\n")[:-1]:
                out.append((b"." if ln.startswith(b".") else b"") + ln +
                           b"\r\n")
            out.append(b".\r\n")
            return b"".join(out)

        msgs = [TRICKY, sized("edge", 256 * 1024), sized("over",
                256 * 1024 + 1)]
        for m in msgs:
            deliver(self.inst, m, addr)
        r = Raw(self.inst.host, self.inst.ports["pop3"], timeout=60)
        r.login(addr, "grace-password")
        order = [2, 1, 3, 1] * 20
        r.send("".join("RETR %d\r\n" % k for k in order) + "NOOP\r\n")
        # Far more than the socket buffers hold: the daemon has to wait
        # for the client between and within the responses.
        time.sleep(0.5)
        expect = b"".join(wire(msgs[k - 1]) for k in order) + b"+OK\r\n"
        got = bytearray(r.buf)
        while len(got) < len(expect):
            chunk = r.sock.recv(1 << 20)
            self.assertTrue(chunk, "connection closed after %d octets" %
                            len(got))
            got += chunk
        self.assertEqual(len(got), len(expect))
        self.assertTrue(bytes(got) == expect, "responses differ")
        r.buf = b""
        self.assertTrue(r.cmd("TOP 3 1").startswith(b"+OK"))
        top = r.multi()
        self.assertEqual(top[-2:], [b"", b"..000000 " + b"y" * 70])
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))

    def test_in_use_and_snapshot(self):
        addr = "snap@" + DOMAIN
        self.inst.add_user(addr, "snap-password")
        deliver(self.inst, message("before"), addr)
        p1 = self.pop((addr, "snap-password"))
        self.assertEqual(p1.stat()[0], 1)
        # A second session for the same maildrop: [IN-USE].
        p2 = poplib.POP3(self.inst.host, self.inst.ports["pop3"], timeout=10)
        p2.user(addr)
        with self.assertRaises(poplib.error_proto) as cm:
            p2.pass_("snap-password")
        self.assertIn(b"[IN-USE]", cm.exception.args[0])
        p2.quit()
        # Mail arriving now is not part of the open session.
        deliver(self.inst, message("during"), addr)
        self.assertEqual(p1.stat()[0], 1)
        self.assertEqual(len(p1.list()[1]), 1)
        with self.assertRaises(poplib.error_proto):
            p1.retr(2)
        p1.dele(1)
        p1.quit()
        # The next session sees only the new message, and QUIT released
        # the lock before its +OK, so this login cannot race it.
        p3 = self.pop((addr, "snap-password"))
        _, lines, _ = p3.retr(1)
        self.assertIn(b"Subject: during", lines)
        self.assertEqual(p3.stat()[0], 1)
        p3.quit()

    def test_big_maildrop(self):
        addr = "many@" + DOMAIN
        self.inst.add_user(addr, "many-password")
        m = message("bulk")
        deliver(self.inst, m, addr, count=20000)
        t = time.monotonic()
        p = self.pop((addr, "many-password"))
        self.assertEqual(p.stat(), (20000, 20000 * len(m)))
        _, lst, _ = p.list()
        _, uidls, _ = p.uidl()
        elapsed = time.monotonic() - t
        self.assertEqual(len(lst), 20000)
        self.assertEqual(lst[-1], b"20000 %d" % len(m))
        self.assertEqual(len(set(u.split()[1] for u in uidls)), 20000)
        self.assertLess(elapsed, 30)
        _, lines, _ = p.retr(20000)
        self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), m)
        p.quit()

    def test_big_message_streams(self):
        addr = "big@" + DOMAIN
        self.inst.add_user(addr, "big-password")
        line = b"0123456789" * 7 + b"\r\n"
        body = b"".join((b"." if i % 7 == 0 else b"") + line
                        for i in range(50 * 1024 * 1024 // 72))
        m = message("big", body)
        deliver(self.inst, m, addr)
        pid = self.inst.procs["pop3d"].pid
        base = pid_rss_kib(pid)
        r = Raw(self.inst.host, self.inst.ports["pop3"], timeout=60)
        r.login(addr, "big-password")
        r.send("RETR 1\r\n")
        # Read slowly at first: the daemon must not buffer the message.
        peak = base
        got = bytearray()
        r.sock.settimeout(60)
        t = time.monotonic()
        while len(got) < 4 * 1024 * 1024:
            got += r.sock.recv(65536)
            time.sleep(0.002)
            peak = max(peak, pid_rss_kib(pid))
        while not got.endswith(b"\r\n.\r\n"):
            chunk = r.sock.recv(1 << 20)
            self.assertTrue(chunk, "connection closed mid-message")
            got += chunk
            peak = max(peak, pid_rss_kib(pid))
        elapsed = time.monotonic() - t
        head, rest = bytes(got).split(b"\r\n", 1)
        self.assertEqual(head, b"+OK %d octets" % len(m))
        data = rest[:-5] + b"\r\n"
        wire_lines = data.split(b"\r\n")[:-1]
        self.assertEqual(hashlib.sha256(unstuff(wire_lines)).hexdigest(),
                         hashlib.sha256(m).hexdigest())
        # 50 MB went through; the daemon's heap grew by far less.
        if not sanitized(pid):
            self.assertLess(peak - base, 24 * 1024,
                            "RSS grew %d KiB" % (peak - base))
        self.assertLess(elapsed, 60)
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))


class Pop3Limits(unittest.TestCase):
    """Settings that need their own instance."""

    def test_plaintext_refused(self):
        inst = new_instance([ALICE], extra={
            "pop3": {"allow_plaintext_auth": "false"}})
        try:
            r = Raw(inst.host, inst.ports["pop3"])
            self.assertTrue(r.line().startswith(b"+OK"))
            self.assertEqual(
                r.cmd("USER " + ALICE[0]),
                b"-ERR [AUTH] Plaintext authentication disallowed on "
                b"non-secure connection; use STLS")
            r.send(b"CAPA\r\n")
            self.assertTrue(r.line().startswith(b"+OK"))
            caps = r.multi()
            self.assertIn(b"STLS", caps)
            self.assertNotIn(b"USER", caps)
            r.close()
        finally:
            inst.close()

    def test_idle_timeout_deletes_nothing(self):
        inst = new_instance([ALICE], extra={"pop3": {"timeout": "2"}})
        try:
            deliver(inst, message("t"), ALICE[0])
            r = Raw(inst.host, inst.ports["pop3"])
            r.login(*ALICE)
            self.assertTrue(r.cmd("DELE 1").startswith(b"+OK"))
            t = time.monotonic()
            # RFC 1939 3: closed without a response.
            self.assertTrue(r.closed(10))
            self.assertEqual(r.buf, b"")
            self.assertGreater(time.monotonic() - t, 1.5)
            wait_log(inst, r"\] timeout client=")
            wait_log(inst, r"disconnect client=\S+ user=alice@")
            self.assertEqual(len(inst.mailbox(ALICE[0])), 1)
        finally:
            inst.close()

    def test_connections_per_ip(self):
        inst = new_instance([ALICE], extra={
            "pop3": {"max_connections_per_ip": "2"}})
        try:
            wait_idle(inst)
            a = Raw(inst.host, inst.ports["pop3"])
            b = Raw(inst.host, inst.ports["pop3"])
            self.assertTrue(a.line().startswith(b"+OK"))
            self.assertTrue(b.line().startswith(b"+OK"))
            c = Raw(inst.host, inst.ports["pop3"])
            self.assertEqual(c.line(), b"-ERR [SYS/TEMP] Too many "
                             b"connections from your address")
            self.assertTrue(c.closed(5))
            a.cmd("QUIT")
            self.assertTrue(a.closed(5))
            wait_log(inst, r"disconnect")
            d = Raw(inst.host, inst.ports["pop3"])
            self.assertTrue(d.line().startswith(b"+OK"))
            for x in (b, c, d):
                x.close()
        finally:
            inst.close()

    def test_ipv6(self):
        try:
            inst = new_instance([ALICE], host="::1")
        except RuntimeError as e:
            self.skipTest("no IPv6 loopback: %s" % e)
        try:
            deliver(inst, message("v6"), ALICE[0])
            p = poplib.POP3("::1", inst.ports["pop3"], timeout=10)
            p.user(ALICE[0])
            p.pass_(ALICE[1])
            self.assertEqual(p.stat()[0], 1)
            p.quit()
            self.assertIn("connect client=::1", inst.log("pop3d"))
        finally:
            inst.close()


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
