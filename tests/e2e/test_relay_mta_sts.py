#!/usr/bin/python3
"""MTA-STS (RFC 8461) and the downgrade memory, end to end
(docs/OUTBOUND_TLS.md).

postroom A (127.0.0.2) relays to recipient domains whose MX hosts are
other postroom-smtpd instances: G (127.0.0.11, a certificate of a
private test CA for mx.good.test, mx.evil.test, mx.mem.test), W
(127.0.0.12, a certificate of the same CA for another name) and P
(127.0.0.13, no TLS at all).  tests/lib/dnsserver.py serves the MX, A
and _mta-sts TXT records; tests/lib/httpsserver.py serves the policies
as https://mta-sts.DOMAIN/.well-known/mta-sts.txt on 127.0.44.43:443
with a certificate of the test CA, which A trusts through [relay]
ca_file.

- good.test, enforce, matching MX with a good certificate: delivered,
  the policy fetched once and cached;
- wrong.test, enforce, a certificate for another name: deferred with
  "TLS policy mta-sts: ..." (4.7.5) in `postroom queue list`, never in
  plaintext;
- wrongt.test, testing, the same host: delivered, the TLS-RPT note says
  certificate-host-mismatch;
- plain.test, enforce, no STARTTLS: deferred;
- evil.test, enforce, an MX the policy does not name: deferred with
  "no MX host matches the policy (mx.evil.test)", not connected to;
- the cache across a restart of A with the HTTPS server gone: wrong.test
  still enforced from the store;
- a new TXT id: the policy is fetched again;
- mem.test (no MTA-STS), verified TLS once, then its MX in plaintext:
  a "TLS downgrade" warning with tls_memory = warn (delivered), a
  deferral with "TLS policy tls-memory: ..." with enforce, delivered
  after `postroom tls forget mem.test`;
- redir.test, ctype.test, big.test: a redirect, a policy that is not
  text/plain, one over 64 KiB are fetch errors: no policy.
"""

import os
import shutil
import sys
import tempfile

from relay_util import (Check, Instance, PASSWORD, TestCA, close_all,
                        free_port_on, message, queue_list, submit, wait_for)
from dnsserver import DNSServer  # noqa: E402 (path set by relay_util)
from httpsserver import HTTPSServer  # noqa: E402

A_IP, G_IP, W_IP, P_IP = "127.0.0.2", "127.0.0.11", "127.0.0.12", \
    "127.0.0.13"
WEB_IP = "127.0.44.43"
ALICE = "alice@a.test"
POLICY_PATH = "/.well-known/mta-sts.txt"
DOMAINS = ("good.test", "wrong.test", "wrongt.test", "plain.test",
           "evil.test", "mem.test", "redir.test", "ctype.test", "big.test")
# Domains whose policy cannot be had: MX G, opportunistic TLS.
BROKEN = ("redir.test", "ctype.test", "big.test")


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (
        mode, "".join("mx: %s\r\n" % m for m in mx), max_age)


def zone(ids, mem_ip):
    z = {
        "mx.good.test": [{"A": G_IP}],
        "mx.evil.test": [{"A": G_IP}],
        "mx.wrong.test": [{"A": W_IP}],
        "mx.wrongt.test": [{"A": W_IP}],
        "mx.plain.test": [{"A": P_IP}],
        "mx.mem.test": [{"A": mem_ip}],
        "good.test": [{"MX": [10, "mx.good.test"]}],
        "evil.test": [{"MX": [10, "mx.evil.test"]}],
        "wrong.test": [{"MX": [10, "mx.wrong.test"]}],
        "wrongt.test": [{"MX": [10, "mx.wrongt.test"]}],
        "plain.test": [{"MX": [10, "mx.plain.test"]}],
        "mem.test": [{"MX": [10, "mx.mem.test"]}],
    }
    for dom in BROKEN:
        z["mx." + dom] = [{"A": G_IP}]
        z[dom] = [{"MX": [10, "mx." + dom]}]
    for dom, i in ids.items():
        z["_mta-sts." + dom] = [{"TXT": "v=spf1 -all"},
                                {"TXT": "v=STSv1; id=%s;" % i}]
        z["mta-sts." + dom] = [{"A": WEB_IP}]
    return z


