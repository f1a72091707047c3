#!/usr/bin/python3
"""Two postroom installations for two domains, a.test on 127.0.0.2 and
b.test on 127.0.0.3, found through a private dnsmasq (MX, A and the DKIM
TXT record).  alice@a.test submits on 587 with AUTH; the message goes
through A's queue, MX lookup and SMTP client (STARTTLS) into
bob@b.test's mailbox on B; bob downloads it with POP3 and the DKIM
signature verifies with python3-dkim.  Then the way back, a remote 550
that bounces to alice with the remote's text, a partly refused message,
and the open-relay check: nothing unauthenticated enters the queue."""

import email
import os
import smtplib
import sys

from relay_util import (Check, close_all, dkim_verify, mailbox_bodies,
                        message, pop3_fetch, queue_list, queued, submit,
                        two_servers, two_servers_dns, wait_for, zone_txt)

ALICE = "alice@a.test"
BOB = "bob@b.test"


def db_connections(inst, daemon):
    """How many SQLite connections daemon holds: each has the database
    file open once."""
    path = os.path.realpath(os.path.join(inst.data_dir, "mail.db"))
    fd_dir = "/proc/%d/fd" % inst.procs[daemon].pid
    n = 0
    for fd in os.listdir(fd_dir):
        try:
            n += os.readlink(os.path.join(fd_dir, fd)) == path
        except OSError:
            pass
    return n


