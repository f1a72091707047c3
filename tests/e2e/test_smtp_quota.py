#!/usr/bin/env python3
"""Quotas per recipient over real SMTP: a full mailbox is refused at RCPT
(452 4.2.2 naming it); a full mailbox reached through an alias, or one
that a message turns out too big for at the end of data, does not hold
the message back from the other recipients: they get it (250), and the
sender gets a bounce (RFC 3464) naming the full one, stored in their
mailbox or queued to them; the log names the recipient."""

import email
import smtplib
import sys

from smtp_util import (ALICE, BOB, PASSWORD, Check, instance, log_has,
                       messages, queued_rcpts)

SMALL = "small@example.test"


def body(subject, lines):
    return (b"Subject: %s\r\nFrom: <%s>\r\n\r\n" % (subject.encode(),
            BOB.encode()) + (b"q" * 68 + b"\r\n") * lines)


def bounces(inst, address, before):
    """The bounces in address's mailbox after the first `before`."""
    return [m for m in messages(inst, address)[before:]
            if b"report-type=delivery-status" in m]


def used(inst, address):
    with inst.db() as c:
        return c.execute("SELECT used FROM users WHERE address = ?",
                         (address,)).fetchone()[0]


def main():
    t = Check()
    inst = instance()
    try:
        inst.cli("alias", "add", "both@example.test", ALICE + "," + SMALL)
        inst.start("smtpd")
        port = inst.ports["smtp"]
        sub = inst.ports["submission"]

        # small@ (2000 octets) gets 1500, then its quota drops to 1000:
        # it is over quota.
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            t.eq(s.sendmail("sender@remote.test", [SMALL],
                            body("fill", 18)), {}, "small@ filled")
        inst.cli("user", "quota", SMALL, "1000")

        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            s.ehlo()
            s.mail("sender@remote.test")
            code, msg = s.rcpt(SMALL)
            t.eq((code, msg[:5]), (452, b"4.2.2"),
                 "RCPT to a full mailbox: 452 4.2.2")
            t.ok(SMALL.encode() in msg, "... naming the recipient", msg)
            code, msg = s.rcpt(ALICE)
            t.eq(code, 250, "the next recipient is accepted")
            code, msg = s.data(body("direct", 3))
            t.eq(code, 250, "... and gets the message")
        t.eq(len(messages(inst, ALICE)), 1, "alice has it")

        # Through an alias: alice has room, small@ is full.
        a0, b0, s0 = (len(messages(inst, a)) for a in (ALICE, BOB, SMALL))
        with smtplib.SMTP(inst.host, sub, timeout=20) as s:
            s.login(BOB, PASSWORD)
            t.eq(s.sendmail(BOB, ["both@example.test"],
                            body("to the alias", 5)), {},
                 "alias with a full mailbox: 250")
        t.eq(len(messages(inst, ALICE)), a0 + 1, "alice got it")
        t.eq(len(messages(inst, SMALL)), s0, "small@ did not")
        got = bounces(inst, BOB, b0)
        t.eq(len(got), 1, "the sender got a bounce")
        dsn = got[0] if got else b""
        t.ok(b"Final-Recipient: rfc822; " + SMALL.encode() in dsn,
             "... naming small@ as the failed recipient", dsn[:3000])
        t.ok(b"Status: 5.2.2" in dsn, "... status 5.2.2 (mailbox full)",
             dsn[:3000])
        t.ok(b"Subject: to the alias" in dsn,
             "... with the original header", dsn[:3000])
        t.ok(ALICE.encode() not in dsn.split(b"text/rfc822-headers")[0],
             "... and not alice, who got it", dsn[:3000])
        t.ok(log_has(inst, "to=<%s> relay=local status=bounced" % SMALL),
             "the log names the full mailbox", inst.log("smtpd")[-3000:])

        # Room at RCPT, none at the end of data (no SIZE given): 250 for
        # both recipients, alice gets it, small@ a bounce.
        inst.cli("user", "quota", SMALL, str(used(inst, SMALL) + 100))
        a0, b0, s0 = (len(messages(inst, a)) for a in (ALICE, BOB, SMALL))
        with smtplib.SMTP(inst.host, sub, timeout=20) as s:
            s.login(BOB, PASSWORD)
            s.ehlo()
            s.mail(BOB)  # no SIZE=, which would be refused at RCPT
            t.eq(s.rcpt(ALICE)[0], 250, "alice accepted")
            t.eq(s.rcpt(SMALL)[0], 250, "small@ accepted: it has room")
            code, msg = s.data(body("too much", 10))
            t.eq(code, 250, "the message does not fit small@: 250")
        t.eq(len(messages(inst, ALICE)), a0 + 1, "alice got it")
        t.eq(len(messages(inst, SMALL)), s0, "small@ did not")
        t.eq(len(bounces(inst, BOB, b0)), 1, "the sender got a bounce")

        # Bigger than small@'s whole quota (552 before), to alice too.
        inst.cli("user", "quota", SMALL, str(used(inst, SMALL) + 1000))
        with smtplib.SMTP(inst.host, sub, timeout=20) as s:
            s.login(BOB, PASSWORD)
            s.ehlo()
            s.mail(BOB)
            t.eq(s.rcpt(ALICE)[0], 250, "alice accepted")
            t.eq(s.rcpt(SMALL)[0], 250, "small@ accepted (no SIZE)")
            code, msg = s.data(body("huge", 20))
            t.eq(code, 250, "bigger than small@'s quota: 250 for alice")
        t.eq(len(bounces(inst, BOB, b0)), 2, "... and a bounce for small@")

        # RFC 3461 through the same reports: NOTIFY=NEVER for small@ is
        # no bounce; RET=FULL and alice's NOTIFY=SUCCESS one report with
        # small@ failed (the whole message returned) and alice delivered.
        with smtplib.SMTP(inst.host, sub, timeout=20) as s:
            s.login(BOB, PASSWORD)
            s.ehlo()
            s.mail(BOB)
            t.eq(s.rcpt(ALICE)[0], 250, "alice accepted")
            t.eq(s.rcpt(SMALL, ["NOTIFY=NEVER"])[0], 250,
                 "small@ NOTIFY=NEVER accepted")
            t.eq(s.data(body("never", 20))[0], 250, "NOTIFY=NEVER: 250")
        t.ok(log_has(inst, 'to=<%s> bounce=none reason="NOTIFY=NEVER"' %
                     SMALL), "NOTIFY=NEVER: the log says no bounce")
        t.eq(len(bounces(inst, BOB, b0)), 2, "NOTIFY=NEVER: no bounce")
        with smtplib.SMTP(inst.host, sub, timeout=20) as s:
            s.login(BOB, PASSWORD)
            s.ehlo()
            s.mail(BOB, ["RET=FULL", "ENVID=q1"])
            t.eq(s.rcpt(ALICE, ["NOTIFY=SUCCESS"])[0], 250, "alice")
            t.eq(s.rcpt(SMALL)[0], 250, "small@")
            t.eq(s.data(body("full return", 20))[0], 250, "RET=FULL: 250")
        got = bounces(inst, BOB, b0)[2:]
        t.eq(len(got), 1, "one report for both recipients")
        rep = email.message_from_bytes(got[0].split(b"\r\n", 1)[1]) \
            if got else email.message_from_bytes(b"")
        parts = rep.get_payload() if rep.is_multipart() else []
        t.eq([p.get_content_type() for p in parts],
             ["text/plain", "message/delivery-status", "message/rfc822"],
             "multipart/report with the whole message (RFC 6522)")
        if len(parts) == 3:
            blocks = parts[1].get_payload()
            t.eq(blocks[0].get("Original-Envelope-Id"), "q1", "ENVID")
            t.eq(sorted((b.get("Final-Recipient"), b.get("Action"),
                         b.get("Status")) for b in blocks[1:]),
                 [("rfc822; " + ALICE, "delivered", "2.0.0"),
                  ("rfc822; " + SMALL, "failed", "5.2.2")],
                 "alice delivered, small@ failed: mailbox full")
            t.ok(b"q" * 68 in parts[2].as_bytes(),
                 "RET=FULL: the body comes back")
        b0 = len(messages(inst, BOB))

        # Only full mailboxes: the message is refused, nobody bounced.
        inst.cli("user", "quota", SMALL, "1000")
        b0 = len(messages(inst, BOB))
        with smtplib.SMTP(inst.host, sub, timeout=20) as s:
            s.login(BOB, PASSWORD)
            s.ehlo()
            s.mail(BOB)
            code, msg = s.rcpt(SMALL)
            t.eq((code, msg[:5]), (452, b"4.2.2"), "full: 452 at RCPT")
        t.eq(len(messages(inst, BOB)), b0, "no bounce for a refusal")

        # A remote sender: the bounce is queued to it.
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            t.eq(s.sendmail("someone@remote.test", ["both@example.test"],
                            body("from afar", 2)), {},
                 "a remote sender to the alias: 250")
        t.ok("someone@remote.test" in queued_rcpts(inst),
             "the bounce is queued to the remote sender", queued_rcpts(inst))

        # The null sender gets no bounce (RFC 5321 4.5.5).
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            t.eq(s.sendmail("<>", ["both@example.test"],
                            body("bounce itself", 2)), {},
                 "a message from the null sender: 250")
        t.ok(log_has(inst, "no bounce for a message from the null sender"),
             "... and no bounce for it", inst.log("smtpd")[-3000:])
        t.eq(inst.stop("smtpd"), 0, "smtpd stops cleanly")
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
