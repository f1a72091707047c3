#!/usr/bin/python3
"""SPF (RFC 7208) at MAIL FROM on the MX listener, against the real
postroom-smtpd and a DNS server of ours (tests/lib/dnsserver.py):

- pass and softfail are accepted and the message stored;
- fail is refused with 550 5.7.23 and the domain's exp= explanation, or
  a text of ours without one; one log line names the client, the check
  and the reason; nothing is stored;
- a DNS timeout is temperror: 451 4.7.24, never a permanent refusal;
- the null sender is checked as postmaster@HELO (RFC 7208 2.4);
- a CNAME is followed, and a record too big for UDP comes over TCP;
- authenticated senders are not checked, on port 25 or on submission;
- `postroom spf` prints the same results.
"""

import base64
import os
import sys

from smtp_util import (BOB, PASSWORD, ALICE, Check, Raw, instance, log_has,
                       messages)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dnsserver import DNSServer  # noqa: E402

BIG = "v=spf1 " + " ".join("ip4:10.0.%d.%d" % (i // 250, i % 250)
                           for i in range(150)) + " ip4:127.0.0.1 -all"

ZONE = {
    "pass.test": [{"TXT": "v=spf1 ip4:127.0.0.0/8 -all"}],
    "fail.test": [{"TXT": "v=spf1 -all exp=why.fail.test"}],
    "why.fail.test": [{"TXT": "%{i} may not send for %{d}"}],
    "plainfail.test": [{"TXT": "v=spf1 ip4:192.0.2.1 -all"}],
    "soft.test": [{"TXT": ["v=spf1 ", "~all"]}],
    "slow.test": ["TIMEOUT"],
    "helo-ok.test": [{"TXT": "v=spf1 a -all"}, {"A": "127.0.0.1"}],
    "helo-bad.test": [{"TXT": "v=spf1 -all"}],
    "alias.test": [{"CNAME": "pass.test"}],
    "big.test": [{"TXT": BIG}],
    "example.test": [{"TXT": "v=spf1 -all"}],
    "broken.test": ["SERVFAIL"],
    "refused.test": ["REFUSED"],
}


def mail(inst, sender, helo="client.pass.test", auth=False, port="smtp"):
    """One transaction to bob: the replies to MAIL and to the end of
    data (None when MAIL was refused)."""
    r = Raw("127.0.0.1", inst.ports[port])
    try:
        r.reply()
        r.cmd("EHLO " + helo)
        if auth:
            plain = base64.b64encode(
                ("\0%s\0%s" % (ALICE, PASSWORD)).encode()).decode()
            code, _ = r.cmd("AUTH PLAIN " + plain)
            assert code == 235, code
        m = r.cmd("MAIL FROM:<%s>" % sender)
        if m[0] != 250:
            return m, None
        assert r.cmd("RCPT TO:<%s>" % BOB)[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send("Subject: spf\r\n\r\nhello from %s\r\n.\r\n" % sender)
        d = r.reply()
        r.cmd("QUIT")
        return m, d
    finally:
        r.close()


def checks_no_outside_dns(t):
    """A test that names no DNS server of its own sends no query beyond
    loopback: smtpd's iprev of every client on port 25 (RFC 8601 3) goes
    to the harness's closed loopback port and is temperror at once."""
    with instance() as inst:
        with open(inst.config) as f:
            conf = f.read()
        t.ok("[dns]\nresolver = 127.0.0.1:" in conf,
             "default instance: [dns] resolver is on loopback", conf)
        inst.start("smtpd")
        m, d = mail(inst, "someone@nowhere.test")
        t.eq((m[0], d and d[0]), (250, 250),
             "default instance: mail on port 25 is stored")
        t.ok(log_has(inst, "iprev client=127.0.0.1 result=temperror"),
             "default instance: iprev asked only the loopback port",
             inst.log("smtpd")[-1500:])


def main():
    t = Check()
    checks_no_outside_dns(t)
    with DNSServer(ZONE) as dns:
        extra = {"dns": {"resolver": "127.0.0.1:%d" % dns.port,
                         "timeout": "1s"},
                 "inbound": {"spf": "true"}}
        with instance(extra=extra) as inst:
            inst.start("smtpd")

            m, d = mail(inst, "someone@pass.test")
            t.eq((m[0], d and d[0]), (250, 250), "pass: accepted")
            m, d = mail(inst, "someone@soft.test")
            t.eq((m[0], d and d[0]), (250, 250), "softfail: accepted")
            m, d = mail(inst, "someone@alias.test")
            t.eq(m[0], 250, "pass through a CNAME")
            m, d = mail(inst, "someone@big.test")
            t.eq(m[0], 250, "pass with a record that needs TCP")

            m, d = mail(inst, "someone@fail.test")
            t.eq(m[0], 550, "fail: 550")
            t.ok(m[1][-1].startswith("550 5.7.23 ") and
                 "127.0.0.1 may not send for fail.test" in m[1][-1],
                 "fail: RFC 7372 code and the exp= explanation", m)
            m, d = mail(inst, "someone@plainfail.test")
            t.ok(m[0] == 550 and "5.7.23" in m[1][-1] and
                 "plainfail.test" in m[1][-1],
                 "fail without exp=: our own text", m)

            m, d = mail(inst, "someone@slow.test")
            t.ok(m[0] == 451 and "4.7.24" in m[1][-1],
                 "timeout: temperror, 451 4.7.24, no permanent refusal", m)

            m, d = mail(inst, "", helo="helo-ok.test")
            t.eq((m[0], d and d[0]), (250, 250),
                 "null sender: HELO identity passes")
            m, d = mail(inst, "", helo="helo-bad.test")
            t.eq(m[0], 550, "null sender: HELO identity fails")

            # example.test publishes -all; its users log in.
            m, d = mail(inst, ALICE, auth=True)
            t.eq((m[0], d and d[0]), (250, 250),
                 "authenticated on port 25: not checked")
            m, d = mail(inst, ALICE, auth=True, port="submission")
            t.eq((m[0], d and d[0]), (250, 250),
                 "authenticated submission: not checked")

            stored = [x for x in messages(inst, BOB)]
            t.eq(len(stored), 7, "what was accepted is stored, no more")

            log = inst.log("smtpd")
            t.ok("spf client=127.0.0.1 smtp.mailfrom=someone@fail.test "
                 "result=fail" in log, "fail: one log line with the "
                 "client, the check and the reason", log)
            t.ok("smtp.helo=postmaster@helo-bad.test result=fail" in log,
                 "the HELO identity is logged as smtp.helo", log)
            t.ok("smtp.mailfrom=" + ALICE not in log,
                 "authenticated senders are not looked up", log)

            # The CLI gives the same answers.
            def spf(*a):
                r = inst.cli("spf", *a, check=False)
                return r.returncode, r.stdout.splitlines()
            t.eq(spf("127.0.0.1", "x@pass.test"), (0, ["pass"]),
                 "postroom spf: pass")
            t.eq(spf("127.0.0.1", "x@fail.test", "h.test"),
                 (0, ["fail", "explanation: 127.0.0.1 may not send for "
                      "fail.test"]), "postroom spf: fail, explanation")
            t.eq(spf("::1", "x@pass.test"), (0, ["fail"]),
                 "postroom spf: IPv6 client")
            t.eq(spf("127.0.0.1", "", "helo-ok.test"), (0, ["pass"]),
                 "postroom spf: null sender")
            t.eq(spf("127.0.0.1", "x@slow.test"), (0, ["temperror"]),
                 "postroom spf: temperror")
            t.eq(spf("127.0.0.1", "x@broken.test"), (0, ["temperror"]),
                 "postroom spf: SERVFAIL is temperror")
            t.eq(spf("127.0.0.1", "x@refused.test"), (0, ["temperror"]),
                 "postroom spf: REFUSED is temperror")
            t.eq(spf("127.0.0.1", "x@nowhere.test"), (0, ["none"]),
                 "postroom spf: none")
            rc, _ = spf("not-an-ip", "x@pass.test")
            t.eq(rc, 1, "postroom spf: a bad address is an error")
            rc, _ = spf("127.0.0.1")
            t.eq(rc, 2, "postroom spf: usage")
    sys.exit(t.done())


if __name__ == "__main__":
    main()
