#!/usr/bin/python3
"""`postroom trace`: the whole route of a message from the events the
daemons keep in the store.  A message delivered locally (received,
delivered into the mailboxes behind an alias, retrieved and deleted over
POP3 by poplib, from which IP), one relayed from postroom A to postroom B
through a private dnsmasq (the MX records found, the host and IP tried,
TLS, B's reply), one refused by B (the failure and the DSN), and the
lookups by "queued as" id, by Message-ID and by address; exit 1 when
nothing is found."""

import re
import sys

from relay_util import (PASSWORD, Check, close_all, mailbox_bodies, message,
                        pop3_fetch, queued, submit, two_servers,
                        two_servers_dns, wait_for)

ALICE = "alice@a.test"
CAROL = "carol@a.test"
BOB = "bob@b.test"


def eq(t, got, want, name, detail=None):
    t.ok(got == want, name, "got %r, want %r\n%s" % (got, want, detail or ""))


def trace(inst, what, check=True):
    return inst.cli("trace", what, check=check)


def events(out):
    """[(id, event, details)] from the trace lines."""
    got = []
    for line in out.splitlines():
        m = re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ([0-9a-f]{16}) "
                     r"(\S+) (.*)$", line)
        got.append(m.groups() if m else ("?", "?", line))
    return got


def queued_as(inst, user, to, msg):
    """Submits msg and returns the "queued as" id of the reply."""
    import smtplib
    with smtplib.SMTP(inst.host, inst.ports["submission"],
                      local_hostname="client.test", timeout=30) as s:
        s.ehlo()
        s.starttls()
        s.ehlo()
        s.login(user, PASSWORD)
        s.mail(user)
        for r in to:
            s.rcpt(r)
        code, text = s.data(msg)
        m = re.search(rb"queued as ([0-9a-f]{16})", text)
        return code, m.group(1).decode() if m else None


