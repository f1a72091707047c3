#!/usr/bin/python3
"""DANE for SMTP (RFC 7672) end to end: a zone signed with ldns-signzone,
served by nsd and validated by unbound (tests/lib/dnssec.py), in front of
postroom A (127.0.0.2), which relays to postroom MX hosts:

  B  127.0.0.3  self-signed certificate (DANE-EE needs no CA)
  C  127.0.0.4  no TLS at all
  D  127.0.0.5  a certificate of a private CA, sent with the CA's
                (names mx-ta, mx-webpki, mx-pkix)
  E  127.0.0.6  a certificate of the same CA for elsewhere.test only

tests/lib/httpsserver.py serves MTA-STS policies (RFC 8461 3.3) on
127.0.45.43:443 with a certificate of the CA, which A trusts through
[relay] ca_file; the _mta-sts TXT and mta-sts A records are in the
signed zone.

Recipient domains and what their MX hosts' TLSA records make of them:

  good.dnssec.test    3 1 1 of B's key            delivered, Verified (DANE)
  bad.dnssec.test     3 1 1 of another key        deferred, TLS policy dane
  ta.dnssec.test      2 0 1 of D's CA             delivered, Verified (DANE)
  bogus.dnssec.test   TLSA with a spoilt RRSIG    deferred (SERVFAIL)
  nostls.dnssec.test  TLSA, but C has no STARTTLS deferred, never plaintext
  nodane.dnssec.test  no TLSA (validated denial) delivered, opportunistic
  plain.test          unsigned zone, a wrong TLSA delivered, opportunistic
  twomx.dnssec.test   bad host first, good second delivered by the second
  alias.dnssec.test   MX host a CNAME of mx-good  TLSA found at the expanded
                                                  name: Verified (DANE)
  aliasbogus.dnssec.test  MX host a CNAME of      deferred: a failed lookup
                      mx-bogus (SERVFAIL)         at the expanded name is no
                                                  reason to ask the alias
  junk.dnssec.test    TLSA RDATA of 3 octets      unusable, TLS still required:
                      at C (no STARTTLS)          deferred, never plaintext
  many.dnssec.test    30 unusable records and     delivered, Verified (DANE)
                      one 3 1 1 of B's key
  tawrong.dnssec.test 2 0 1 of the CA, E's        deferred (RFC 7672 3.2.3)
                      certificate names neither
                      mx-tawrong nor the base
  stsgood.dnssec.test MTA-STS enforce, B self-    delivered by DANE (RFC 8461
                      signed, 3 1 1 matching      2), noted as policy tlsa
  stsbad.dnssec.test  MTA-STS enforce, D valid    deferred, TLS policy dane:
                      for WebPKI, 3 1 1 wrong     no fallback to MTA-STS
  stsonly.dnssec.test MTA-STS enforce, D, no TLSA delivered (the control)
"""

import hashlib
import os
import ssl
import subprocess
import sys

from relay_util import (PASSWORD, Check, Instance, TestCA, close_all,
                        free_port_on, mailbox_bodies, message, queue_list,
                        submit, wait_for)
from httpsserver import HTTPSServer  # noqa: E402 (path set by relay_util)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "lib"))
from dnssec import SignedDns  # noqa: E402

ALICE = "alice@a.test"
WEB_IP = "127.0.45.43"
STS_DOMAINS = ("stsgood", "stsbad", "stsonly")


def cert_der(path):
    with open(path) as f:
        pem = f.read()
    first = pem[:pem.index("-----END CERTIFICATE-----") + 25]
    return ssl.PEM_cert_to_DER_cert(first)


