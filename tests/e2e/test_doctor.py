#!/usr/bin/python3
"""`postroom doctor DOMAIN`, `postroom dns` SRV records and `postroom
autoconfig`, against a DNS server of ours (tests/lib/dnsserver.py) and the
real postroom-smtpd and postroom-pop3d on loopback:

- a domain whose records are right: exit 0, every line ok (no key-less
  warning: it has an active DKIM key), the listeners answer with
  STARTTLS/STLS and implicit TLS, relaying to a foreign domain refused;
- each wrong record gives its own fail line and exit 1: MX elsewhere,
  SPF not authorising this host, a DKIM record of another key, no DMARC,
  a broken MTA-STS record;
- certificates made with openssl: expired (fail), near expiry (warn),
  naming another host (fail);
- our outbound-TLS records: the MTA-STS policy served by
  tests/lib/httpsserver.py (a certificate of a private CA, [relay]
  ca_file) on 127.0.46.43:443: naming the host (ok), another host
  (fail), mode testing (warn), 404, a redirect, text/html, a certificate
  the CA file does not trust (fail); TLSA records at _25._tcp.HOST in a
  zone signed and validated by tests/lib/dnssec.py (nsd, unbound):
  matching [tls] cert (ok), another key (fail), only unusable records
  (warn), none (ok), a bogus signature (fail);
- a listener down (pop3d stopped) fails; an open relay on the MX port
  (a fake server that accepts every RCPT) fails;
- `postroom dns` ends with the RFC 6186 SRV records, "0 0 0 ." for a
  service that is off; `postroom autoconfig` writes config-v1.1.xml that
  xml.etree parses, with the hosts and ports of the config.
"""

import hashlib
import ipaddress
import os
import re
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET

from dnslib import RR

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dnsserver import DNSServer  # noqa: E402
from dnssec import SignedDns  # noqa: E402
from harness import Instance, make_cert  # noqa: E402
from httpsserver import HTTPSServer  # noqa: E402
from relay_util import TestCA  # noqa: E402
from tap import Check  # noqa: E402

HOST = "mx.example.test"
GOOD = "good.test"
WRONG = ["mxelse.test", "badspf.test", "baddkim.test", "nodmarc.test",
         "badsts.test"]
LINE = re.compile(r"^(ok|warn|fail)  ([a-z0-9 .:\[\]-]+): (.*)$")
WEB_IP = "127.0.46.43"
STS_URL = "/.well-known/mta-sts.txt"


def sts_policy(mode="enforce", mx=HOST):
    return "version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: 604800\r\n" \
        % (mode, mx)