def main():
    t = Check()
    port, a, b = two_servers()
    dns = None
    try:
        keygen = a.cli("dkim", "keygen", "a.test").stdout
        txt = zone_txt(keygen)
        t.ok("postroom._domainkey.a.test" in txt,
             "dkim keygen prints the TXT record", keygen)
        # RFC 8463: an Ed25519 key next to the RSA one, both published;
        # a third key whose record is not out; a fourth under whose name
        # an old record (another key's) is published.
        ed = zone_txt(a.cli("dkim", "keygen", "a.test", "--ed25519",
                            "--selector", "ed2025").stdout)
        txt.update(ed)
        a.cli("dkim", "keygen", "a.test", "--selector", "unpub")
        a.cli("dkim", "keygen", "a.test", "--selector", "stale")
        served = dict(txt)
        served["stale._domainkey.a.test"] = txt["postroom._domainkey.a.test"]
        dns = two_servers_dns(a, b, port, served)
        for inst in (a, b):
            inst.write_config()

        # `dkim activate` checks the published record first.
        r = a.cli("dkim", "activate", "a.test", "unpub", check=False)
        t.ok(r.returncode == 1 and "no TXT record" in r.stderr,
             "activate without a published record: exit 1", r.stderr)
        r = a.cli("dkim", "activate", "a.test", "stale", check=False)
        t.ok(r.returncode == 1 and "does not hold this key" in r.stderr,
             "activate with another key's record: exit 1", r.stderr)
        r = a.cli("dkim", "activate", "a.test", "postroom", check=False)
        t.ok(r.returncode == 0, "activate RSA: the record is in DNS",
             r.stderr)
        r = a.cli("dkim", "activate", "a.test", "ed2025", check=False)
        t.ok(r.returncode == 0, "activate Ed25519: the record is in DNS",
             r.stderr)
        states = {l.split()[1]: l.split()[3] for l in
                  a.cli("dkim", "list", "a.test").stdout.splitlines()}
        t.eq(states, {"postroom": "active", "ed2025": "active",
                      "unpub": "pending", "stale": "pending"},
             "dkim list: two active, the unchecked ones still pending")
        for inst in (a, b):
            inst.start("smtpd")
        b.start("pop3d")

        # `postroom dns` prints what dnsmasq serves here.
        out = a.cli("dns", "a.test").stdout
        t.ok("a.test. IN MX 10 mx.a.test." in out, "dns: MX record", out)
        t.ok('"v=spf1 mx -all"' in out, "dns: SPF record", out)
        t.ok('_dmarc.a.test. IN TXT "v=DMARC1; p=quarantine"' in out,
             "dns: DMARC record", out)
        t.eq(zone_txt(out).get("postroom._domainkey.a.test"),
             txt["postroom._domainkey.a.test"], "dns: DKIM record")
        r = a.cli("dns", "b.test", check=False)
        t.ok(r.returncode == 1 and "not hosted" in r.stderr,
             "dns for a domain not hosted: exit 1, clear error", r.stderr)

        # alice -> bob, across the two servers.
        body = "Hello Bob,\r\n.a line with a leading dot\r\n\r\nAlice\r\n"
        msg = message(ALICE, BOB, "across servers", body=body)
        t.eq(submit(a, ALICE, [BOB], msg), {}, "alice submits on 587")
        t.ok(wait_for(lambda: len(mailbox_bodies(b, BOB)) == 1, 20),
             "message arrives in bob's mailbox on B", a.log("smtpd"))
        t.ok(wait_for(lambda: queued(a) == [], 10),
             "A's queue is empty after the remote 250")
        # One writer per daemon: local delivery and the relay share the
        # store worker's connection; the other is the loop's reader.
        t.eq(db_connections(a, "smtpd"), 2,
             "smtpd holds two database connections after relaying")
        got = pop3_fetch(b, BOB)
        t.eq(len(got), 1, "bob downloads it with POP3")
        data = got[0] if got else b""
        t.ok(data.endswith(msg), "message intact, dot line included",
             data[-300:])
        ok, detail = dkim_verify(data, txt)
        t.ok(ok, "DKIM signature verifies (python3-dkim)", detail)
        t.ok(b"d=a.test; s=postroom;" in data, "signed as a.test")
        # Dual signing: one signature per active key (RFC 8463).
        head = data.split(b"\r\n\r\n", 1)[0]
        t.ok(head.count(b"DKIM-Signature:") == 2,
             "two DKIM-Signature fields", head[:1500])
        t.ok(b"a=rsa-sha256" in head and b"a=ed25519-sha256" in head,
             "one RSA and one Ed25519 signature")
        t.ok(b"s=unpub;" not in head and b"s=stale;" not in head,
             "pending keys do not sign")
        ok, detail = dkim_verify(data, txt, idx=1)
        t.ok(ok, "the second signature verifies too (python3-dkim)",
             detail)
        t.ok(data.count(b"Return-Path:") == 1,
             "one Return-Path: the relay did not forward A's", data[:600])
        t.ok(b"Return-Path: <alice@a.test>" in data,
             "B's Return-Path names alice")
        t.ok(b"by mx.b.test (postroom) with ESMTPS" in data,
             "B received it over STARTTLS", data[:800])
        t.ok("TLS connection established to mx.b.test[127.0.0.3]" in
             a.log("smtpd"), "A logs the TLS result")
        t.ok("status=sent" in a.log("smtpd"), "A logs status=sent")
        t.ok("queue is empty" in queue_list(a), "queue list: empty")

        # bob -> alice: the other direction, unsigned (no key for b.test).
        back = message(BOB, ALICE, "reply")
        t.eq(submit(b, BOB, [ALICE], back), {}, "bob replies")
        t.ok(wait_for(lambda: len(mailbox_bodies(a, ALICE)) == 1, 20),
             "the reply reaches alice on A", b.log("smtpd"))

        # A recipient B does not have: B refuses it at RCPT, A bounces
        # to alice with B's words.
        t.eq(submit(a, ALICE, ["nobody@b.test"],
                    message(ALICE, "nobody@b.test", "to nobody")), {},
             "message to an unknown remote user accepted for relay")
        t.ok(wait_for(lambda: len(mailbox_bodies(a, ALICE)) == 2, 20),
             "a bounce lands in alice's mailbox", a.log("smtpd"))
        bounce = mailbox_bodies(a, ALICE)[-1]
        m = email.message_from_bytes(bounce)
        t.eq(m.get_content_type(), "multipart/report", "bounce is a report")
        t.eq(m.get_param("report-type"), "delivery-status",
             "report-type=delivery-status")
        t.ok(m["From"].startswith("MAILER-DAEMON@mx.a.test"),
             "bounce from MAILER-DAEMON@hostname", m["From"])
        t.ok(b"Return-Path: <>" in bounce, "bounce has the null sender")
        t.ok(b"Final-Recipient: rfc822; nobody@b.test" in bounce,
             "Final-Recipient", bounce)
        t.ok(b"Remote-MTA: dns; mx.b.test" in bounce, "Remote-MTA")
        t.ok(b"Diagnostic-Code: smtp; 55" in bounce and b"nobody@b.test"
             in bounce, "Diagnostic-Code carries B's reply", bounce)
        t.ok(b"Subject: to nobody" in bounce,
             "the original header is returned")
        t.ok(wait_for(lambda: queued(a) == [], 10),
             "bounced recipient left the queue")

        # One message, one good and one bad recipient at b.test: one
        # delivery attempt for the domain, per-recipient outcome.
        before_b = len(mailbox_bodies(b, BOB))
        submit(a, ALICE, [BOB, "ghost@b.test"],
               message(ALICE, BOB + ", ghost@b.test", "mixed"))
        t.ok(wait_for(lambda: len(mailbox_bodies(b, BOB)) == before_b + 1
                      and len(mailbox_bodies(a, ALICE)) == 3, 20),
             "bob gets it, alice gets a bounce for ghost only")
        last = mailbox_bodies(a, ALICE)[-1]
        t.ok(b"ghost@b.test" in last and b"Final-Recipient: rfc822; "
             b"bob@b.test" not in last, "the bounce names ghost only")
        t.ok(a.log("smtpd").count("status=sent") == 2,
             "bob's copy sent once")

        # Open relay check on A: without AUTH nothing reaches the queue.
        with smtplib.SMTP(a.host, port, local_hostname="evil.test",
                          timeout=20) as s:
            s.ehlo()
            s.mail("spammer@evil.test")
            code, _ = s.rcpt(BOB)
            t.eq(code, 554, "port 25 without AUTH: relay refused")
            s.rset()
        with smtplib.SMTP(a.host, a.ports["submission"],
                          local_hostname="evil.test", timeout=20) as s:
            s.ehlo()
            code, _ = s.mail(ALICE)
            t.ok(code >= 500, "587 without AUTH: MAIL refused (%d)" % code)
        t.eq(queued(a), [], "nothing unauthenticated entered the queue")
        t.ok("queue is empty" in queue_list(a), "queue list stays empty")
    finally:
        close_all(a, b, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