def spki_sha256(path):
    """SHA2-256 of the certificate's SubjectPublicKeyInfo (selector 1,
    matching type 1: RFC 6698 2.1.2, 2.1.3)."""
    pub = subprocess.run(["openssl", "x509", "-in", path, "-pubkey",
                          "-noout"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                         input=pub, check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def mx_instance(host, hostname, port, domains, tls=True):
    inst = Instance(host=host, hostname=hostname, tls=tls)
    inst.ports["smtp"] = port
    inst.write_config()
    for dom in domains:
        inst.add_domain(dom)
        inst.add_user("bob@" + dom, PASSWORD)
    return inst


def main():
    t = Check()
    port = free_port_on(["127.0.0.2", "127.0.0.3", "127.0.0.4",
                         "127.0.0.5", "127.0.0.6"])
    a = b = c = d = e = dns = web = None
    try:
        b = mx_instance("127.0.0.3", "mx-b.dnssec.test", port,
                        ["good.dnssec.test", "bad.dnssec.test",
                         "bogus.dnssec.test", "nodane.dnssec.test",
                         "plain.test", "twomx.dnssec.test",
                         "alias.dnssec.test", "aliasbogus.dnssec.test",
                         "many.dnssec.test", "stsgood.dnssec.test"])
        c = mx_instance("127.0.0.4", "mx-c.dnssec.test", port,
                        ["nostls.dnssec.test", "junk.dnssec.test"],
                        tls=False)
        d = mx_instance("127.0.0.5", "mx-ta.dnssec.test", port,
                        ["ta.dnssec.test", "stsbad.dnssec.test",
                         "stsonly.dnssec.test"])
        e = mx_instance("127.0.0.6", "mx-tawrong.dnssec.test", port,
                        ["tawrong.dnssec.test"])
        ca = TestCA(os.path.join(d.tmp, "ca"))
        for inst, name, alt in ((d, "mx-ta.dnssec.test",
                                 ("mx-webpki.dnssec.test",
                                  "mx-pkix.dnssec.test")),
                                (e, "elsewhere.test", ())):
            leaf, key = ca.issue(name, alt)
            chain = os.path.join(inst.tmp, "chain.pem")
            with open(chain, "w") as f:
                f.write(open(leaf).read() + open(ca.cert).read())
            inst.cert, inst.key = chain, key
            inst.write_config()
        web_cert = ca.issue("mta-sts.%s.dnssec.test" % STS_DOMAINS[0],
                            ["mta-sts.%s.dnssec.test" % x
                             for x in STS_DOMAINS[1:]])

        good = spki_sha256(b.cert)
        wrong = hashlib.sha256(b"not the key").hexdigest()
        ta = hashlib.sha256(cert_der(ca.cert)).hexdigest()
        tl = "_%d._tcp." % port
        signed = [
            "good MX 10 mx-good", "mx-good A 127.0.0.3",
            tl + "mx-good TLSA 3 1 1 " + good,
            "bad MX 10 mx-bad", "mx-bad A 127.0.0.3",
            tl + "mx-bad TLSA 3 1 1 " + wrong,
            "ta MX 10 mx-ta", "mx-ta A 127.0.0.5",
            tl + "mx-ta TLSA 2 0 1 " + ta,
            "bogus MX 10 mx-bogus", "mx-bogus A 127.0.0.3",
            tl + "mx-bogus TLSA 3 1 1 " + good,
            "nostls MX 10 mx-c", "mx-c A 127.0.0.4",
            tl + "mx-c TLSA 3 1 1 " + good,
            "nodane MX 10 mx-nodane", "mx-nodane A 127.0.0.3",
            "twomx MX 10 mx-bad", "twomx MX 20 mx-good",
            "alias MX 10 mx-alias", "mx-alias CNAME mx-good",
            "aliasbogus MX 10 mx-aliasbogus",
            "mx-aliasbogus CNAME mx-bogus",
            "junk MX 10 mx-junk", "mx-junk A 127.0.0.4",
            tl + "mx-junk TYPE52 \\# 3 030101",
            "many MX 10 mx-many", "mx-many A 127.0.0.3",
            tl + "mx-many TLSA 3 1 1 " + good,
            "tawrong MX 10 mx-tawrong", "mx-tawrong A 127.0.0.6",
            tl + "mx-tawrong TLSA 2 0 1 " + ta,
            "stsgood MX 10 mx-good",
            "stsbad MX 10 mx-webpki", "mx-webpki A 127.0.0.5",
            tl + "mx-webpki TLSA 3 1 1 " + wrong,
            "stsonly MX 10 mx-pkix", "mx-pkix A 127.0.0.5",
        ]
        # RFC 7672 3.1.3: PKIX-EE (1) is unusable for SMTP.
        signed += [tl + "mx-many TLSA 1 1 1 " +
                   hashlib.sha256(b"%d" % i).hexdigest() for i in range(30)]
        for x in STS_DOMAINS:
            signed += ['_mta-sts.%s TXT "v=STSv1; id=1"' % x,
                       "mta-sts.%s A %s" % (x, WEB_IP)]
        plain = ["@ MX 10 mx", "mx A 127.0.0.3",
                 tl + "mx TLSA 3 1 1 " + wrong]
        dns = SignedDns({"dnssec.test": (True, signed),
                         "plain.test": (False, plain)},
                        bogus=[tl + "mx-bogus.dnssec.test"])

        # The fixture itself: validated, insecure and bogus answers.
        rc, ad, ans = dns.query(tl + "mx-good.dnssec.test", "TLSA")
        t.ok(rc == "NOERROR" and ad and ans,
             "unbound validates the signed zone (AD)", (rc, ad, ans,
                                                        dns.log()))
        rc, ad, _ = dns.query("plain.test", "MX")
        t.ok(rc == "NOERROR" and not ad, "the unsigned zone is insecure",
             (rc, ad))
        rc, ad, _ = dns.query(tl + "mx-bogus.dnssec.test", "TLSA")
        t.eq(rc, "SERVFAIL", "a spoilt signature is bogus: SERVFAIL")
        rc, ad, ans = dns.query(tl + "mx-junk.dnssec.test", "TYPE52")
        t.ok(rc == "NOERROR" and ad, "the 3-octet TLSA record validates",
             (rc, ad, ans))

        web = HTTPSServer(WEB_IP, 443, *web_cert)
        for x, mx in (("stsgood", "mx-good"), ("stsbad", "mx-webpki"),
                      ("stsonly", "mx-pkix")):
            web.put("mta-sts.%s.dnssec.test" % x, "/.well-known/mta-sts.txt",
                    "version: STSv1\r\nmode: enforce\r\n"
                    "mx: %s.dnssec.test\r\nmax_age: 86400\r\n" % mx)

        a = Instance(host="127.0.0.2", hostname="mx.a.test",
                     extra={"relay": {"enabled": "true",
                                      "mx_port": str(port),
                                      "ca_file": ca.cert},
                            "dns": {"resolver": dns.resolver}})
        a.add_domain("a.test")
        a.add_user(ALICE, PASSWORD)
        for inst in (b, c, d, e, a):
            try:
                inst.start("smtpd")
            except RuntimeError:
                print("# " + inst.log("smtpd").replace("\n", "\n# "))
                raise

        def send(dom):
            rcpt = "bob@" + dom
            t.eq(submit(a, ALICE, [rcpt], message(ALICE, rcpt, dom)), {},
                 "alice submits to %s" % dom)

        def arrives(inst, dom, what):
            t.ok(wait_for(lambda: len(mailbox_bodies(inst, "bob@" + dom))
                          == 1, 60), what, a.log("smtpd")[-4000:])

        def deferred(dom, what, text):
            ok = wait_for(lambda: "bob@" + dom in queue_list(a) and
                          text in queue_list(a), 60)
            t.ok(ok, what, queue_list(a) + a.log("smtpd")[-4000:])

        for dom in ("good.dnssec.test", "ta.dnssec.test",
                    "nodane.dnssec.test", "plain.test", "bad.dnssec.test",
                    "bogus.dnssec.test", "nostls.dnssec.test",
                    "twomx.dnssec.test", "alias.dnssec.test",
                    "aliasbogus.dnssec.test", "junk.dnssec.test",
                    "many.dnssec.test", "tawrong.dnssec.test",
                    "stsgood.dnssec.test", "stsbad.dnssec.test",
                    "stsonly.dnssec.test"):
            send(dom)

        arrives(b, "good.dnssec.test", "3 1 1 matching: delivered")
        log = a.log("smtpd")
        t.ok("TLS connection established to mx-good.dnssec.test"
             "[127.0.0.3]" in log and "(Verified (DANE))" in log,
             "the log says Verified (DANE)", log[-3000:])
        arrives(d, "ta.dnssec.test", "2 0 1 of the private CA: delivered")
        t.ok("TLS connection established to mx-ta.dnssec.test[127.0.0.5]"
             in a.log("smtpd"), "TLS to the DANE-TA host")
        arrives(b, "nodane.dnssec.test",
                "validated denial of TLSA: opportunistic delivery")
        arrives(b, "plain.test",
                "TLSA in an unsigned zone is ignored: delivered")
        arrives(b, "twomx.dnssec.test",
                "a failed DANE match moves on to the next MX")
        arrives(b, "alias.dnssec.test", "MX host behind a CNAME: delivered")
        t.ok([l for l in a.log("smtpd").splitlines()
              if "established to mx-alias.dnssec.test[127.0.0.3]" in l and
              "(Verified (DANE))" in l],
             "TLSA at the CNAME's target: Verified (DANE)",
             a.log("smtpd")[-3000:])

        arrives(b, "many.dnssec.test",
                "a usable record among many unusable ones: delivered")
        t.ok([l for l in a.log("smtpd").splitlines()
              if "established to mx-many.dnssec.test[127.0.0.3]" in l and
              "(Verified (DANE))" in l],
             "the usable record was kept: Verified (DANE)",
             a.log("smtpd")[-3000:])

        # RFC 8461 2: DANE first, MTA-STS only for hosts without TLSA.
        arrives(d, "stsonly.dnssec.test",
                "MTA-STS enforce, no TLSA, WebPKI certificate: delivered")
        arrives(b, "stsgood.dnssec.test", "MTA-STS enforce with a self-signed "
                "certificate but a matching TLSA: delivered by DANE")
        log = a.log("smtpd")
        t.ok(web.hits("mta-sts.stsgood.dnssec.test") >= 1 and
             "domain=stsgood.dnssec.test mta-sts=enforce" in log,
             "the enforce policy was fetched", web.log() + log[-3000:])
        t.ok("tlsrpt domain=stsgood.dnssec.test policy=tlsa result=success"
             in log, "the TLS-RPT note is policy tlsa, success", log[-3000:])
        t.ok("tlsrpt domain=stsgood.dnssec.test policy=sts" not in log,
             "no MTA-STS note for the DANE host")
        deferred("stsbad.dnssec.test", "MTA-STS enforce, WebPKI-valid "
                 "certificate, TLSA not matching: deferred by DANE",
                 "TLS policy dane:")
        t.eq(mailbox_bodies(d, "bob@stsbad.dnssec.test"), [],
             "no fallback to MTA-STS for the host that failed DANE")
        deferred("tawrong.dnssec.test", "DANE-TA, the certificate names "
                 "neither the MX host nor the base domain: deferred",
                 "TLS policy dane:")
        t.eq(mailbox_bodies(e, "bob@tawrong.dnssec.test"), [],
             "nothing went to the DANE-TA host with the wrong name")
        deferred("aliasbogus.dnssec.test", "SERVFAIL at the CNAME-expanded "
                 "name: deferred, the alias is not asked instead",
                 "TLS policy dane: TLSA lookup for %smx-bogus.dnssec.test "
                 "failed" % tl)
        t.eq(mailbox_bodies(b, "bob@aliasbogus.dnssec.test"), [],
             "nothing went to the host behind the bogus TLSA")
        deferred("junk.dnssec.test", "a TLSA record too short to parse is "
                 "unusable, TLS still required: deferred",
                 "offers no STARTTLS")
        t.eq(mailbox_bodies(c, "bob@junk.dnssec.test"), [],
             "nothing went in plaintext past the unusable TLSA record")

        deferred("bad.dnssec.test", "3 1 1 not matching: deferred, queue "
                 "list shows TLS policy dane", "TLS policy dane:")
        deferred("bogus.dnssec.test", "bogus TLSA (SERVFAIL): deferred",
                 "TLS policy dane: TLSA lookup for %smx-bogus.dnssec.test "
                 "failed (SERVFAIL" % tl)
        deferred("nostls.dnssec.test", "TLSA but no STARTTLS: deferred",
                 "offers no STARTTLS")
        t.eq(mailbox_bodies(c, "bob@nostls.dnssec.test"), [],
             "nothing went to the host without STARTTLS in plaintext")
        t.eq(mailbox_bodies(b, "bob@bad.dnssec.test"), [],
             "nothing went to the host that failed DANE")
        t.eq(mailbox_bodies(b, "bob@bogus.dnssec.test"), [],
             "nothing went to the host whose TLSA lookup failed")
        log = a.log("smtpd")
        t.ok("dsn=4.7.5" in log, "the deferral's status is 4.7.5",
             log[-3000:])
        t.ok("policy=tlsa result=validation-failure" in log,
             "TLS-RPT noted the failed match")
        t.ok("policy=tlsa result=starttls-not-supported" in log,
             "TLS-RPT noted the missing STARTTLS")
        t.ok("policy=tlsa result=dnssec-invalid" in log,
             "TLS-RPT noted the bogus lookup")
        tr = a.cli("trace", "bob@good.dnssec.test", check=False).stdout
        t.ok("dane=verified" in tr, "the trace records the DANE match", tr)

        # [relay] dane = no: the TLSA records do not count any more.
        a.stop("smtpd")
        a.extra["relay"]["dane"] = "no"
        a.write_config()
        a.start("smtpd")
        a.cli("queue", "flush")
        arrives(b, "bad.dnssec.test",
                "dane = no: the mismatching host gets the mail")
    finally:
        if web is not None:
            web.close()
        close_all(a, b, c, d, e, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
