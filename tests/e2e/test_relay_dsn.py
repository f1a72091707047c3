#!/usr/bin/python3
"""Delivery status notifications (RFC 3461, RFC 3464) end to end.

postroom A (a.test, 127.0.0.2) and B (b.test, 127.0.0.3) find each other
through a private dnsmasq; two scripted MX hosts stand for the rest of
the world: refuse.test (127.0.0.4, 550 to every recipient) and slow.test
(127.0.0.5, 451).  Neither offers DSN or SMTPUTF8.  Real clients send the
DSN parameters: python's smtplib (RET, ENVID, NOTIFY, ORCPT) and msmtp
(--dsn-notify, --dsn-return); swaks shows the DSN extension.

- A passes the parameters on to B, which offers DSN; B's "delivered"
  report comes back to alice through A with the ENVID and the ORCPT;
- a local delivery on A with NOTIFY=SUCCESS (msmtp) gets one too;
- NOTIFY=NEVER to the refusing MX: no bounce; RET=HDRS: the bounce has
  the header only; RET=FULL: the whole message;
- [relay] delay_warning = 2s: one "delayed" report for the recipient
  whose NOTIFY asks for it, and never a second one;
- never a warning for a message from the null sender (a bounce queued
  to a sender whose MX defers it);
- SMTPUTF8 mail bounces with message/global-delivery-status (RFC 6533).

Every report is parsed with python's email package as a multipart/report
(RFC 6522)."""

import email
import email.parser
import email.policy
import re
import shutil
import smtplib
import subprocess

from relay_util import (PASSWORD, Check, Dns, FakeMX, Instance, close_all,
                        free_port_on, mailbox_bodies, message, queued,
                        wait_for)

ALICE = "alice@a.test"
CAROL = "carol@a.test"
BOB = "bob@b.test"
TINY = "tiny@a.test"
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def send(inst, to, msg, mail_options=(), rcpt_options=()):
    """alice submits msg to A with the given MAIL and RCPT parameters
    (smtplib); returns the refused-recipients dict."""
    with smtplib.SMTP(inst.host, inst.ports["submission"],
                      local_hostname="client.test", timeout=30) as s:
        s.ehlo()
        s.login(ALICE, PASSWORD)
        return s.sendmail(ALICE, to, msg, list(mail_options),
                          list(rcpt_options))


