#!/usr/bin/python3
"""A real Postfix relays to postroom-smtpd: a private Postfix instance
(its own config and queue directories, loopback ports only) accepts a
message and hands it to postroom over SMTP with STARTTLS, as an MX would
receive it from the Internet.  The message must arrive byte for byte,
with Postfix's trace fields and ours.

Needs /usr/sbin/postfix and root (Postfix's master runs as root and drops
to the postfix user); otherwise the test is skipped.
"""

import smtplib
import sys
import tempfile
import time

from smtp_util import ALICE, Check, instance, messages, split_stored, \
    wait_for
from harness import free_port
import postfix
from tap import skip


def main():
    why = postfix.available()
    if why:
        skip(why)
    t = Check()
    inst = instance()
    pf = None
    try:
        inst.start("smtpd")
        pport = free_port()
        pf = postfix.Postfix(tempfile.mkdtemp(prefix="postroom-postfix-"),
                             "127.0.0.1", pport, {
                                 "myhostname": "relay.test",
                                 "mydomain": "relay.test",
                                 "myorigin": "relay.test",
                                 "mydestination": "",
                                 "local_recipient_maps": "",
                                 "inet_interfaces": "127.0.0.1",
                                 "smtpd_relay_restrictions":
                                     "permit_mynetworks, reject",
                                 "relay_domains": "",
                                 "relayhost":
                                     "[127.0.0.1]:%d" % inst.ports["smtp"],
                                 "smtp_tls_security_level": "encrypt",
                                 "smtp_tls_loglevel": "1",
                                 "smtputf8_enable": "yes",
                             })
        try:
            pf.start()
        except RuntimeError as e:
            t.ok(False, "private postfix started", str(e))
            return t.done()
        t.ok(pf.pid > 0, "private postfix started (pid %d)" % pf.pid)
        msg = (b"From: someone@relay.test\r\n"
               b"To: alice@example.test\r\n"
               b"Subject: via postfix\r\n"
               b"Message-ID: <postfix-test@relay.test>\r\n"
               b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
               b"\r\n"
               b"Relayed by Postfix.\r\n"
               b".A line with a leading dot.\r\n")
        ok = False
        for _ in range(50):
            try:
                with smtplib.SMTP("127.0.0.1", pport, timeout=10) as s:
                    s.sendmail("someone@relay.test", [ALICE], msg)
                ok = True
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.2)
        t.ok(ok, "postfix accepted the message")
        arrived = wait_for(lambda: len(messages(inst, ALICE)) > 0, 30)
        # Postfix logs status=sent once it has read our 250, which may be
        # a moment after the message is in the store.
        wait_for(lambda: "status=sent" in pf.read_log(), 10)
        plog = pf.read_log()
        t.ok(arrived, "postfix relayed it to postroom", plog[-2000:])
        if arrived:
            stored = messages(inst, ALICE)[0]
            head, rest = split_stored(stored)
            t.ok(b"with ESMTPS id" in head and b"(using TLSv1." in head,
                 "postfix used STARTTLS towards postroom", head)
            t.ok(b"Received: from relay.test ([127.0.0.1])" in head,
                 "our Received names postfix's EHLO", head)
            t.ok(head.count(b"Received: ") == 2 and
                 b"by relay.test (Postfix)" in head,
                 "postfix's own Received field is kept below ours", head)
            t.ok(rest.endswith(msg), "message intact through postfix",
                 rest)
        t.ok("status=sent" in plog, "postfix logged status=sent",
             plog[-2000:])
    finally:
        if pf is not None:
            pf.close()
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
