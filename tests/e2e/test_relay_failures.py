#!/usr/bin/python3
"""The relay's failure paths against scriptable SMTP servers on loopback
addresses, all found through a private dnsmasq:

  null MX and NXDOMAIN      immediate bounce, no connection
  550 at RCPT               bounce carrying the remote's reply text
  first MX down             the second MX is used
  no MX, only A             the implicit MX
  421 greeting              the next MX is used
  MX refuses connections    deferred (queue list), then delivered after
                            the MX comes up and `queue flush`
  250/550/451 recipients    per-recipient outcome in one transaction,
                            `queue del`
  STARTTLS, 8BITMIME        used when offered
  broken TLS handshake      delivered again without TLS
  null sender               never a bounce for a bounce
  max_queue_time            expiry bounce
"""

import email
import os
import smtplib
import sys
import time

from relay_util import (Check, Dns, FakeMX, Instance, PASSWORD, close_all,
                        free_port_on, mailbox_bodies, message, queue_list,
                        queued, submit, wait_for)

ALICE = "alice@a.test"
IPS = ["127.0.0.%d" % i for i in range(2, 13)]


def bounces(inst):
    return [email.message_from_bytes(b)
            for b in mailbox_bodies(inst, ALICE)]


def report_of(m):
    """The message/delivery-status part as text."""
    for part in m.walk():
        if part.get_content_type() == "message/delivery-status":
            return "".join(str(p) for p in part.get_payload())
    return ""


def bounce_for(inst, rcpt):
    for m in bounces(inst):
        if ("Final-Recipient: rfc822; " + rcpt) in report_of(m):
            return m
    return None


def send_to(inst, rcpt, subject, server, timeout=15):
    """alice submits to rcpt; True once server has taken the message."""
    submit(inst, ALICE, [rcpt], message(ALICE, rcpt, subject))
    return wait_for(lambda: any(rcpt in m[1] for m in server.messages),
                    timeout)


