#!/usr/bin/env python3
"""postroom-pop3d and TLS: STLS (RFC 2595) on the plain port, implicit TLS
(RFC 8314) on the pop3s port, the STLS command-injection defence, and a
certificate reload on SIGHUP."""

import hashlib
import os
import poplib
import signal
import socket
import ssl
import sys
import unittest

from pop3_util import (DOMAIN, Raw, client_context, deliver, harness,
                       message, new_instance, tls_context, wait_log)
import tap  # noqa: E402

ALICE = ("alice@" + DOMAIN, "alice-password")
BOB = ("bob@" + DOMAIN, "bob-password")


class Pop3Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Logins only under TLS, as in production.
        cls.inst = new_instance([ALICE, BOB], extra={
            "pop3": {"allow_plaintext_auth": "false"}})
        cls.ctx = client_context(cls.inst)

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def test_stls_poplib(self):
        m = message("over stls", b".dot\r\nbody\r\n")
        deliver(self.inst, m, ALICE[0])
        p = poplib.POP3(self.inst.host, self.inst.ports["pop3"], timeout=15)
        caps = p.capa()
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        p.stls(context=self.ctx)
        caps = p.capa()
        # RFC 2595 4: after STLS, no STLS, and the logins are offered.
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        self.assertEqual(caps["SASL"], ["PLAIN"])
        p.user(ALICE[0])
        p.pass_(ALICE[1])
        _, lines, _ = p.retr(1)
        self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), m)
        p.dele(1)
        p.quit()
        self.assertEqual(self.inst.mailbox(ALICE[0]), [])
        log = self.inst.log("pop3d")
        self.assertRegex(log, r"tls client=\S+ status=ok protocol=TLSv1\.[23] ")

    def test_pop3s_poplib(self):
        m = message("over pop3s")
        deliver(self.inst, m, BOB[0])
        p = poplib.POP3_SSL(self.inst.host, self.inst.ports["pop3s"],
                            context=self.ctx, timeout=15)
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        caps = p.capa()
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        p.user(BOB[0])
        p.pass_(BOB[1])
        self.assertEqual(p.stat(), (1, len(m)))
        _, lines, _ = p.retr(1)
        self.assertEqual(b"".join(ln + b"\r\n" for ln in lines), m)
        p.quit()
        self.assertEqual(len(self.inst.mailbox(BOB[0])), 1)

    def test_stls_injection_discarded(self):
        # CVE-2011-0411 style: commands sent with STLS in one plaintext
        # packet must not run inside the TLS session.
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        self.assertTrue(r.line().startswith(b"+OK"))
        r.send(b"STLS\r\nCAPA\r\nUSER " + ALICE[0].encode() + b"\r\n")
        self.assertEqual(r.line(), b"+OK Begin TLS negotiation")
        r.starttls(self.ctx)
        # Were the injected USER remembered, PASS would be accepted.
        self.assertEqual(r.cmd("PASS " + ALICE[1]),
                         b"-ERR No user name given: send USER first")
        self.assertEqual(r.cmd("STLS"), b"-ERR TLS already active")
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        r.close()

    def test_plaintext_login_refused(self):
        r = Raw(self.inst.host, self.inst.ports["pop3"])
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertEqual(r.cmd("USER " + ALICE[0]),
                         b"-ERR [AUTH] Plaintext authentication disallowed "
                         b"on non-secure connection; use STLS")
        self.assertTrue(r.cmd("AUTH PLAIN AGEAYg==").startswith(
            b"-ERR [AUTH] Plaintext"))
        r.close()

    def test_bad_handshakes_do_not_hurt(self):
        for port in (self.inst.ports["pop3s"], self.inst.ports["pop3"]):
            with socket.create_connection((self.inst.host, port)) as s:
                if port == self.inst.ports["pop3"]:
                    s.recv(100)
                    s.sendall(b"STLS\r\n")
                    s.recv(100)
                s.sendall(b"\x16\x03\x01\x02\x00" + b"\x00" * 600)
                s.settimeout(5)
                try:
                    while s.recv(4096):
                        pass
                except OSError:
                    pass
        # Still serving.
        p = poplib.POP3_SSL(self.inst.host, self.inst.ports["pop3s"],
                            context=self.ctx, timeout=15)
        p.user(ALICE[0])
        p.pass_(ALICE[1])
        p.quit()

    def test_old_tls_refused(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as e:
            self.skipTest("client cannot speak TLS 1.1: %s" % e)
        with socket.create_connection(
                (self.inst.host, self.inst.ports["pop3s"])) as s:
            with self.assertRaises((ssl.SSLError, OSError)):
                ctx.wrap_socket(s).recv(10)


class Pop3Reload(unittest.TestCase):
    def test_sighup_reloads_certificate(self):
        inst = new_instance([ALICE])
        try:
            ctx = tls_context()     # any certificate: it changes

            def fingerprint():
                with socket.create_connection(
                        (inst.host, inst.ports["pop3s"])) as s:
                    with ctx.wrap_socket(s) as t:
                        t.recv(100)
                        return hashlib.sha256(
                            t.getpeercert(binary_form=True)).hexdigest()

            old = fingerprint()
            newdir = os.path.join(inst.tmp, "new")
            os.mkdir(newdir)
            cert, key = harness.make_cert(newdir, cn="reloaded")
            os.replace(cert, inst.cert)
            os.replace(key, inst.key)
            inst.procs["pop3d"].send_signal(signal.SIGHUP)
            wait_log(inst, r"reloaded configuration and certificate")
            new = fingerprint()
            self.assertNotEqual(old, new)
            # A broken certificate file is refused; the current one stays.
            with open(inst.cert, "w") as f:
                f.write("garbage\n")
            inst.procs["pop3d"].send_signal(signal.SIGHUP)
            wait_log(inst, r"reload failed, old settings kept")
            self.assertEqual(fingerprint(), new)
            self.assertIsNone(inst.procs["pop3d"].poll())
        finally:
            inst.close()


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