def main():
    t = Check()
    port, a, b = two_servers()
    dns = None
    try:
        a.add_user(CAROL, PASSWORD)
        a.cli("alias", "add", "team@a.test", "%s,%s" % (ALICE, CAROL))
        dns = two_servers_dns(a, b, port, {})
        for inst in (a, b):
            # One resolver for the relay and the inbound checks.
            inst.extra["dns"] = {"resolver": dns.resolver}
            inst.write_config()
            inst.start("smtpd")
        a.start("pop3d")

        # Local: bob's domain is not involved; alice writes to the team.
        msg = message(ALICE, "team@a.test", "local one")
        code, lid = queued_as(a, ALICE, ["team@a.test"], msg)
        t.ok(code == 250 and lid, "local message accepted, queued as", lid)
        got = pop3_fetch(a, CAROL, delete=True)
        eq(t, len(got), 1, "carol retrieves it over POP3 and deletes it")
        out = trace(a, lid).stdout
        ev = events(out)
        kinds = [e[1] for e in ev]
        eq(t, kinds[:3], ["received", "delivered", "delivered"],
             "trace: received, then delivered twice", out)
        rec = ev[0][2] if ev else ""
        for want in ("from=<alice@a.test>", "client=127.0.0.1",
                     "helo=client.test", "listener=submission",
                     "tls=TLSv1.", "cipher=", "user=alice@a.test",
                     "message-id=<local.one@test>", "size="):
            t.ok(want in rec, "received event names %s" % want, rec)
        boxes = sorted(e[2] for e in ev if e[1] == "delivered")
        eq(t, boxes, ["mailbox=alice@a.test", "mailbox=carol@a.test"],
             "delivered into the mailboxes behind the alias", out)
        pop = [e for e in ev if e[1] in ("retrieved", "deleted")]
        eq(t, [e[1] for e in pop], ["retrieved", "deleted"],
             "POP3 retrieval and deletion traced", out)
        t.ok(all("mailbox=carol@a.test client=127.0.0.1" in e[2] and
                 "user=carol@a.test" in e[2] for e in pop),
             "with the mailbox, the client IP and the login", out)
        t.ok(all(e[0] == lid for e in ev), "every line carries the id", out)

        # By Message-ID, as the header names it.
        r = trace(a, "<local.one@test>")
        eq(t, [e[1] for e in events(r.stdout)], kinds,
             "trace <message-id>: the same events", r.stdout)

        # Relayed: alice -> bob on B.
        msg = message(ALICE, BOB, "across servers")
        code, rid = queued_as(a, ALICE, [BOB], msg)
        t.ok(code == 250 and rid, "relayed message accepted", rid)
        t.ok(wait_for(lambda: len(mailbox_bodies(b, BOB)) == 1, 30),
             "it arrives at B", a.log("smtpd"))
        t.ok(wait_for(lambda: "relayed" in trace(a, rid).stdout, 20),
             "A's trace shows the outcome", a.log("smtpd"))
        out = trace(a, rid).stdout
        ev = events(out)
        eq(t, [e[1] for e in ev], ["received", "queued", "attempt",
                                  "relayed"],
             "trace: received, queued, attempt, relayed", out)
        att = ev[2][2] if len(ev) > 2 else ""
        t.ok("domain=b.test" in att and "mx=10:mx.b.test[127.0.0.3]" in att,
             "the MX record found, with its preference and address", att)
        t.ok("tried=mx.b.test[127.0.0.3]:%d" % port in att,
             "the host and IP tried", att)
        t.ok(re.search(r'tls="TLSv1\.[23] \S+" verify=untrusted', att),
             "TLS and its verification", att)
        rel = ev[3][2] if len(ev) > 3 else ""
        t.ok("rcpt=<bob@b.test>" in rel and "mta=mx.b.test" in rel and
             re.search(r'reply="250 2\.0\.0 .*queued as [0-9a-f]{16}"', rel),
             "the remote's reply, with B's queued-as id", rel)
        bid = re.search(r"queued as ([0-9a-f]{16})", rel)
        if bid:
            bout = trace(b, bid.group(1)).stdout
            bev = events(bout)
            t.ok(bev and bev[0][1] == "received" and
                 "auth=\"iprev=" in bev[0][2] and
                 "client=127.0.0.1" in bev[0][2] and
                 "helo=mx.a.test" in bev[0][2] and
                 "listener=smtp" in bev[0][2],
                 "B's trace: received from A, its HELO, the verdicts", bout)
            t.ok(any(e[1] == "delivered" and e[2] == "mailbox=bob@b.test"
                     for e in bev), "B's trace: delivered to bob", bout)
        else:
            t.ok(False, "B's id in the reply", rel)
            t.ok(False, "B's trace: delivered to bob")

        # Refused by B: failed, and the DSN back to alice.
        msg = message(ALICE, "nobody@b.test", "to nobody")
        code, fid = queued_as(a, ALICE, ["nobody@b.test"], msg)
        t.ok(code == 250 and fid, "message to an unknown user accepted", fid)
        t.ok(wait_for(lambda: "bounced" in trace(a, fid, False).stdout, 30),
             "A bounces it", a.log("smtpd"))
        out = trace(a, fid).stdout
        ev = events(out)
        fail = [e for e in ev if e[1] == "failed"]
        t.ok(fail and "rcpt=<nobody@b.test>" in fail[0][2] and
             'reply="550 5.1.1' in fail[0][2],
             "failed with B's 550 reply", out)
        dsn = [e for e in ev if e[1] == "bounced"]
        m = re.search(r"dsn=([0-9a-f]{16})", dsn[0][2]) if dsn else None
        t.ok(m, "bounced names the DSN's id", out)
        if m:
            dout = trace(a, m.group(1)).stdout
            t.ok(re.search(r" dsn from=<> .* for=%s" % fid, dout) and
                 "mailbox=alice@a.test" in dout,
                 "the DSN's own trace: delivered to alice", dout)
        else:
            t.ok(False, "the DSN's own trace")

        # By address: the recent messages from and to it.
        out = trace(a, "ALICE@a.test").stdout
        ids = {e[0] for e in events(out)}
        t.ok({lid, rid, fid} <= ids,
             "trace ADDRESS: the messages alice sent", out)
        out = trace(a, "carol@a.test").stdout
        eq(t, {e[0] for e in events(out)}, {lid},
             "trace ADDRESS: the one message carol got", out)

        for what, why in (("0123456789abcdef", "an unknown id"),
                          ("<nope@test>", "an unknown Message-ID"),
                          ("nobody@nowhere.test", "an unknown address")):
            r = trace(a, what, check=False)
            t.ok(r.returncode == 1 and r.stdout == "" and
                 len(r.stderr.strip().splitlines()) == 1,
                 "%s: exit 1, one line on stderr" % why, r.stderr)
        r = trace(a, "not-a-thing", check=False)
        t.ok(r.returncode == 1 and "not an id" in r.stderr,
             "something else: exit 1, says what it takes", r.stderr)
        r = a.cli("trace", check=False)
        eq(t, r.returncode, 2, "no argument: usage, exit 2")
        eq(t, queued(a), [], "A's queue is empty")
    finally:
        close_all(a, b, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