def spki_sha256(path):
    """The 3 1 1 data of a certificate (RFC 6698 2.1)."""
    pub = subprocess.run(["openssl", "x509", "-in", path, "-pubkey",
                          "-noout"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                         input=pub, check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def dkim_strings(dns_out, selector="postroom"):
    """The character-strings of the DKIM record `postroom dns` prints
    for selector (a zone-file record split into quoted strings)."""
    m = re.search(r"^%s\._domainkey\.\S+ IN TXT \((.*?)\)" % selector,
                  dns_out, re.S | re.M)
    return re.findall(r'"([^"]*)"', m.group(1))


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def zone_for(dkim_good):
    ok_dmarc = [{"TXT": "v=DMARC1; p=reject"}]
    mx = [{"MX": [10, HOST]}, {"TXT": "v=spf1 mx -all"}]
    z = {
        HOST: [{"A": "127.0.0.1"}],
        "1.0.0.127.in-addr.arpa": [{"PTR": HOST}],
        GOOD: mx,
        "_dmarc." + GOOD: ok_dmarc,
        "postroom._domainkey." + GOOD: [{"TXT": dkim_good}],
        "_mta-sts." + GOOD: [{"TXT": "v=STSv1; id=20260101T000000"}],
        "mta-sts." + GOOD: [{"A": WEB_IP}],
        "_smtp._tls." + GOOD: [{"TXT": "v=TLSRPTv1; "
                                       "rua=mailto:tls@good.test"}],
        # MX at another host.
        "mxelse.test": [{"MX": [10, "mx.elsewhere.test"]},
                        {"TXT": "v=spf1 a:%s -all" % HOST}],
        "_dmarc.mxelse.test": ok_dmarc,
        # SPF that authorises some other address only.
        "badspf.test": [{"MX": [10, HOST]},
                        {"TXT": "v=spf1 ip4:192.0.2.1 -all"}],
        "_dmarc.badspf.test": ok_dmarc,
        # The DKIM record of good.test's key, not of baddkim.test's.
        "baddkim.test": mx,
        "_dmarc.baddkim.test": ok_dmarc,
        "postroom._domainkey.baddkim.test": [{"TXT": dkim_good}],
        # No _dmarc record at all.
        "nodmarc.test": mx,
        # An MTA-STS record with an id that is not 1*32 ALPHA/DIGIT.
        "badsts.test": mx,
        "_dmarc.badsts.test": ok_dmarc,
        "_mta-sts.badsts.test": [{"TXT": "v=STSv1; id=not-valid!"}],
    }
    if have_ipv6_loopback():
        # The host's IPv6 address too: address, rdns (ip6.arpa) and SPF
        # ("mx" covers AAAA) for each address.
        z[HOST].append({"AAAA": "::1"})
        z[ipaddress.ip_address("::1").reverse_pointer] = [{"PTR": HOST}]
    return z


def eq(t, got, want, name, detail=""):
    t.ok(got == want, name, "got %r\nwant %r\n%s" % (got, want, detail))


def doctor(inst, domain):
    r = inst.cli("doctor", domain, check=False)
    lines = [ln for ln in r.stdout.splitlines() if ln]
    return r, lines


def lines_of(lines, check):
    return [ln for ln in lines if ln.split("  ", 1)[-1].startswith(check)]


def level(lines, check):
    """The levels of the lines of check ("mx", "dkim postroom", ...)."""
    return [LINE.match(ln).group(1) for ln in lines_of(lines, check)]


def cert_with_dates(d, cn, start, end):
    """A self-signed certificate for cn valid from start to end
    (YYYYMMDDHHMMSSZ), made with `openssl ca -selfsign`, which takes
    dates in the past where `openssl req` does not."""
    os.makedirs(d, exist_ok=True)
    key, csr, cert = (os.path.join(d, n) for n in
                      ("key.pem", "req.pem", "cert.pem"))
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    conf = os.path.join(d, "ca.cnf")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndir = %s\n"
                "database = %s/index.txt\nnew_certs_dir = %s\n"
                "serial = %s/serial\ndefault_md = sha256\npolicy = p\n"
                "copy_extensions = copy\nunique_subject = no\n"
                "[p]\ncommonName = supplied\n" % (d, d, d, d))
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", csr, "-subj",
                    "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "ca", "-batch", "-notext", "-config", conf,
                    "-selfsign", "-keyfile", key, "-in", csr, "-out", cert,
                    "-startdate", start, "-enddate", end],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def cert_days(d, cn, days):
    os.makedirs(d, exist_ok=True)
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days",
                    str(days), "-subj", "/CN=" + cn, "-addext",
                    "subjectAltName=DNS:" + cn],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


class OpenRelay:
    """A fake SMTP server that accepts everything: what doctor's relay
    test must catch.  It says 554 to DATA, so nothing could be sent."""

    def __init__(self, port, mode="relay"):
        self.mode = mode
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", port))
        self.s.listen(8)
        self.s.settimeout(0.5)
        self.stop = False
        self.rcpts = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                c, _ = self.s.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        c.settimeout(30)
        f = c.makefile("rwb")
        try:
            if self.mode == "silent":      # accepts, says nothing
                while c.recv(4096):
                    pass
                return
            if self.mode == "garbage":     # one endless line
                f.write(b"220-" + b"x" * 5000)
                f.flush()
                c.recv(100)
                return
            f.write(b"220 open.relay ESMTP\r\n")
            f.flush()
            for line in f:
                cmd = line.decode("latin-1").strip()
                verb = cmd.split(" ")[0].upper()
                if verb == "EHLO":
                    f.write(b"250-open.relay\r\n250 STARTTLS\r\n")
                elif verb == "RCPT":
                    self.rcpts.append(cmd)
                    f.write(b"250 2.1.5 ok\r\n")
                elif verb == "QUIT":
                    f.write(b"221 bye\r\n")
                    f.flush()
                    break
                elif verb == "DATA":
                    f.write(b"554 no\r\n")
                else:
                    f.write(b"250 ok\r\n")
                f.flush()
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.t.join(5)
        self.s.close()