def mx_instance(ip, name, domains, cert=None):
    inst = Instance(host=ip, hostname=name, tls=cert is not None)
    if cert is not None:
        inst.cert, inst.key = cert
    return inst, domains


def main():
    t = Check()
    tmp = tempfile.mkdtemp(prefix="postroom-sts-")
    insts = []
    dns = web = a = None
    try:
        ca = TestCA(os.path.join(tmp, "ca"))
        web_cert = ca.issue("mta-sts.good.test",
                            ["mta-sts." + d for d in DOMAINS])
        g_cert = ca.issue("mx.good.test", ["mx.evil.test", "mx.mem.test"] +
                          ["mx." + d for d in BROKEN])
        w_cert = ca.issue("other.test")

        port = free_port_on([G_IP, W_IP, P_IP])
        mxs = [mx_instance(G_IP, "mx.good.test",
                           ["good.test", "evil.test", "mem.test"] +
                           list(BROKEN), g_cert),
               mx_instance(W_IP, "mx.wrong.test",
                           ["wrong.test", "wrongt.test"], w_cert),
               mx_instance(P_IP, "mx.plain.test",
                           ["plain.test", "mem.test"])]
        for inst, doms in mxs:
            insts.append(inst)
            inst.ports["smtp"] = port
            inst.write_config()
            for d in doms:
                inst.add_domain(d)
                inst.add_user("bob@" + d, PASSWORD)
            inst.start("smtpd")
        g, w, p = (m[0] for m in mxs)

        ids = {"good.test": "good1", "wrong.test": "w1", "wrongt.test": "t1",
               "plain.test": "p1", "evil.test": "e1", "redir.test": "r1",
               "ctype.test": "c1", "big.test": "b1"}
        dns = DNSServer(zone(ids, G_IP))
        dns.start()
        web = HTTPSServer(WEB_IP, 443, *web_cert)
        web.put("mta-sts.good.test", POLICY_PATH,
                policy("enforce", "mx.good.test"))
        web.put("mta-sts.wrong.test", POLICY_PATH,
                policy("enforce", "mx.wrong.test"))
        web.put("mta-sts.wrongt.test", POLICY_PATH,
                policy("testing", "mx.wrongt.test"))
        web.put("mta-sts.plain.test", POLICY_PATH,
                policy("enforce", "*.plain.test"))
        web.put("mta-sts.evil.test", POLICY_PATH,
                policy("enforce", "mail.evil.test"))
        # RFC 8461 3.3: no redirects, text/plain only, 64 KiB at most.
        web.put("mta-sts.redir.test", POLICY_PATH, "moved\r\n", status=302,
                headers={"Location": "https://mta-sts.good.test" +
                         POLICY_PATH})
        web.put("mta-sts.ctype.test", POLICY_PATH,
                policy("enforce", "mail.ctype.test"), ctype="text/html")
        web.put("mta-sts.big.test", POLICY_PATH,
                policy("enforce", "mail.big.test") +
                "x-pad: %s\r\n" % ("y" * 70000))

        a = Instance(host=A_IP, hostname="mx.a.test", tls=False)
        insts.append(a)
        a.extra = {"relay": {"resolver": "127.0.0.1:%d" % dns.port,
                             "mx_port": str(port),
                             "ca_file": ca.cert}}
        a.write_config()
        a.add_domain("a.test")
        a.add_user(ALICE, PASSWORD)
        a.start("smtpd")

        def alog():
            return a.log("smtpd")

        def send(dom, subject):
            submit(a, ALICE, ["bob@" + dom],
                   message(ALICE, "bob@" + dom, subject))

        # --- enforce, everything right: delivered ---------------------
        send("good.test", "good one")
        t.ok(wait_for(lambda: len(g.stored("bob@good.test")) == 1, 60),
             "good.test: delivered under enforce", alog())
        t.ok("domain=good.test mta-sts=enforce id=good1 source=fetched"
             in alog(), "good.test: the policy was fetched", alog())
        t.ok(wait_for(lambda: "tlsrpt domain=good.test policy=sts "
                      "result=success mx=mx.good.test" in alog(), 10),
             "good.test: TLS-RPT success noted")
        t.eq(web.hits("mta-sts.good.test"), 1, "good.test: one fetch")
        send("good.test", "good two")
        t.ok(wait_for(lambda: len(g.stored("bob@good.test")) == 2, 60),
             "good.test: second message delivered")
        t.eq(web.hits("mta-sts.good.test"), 1,
             "good.test: no second fetch (the TXT id did not change)")

        # --- enforce, certificate for another name: deferred ----------
        send("wrong.test", "wrong name")
        t.ok(wait_for(lambda: "attempts=1" in queue_list(a), 60),
             "wrong.test: deferred", alog())
        ql = queue_list(a)
        t.ok("TLS policy mta-sts: mx.wrong.test" in ql and
             "hostname mismatch" in ql,
             "wrong.test: queue list names the MTA-STS policy", ql)
        t.ok("tls policy: mta-sts" in ql,
             "wrong.test: queue list says which TLS policy held it", ql)
        t.ok("dsn=4.7.5" in alog(), "wrong.test: deferred with 4.7.5")
        t.ok("result=certificate-host-mismatch mx=mx.wrong.test" in alog(),
             "wrong.test: TLS-RPT notes certificate-host-mismatch")
        t.eq(w.stored("bob@wrong.test"), [],
             "wrong.test: nothing delivered (no plaintext retry)")
        t.ok("TLS failed with mx.wrong.test" not in alog(),
             "wrong.test: no second try without TLS")

        # --- testing, the same host: delivered, failure noted ---------
        send("wrongt.test", "testing mode")
        t.ok(wait_for(lambda: len(w.stored("bob@wrongt.test")) == 1, 60),
             "wrongt.test: delivered under testing", alog())
        t.ok("tlsrpt domain=wrongt.test policy=sts "
             "result=certificate-host-mismatch" in alog(),
             "wrongt.test: TLS-RPT notes certificate-host-mismatch", alog())

        # --- enforce, no STARTTLS: deferred ---------------------------
        send("plain.test", "no starttls")
        t.ok(wait_for(lambda: "TLS policy mta-sts: mx.plain.test"
                      in queue_list(a), 60),
             "plain.test: deferred by the policy", queue_list(a))
        t.ok("STARTTLS not offered" in queue_list(a),
             "plain.test: the reason says STARTTLS was not offered")
        t.ok("tlsrpt domain=plain.test policy=sts "
             "result=starttls-not-supported" in alog(),
             "plain.test: TLS-RPT notes starttls-not-supported")
        t.eq(p.stored("bob@plain.test"), [], "plain.test: nothing delivered")

        # --- enforce, MX not in the policy: skipped -------------------
        send("evil.test", "not in policy")
        t.ok(wait_for(lambda: "TLS policy mta-sts: no MX host matches the "
                      "policy (mx.evil.test)" in queue_list(a), 60),
             "evil.test: deferred, no MX host matches", queue_list(a))
        t.eq(g.stored("bob@evil.test"), [], "evil.test: nothing delivered")
        t.ok("tried=mx.evil.test" not in alog() and
             "connected host=mx.evil.test" not in alog(),
             "evil.test: the host was never connected to")

        # --- policies that cannot be had: no policy, delivered ----------
        for dom, why in (("redir.test", "HTTP status 302"),
                         ("ctype.test", "content type text/html"),
                         ("big.test", "")):
            send(dom, "no usable policy")
            t.ok(wait_for(lambda: len(g.stored("bob@" + dom)) == 1, 60),
                 "%s: delivered without a policy" % dom, alog())
            t.ok("relay domain=%s mta-sts fetch failed: %s" % (dom, why)
                 in alog(), "%s: the fetch failed (%s)" % (dom, why or
                                                           "too big"),
                 alog())
            t.ok("tlsrpt domain=%s policy=no-policy-found "
                 "result=sts-policy-fetch-error" % dom in alog(),
                 "%s: TLS-RPT notes sts-policy-fetch-error" % dom)
        t.eq(web.hits("mta-sts.good.test"), 1,
             "redir.test: the redirect was not followed")

        # --- the cache survives a restart; the web server is gone ------
        a.stop("smtpd")
        web.close()
        web = None
        hits_before = alog().count("domain=wrong.test mta-sts=enforce")
        a.start("smtpd")
        a.cli("queue", "flush")
        t.ok(wait_for(lambda: "attempts=2" in queue_list(a), 90),
             "restart: wrong.test tried again", queue_list(a))
        t.ok("domain=wrong.test mta-sts=enforce id=w1 source=cache"
             in alog() and alog().count(
                 "domain=wrong.test mta-sts=enforce") > hits_before,
             "restart: the policy came from the store", alog())
        t.ok("TLS policy mta-sts: mx.wrong.test" in queue_list(a),
             "restart: still enforced without the web server")
        t.eq(w.stored("bob@wrong.test"), [],
             "restart: still nothing delivered to wrong.test")

        # --- a new TXT id: fetched again; mem.test's MX moves ----------
        # mem.test first gets verified TLS from G.
        send("mem.test", "verified first")
        t.ok(wait_for(lambda: len(g.stored("bob@mem.test")) == 1, 60),
             "mem.test: delivered with verified TLS", alog())
        t.ok(wait_for(lambda: "tlsrpt domain=mem.test policy=no-policy-found"
                      " result=success" in alog(), 10),
             "mem.test: no policy, success noted")
        web = HTTPSServer(WEB_IP, 443, *web_cert)
        web.put("mta-sts.good.test", POLICY_PATH,
                policy("enforce", "mx.good.test", "backup.good.test"))
        dns.stop()
        ids["good.test"] = "good2"
        dns = DNSServer(zone(ids, P_IP), port=dns.port)
        dns.start()
        send("good.test", "good three")
        t.ok(wait_for(lambda: len(g.stored("bob@good.test")) == 3, 60),
             "id change: delivered", alog())
        t.ok("domain=good.test mta-sts=enforce id=good2 source=fetched"
             in alog(), "id change: the new policy was fetched", alog())
        t.eq(web.hits("mta-sts.good.test"), 1, "id change: one new fetch")

        # --- downgrade memory, warn: delivered, warned -----------------
        # The session kept open to G for mem.test goes first.
        t.ok(wait_for(lambda: "host=mx.mem.test[%s]:%d session closed"
                      % (G_IP, port) in alog(), 60),
             "mem.test: the kept session to G closed")
        send("mem.test", "plaintext now")
        t.ok(wait_for(lambda: len(p.stored("bob@mem.test")) == 1, 60),
             "memory warn: delivered in plaintext", alog())
        t.ok("domain=mem.test host=mx.mem.test[%s]:%d TLS downgrade: no TLS"
             % (P_IP, port) in alog(),
             "memory warn: the downgrade is logged", alog())

        # --- downgrade memory, enforce: deferred -----------------------
        a.stop("smtpd")
        a.extra["relay"]["tls_memory"] = "enforce"
        a.write_config()
        a.start("smtpd")
        send("mem.test", "refused now")
        t.ok(wait_for(lambda: "TLS policy tls-memory: mx.mem.test"
                      in queue_list(a), 60),
             "memory enforce: deferred with the tls-memory reason",
             queue_list(a) + alog())
        t.eq(len(p.stored("bob@mem.test")), 1,
             "memory enforce: nothing more delivered in plaintext")
        t.ok("tls policy: tls-memory" in queue_list(a),
             "memory enforce: queue list names the policy")

        # --- postroom tls forget: the memory goes, the mail follows ----
        r = a.cli("tls", "forget", "mem.test")
        t.ok("forgot" in r.stdout, "tls forget: done", r.stdout)
        a.cli("queue", "flush")
        t.ok(wait_for(lambda: len(p.stored("bob@mem.test")) == 2, 90),
             "tls forget: the held message is delivered", alog())
        r = a.cli("tls", "forget", "mem.test", check=False)
        t.ok(r.returncode == 1 and r.stderr.count("\n") == 1 and
             "nothing remembered of mem.test" in r.stderr,
             "tls forget: nothing left is an error (exit 1, one line)",
             r.stderr)
        r = a.cli("tls", "forget", check=False)
        t.eq(r.returncode, 2, "tls forget: no domain is a usage error")
        t.ok(PASSWORD not in alog(), "password never logged")
    finally:
        if web is not None:
            web.close()
        if dns is not None:
            dns.stop()
        close_all(*insts)
        shutil.rmtree(tmp, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    sys.exit(main())
