#!/usr/bin/python3
"""The relay schedules like an MTA, against a real peer: Debian's Postfix
is the MX of c.test on 127.0.0.9.

- Eight messages to c.test with [relay] connections_per_domain = 2: all
  reach Postfix's maildir over at most two connections (Postfix's log:
  connects counted, and never more than two at once), the later ones on a
  kept session after RSET.
- A dead MX (mx.dead.test, nothing listening): the first message fails to
  connect and the host is backed off; the next message to it is not tried
  at once (skipped, deferred with the first one's error).
- `postroom queue list` shows each recipient's tries and last reply;
  `postroom queue flush DOMAIN` (exit 0, count), bad domain (1), usage (2).
- ETRN (RFC 1985) with smtplib: EHLO offers it; an authenticated client
  and one from [smtp] etrn_networks get 253/251; a client that is
  neither gets 459; "#queue" 458; bad syntax 501; past the rate 458.
"""

import re
import smtplib
import sys

from relay_util import (Check, Dns, Instance, PASSWORD, close_all,
                        free_port_on, message, queue_list, queued, skip,
                        wait_for)
import postfix  # noqa: E402 (tests/lib, put on the path by relay_util)
from test_relay_postfix import postfix_mx

ALICE = "alice@a.test"
N_MSGS = 8


def pf_sessions(pf):
    """(connects, most at once) from Postfix's smtpd log lines."""
    live = top = n = 0
    for line in pf.read_log().splitlines():
        if re.search(r"postfix/smtpd\[\d+\]: connect from ", line):
            n += 1
            live += 1
            top = max(top, live)
        elif re.search(r"postfix/smtpd\[\d+\]: disconnect from ", line):
            live -= 1
    return n, top


def etrn(inst, node, login=False, source="127.0.0.1"):
    """(code, text) of ETRN node, after EHLO (and AUTH with login)."""
    with smtplib.SMTP(inst.host, inst.ports["submission" if login else
                                            "smtp"],
                      local_hostname="client.test", timeout=30,
                      source_address=(source, 0)) as s:
        s.ehlo()
        if login:
            s.login(ALICE, PASSWORD)
        code, text = s.docmd("ETRN", node)
        return code, text.decode("utf-8", "replace")


