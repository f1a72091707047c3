#!/usr/bin/python3
"""A next hop without DSN (RFC 3461 5.2.2.2): Debian's Postfix as the MX
of c.test on 127.0.0.9 with the extension switched off
(smtpd_discard_ehlo_keywords = dsn).  alice asks for NOTIFY=SUCCESS:
postroom passes no DSN parameters to Postfix and reports the recipient
"relayed" to alice itself; a recipient without SUCCESS gets no report.
The report is parsed with python's email package (RFC 6522)."""

import email
import email.policy
import smtplib
import sys

from relay_util import (PASSWORD, Check, Dns, Instance, close_all,
                        free_port_on, mailbox_bodies, message, queued,
                        skip, wait_for)
from test_relay_postfix import postfix_mx
import postfix  # noqa: E402 (tests/lib, put on the path by relay_util)

ALICE = "alice@a.test"
CAROL = "carol@c.test"


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
        dns = Dns(mx={"c.test": [(10, "mx.c.test")]},
                  a={"mx.c.test": "127.0.0.9"})
        pf = postfix_mx("127.0.0.9", port, a.cert, a.key)
        pf.set({"smtpd_discard_ehlo_keywords": "dsn"})
        pf.start()
        a.extra["relay"] = {"mx_port": str(port)}
        a.extra["dns"] = {"resolver": dns.resolver}
        a.write_config()
        a.start("smtpd")

        with smtplib.SMTP(a.host, a.ports["submission"],
                          local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            s.login(ALICE, PASSWORD)
            t.eq(s.sendmail(ALICE, [CAROL],
                            message(ALICE, CAROL, "relayed dsn"),
                            ["ENVID=pf1"], ["NOTIFY=SUCCESS"]), {},
                 "NOTIFY=SUCCESS to a domain whose MX has no DSN")
        t.ok(wait_for(lambda: len(postfix.maildir_messages(pf.maildir)) ==
                      1, 30), "Postfix delivered it",
             a.log("smtpd") + pf.read_log())
        t.ok(wait_for(lambda: len(mailbox_bodies(a, ALICE)) == 1, 30),
             "alice gets a report", a.log("smtpd"))
        raw = (mailbox_bodies(a, ALICE) or [b""])[0]
        m = email.message_from_bytes(raw, policy=email.policy.compat32)
        t.eq(m.get_content_type(), "multipart/report", "multipart/report")
        t.eq(m.get_param("report-type"), "delivery-status",
             "report-type=delivery-status")
        parts = m.get_payload() if m.is_multipart() else []
        t.eq([p.get_content_type() for p in parts],
             ["text/plain", "message/delivery-status",
              "text/rfc822-headers"], "the three parts of RFC 6522")
        if len(parts) == 3:
            blocks = parts[1].get_payload()
            t.eq(blocks[0].get("Original-Envelope-Id"), "pf1", "the ENVID")
            t.eq(blocks[1].get("Action"), "relayed", "Action: relayed")
            t.eq(blocks[1].get("Final-Recipient"), "rfc822; " + CAROL,
                 "Final-Recipient")
            t.eq(blocks[1].get("Remote-MTA"), "dns; mx.c.test",
                 "Remote-MTA: Postfix")
            t.ok(blocks[1].get("Status", "").startswith("2."),
                 "a 2.x.x status", str(blocks[1]))
        log = pf.read_log()
        t.ok("NOTIFY" not in log and "ENVID" not in log,
             "no DSN parameters went to Postfix")
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty")

        # Without SUCCESS: delivered, no report.
        with smtplib.SMTP(a.host, a.ports["submission"],
                          local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            s.login(ALICE, PASSWORD)
            s.sendmail(ALICE, [CAROL], message(ALICE, CAROL, "plain"), [],
                       ["NOTIFY=FAILURE"])
        t.ok(wait_for(lambda: len(postfix.maildir_messages(pf.maildir)) ==
                      2, 30), "the second message reaches Postfix")
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty again")
        t.eq(len(mailbox_bodies(a, ALICE)), 1, "no report without SUCCESS")
    finally:
        close_all(a, pf, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