def main():
    t = Check()
    port = free_port_on(IPS)
    dns = Dns(
        mx={"null.test": [(0, ".")],
            "reject.test": [(10, "mx.reject.test")],
            "two.test": [(10, "mx1.two.test"), (20, "mx2.two.test")],
            "busy.test": [(10, "mx1.busy.test"), (20, "mx2.busy.test")],
            "down.test": [(10, "mx.down.test")],
            "mixed.test": [(10, "mx.mixed.test")],
            "tls.test": [(10, "mx.tls.test")],
            "down2.test": [(10, "mx.down2.test")],
            "sender.test": [(10, "mx.sender.test")],
            "badtls.test": [(10, "mx.badtls.test")]},
        a={"mx.reject.test": "127.0.0.5",
           "mx1.two.test": "127.0.0.6", "mx2.two.test": "127.0.0.7",
           "mx1.busy.test": "127.0.0.8", "mx2.busy.test": "127.0.0.7",
           "mx.down.test": "127.0.0.9",
           "mx.mixed.test": "127.0.0.10",
           "mx.tls.test": "127.0.0.11",
           "mx.down2.test": "127.0.0.12",
           "mx.sender.test": "127.0.0.4",
           "mx.badtls.test": "127.0.0.3",
           "implicit.test": "127.0.0.7"})
    servers = []
    a = a2 = None
    try:
        reject = FakeMX("127.0.0.5", port,
                        rcpt=lambda r: "550 5.1.1 <%s>: no mailbox here "
                        "(reject.test policy)" % r)
        second = FakeMX("127.0.0.7", port, name="mx2.two.test")
        busy = FakeMX("127.0.0.8", port,
                      greeting="421 4.3.2 mx1.busy.test too busy")
        mixed = FakeMX("127.0.0.10", port, rcpt=lambda r: {
            "bad@mixed.test": "550 5.1.1 bad: unknown user",
            "later@mixed.test": "451 4.7.1 later: greylisted"}.get(
                r, "250 2.1.5 ok"))
        servers += [reject, second, busy, mixed]

        a = Instance(host="127.0.0.2", hostname="mx.a.test",
                     extra={"relay": {"resolver": dns.resolver,
                                      "mx_port": str(port)}})
        a.ports["smtp"] = port
        a.write_config()
        tls = FakeMX("127.0.0.11", port, starttls=(a.cert, a.key),
                     name="mx.tls.test")
        servers.append(tls)
        a.add_domain("a.test")
        a.add_user(ALICE, PASSWORD)
        a.cli("alias", "add", "fwd@a.test", "someone@reject.test")
        a.start("smtpd")

        # Null MX and NXDOMAIN: bounced at once, nobody contacted.
        submit(a, ALICE, ["x@null.test"],
               message(ALICE, "x@null.test", "to null mx"))
        submit(a, ALICE, ["x@nx.test"],
               message(ALICE, "x@nx.test", "to nxdomain"))
        t.ok(wait_for(lambda: bounce_for(a, "x@null.test") is not None and
                      bounce_for(a, "x@nx.test") is not None, 15),
             "null MX and NXDOMAIN bounce at once", a.log("smtpd"))
        rep = report_of(bounce_for(a, "x@null.test") or email.message.
                        Message())
        t.ok("Status: 5.1.10" in rep and "null MX" in rep,
             "null MX: status 5.1.10 (RFC 7505)", rep)
        rep = report_of(bounce_for(a, "x@nx.test") or email.message.
                        Message())
        t.ok("Status: 5.4.4" in rep and "NXDOMAIN" in rep,
             "NXDOMAIN: status 5.4.4", rep)

        # 550 from the MX: the bounce carries the remote's words.
        submit(a, ALICE, ["who@reject.test"],
               message(ALICE, "who@reject.test", "to reject"))
        t.ok(wait_for(lambda: bounce_for(a, "who@reject.test") is not None,
                      15), "550 at RCPT bounces", a.log("smtpd"))
        rep = report_of(bounce_for(a, "who@reject.test") or
                        email.message.Message())
        t.ok("Diagnostic-Code: smtp; 550 5.1.1 <who@reject.test>: no "
             "mailbox here (reject.test policy)" in rep,
             "Diagnostic-Code is the remote's reply", rep)
        t.ok("Status: 5.1.1" in rep, "Status from the enhanced code", rep)
        t.eq(reject.messages, [], "reject.test took nothing")

        # First MX down (nothing listens on 127.0.0.6): the second.
        t.ok(send_to(a, "u@two.test", "to two", second),
             "first MX refuses connections: delivered to the second",
             a.log("smtpd"))
        t.ok("connect to mx1.two.test[127.0.0.6]" in a.log("smtpd"),
             "the refused first MX is logged")

        # No MX record: the domain's own address is the implicit MX.
        t.ok(send_to(a, "u@implicit.test", "to implicit", second),
             "no MX: delivered to the domain's A record (RFC 5321 5.1)",
             a.log("smtpd"))

        # 421 greeting on the first MX: the next one.
        t.ok(send_to(a, "u@busy.test", "to busy", second),
             "421 greeting: delivered to the next MX", a.log("smtpd"))
        t.ok(busy.sessions >= 1, "the busy MX was tried first")

        # STARTTLS offered: used; 8-bit body: BODY=8BITMIME.
        body8 = "Gr\u00fc\u00dfe aus a.test\r\n"
        submit(a, ALICE, ["u@tls.test"],
               message(ALICE, "u@tls.test", "to tls", body=body8))
        t.ok(wait_for(lambda: len(tls.messages) == 1, 15),
             "delivered to the STARTTLS MX", a.log("smtpd"))
        t.eq(tls.tls_sessions, 1, "STARTTLS was used")
        t.ok("TLS connection established to mx.tls.test" in a.log("smtpd"),
             "TLS result logged")
        t.ok(any(c.startswith("MAIL FROM:<alice@a.test>") and
                 "BODY=8BITMIME" in c for c in tls.commands),
             "8-bit message sent with BODY=8BITMIME", tls.commands)
        t.ok(tls.messages and body8.encode() in tls.messages[0][2],
             "8-bit body intact")

        # STARTTLS offered but the handshake fails: once more without
        # TLS (opportunistic TLS must not make mail undeliverable).
        badtls = FakeMX("127.0.0.3", port, broken_tls=True)
        servers.append(badtls)
        submit(a, ALICE, ["u@badtls.test"],
               message(ALICE, "u@badtls.test", "to badtls"))
        t.ok(wait_for(lambda: len(badtls.messages) == 1, 15),
             "TLS handshake failure: delivered in plaintext",
             a.log("smtpd"))
        t.eq(badtls.sessions, 2, "second session without STARTTLS")
        t.ok("trying again without TLS" in a.log("smtpd"),
             "the fallback is logged")

        # One transaction, three outcomes.
        submit(a, ALICE, ["ok@mixed.test", "bad@mixed.test",
                          "later@mixed.test"],
               message(ALICE, "ok@mixed.test", "to mixed"))
        t.ok(wait_for(lambda: len(mixed.messages) == 1 and
                      bounce_for(a, "bad@mixed.test") is not None, 15),
             "250 delivered and 550 bounced in the same attempt",
             a.log("smtpd"))
        t.eq(mixed.messages[0][1] if mixed.messages else None,
             ["ok@mixed.test"], "only the accepted recipient got it")
        t.eq(sum(1 for c in mixed.commands if c == "DATA"), 1,
             "one transaction for the three recipients")
        t.ok(wait_for(lambda: queued(a) == ["later@mixed.test"], 10),
             "the 451 recipient stays queued", queued(a))
        ql = queue_list(a)
        t.ok("later@mixed.test" in ql and "attempts=1" in ql and
             "451 4.7.1 later: greylisted" in ql,
             "queue list: recipient, attempts, last error", ql)
        t.ok("bad@mixed.test" not in ql, "bounced recipient left the queue")
        qid = ql.split()[0] if ql.strip() else "0"
        t.eq(a.cli("queue", "del", qid, check=False).returncode, 0,
             "queue del ID")
        t.eq(queued(a), [], "entry gone")
        r = a.cli("queue", "del", qid, check=False)
        t.ok(r.returncode == 1 and "no queue entry" in r.stderr,
             "queue del of an unknown id: exit 1", r.stderr)
        r = a.cli("queue", "del", "abc", check=False)
        t.eq(r.returncode, 1, "queue del of a malformed id: exit 1")

        # The MX is down: deferred; it comes up; `queue flush` and the
        # daemon's periodic look at the queue deliver it.
        submit(a, ALICE, ["u@down.test"],
               message(ALICE, "u@down.test", "to down"))
        t.ok(wait_for(lambda: "attempts=1" in queue_list(a), 15),
             "refused connection: deferred", a.log("smtpd"))
        ql = queue_list(a)
        t.ok("u@down.test" in ql and
             "connect to mx.down.test[127.0.0.9]" in ql,
             "queue list shows the connection error", ql)
        down = FakeMX("127.0.0.9", port)
        servers.append(down)
        time.sleep(0.5)
        t.eq(len(down.messages), 0, "nothing sent before the retry time")
        a.cli("queue", "flush")
        t.ok(wait_for(lambda: len(down.messages) == 1, 25),
             "after queue flush the daemon delivers it", a.log("smtpd"))
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty again")

        # A message from the null sender that fails: no bounce.
        n_before = len(mailbox_bodies(a, ALICE))
        with smtplib.SMTP(a.host, port, local_hostname="peer.test",
                          timeout=20) as s:
            s.sendmail("", ["fwd@a.test"],
                       b"From: MAILER-DAEMON@peer.test\r\n"
                       b"Subject: a bounce from elsewhere\r\n\r\nx\r\n")
        t.ok(wait_for(lambda: "no bounce for a message from the null "
                      "sender" in a.log("smtpd"), 15),
             "null sender: failure logged, no bounce", a.log("smtpd"))
        t.ok(wait_for(lambda: queued(a) == [], 10),
             "null-sender entry left the queue")
        t.eq(len(mailbox_bodies(a, ALICE)), n_before,
             "no bounce for a bounce")

        # A remote sender's message forwarded by an alias fails: the
        # bounce is queued and relayed to the sender's MX, from <>.
        origin = FakeMX("127.0.0.4", port, name="mx.sender.test")
        servers.append(origin)
        with smtplib.SMTP(a.host, port, local_hostname="mx.sender.test",
                          timeout=20) as s:
            s.sendmail("orig@sender.test", ["fwd@a.test"],
                       b"From: orig@sender.test\r\nTo: fwd@a.test\r\n"
                       b"Subject: forwarded\r\n\r\nhello\r\n")
        t.ok(wait_for(lambda: len(origin.messages) == 1, 20),
             "bounce to a remote sender relayed to its MX", a.log("smtpd"))
        mail, rcpts, data = origin.messages[0] if origin.messages else (
            None, [], b"")
        t.eq((mail, rcpts), ("", ["orig@sender.test"]),
             "the bounce goes from <> to the original sender")
        t.ok(b"Final-Recipient: rfc822; someone@reject.test" in data and
             b"reject.test policy" in data, "it reports the forward", data)
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty")

        # Expiry: a second installation with a 3 s queue lifetime.
        a2 = Instance(host="127.0.0.2", hostname="mx2.a.test",
                      extra={"relay": {"resolver": dns.resolver,
                                       "mx_port": str(port),
                                       "max_queue_time": "3s"}})
        a2.add_domain("a.test")
        a2.add_user(ALICE, PASSWORD)
        a2.start("smtpd")
        start = time.monotonic()
        submit(a2, ALICE, ["u@down2.test"],
               message(ALICE, "u@down2.test", "to down2"))
        t.ok(wait_for(lambda: bounce_for(a2, "u@down2.test") is not None,
                      25), "expired after max_queue_time: bounced",
             a2.log("smtpd"))
        took = time.monotonic() - start
        t.ok(took >= 2.5, "not before the lifetime (%.1fs)" % took)
        m = bounce_for(a2, "u@down2.test") or email.message.Message()
        rep = report_of(m)
        t.ok("connect to mx.down2.test[127.0.0.12]" in rep and
             "Action: failed" in rep, "expiry report gives the last error",
             rep)
        t.ok(b"time limit" in m.as_bytes(), "expiry explained")
        t.ok(wait_for(lambda: queued(a2) == [], 10),
             "expired entry left the queue")
    finally:
        close_all(a, a2, *servers, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
