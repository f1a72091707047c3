#!/usr/bin/env python3
"""postroom-pop3d against real POP3 clients: curl (pop3://, pop3s://,
STLS), fetchmail and mpop downloading and deleting on the server, and a
message sent with smtplib through postroom-smtpd coming back byte-exact.
A scenario is skipped when its client is not installed."""

import glob
import os
import poplib
import shutil
import smtplib
import subprocess
import sys
import unittest

from pop3_util import (DOMAIN, client_context, deliver, harness, message,
                       new_instance)
import tap  # noqa: E402

ALICE = ("alice@" + DOMAIN, "alice-password")
BOB = ("bob@" + DOMAIN, "bob-password")
CAROL = ("carol@" + DOMAIN, "carol-password")
DAVE = ("dave@" + DOMAIN, "dave-password")
ERIN = ("erin@" + DOMAIN, "erin-password")


def need(tool):
    if shutil.which(tool) is None:
        raise unittest.SkipTest("%s is not installed" % tool)


def lf(data):
    return data.replace(b"\r\n", b"\n")


class Pop3Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Plaintext logins only where the test says so: curl's plain
        # pop3:// runs against a second instance below.
        cls.inst = new_instance([ALICE, BOB, CAROL, DAVE, ERIN], extra={
            "pop3": {"allow_plaintext_auth": "false"}})

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def curl(self, user, *args):
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-u",
                            "%s:%s" % user] + list(args),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_curl(self):
        need("curl")
        m1 = message("curl one", b".starts with a dot\r\nbody\r\n")
        m2 = message("curl two")
        deliver(self.inst, m1, ALICE[0])
        deliver(self.inst, m2, ALICE[0])
        cacert = ["--cacert", self.inst.cert]
        s = "pop3s://127.0.0.1:%d/" % self.inst.ports["pop3s"]
        p = "pop3://127.0.0.1:%d/" % self.inst.ports["pop3"]
        # LIST over implicit TLS and over STLS (--ssl-reqd).
        want = b"1 %d\r\n2 %d\r\n" % (len(m1), len(m2))
        self.assertEqual(self.curl(ALICE, *cacert, s), want)
        self.assertEqual(self.curl(ALICE, *cacert, "--ssl-reqd", p), want)
        # RETR: curl undoes the dot-stuffing; the bytes are the stored ones.
        self.assertEqual(self.curl(ALICE, *cacert, s + "1"), m1)
        uidl = self.curl(ALICE, *cacert, "-X", "UIDL", s)
        self.assertRegex(uidl, rb"^1 \S+\r\n2 \S+\r\n$")
        # DELE via a custom command (no body: -I).
        self.curl(ALICE, *cacert, "-X", "DELE", "-I", s + "1")
        self.assertEqual(self.curl(ALICE, *cacert, s),
                         b"1 %d\r\n" % len(m2))
        self.assertEqual(len(self.inst.mailbox(ALICE[0])), 1)
        # Without TLS the server refuses the login: curl fails.
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-u",
                            "%s:%s" % ALICE, p], capture_output=True)
        self.assertNotEqual(r.returncode, 0)

    def test_curl_plaintext_allowed(self):
        need("curl")
        inst = new_instance([ALICE])
        try:
            m = message("plain")
            deliver(inst, m, ALICE[0])
            p = "pop3://127.0.0.1:%d/" % inst.ports["pop3"]
            self.assertEqual(self.curl(ALICE, p + "1"), m)
            self.curl(ALICE, "-X", "DELE", "-I", p + "1")
            self.assertEqual(inst.mailbox(ALICE[0]), [])
        finally:
            inst.close()

    def fetchmail(self, user, ssl_mode, msgs):
        need("fetchmail")
        home = os.path.join(self.inst.tmp, "fetchmail-" + ssl_mode)
        out = os.path.join(home, "out")
        os.makedirs(out)
        for m in msgs:
            deliver(self.inst, m, user[0])
        port = self.inst.ports["pop3s" if ssl_mode == "ssl" else "pop3"]
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(
                'set no bouncemail\n'
                'poll 127.0.0.1 service %d protocol POP3 timeout 30\n'
                '  user "%s" there with password "%s" is "%s" here\n'
                '  %s sslproto "TLS1.2+" sslcertck sslcertfile "%s"\n'
                '  sslcommonname "localhost"\n'
                '  nokeep fetchall\n'
                '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n' % (
                    port, user[0], user[1],
                    os.environ.get("USER") or "nobody",
                    "ssl" if ssl_mode == "ssl" else "", self.inst.cert,
                    out))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
        r = subprocess.run(["fetchmail", "-f", rc, "-N", "--nosyslog", "-v"],
                           capture_output=True, text=True, env=env,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        if ssl_mode != "ssl":
            self.assertIn("POP3> STLS", r.stdout)
        got = []
        for path in glob.glob(os.path.join(out, "msg.*")):
            with open(path, "rb") as f:
                data = f.read()
            # fetchmail adds its Received: header and delivers with LF.
            self.assertTrue(data.startswith(b"Received: "))
            got.append(data[data.index(b"\nFrom: ") + 1:])
        self.assertEqual(sorted(got), sorted(lf(m) for m in msgs))
        # nokeep: deleted on the server.
        self.assertEqual(self.inst.mailbox(user[0]), [])

    def test_fetchmail_stls(self):
        self.fetchmail(BOB, "stls", [
            message("fm %d" % i, b".dot\r\n" + b"line\r\n" * i)
            for i in range(5)])

    def test_fetchmail_pop3s(self):
        self.fetchmail(CAROL, "ssl", [message("fm-ssl %d" % i)
                                      for i in range(3)])

    def mpop(self, user, starttls, msgs):
        need("mpop")
        home = os.path.join(self.inst.tmp, "mpop-%s" % starttls)
        md = os.path.join(home, "Maildir")
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, d))
        for m in msgs:
            deliver(self.inst, m, user[0])
        conf = os.path.join(home, "mpoprc")
        with open(conf, "w") as f:
            f.write("account test\nhost 127.0.0.1\nport %d\n"
                    "user %s\npassword %s\ntls on\ntls_starttls %s\n"
                    "tls_trust_file %s\ndelivery maildir %s\nkeep off\n"
                    "received_header off\nuidls_file %s/uidls\n" % (
                        self.inst.ports["pop3" if starttls else "pop3s"],
                        user[0], user[1], "on" if starttls else "off",
                        self.inst.cert, md, home))
        os.chmod(conf, 0o600)
        env = dict(os.environ, HOME=home)
        r = subprocess.run(["mpop", "-C", conf, "test"], capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        got = []
        for path in glob.glob(os.path.join(md, "new", "*")):
            with open(path, "rb") as f:
                got.append(f.read())
        self.assertEqual(sorted(lf(g) for g in got),
                         sorted(lf(m) for m in msgs))
        self.assertEqual(self.inst.mailbox(user[0]), [])

    def test_mpop_pop3s(self):
        self.mpop(DAVE, False, [message("mpop %d" % i, b".\r\n..\r\nx\r\n")
                                for i in range(4)])

    def test_mpop_stls(self):
        self.mpop(ERIN, True, [message("mpop-stls")])


class SmtpToPop3(unittest.TestCase):
    def test_smtplib_through_smtpd_byte_exact(self):
        if not os.path.exists(harness.BIN["smtpd"]):
            self.skipTest("postroom-smtpd is not built")
        inst = new_instance([ALICE])
        try:
            inst.start("smtpd")
            body = (b"From: Sender <sender@example.org>\r\n"
                    b"To: Alice <alice@example.test>\r\n"
                    b"Subject: round trip\r\n"
                    b"Message-ID: <round-trip@example.org>\r\n"
                    b"\r\n"
                    b".a line with a leading dot\r\n"
                    b"..two dots\r\n"
                    b"caf\xc3\xa9\r\n"
                    b"last line\r\n")
            with smtplib.SMTP(inst.host, inst.ports["smtp"],
                              timeout=30) as s:
                s.ehlo("client.example.org")
                s.sendmail("sender@example.org", [ALICE[0]], body)
            p = poplib.POP3(inst.host, inst.ports["pop3"], timeout=30)
            p.user(ALICE[0])
            p.pass_(ALICE[1])
            count, size = p.stat()
            self.assertEqual(count, 1)
            _, lines, _ = p.retr(1)
            got = b"".join(ln + b"\r\n" for ln in lines)
            # smtpd may prepend trace headers (Received, Return-Path); the
            # message itself comes back octet for octet.
            self.assertTrue(got.endswith(body), got)
            self.assertEqual(size, len(got))
            head = got[:len(got) - len(body)]
            for ln in head.split(b"\r\n")[:-1]:
                self.assertRegex(ln, rb"^([A-Za-z-]+:|[ \t])")
            p.dele(1)
            p.quit()
            self.assertEqual(inst.mailbox(ALICE[0]), [])
        finally:
            inst.close()

    def test_pop3s_with_tls_client_context(self):
        # The same, fetched over 995 with certificate verification.
        inst = new_instance([BOB])
        try:
            m = message("verify")
            deliver(inst, m, BOB[0])
            p = poplib.POP3_SSL(inst.host, inst.ports["pop3s"],
                                context=client_context(inst), timeout=30)
            p.user(BOB[0])
            p.pass_(BOB[1])
            _, lines, _ = p.retr(1)
            self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), m)
            p.quit()
        finally:
            inst.close()


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