def main():
    t = Check()
    inst = Instance(hostname=HOST, extra={
        "server": {"postmaster": "admin@" + GOOD}})
    dns = relay = web = None
    try:
        inst.cert, inst.key = make_cert(inst.tmp, cn=HOST)
        ca = TestCA(os.path.join(inst.tmp, "ca"))
        web = HTTPSServer(WEB_IP, 443, *ca.issue("mta-sts." + GOOD))
        web.put("mta-sts." + GOOD, STS_URL, sts_policy())
        inst.extra["relay"] = {"ca_file": ca.cert}
        for dom in [GOOD] + WRONG:
            inst.add_domain(dom)
        inst.add_user("admin@" + GOOD, "doctor-pw-1")
        inst.cli("dkim", "keygen", GOOD)
        inst.cli("dkim", "keygen", "baddkim.test")
        good_rec = dkim_strings(inst.cli("dns", GOOD).stdout)
        dns = DNSServer(zone_for(good_rec))
        dns.start()
        inst.extra["dns"] = {"resolver": "127.0.0.1:%d" % dns.port,
                             "timeout": "3s"}
        inst.write_config()
        # The DKIM record is published: activate finds it.
        inst.cli("dkim", "activate", GOOD, "postroom")
        inst.cli("dkim", "activate", "baddkim.test", "postroom", "--force")
        inst.start("smtpd")
        inst.start("pop3d")

        # --- the right records ---------------------------------------
        r, lines = doctor(inst, GOOD)
        eq(t, r.returncode, 0, "doctor %s: exit 0" % GOOD,
           r.stdout + r.stderr)
        t.ok(lines and all(LINE.match(ln) for ln in lines),
             "every line is 'ok|warn|fail  CHECK: detail'", r.stdout)
        t.ok(all(ln.startswith("ok  ") for ln in lines),
             "every line of the right domain is ok", r.stdout)
        for check in ("mx", "address", "rdns", "spf", "dkim postroom",
                      "dmarc", "mta-sts:", "mta-sts policy", "tls-rpt",
                      "certificate", "dane", "smtp 127.0.0.1:",
                      "submission 127.0.0.1:", "submissions 127.0.0.1:",
                      "pop3 127.0.0.1:", "pop3s 127.0.0.1:", "open-relay",
                      "postmaster"):
            n = 2 if check in ("rdns", "spf") and have_ipv6_loopback() else 1
            eq(t, level(lines, check), ["ok"] * n, "ok line for %s" % check,
               r.stdout)
        t.ok(any("STARTTLS works" in ln for ln in
                 lines_of(lines, "submission 127")),
             "587: STARTTLS offered and the handshake works", r.stdout)
        t.ok(any("STLS works" in ln for ln in lines_of(lines, "pop3 127")),
             "110: STLS offered and the handshake works", r.stdout)
        t.ok(any("TLSv1." in ln for ln in lines_of(lines, "pop3s")),
             "995: implicit TLS", r.stdout)
        t.ok(any("refused: 554" in ln or "refused: 55" in ln
                 for ln in lines_of(lines, "open-relay")),
             "relaying to a foreign domain is refused with 5xx", r.stdout)
        t.ok("Relay" in inst.log("smtpd") or "relay" in inst.log("smtpd"),
             "smtpd saw the relay attempt", inst.log("smtpd")[-2000:])

        t.ok(any("mode enforce" in ln and "names " + HOST in ln and
                 "id 20260101T000000" in ln
                 for ln in lines_of(lines, "mta-sts policy")),
             "the policy was fetched and names the host", r.stdout)
        t.ok(web.hits("mta-sts." + GOOD) >= 1, "the doctor fetched it over "
             "HTTPS", web.log())

        # --- the MTA-STS policy, wrong -----------------------------------
        sts_cases = [
            ("another host", dict(body=sts_policy(mx="mx.other.test")),
             "fail", "does not name " + HOST),
            ("a wildcard", dict(body=sts_policy(mx="*.example.test")),
             "ok", "mode enforce"),
            ("mode testing", dict(body=sts_policy("testing")), "warn",
             "mode testing"),
            ("not there", dict(body="no", status=404), "fail",
             "HTTP status 404"),
            ("a redirect", dict(body="", status=302, headers={
                "Location": "https://evil.test/"}), "fail",
             "HTTP status 302"),
            ("text/html", dict(body=sts_policy(), ctype="text/html"),
             "fail", "content type text/html"),
            ("not a policy", dict(body="version: STSv2\r\n"), "fail",
             "is not a policy"),
        ]
        for name, doc, lv, text in sts_cases:
            web.put("mta-sts." + GOOD, STS_URL, doc.pop("body"), **doc)
            r, lines = doctor(inst, GOOD)
            got = lines_of(lines, "mta-sts policy")
            t.ok(len(got) == 1 and got[0].startswith(lv + "  ") and
                 text in got[0] and (lv == "ok" or "; fix: " in got[0]),
                 "mta-sts policy, %s: %s" % (name, lv), r.stdout)
            eq(t, r.returncode, 1 if lv == "fail" else 0,
               "mta-sts policy, %s: exit status" % name, r.stdout)
        web.put("mta-sts." + GOOD, STS_URL, sts_policy())
        # A certificate that [relay] ca_file does not trust.
        inst.extra["relay"]["ca_file"] = inst.cert
        inst.write_config()
        r, lines = doctor(inst, GOOD)
        got = lines_of(lines, "mta-sts policy")
        t.ok(len(got) == 1 and got[0].startswith("fail  ") and
             "certificate" in got[0].lower(),
             "mta-sts policy behind an untrusted certificate: fail", r.stdout)
        inst.extra["relay"]["ca_file"] = ca.cert
        inst.write_config()

        # --- TLSA records of the host, DNSSEC-validated -----------------
        own = spki_sha256(inst.cert)
        tl = "_25._tcp."
        signed = ["mx A 127.0.0.1", tl + "mx TLSA 3 1 1 " + own,
                  "mx2 A 127.0.0.1",
                  tl + "mx2 TLSA 3 1 1 " + hashlib.sha256(b"x").hexdigest(),
                  "mx3 A 127.0.0.1", tl + "mx3 TLSA 1 1 1 " + own,
                  "mx4 A 127.0.0.1",
                  "mx5 A 127.0.0.1", tl + "mx5 TLSA 3 1 1 " + own]
        with SignedDns({"example.test": (True, signed)},
                       bogus=[tl + "mx5.example.test"]) as sdns:
            inst.extra["dns"]["resolver"] = sdns.resolver
            dane_cases = [("mx", "ok", "matches"),
                          ("mx2", "fail", "no TLSA record at"),
                          ("mx3", "warn", "no usable TLSA record"),
                          ("mx4", "ok", "no TLSA records at"),
                          ("mx5", "fail", "cannot look up")]
            for host, lv, text in dane_cases:
                inst.extra["server"]["hostname"] = host + ".example.test"
                inst.write_config()
                r, lines = doctor(inst, GOOD)
                got = lines_of(lines, "dane")
                t.ok(len(got) == 1 and got[0].startswith(lv + "  ") and
                     text in got[0] and (lv == "ok" or "; fix: " in got[0]),
                     "dane, %s: %s" % (host, lv), r.stdout + sdns.log()
                     if not got else r.stdout)
                if host == "mx2":
                    t.ok(("IN TLSA 3 1 1 " + own) in got[0],
                         "the dane fix is our own 3 1 1 record", got)
        inst.extra["server"]["hostname"] = HOST
        inst.extra["dns"]["resolver"] = "127.0.0.1:%d" % dns.port
        inst.write_config()

        r = inst.cli("doctor", "nothosted.test", check=False)
        eq(t, (r.returncode, r.stdout, r.stderr.count("\n")), (1, "", 1),
           "doctor of a domain not hosted: exit 1, one line", r.stderr)
        r = inst.cli("doctor", check=False)
        eq(t, r.returncode, 2, "doctor without a domain: exit 2", r.stderr)

        # --- each wrong record: its fail line, exit 1 ----------------
        want = {"mxelse.test": ("mx", "mx.elsewhere.test"),
                "badspf.test": ("spf", "fail"),
                "baddkim.test": ("dkim postroom", "does not hold"),
                "nodmarc.test": ("dmarc", "no DMARC record"),
                "badsts.test": ("mta-sts", "broken")}
        for dom, (check, text) in want.items():
            r, lines = doctor(inst, dom)
            eq(t, r.returncode, 1, "doctor %s: exit 1" % dom, r.stdout)
            got = lines_of(lines, check)
            t.ok(got and all(ln.startswith("fail  ") and text in ln and
                             "; fix: " in ln for ln in got),
                 "doctor %s: fail line for %s with a fix" % (dom, check),
                 r.stdout)
            fails = [ln for ln in lines if ln.startswith("fail")]
            eq(t, fails, got, "doctor %s: only that check fails" % dom,
               r.stdout)
            t.ok(r.stderr.count("\n") == 1 and "failed" in r.stderr,
                 "doctor %s: one line on stderr" % dom, r.stderr)
        r, lines = doctor(inst, "mxelse.test")
        t.ok(any("IN MX 10 %s." % HOST in ln for ln in
                 lines_of(lines, "mx")), "the MX fix is the record to "
             "publish", r.stdout)
        r, lines = doctor(inst, "nodmarc.test")
        eq(t, level(lines, "dkim"), ["warn"],
           "a domain without an active DKIM key: a warning", r.stdout)
        r, lines = doctor(inst, "baddkim.test")
        t.ok(any('"v=DKIM1; k=rsa; p=' in ln for ln in
                 lines_of(lines, "dkim postroom")),
             "the DKIM fix holds the record", r.stdout)

        # --- certificates ----------------------------------------------
        good_cert = (inst.cert, inst.key)
        cases = [
            ("expired", cert_with_dates(os.path.join(inst.tmp, "c1"), HOST,
                                        "20200101000000Z",
                                        "20200201000000Z"),
             "fail", "expired"),
            ("near expiry", cert_days(os.path.join(inst.tmp, "c2"), HOST, 5),
             "warn", "expires on"),
            ("wrong name", cert_days(os.path.join(inst.tmp, "c3"),
                                     "other.example.test", 90),
             "fail", "does not name " + HOST),
        ]
        for name, (cert, key), lv, text in cases:
            inst.cert, inst.key = cert, key
            inst.write_config()
            r, lines = doctor(inst, GOOD)
            got = lines_of(lines, "certificate")
            t.ok(len(got) == 1 and got[0].startswith(lv + "  ") and
                 text in got[0], "certificate %s: %s" % (name, lv),
                 r.stdout)
            eq(t, r.returncode, 1 if lv == "fail" else 0,
               "certificate %s: exit status" % name, r.stdout)
        inst.cert, inst.key = good_cert
        inst.write_config()

        # --- the host's addresses and their PTR records -----------------
        # (another DNS server each, with the zone changed for HOST.)
        other = zone_for(good_rec)
        other["1.0.0.127.in-addr.arpa"] = [{"PTR": "other.example.test"}]
        other["other.example.test"] = [{"A": "127.0.0.1"}]
        other[HOST] = [{"A": "127.0.0.1"}]
        away = zone_for(good_rec)
        away[HOST] = [{"A": "192.0.2.7"}]
        for name, zone, want_lv in (("PTR names another host", other,
                                     {"rdns": ["warn"], "address": ["ok"]}),
                                    ("A of another host, no PTR", away,
                                     {"rdns": ["fail"],
                                      "address": ["fail"]})):
            with DNSServer(zone) as dns2:
                inst.extra["dns"]["resolver"] = "127.0.0.1:%d" % dns2.port
                inst.write_config()
                r, lines = doctor(inst, GOOD)
            for check, lv in want_lv.items():
                eq(t, level(lines, check), lv, "%s: %s %s" % (
                   name, check, lv), r.stdout)
        t.ok(any("192.0.2.7 has no PTR record" in ln and
                 "IN PTR %s." % HOST in ln for ln in lines),
             "no PTR: the fix names the record", r.stdout)
        t.ok(any("192.0.2.7" in ln and "IN A 192.0.2.7" not in ln
                 for ln in lines_of(lines, "address")),
             "an address not of this host is named", r.stdout)
        inst.extra["dns"]["resolver"] = "127.0.0.1:%d" % dns.port
        inst.write_config()

        # --- dns: the SRV records --------------------------------------
        out = inst.cli("dns", GOOD).stdout
        p = inst.ports
        for srv, prio, port in (("_submissions", 0, p["submissions"]),
                                ("_submission", 10, p["submission"]),
                                ("_pop3s", 0, p["pop3s"]),
                                ("_pop3", 10, p["pop3"])):
            want_line = "%s._tcp.%s. IN SRV %d 1 %d %s." % (
                srv, GOOD, prio, port, HOST)
            t.ok(want_line in out.splitlines(), "dns: " + want_line, out)
        t.ok(out.index("_dmarc.%s. IN TXT" % GOOD) < out.index("IN SRV"),
             "dns: the SRV records come after the others", out)
        # What a zone-file reader makes of them (dnslib's parser).
        srv = [RR.fromZone(ln)[0] for ln in out.splitlines()
               if " IN SRV " in ln]
        eq(t, sorted((str(x.rname), x.rdata.priority, x.rdata.weight,
                      x.rdata.port, str(x.rdata.target)) for x in srv),
           sorted([("_submissions._tcp.%s." % GOOD, 0, 1,
                    p["submissions"], HOST + "."),
                   ("_submission._tcp.%s." % GOOD, 10, 1, p["submission"],
                    HOST + "."),
                   ("_pop3s._tcp.%s." % GOOD, 0, 1, p["pop3s"], HOST + "."),
                   ("_pop3._tcp.%s." % GOOD, 10, 1, p["pop3"],
                    HOST + ".")]),
           "dns: the SRV records parse as zone-file records")

        # --- autoconfig -------------------------------------------------
        path = os.path.join(inst.tmp, "config-v1.1.xml")
        r = inst.cli("autoconfig", GOOD, path)
        eq(t, (r.returncode, r.stdout), (0, ""), "autoconfig FILE: exit 0",
           r.stderr)
        root = ET.parse(path).getroot()
        eq(t, root.tag, "clientConfig", "autoconfig: clientConfig")
        prov = root.find("emailProvider")
        eq(t, prov.findtext("domain"), GOOD, "autoconfig: domain")

        def servers(kind):
            return [(s.get("type"), s.findtext("hostname"),
                     int(s.findtext("port")), s.findtext("socketType"),
                     s.findtext("username"), s.findtext("authentication"))
                    for s in prov.findall(kind)]
        auth = ("%EMAILADDRESS%", "password-cleartext")
        eq(t, servers("incomingServer"),
           [("pop3", HOST, p["pop3s"], "SSL") + auth,
              ("pop3", HOST, p["pop3"], "STARTTLS") + auth],
           "autoconfig: POP3 over SSL and STARTTLS")
        eq(t, servers("outgoingServer"),
           [("smtp", HOST, p["submissions"], "SSL") + auth,
              ("smtp", HOST, p["submission"], "STARTTLS") + auth],
           "autoconfig: SMTP over SSL and STARTTLS")
        r2 = inst.cli("autoconfig", GOOD)
        with open(path) as f:
            eq(t, r2.stdout, f.read(), "autoconfig: stdout = FILE")
        r3 = inst.cli("autoconfig", "nothosted.test", check=False)
        eq(t, r3.returncode, 1, "autoconfig of a domain not hosted: exit 1")
        r3 = inst.cli("autoconfig", check=False)
        eq(t, r3.returncode, 2, "autoconfig without a domain: exit 2")

        # --- a listener down ------------------------------------------
        inst.stop("pop3d")
        r, lines = doctor(inst, GOOD)
        eq(t, r.returncode, 1, "pop3d stopped: exit 1", r.stdout)
        for check in ("pop3 127.0.0.1:", "pop3s 127.0.0.1:"):
            got = lines_of(lines, check)
            t.ok(len(got) == 1 and got[0].startswith("fail  ") and
                 "cannot connect" in got[0] and "postroom-pop3d" in got[0],
                 "pop3d stopped: fail line for " + check, r.stdout)
        eq(t, level(lines, "smtp 127"), ["ok"], "smtpd still ok", r.stdout)

        # --- smtpd down, then an open relay on the MX port ---------------
        inst.stop("smtpd")
        r, lines = doctor(inst, GOOD)
        eq(t, (level(lines, "smtp 127"), level(lines, "open-relay")),
           (["fail"], ["warn"]), "smtpd stopped: smtp fails, the relay "
           "test is not made", r.stdout)
        relay = OpenRelay(p["smtp"])
        r, lines = doctor(inst, GOOD)
        got = lines_of(lines, "open-relay")
        t.ok(len(got) == 1 and got[0].startswith("fail  ") and
             "OPEN RELAY" in got[0], "an open relay: fail line", r.stdout)
        t.ok(relay.rcpts and all("example.invalid" in x
                                 for x in relay.rcpts),
             "the relay test asks for a .invalid recipient", relay.rcpts)
        eq(t, r.returncode, 1, "an open relay: exit 1")

        # --- hostile listeners: an endless line, silence ----------------
        fakes = [OpenRelay(p["submission"], "garbage"),
                 OpenRelay(p["submissions"], "silent")]
        try:
            r, lines = doctor(inst, GOOD)
        finally:
            for f in fakes:
                f.close()
        got = lines_of(lines, "submission 127")
        t.ok(len(got) == 1 and got[0].startswith("fail  ") and
             "too long" in got[0], "an endless reply line: fail", r.stdout)
        got = lines_of(lines, "submissions 127")
        t.ok(len(got) == 1 and got[0].startswith("fail  ") and
             ("in time" in got[0] or "within" in got[0]),
             "a listener that never answers: fail, no hang", r.stdout)

        # --- the postmaster --------------------------------------------
        inst.extra["server"]["postmaster"] = "nobody@" + GOOD
        inst.write_config()
        r, lines = doctor(inst, GOOD)
        eq(t, level(lines, "postmaster"), ["fail"],
           "a postmaster that is no user: fail", r.stdout)

        # --- a service that is off ---------------------------------------
        inst.extra["pop3"] = {"pop3s": ""}
        inst.write_config()
        out = inst.cli("dns", GOOD).stdout
        t.ok("_pop3s._tcp.%s. IN SRV 0 0 0 ." % GOOD in out.splitlines(),
             "dns: pop3s off is published as not available", out)
        t.ok("_pop3._tcp.%s. IN SRV 10 1 %d %s." % (GOOD, p["pop3"], HOST)
             in out.splitlines(), "dns: pop3 still published", out)
        root = ET.fromstring(inst.cli("autoconfig", GOOD).stdout)
        eq(t, [int(x.findtext("port")) for x in
               root.find("emailProvider").findall("incomingServer")],
           [p["pop3"]], "autoconfig: pop3s off is not offered")
    finally:
        if relay is not None:
            relay.close()
        if dns is not None:
            dns.stop()
        if web is not None:
            web.close()
        inst.close()
    sys.exit(t.done())


if __name__ == "__main__":
    main()