def main():
    why = postfix.available()
    if why:
        skip(why)
    t = Check()
    port = free_port_on(["127.0.0.2", "127.0.0.9", "127.0.0.10"])
    a = Instance(host="127.0.0.2", hostname="mx.a.test")
    dns = pf = None
    try:
        a.add_domain("a.test")
        a.add_user(ALICE, PASSWORD)
        dns = Dns(mx={"c.test": [(10, "mx.c.test")],
                      "dead.test": [(10, "mx.dead.test")]},
                  a={"mx.c.test": "127.0.0.9", "mx.dead.test": "127.0.0.10"})
        pf = postfix_mx("127.0.0.9", port, a.cert, a.key)
        pf.start()
        a.extra["relay"] = {"resolver": dns.resolver, "mx_port": str(port),
                            "connections_per_domain": "2"}
        a.extra["smtp"] = {"etrn_networks": "127.0.0.3/32, ::1"}
        a.write_config()
        a.start("smtpd")

        # --- Connection reuse and connections_per_domain.
        with smtplib.SMTP(a.host, a.ports["submission"],
                          local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            s.login(ALICE, PASSWORD)
            for i in range(N_MSGS):
                s.sendmail(ALICE, ["carol@c.test"],
                           message(ALICE, "carol@c.test", "reuse %d" % i))
        t.ok(wait_for(lambda: len(postfix.maildir_messages(pf.maildir)) ==
                      N_MSGS, 60),
             "Postfix delivered all %d messages" % N_MSGS,
             a.log("smtpd")[-3000:] + pf.read_log()[-2000:])
        top = pf_sessions(pf)[1]
        t.ok(top <= 2, "connections_per_domain = 2: at most %d at once"
             % top)
        t.ok("reusing session with mx.c.test" in a.log("smtpd"),
             "the relay logs the kept session")
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty")
        t.ok(wait_for(lambda: pf_sessions(pf)[0] ==
                      len(re.findall(r"postfix/smtpd\[\d+\]: disconnect "
                                     r"from ", pf.read_log())), 30),
             "idle sessions end with QUIT after the idle time",
             pf.read_log()[-1500:])
        # Sessions that carried mail (not the port probe of pf.start()).
        n = len(re.findall(r"disconnect from .* mail=", pf.read_log()))
        t.ok(1 <= n <= 2, "%d messages over %d connections (Postfix's log)"
             % (N_MSGS, n), pf.read_log()[-3000:])
        t.ok(re.search(r"disconnect from .* rset=\d+ .*quit=1",
                       pf.read_log()) is not None,
             "Postfix counts RSET between messages and one QUIT",
             pf.read_log()[-1500:])

        # --- A dead MX is backed off.
        with smtplib.SMTP(a.host, a.ports["submission"],
                          local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            s.login(ALICE, PASSWORD)
            s.sendmail(ALICE, ["u@dead.test"],
                       message(ALICE, "u@dead.test", "dead 1"))
            t.ok(wait_for(lambda: "status=backoff" in a.log("smtpd"), 30),
                 "refused connection: the host is backed off",
                 a.log("smtpd")[-2000:])
            s.sendmail(ALICE, ["v@dead.test"],
                       message(ALICE, "v@dead.test", "dead 2"))
        t.ok(wait_for(lambda: "status=skipped" in a.log("smtpd"), 30),
             "the next message does not try the dead host at once",
             a.log("smtpd")[-2000:])
        t.eq(a.log("smtpd").count("status=backoff"), 1,
             "one failed connection for two messages")
        t.ok(wait_for(lambda: sorted(queued(a)) == ["u@dead.test",
                                                    "v@dead.test"], 15),
             "both deferred", queue_list(a))

        # --- queue list per recipient, queue flush DOMAIN.
        ql = queue_list(a)
        t.ok(re.search(r"to=<v@dead.test>  tries=1  next=\S+Z  reply=\".*"
                       r"connect to mx.dead.test\[127.0.0.10\].*not tried "
                       r"again", ql) is not None,
             "queue list: tries, next try, last reply per recipient", ql)
        r = a.cli("queue", "flush", "dead.test", check=False)
        t.ok(r.returncode == 0 and "2 queued messages for dead.test" in
             r.stdout, "queue flush DOMAIN", r.stdout + r.stderr)
        r = a.cli("queue", "flush", "@test", check=False)
        t.ok(r.returncode == 0 and "2 queued messages for @test" in r.stdout,
             "queue flush @DOMAIN: subdomains", r.stdout)
        r = a.cli("queue", "flush", "nowhere.test", check=False)
        t.ok(r.returncode == 0 and "0 queued messages" in r.stdout,
             "queue flush of a domain with nothing queued", r.stdout)
        r = a.cli("queue", "flush", "bad..name", check=False)
        t.ok(r.returncode == 1 and r.stderr.count("\n") == 1,
             "queue flush of an invalid domain: exit 1, one line", r.stderr)
        t.eq(a.cli("queue", "flush", "a", "b", check=False).returncode, 2,
             "queue flush with two arguments: usage, exit 2")
        t.ok(wait_for(lambda: "failed hosts are tried again" in
                      a.log("smtpd"), 30),
             "the running smtpd notices the flush and forgets the backoff",
             a.log("smtpd")[-1500:])

        # --- ETRN.
        with smtplib.SMTP(a.host, a.ports["smtp"],
                          local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            t.ok(s.has_extn("etrn"), "EHLO offers ETRN")
            code, _ = s.docmd("ETRN")
            t.eq(code, 501, "ETRN without a node: 501")
            code, text = s.docmd("ETRN", "dead.test")
            t.ok(code == 459 and b"4.7.1" in text,
                 "anonymous client outside etrn_networks: 459", text)
        code, text = etrn(a, "dead.test", login=True)
        t.ok(code == 253 and "2 pending messages for node dead.test" in text,
             "authenticated: 253 with the count", text)
        code, text = etrn(a, "@test", source="127.0.0.3")
        t.ok(code == 253 and "node @test" in text,
             "client in etrn_networks, @domain: 253", text)
        code, text = etrn(a, "nothing.test", source="127.0.0.3")
        t.eq(code, 251, "nothing queued for the node: 251")
        code, text = etrn(a, "#outq", source="127.0.0.3")
        t.eq(code, 458, "ETRN #queue: 458 (no named queues)")
        codes = [etrn(a, "dead.test", source="127.0.0.3")[0]
                 for _ in range(4)]
        t.ok(codes[-1] == 458, "past %s a minute: 458" % "5", codes)
        t.ok(re.search(r"etrn node=dead.test entries=2", a.log("smtpd")),
             "ETRN logged with its node", a.log("smtpd")[-1500:])
        t.ok(wait_for(lambda: a.log("smtpd").count("status=backoff") >= 2,
                      30), "after ETRN the dead host is tried again")
    finally:
        close_all(a, pf, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
