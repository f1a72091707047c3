#!/usr/bin/python3
"""A real peer: Debian's Postfix is the MX of c.test on 127.0.0.9.
alice@a.test's message reaches its maildir over STARTTLS with a DKIM
signature that python3-dkim verifies; a recipient Postfix does not know
comes back to alice as a bounce with Postfix's own words."""

import email
import os
import pwd
import sys
import tempfile

from relay_util import (Check, Dns, Instance, PASSWORD, close_all, dkim_verify,
                        free_port_on, mailbox_bodies, message, queued,
                        skip, submit, wait_for, zone_txt)
import postfix  # noqa: E402 (tests/lib, put on the path by relay_util)

ALICE = "alice@a.test"


def postfix_mx(host, port, cert, key):
    """Postfix as mx.c.test, STARTTLS with cert, carol's mailbox in
    root/mail/maildir (virtual(8), as the postfix user)."""
    pf = postfix.Postfix(tempfile.mkdtemp(prefix="postroom-postfix-"),
                         host, port)
    owner = pwd.getpwnam("postfix")
    mail = os.path.join(pf.root, "mail")
    os.mkdir(mail, 0o755)
    os.chown(mail, owner.pw_uid, owner.pw_gid)
    pf.set({
        "myhostname": "mx.c.test",
        "mydomain": "c.test",
        "myorigin": "c.test",
        "mydestination": "",
        "inet_interfaces": "loopback-only",
        "smtpd_recipient_restrictions":
            "permit_mynetworks, reject_unauth_destination",
        "smtputf8_enable": "yes",
        "smtpd_tls_cert_file": cert,
        "smtpd_tls_key_file": key,
        "smtpd_tls_security_level": "may",
        "smtpd_tls_received_header": "yes",
        "smtpd_tls_loglevel": "1",
    })
    pf.set(postfix.virtual_mailboxes(pf, "c.test",
                                     {"carol@c.test": "maildir/"}, mail,
                                     owner.pw_uid, owner.pw_gid))
    pf.maildir = os.path.join(mail, "maildir")
    return pf


def main():
    why = postfix.available()
    if why:
        skip(why)
    t = Check()
    port = free_port_on(["127.0.0.2", "127.0.0.9"])
    a = Instance(host="127.0.0.2", hostname="mx.a.test")
    dns = pf = None
    try:
        a.add_domain("a.test")
        a.add_user(ALICE, PASSWORD)
        txt = zone_txt(a.cli("dkim", "keygen", "a.test").stdout)
        a.cli("dkim", "activate", "a.test", "postroom", "--force")
        dns = Dns(mx={"c.test": [(10, "mx.c.test")]},
                  a={"mx.c.test": "127.0.0.9"}, txt=txt)
        pf = postfix_mx("127.0.0.9", port, a.cert, a.key)
        pf.start()
        a.extra["relay"] = {"resolver": dns.resolver,
                            "mx_port": str(port)}
        a.write_config()
        a.start("smtpd")

        msg = message(ALICE, "carol@c.test", "to postfix",
                      body="Hello Carol.\r\n.\r\n..\r\nBye.\r\n")
        t.eq(submit(a, ALICE, ["carol@c.test"], msg), {}, "submitted")
        t.ok(wait_for(lambda: len(postfix.maildir_messages(pf.maildir)) ==
                      1, 30),
             "Postfix delivered it to carol's maildir",
             a.log("smtpd") + pf.read_log())
        got = (postfix.maildir_messages(pf.maildir) or [b""])[0]
        got = got.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        t.ok(got.endswith(msg), "message intact (dot lines too)",
             got[-200:])
        ok, detail = dkim_verify(got, txt)
        t.ok(ok, "DKIM signature verifies after Postfix", detail)
        t.ok(b"from mx.a.test (" in got, "Postfix saw our EHLO name",
             got[:600])
        t.ok(b"(using TLSv1." in got,
             "Postfix's Received header shows TLS", got[:600])
        t.ok("TLS connection established" in pf.read_log(),
             "Postfix logs the TLS session")
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty")

        submit(a, ALICE, ["nobody@c.test"],
               message(ALICE, "nobody@c.test", "to nobody at postfix"))
        t.ok(wait_for(lambda: len(mailbox_bodies(a, ALICE)) == 1, 30),
             "Postfix's 550 bounces to alice", a.log("smtpd"))
        bounce = mailbox_bodies(a, ALICE)[0] if mailbox_bodies(
            a, ALICE) else b""
        m = email.message_from_bytes(bounce)
        t.eq(m.get_content_type(), "multipart/report", "a DSN")
        t.ok(b"Diagnostic-Code: smtp; 550 5.1.1 <nobody@c.test>: "
             b"Recipient address rejected: User unknown in virtual "
             b"mailbox table" in bounce,
             "the bounce quotes Postfix's reply", bounce)
        t.ok(b"Remote-MTA: dns; mx.c.test" in bounce, "Remote-MTA")
    finally:
        close_all(a, pf, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