def parse_report(raw):
    """(message, [report field blocks], returned part) of a stored
    report, or None when raw is not a multipart/report of RFC 6522."""
    body = raw.split(b"\r\n", 1)[1] if raw.startswith(b"Return-Path:") \
        else raw
    msg = email.message_from_bytes(body, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report" or \
            msg.get_param("report-type") != "delivery-status":
        return None
    parts = msg.get_payload()
    if not isinstance(parts, list) or len(parts) != 3 or \
            parts[0].get_content_type() != "text/plain":
        return None
    status = parts[1]
    if status.get_content_type() == "message/delivery-status":
        blocks = status.get_payload()
    else:
        # message/global-delivery-status (RFC 6533 3): the same field
        # blocks, in UTF-8; the email package does not know the type,
        # so the blocks are read from the part's octets.
        sep = b"--" + msg.get_boundary().encode()
        raw_part = body.split(sep)[2]
        text = raw_part.split(b"\r\n\r\n", 1)[1].decode("utf-8")
        blocks = [email.parser.Parser().parsestr(b + "\n", headersonly=True)
                  for b in text.replace("\r\n", "\n").strip().split("\n\n")]
    return msg, blocks, parts[2]


def reports(inst, addr):
    out = []
    for raw in mailbox_bodies(inst, addr):
        r = parse_report(raw)
        if r is not None:
            out.append(r)
    return out


def actions(rep):
    return [(b.get("Final-Recipient"), b.get("Action")) for b in rep[1][1:]]


def main():
    t = Check()
    port = free_port_on(HOSTS)
    a = Instance(host="127.0.0.2", hostname="mx.a.test")
    b = Instance(host="127.0.0.3", hostname="mx.b.test")
    dns = refuse = slow = None
    try:
        for inst, dom in ((a, "a.test"), (b, "b.test")):
            inst.ports["smtp"] = port
            inst.add_domain(dom)
        a.add_user(ALICE, PASSWORD)
        a.add_user(CAROL, PASSWORD)
        a.add_user(TINY, PASSWORD, quota=200)
        b.add_user(BOB, PASSWORD)
        refuse = FakeMX("127.0.0.4", port, name="mx.refuse.test",
                        rcpt=lambda x: "550 5.1.1 <%s>: no such user" % x)
        slow = FakeMX("127.0.0.5", port, name="mx.slow.test",
                      rcpt=lambda x: "451 4.3.2 try again later")
        dns = Dns(mx={"a.test": [(10, "mx.a.test")],
                      "b.test": [(10, "mx.b.test")],
                      "refuse.test": [(10, "mx.refuse.test")],
                      "slow.test": [(10, "mx.slow.test")]},
                  a={"mx.a.test": "127.0.0.2", "mx.b.test": "127.0.0.3",
                     "mx.refuse.test": "127.0.0.4",
                     "mx.slow.test": "127.0.0.5"})
        for inst in (a, b):
            inst.extra["relay"] = {"mx_port": str(port)}
            inst.extra["dns"] = {"resolver": dns.resolver}
        a.extra["relay"]["delay_warning"] = "2s"
        for inst in (a, b):
            inst.write_config()
            inst.start("smtpd")

        if shutil.which("swaks"):
            r = subprocess.run(["swaks", "--server", a.host, "--port",
                                str(a.ports["smtp"]), "--quit-after",
                                "EHLO", "--helo", "swaks.test"],
                               capture_output=True, text=True, timeout=60)
            t.ok("<-  250-DSN" in r.stdout, "swaks: EHLO offers DSN",
                 r.stdout)
        else:
            t.skipped("swaks", "not installed")

        # Malformed parameters: 501 5.5.4 naming the parameter.
        with smtplib.SMTP(a.host, a.ports["submission"],
                          local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            s.login(ALICE, PASSWORD)
            code, text = s.mail(ALICE, ["ENVID=a+zz"])
            t.ok(code == 501 and b"5.5.4" in text and b"ENVID" in text,
                 "bad ENVID xtext: 501 5.5.4 ENVID", text)
            s.rset()
            s.mail(ALICE)
            code, text = s.rcpt(BOB, ["NOTIFY=NEVER,DELAY"])
            t.ok(code == 501 and b"5.5.4" in text and b"NOTIFY" in text,
                 "NOTIFY=NEVER with another: 501 5.5.4 NOTIFY", text)
            code, text = s.rcpt(BOB, ["ORCPT=rfc822"])
            t.ok(code == 501 and b"ORCPT" in text,
                 "ORCPT without an address: 501 5.5.4 ORCPT", text)

        # A -> B with DSN passed on; B's "delivered" report to alice.
        msg = message(ALICE, BOB, "dsn across")
        t.eq(send(a, [BOB], msg, ["RET=HDRS", "ENVID=env+2B1"],
                  ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob+2Bold@b.test"]),
             {}, "smtplib: RET, ENVID, NOTIFY, ORCPT accepted")
        t.ok(wait_for(lambda: len(mailbox_bodies(b, BOB)) == 1, 30),
             "the message reaches bob on B", a.log("smtpd"))
        t.ok(wait_for(lambda: len(reports(a, ALICE)) == 1, 30),
             "a delivered report from B reaches alice",
             b.log("smtpd")[-3000:])
        rep = reports(a, ALICE)
        if rep:
            msg0, blocks, ret = rep[0]
            t.eq(blocks[0].get("Original-Envelope-Id"), "env+1",
                 "the report carries the ENVID (decoded)")
            t.eq(blocks[0].get("Reporting-MTA"), "dns; mx.b.test",
                 "reported by B")
            t.eq(blocks[1].get("Original-Recipient"),
                 "rfc822;Bob+old@b.test", "Original-Recipient: the ORCPT")
            t.eq(blocks[1].get("Action"), "delivered", "Action: delivered")
            t.eq(blocks[1].get("Status"), "2.0.0", "Status: 2.0.0")
            t.eq(msg0.get("Subject"), "Successful Mail Delivery Report",
                 "subject of a success report")
            t.eq(ret.get_content_type(), "text/rfc822-headers",
                 "the header of the message comes back")
        n_alice = len(mailbox_bodies(a, ALICE))

        # Local delivery on A, NOTIFY=SUCCESS from msmtp.
        if shutil.which("msmtp"):
            r = subprocess.run(
                ["msmtp", "--host=" + a.host,
                 "--port=%d" % a.ports["submission"], "--domain=msmtp.test",
                 "--from=" + ALICE, "--user=" + ALICE,
                 "--passwordeval=echo '%s'" % PASSWORD, "--tls=off",
                 "--auth=plain",
                 "--dsn-notify=success", "--dsn-return=headers", CAROL],
                input=message(ALICE, CAROL, "local dsn"),
                capture_output=True, timeout=60)
            t.ok(r.returncode == 0, "msmtp --dsn-notify=success", r.stderr)
            t.ok(wait_for(lambda: len(reports(a, ALICE)) == 2, 20),
                 "a delivered report for the local delivery", a.log("smtpd"))
            rep = reports(a, ALICE)
            if len(rep) == 2:
                t.eq(actions(rep[1]), [("rfc822; carol@a.test",
                                        "delivered")],
                     "Final-Recipient carol, Action: delivered")
                t.eq(rep[1][1][0].get("Reporting-MTA"), "dns; mx.a.test",
                     "reported by A")
            t.eq(len(mailbox_bodies(a, CAROL)), 1, "carol has the message")
        else:
            t.skipped("msmtp", "not installed")
        n_alice = len(mailbox_bodies(a, ALICE))

        # NOTIFY=NEVER to a refusing MX: no bounce at all.
        t.eq(send(a, ["never@refuse.test"],
                  message(ALICE, "never@refuse.test", "never"), (),
                  ["NOTIFY=NEVER"]), {}, "NOTIFY=NEVER accepted")
        t.ok(wait_for(lambda: 'to=<never@refuse.test> bounce=none '
                      'reason="NOTIFY=NEVER"' in a.log("smtpd"), 30),
             "refused; the log says no bounce for NOTIFY=NEVER",
             a.log("smtpd")[-3000:])
        t.ok(wait_for(lambda: queued(a) == [], 10), "off the queue")
        t.eq(len(mailbox_bodies(a, ALICE)), n_alice, "alice got no bounce")

        # RET=HDRS: the header only; RET=FULL: the whole message.
        for ret, rcpt in (("HDRS", "hdrs@refuse.test"),
                          ("FULL", "full@refuse.test")):
            n = len(reports(a, ALICE))
            m = message(ALICE, rcpt, "ret " + ret,
                        body="BODY-MARKER-%s\r\n" % ret)
            t.eq(send(a, [rcpt], m, ["RET=" + ret]), {}, "RET=" + ret)
            t.ok(wait_for(lambda: len(reports(a, ALICE)) == n + 1, 30),
                 "RET=%s: a bounce" % ret, a.log("smtpd")[-3000:])
            rep = reports(a, ALICE)
            if len(rep) == n + 1:
                msg1, blocks, part = rep[-1]
                raw = msg1.as_bytes()
                t.eq(actions(rep[-1]), [("rfc822; " + rcpt, "failed")],
                     "RET=%s: Action: failed" % ret)
                t.ok(blocks[1].get("Diagnostic-Code", "").startswith(
                     "smtp; 550 5.1.1"), "the remote's reply",
                     str(blocks[1]))
                if ret == "HDRS":
                    t.eq(part.get_content_type(), "text/rfc822-headers",
                         "RET=HDRS: text/rfc822-headers")
                    t.ok(b"BODY-MARKER" not in raw, "RET=HDRS: no body",
                         raw[-800:])
                    t.ok(b"Subject: ret HDRS" in raw, "... but the header")
                else:
                    t.eq(part.get_content_type(), "message/rfc822",
                         "RET=FULL: message/rfc822")
                    inner = part.get_payload()[0]
                    t.ok("BODY-MARKER-FULL" in inner.get_payload(),
                         "RET=FULL: the body comes back", raw[-800:])

        # Delay warnings: one for the recipient asking for DELAY (the
        # default), none for NOTIFY=FAILURE, never a second one.
        n = len(reports(a, ALICE))
        m = message(ALICE, "late@slow.test", "slow")
        with smtplib.SMTP(a.host, a.ports["submission"],
                          local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            s.login(ALICE, PASSWORD)
            s.mail(ALICE)
            s.rcpt("late@slow.test")
            s.rcpt("quiet@slow.test", ["NOTIFY=FAILURE"])
            code, _ = s.data(m)
            t.eq(code, 250, "two recipients at the slow MX")
        t.ok(wait_for(lambda: len(reports(a, ALICE)) == n + 1, 40),
             "a delay warning after delay_warning = 2s",
             a.log("smtpd")[-3000:])
        rep = reports(a, ALICE)
        if len(rep) == n + 1:
            t.eq(actions(rep[-1]), [("rfc822; late@slow.test", "delayed")],
                 "Action: delayed, only for the recipient that wants it")
            t.ok(rep[-1][1][1].get("Status", "").startswith("4."),
                 "a delay has a 4.x.x status", str(rep[-1][1][1]))
            t.eq(rep[-1][0].get("Subject"),
                 "Delayed Mail (still being retried)", "delay subject")
        tries = a.log("smtpd").count("to=<late@slow.test> relay=")
        a.cli("queue", "flush")
        t.ok(wait_for(lambda: a.log("smtpd").count(
            "to=<late@slow.test> relay=") > tries, 40),
            "after queue flush the message is tried again")
        t.ok(wait_for(lambda: "next attempt" in a.log("smtpd").split(
            "to=<late@slow.test> relay=")[-1], 20), "... and deferred")
        t.eq(len(reports(a, ALICE)), n + 1, "no second warning")
        t.eq(sorted(queued(a)), ["late@slow.test", "quiet@slow.test"],
             "both still queued")

        # Never a warning for the null sender: the bounce of a full
        # mailbox, queued to a sender whose MX defers it.
        with smtplib.SMTP(a.host, a.ports["smtp"],
                          local_hostname="mx.slow.test", timeout=30) as s:
            # No SIZE=, which would be refused at RCPT.
            s.ehlo()
            s.mail("someone@slow.test")
            s.rcpt(CAROL)
            t.eq(s.rcpt(TINY)[0], 250, "tiny@ accepted: no SIZE yet")
            t.eq(s.data(message("someone@slow.test", CAROL, "too big",
                                body="x" * 600 + "\r\n"))[0], 250,
                 "a message too big for tiny@: 250 for carol")
        t.ok(wait_for(lambda: "someone@slow.test" in queued(a), 20),
             "tiny@'s bounce is queued to the remote sender")
        t.ok(wait_for(lambda: re.search(
            r'relay msgid=\w+ bounce=none reason="no bounce for a message '
            r'from the null sender"', a.log("smtpd")), 40),
             "past delay_warning: no warning for the null sender",
             a.log("smtpd")[-3000:])

        # SMTPUTF8: the bounce is message/global-delivery-status.
        n = len(reports(a, ALICE))
        utf = "j\u00fcrgen@refuse.test"
        m = ("From: %s\r\nTo: %s\r\nSubject: utf8\r\n\r\nHallo.\r\n" % (
            ALICE, utf)).encode("utf-8")
        t.eq(send(a, [utf], m, ["SMTPUTF8"]), {}, "SMTPUTF8 message")
        t.ok(wait_for(lambda: len(reports(a, ALICE)) == n + 1, 30),
             "the SMTPUTF8 message bounces", a.log("smtpd")[-3000:])
        rep = reports(a, ALICE)
        if len(rep) == n + 1:
            t.eq(rep[-1][0].get_payload()[1].get_content_type(),
                 "message/global-delivery-status", "RFC 6533 report type")
            t.eq(actions(rep[-1]), [("utf-8; " + utf, "failed")],
                 "Final-Recipient: utf-8; with the UTF-8 address")
    finally:
        for x in (refuse, slow):
            if x is not None:
                x.close()
        close_all(a, b, dns)
    t.done()


if __name__ == "__main__":
    main()
