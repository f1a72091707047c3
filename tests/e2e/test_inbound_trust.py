#!/usr/bin/python3
"""Inbound trust on the MX listener, end to end: the real postroom-smtpd
and pop3d, a DNS server of ours on loopback (tests/lib/dnsserver.py),
messages signed by python3-dkim with RSA and Ed25519 keys:

- signed mail gets dkim=pass (and DMARC pass) in the stored
  Authentication-Results, read back over POP3; a tampered one dkim=fail
  and is still accepted when its domain does not reject;
- a forged From: of a p=reject domain is refused 550 5.7.1, nothing is
  stored, one log line names the client, the check and the reason;
  p=quarantine is accepted with X-Spam-Flag: YES; two From: addresses
  are refused (RFC 7489 6.6.1);
- an incoming Authentication-Results field with our authserv-id is
  removed, another server's is kept (RFC 8601 5);
- DNS timeouts give temperror and 451, never a 5xx;
- dmarc_policy = report never refuses;
- DNSBL: a listed client gets 554 5.7.1 with the zone and its TXT reason
  before the greeting; a list that does not answer refuses nobody;
- postroom A relays to postroom B: A's DKIM signature verifies at B,
  B's Authentication-Results say dkim=pass and dmarc=pass;
- `postroom check-message` prints the same field and verdict.
"""

import base64
import os
import smtplib
import socket
import sys
import time

from smtp_util import BOB, PASSWORD, Check, Raw, instance

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from dnsserver import DNSServer  # noqa: E402
from relay_util import pop3_fetch, rsa_key  # noqa: E402

import dkim  # noqa: E402  python3-dkim
import nacl.signing  # noqa: E402  python3-nacl (dkimpy's Ed25519)

ID = "mx.example.test"


def ed_key():
    """(base64 seed as dkimpy wants it, p= of the RFC 8463 record)."""
    sk = nacl.signing.SigningKey.generate()
    return (base64.b64encode(bytes(sk)),
            base64.b64encode(bytes(sk.verify_key)).decode())


def chunks(s, n=200):
    return [s[i:i + n] for i in range(0, len(s), n)]


RSA_PRIV, RSA_PUB = rsa_key()
ED_PRIV, ED_PUB = ed_key()
SPF_LOCAL = {"TXT": "v=spf1 ip4:127.0.0.0/8 -all"}

ZONE = {
    # Signed with RSA, aligned, p=reject: passes.
    "rsa.test": [SPF_LOCAL],
    "_dmarc.rsa.test": [{"TXT": "v=DMARC1; p=reject"}],
    "r1._domainkey.rsa.test": [
        {"TXT": chunks("v=DKIM1; k=rsa; p=" + RSA_PUB)}],
    # Signed with Ed25519 (RFC 8463).
    "ed.test": [SPF_LOCAL],
    "_dmarc.ed.test": [{"TXT": "v=DMARC1; p=reject"}],
    "e1._domainkey.ed.test": [{"TXT": "v=DKIM1; k=ed25519; p=" + ED_PUB}],
    # p=none: a tampered message is only recorded.
    "none.test": [],
    "_dmarc.none.test": [{"TXT": "v=DMARC1; p=none"}],
    "r1._domainkey.none.test": [
        {"TXT": chunks("v=DKIM1; k=rsa; p=" + RSA_PUB)}],
    # The bank whose From: is forged, and where the forger sends from.
    "_dmarc.bank.test": [{"TXT": "v=DMARC1; p=reject"}],
    "other.test": [SPF_LOCAL],
    "_dmarc.quar.test": [{"TXT": "v=DMARC1; p=quarantine"}],
    # The key lookup times out; the domain rejects.
    "slowkey.test": [],
    "_dmarc.slowkey.test": [{"TXT": "v=DMARC1; p=reject"}],
    "r1._domainkey.slowkey.test": ["TIMEOUT"],
    # The DMARC record lookup times out.
    "_dmarc.slowdmarc.test": ["TIMEOUT"],
    # DNS block lists (RFC 5782 2.1): 127.0.0.1 listed on bl.test,
    # slowbl.test never answers.
    "1.0.0.127.bl.test": [{"A": "127.0.0.2"},
                          {"TXT": "Listed: see https://bl.test/q?127.0.0.1"}],
    "2.0.0.127.bl.test": ["TIMEOUT"],
    "1.0.0.127.slowbl.test": ["TIMEOUT"],
    # iprev of the client (RFC 8601 3).
    "1.0.0.127.in-addr.arpa": [{"PTR": "client.other.test"}],
    "client.other.test": [{"A": "127.0.0.1"}],
}


def msg(frm, subject, body="Hello.\r\n", extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
            "Message-ID: <%s.%f@test>\r\n%s\r\n%s" % (
                frm, BOB, subject, subject.replace(" ", "."), time.time(),
                extra, body)).encode()


def sign(m, domain, selector, key, alg=b"rsa-sha256"):
    sig = dkim.sign(m, selector.encode(), domain.encode(), key,
                    include_headers=[b"from", b"to", b"subject", b"date"],
                    linesep=b"\r\n", signature_algorithm=alg)
    return sig + m


def send(inst, sender, data, helo="client.other.test"):
    """One transaction to bob on port 25: (code of the end of data, its
    text), or the MAIL reply when MAIL was refused."""
    r = Raw("127.0.0.1", inst.ports["smtp"])
    try:
        r.reply()
        r.cmd("EHLO " + helo)
        m = r.cmd("MAIL FROM:<%s>" % sender)
        if m[0] != 250:
            return m[0], m[1][-1]
        assert r.cmd("RCPT TO:<%s>" % BOB)[0] == 250
        assert r.cmd("DATA")[0] == 354
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        r.send(stuffed + b".\r\n")
        code, lines = r.reply()
        r.cmd("QUIT")
        return code, lines[-1]
    finally:
        r.close()


def header(data):
    """The header section, unfolded, as text."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return head.replace("\r\n\t", " ").replace("\r\n ", " ")


def authres(data):
    """Our Authentication-Results field, unfolded."""
    for ln in header(data).split("\r\n"):
        if ln.lower().startswith("authentication-results: " + ID):
            return ln
    return ""


def one(t, inst, name):
    got = pop3_fetch(inst, BOB, delete=True)
    t.eq(len(got), 1, name + ": one message stored")
    return got[0] if got else b""


def checks_enforce(t, inst):
    # RSA, aligned: dkim=pass, dmarc=pass, spf=pass, iprev=pass.
    m = sign(msg("alice@rsa.test", "rsa signed"), "rsa.test", "r1",
             RSA_PRIV)
    code, text = send(inst, "alice@rsa.test", m)
    t.ok(code == 250, "rsa-sha256 signed: accepted", (code, text))
    data = one(t, inst, "rsa-sha256")
    ar = authres(data)
    t.ok("dkim=pass header.d=rsa.test header.s=r1" in ar,
         "rsa-sha256: dkim=pass header.d header.s", ar)
    t.ok("dmarc=pass header.from=rsa.test" in ar, "rsa-sha256: dmarc=pass",
         ar)
    t.ok("spf=pass smtp.mailfrom=alice@rsa.test" in ar, "spf=pass", ar)
    t.ok("iprev=pass policy.iprev=127.0.0.1" in ar,
         "iprev=pass (PTR and forward confirmed)", ar)
    t.ok(data.startswith(b"Return-Path: <alice@rsa.test>\r\n"
                         b"Authentication-Results: " + ID.encode()),
         "A-R right after Return-Path", data[:200])
    t.ok(data.endswith(m), "message intact after our fields", data[-200:])

    # Ed25519 (RFC 8463).
    m = sign(msg("eve@ed.test", "ed signed"), "ed.test", "e1", ED_PRIV,
             alg=b"ed25519-sha256")
    code, text = send(inst, "eve@ed.test", m)
    t.ok(code == 250, "ed25519-sha256 signed: accepted", (code, text))
    ar = authres(one(t, inst, "ed25519"))
    t.ok("dkim=pass header.d=ed.test header.s=e1" in ar,
         "ed25519-sha256: dkim=pass", ar)
    t.ok("dmarc=pass" in ar, "ed25519-sha256: dmarc=pass", ar)

    # Tampered after signing, p=none: recorded, accepted.
    m = sign(msg("n@none.test", "tampered", body="Pay 10 EUR.\r\n"),
             "none.test", "r1", RSA_PRIV)
    m = m.replace(b"Pay 10 EUR.", b"Pay 99 EUR.")
    code, text = send(inst, "n@other.test", m)
    t.ok(code == 250, "tampered, p=none: accepted", (code, text))
    ar = authres(one(t, inst, "tampered"))
    t.ok("dkim=fail" in ar and "header.d=none.test" in ar,
         "tampered: dkim=fail", ar)
    t.ok("dmarc=fail" in ar and "header.from=none.test" in ar,
         "tampered: dmarc=fail", ar)

    # A forged From: of a p=reject domain.
    code, text = send(inst, "forger@other.test",
                      msg("ceo@bank.test", "forged"))
    t.ok(code == 550 and "5.7.1" in text and "bank.test" in text,
         "forged From: of p=reject: 550 5.7.1", (code, text))
    t.eq(pop3_fetch(inst, BOB, delete=True), [], "forged: nothing stored")
    t.ok(inst.log_has("reject client=127.0.0.1 check=dmarc code=550")
         if hasattr(inst, "log_has") else
         "reject client=127.0.0.1 check=dmarc code=550" in inst.log("smtpd"),
         "forged: one log line with ip, check and reason")

    # Tampered signature of a p=reject domain: refused too.
    m = sign(msg("alice@rsa.test", "tampered reject"), "rsa.test", "r1",
             RSA_PRIV).replace(b"Hello.", b"Hullo.")
    code, text = send(inst, "alice@other.test", m)
    t.ok(code == 550, "tampered, p=reject, SPF not aligned: 550", (code, text))

    # p=quarantine: accepted and marked.
    code, text = send(inst, "forger@other.test",
                      msg("boss@quar.test", "quarantined"))
    t.ok(code == 250, "p=quarantine: accepted", (code, text))
    data = one(t, inst, "quarantine")
    h = header(data)
    t.ok("\r\nX-Spam-Flag: YES\r\n" in h, "p=quarantine: X-Spam-Flag: YES",
         h)
    t.ok("X-Spam-Reason: DMARC" in h and "quar.test" in h,
         "p=quarantine: the reason", h)
    t.ok("dmarc=fail" in authres(data), "p=quarantine: dmarc=fail")

    # RFC 7489 6.6.1.
    two = (b"From: a@other.test\r\nFrom: b@other.test\r\nTo: " +
           BOB.encode() + b"\r\nSubject: two\r\n\r\nx\r\n")
    code, text = send(inst, "a@other.test", two)
    t.ok(code == 550 and "5.7.1" in text, "two From: fields: 550 5.7.1",
         (code, text))
    code, text = send(inst, "a@other.test",
                      msg("a@other.test, b@other.test", "two mailboxes"))
    t.ok(code == 550 and "5.7.1" in text, "two From: mailboxes: 550 5.7.1",
         (code, text))
    code, text = send(inst, "a@other.test",
                      b"Subject: none\r\n\r\nno author\r\n")
    t.ok(code == 550 and "5.7.1" in text, "no From: 550 5.7.1",
         (code, text))
    t.eq(pop3_fetch(inst, BOB, delete=True), [],
         "two or no From: nothing stored")
    t.ok("check=from" in inst.log("smtpd"), "From: refusals logged")

    # RFC 8601 5: ours removed, others kept, in a spooled big one too.
    forged = ("Authentication-Results: %s;\r\n\tdkim=pass header.d=bank.test"
              "\r\nAuthentication-Results: mx.other.test; spf=pass\r\n"
              "authentication-results: (c) MX.EXAMPLE.TEST.; dmarc=pass\r\n"
              % ID)
    for name, body in (("small", "x\r\n"),
                       ("spooled", "y" * 70 + "\r\n") * 1):
        if name == "spooled":
            body = ("y" * 70 + "\r\n") * 4000
        code, text = send(inst, "a@other.test",
                          msg("a@other.test", "forged ar " + name,
                              body=body, extra=forged))
        t.ok(code == 250, "incoming A-R (%s): accepted" % name, (code, text))
        data = one(t, inst, "incoming A-R " + name)
        h = header(data)
        t.ok(h.lower().count("authentication-results: " +
                             ID.lower()) == 1,
             "our forged A-R removed, ours added (%s)" % name, h[:800])
        t.ok("header.d=bank.test" not in h and "MX.EXAMPLE" not in h,
             "the forged fields are gone (%s)" % name)
        t.ok("Authentication-Results: mx.other.test; spf=pass" in h,
             "another server's A-R kept (%s)" % name)
        t.ok(data.endswith(body.encode()), "body intact (%s)" % name)

    # DNS timeouts: temperror, 451, never 5xx.
    m = sign(msg("k@slowkey.test", "slow key"), "slowkey.test", "r1",
             RSA_PRIV)
    code, text = send(inst, "k@other.test", m)
    t.ok(code == 451 and "4.7.1" in text,
         "DKIM key lookup timeout under p=reject: 451 4.7.1, not 5xx",
         (code, text))
    code, text = send(inst, "d@other.test", msg("d@slowdmarc.test",
                                                "slow dmarc"))
    t.ok(code == 250, "DMARC record timeout: accepted", (code, text))
    ar = authres(one(t, inst, "slow dmarc"))
    t.ok("dmarc=temperror" in ar, "DMARC record timeout: dmarc=temperror",
         ar)


def checks_cli(t, inst):
    """postroom check-message: the field and the verdict smtpd reaches."""
    import tempfile
    path = os.path.join(inst.tmp, "forged.eml")
    with open(path, "wb") as f:
        f.write(msg("ceo@bank.test", "forged for the cli"))
    r = inst.cli("check-message", "--ip", "127.0.0.1", "--helo",
                 "client.other.test", "--from", "forger@other.test", path,
                 check=False)
    lines = r.stdout.rstrip("\n").split("\n")
    t.eq(r.returncode, 0, "check-message: exit 0 for a refusal")
    t.ok(lines[0].startswith("Authentication-Results: " + ID + ";"),
         "check-message: the A-R field first", r.stdout)
    t.ok("spf=pass smtp.mailfrom=forger@other.test" in r.stdout and
         "dkim=none" in r.stdout and "dmarc=fail" in r.stdout and
         "header.from=bank.test" in r.stdout and
         "iprev=pass policy.iprev=127.0.0.1" in r.stdout,
         "check-message: spf, dkim, dmarc and iprev results", r.stdout)
    t.ok(lines[-1].startswith("550 5.7.1 ") and "bank.test" in lines[-1],
         "check-message: the 550 smtpd gives", lines[-1])
    # A signed message with LF line ends, on stdin.
    signed = sign(msg("alice@rsa.test", "signed for the cli"), "rsa.test",
                  "r1", RSA_PRIV)
    r = inst.cli("check-message", "--ip", "127.0.0.1", "--from",
                 "alice@rsa.test", input=signed.replace(
                     b"\r\n", b"\n").decode(), check=False)
    t.ok(r.returncode == 0 and r.stdout.endswith("\naccept\n") and
         "dkim=pass header.d=rsa.test" in r.stdout and
         "dmarc=pass" in r.stdout, "check-message: signed, from stdin: "
         "dkim=pass, accept", r.stdout + r.stderr)
    r = inst.cli("check-message", input=msg("boss@quar.test", "q").decode(),
                 check=False)
    t.ok(r.returncode == 0 and "X-Spam-Flag: YES" in r.stdout and
         r.stdout.endswith("\naccept\n") and "iprev" not in r.stdout,
         "check-message: p=quarantine marked and accepted, no --ip no "
         "SPF or iprev", r.stdout)
    r = inst.cli("check-message", input=(
        "From: a@other.test\nFrom: b@other.test\n\nx\n"), check=False)
    t.ok(r.stdout.rstrip().split("\n")[-1].startswith("550 5.7.1"),
         "check-message: two From: 550 5.7.1", r.stdout)
    # A From: field beyond smtpd's header filter bound (8 KiB) is refused
    # by smtpd; check-message reads it through the same filter.
    long_from = b"From: " + (b"word " * 150 + b"\r\n ") * 12 + \
        b"<a@other.test>\r\nSubject: long from\r\n\r\nx\r\n"
    code, text = send(inst, "a@other.test", long_from)
    r = inst.cli("check-message", input=long_from.decode(), check=False)
    last = r.stdout.rstrip().split("\n")[-1]
    t.ok(code == 550 and last.startswith("550 5.7.1") and "From:" in last,
         "check-message: a From: beyond the filter's bound gets the 550 "
         "smtpd gives", (code, text, r.stdout))
    r = inst.cli("check-message", "--bogus", check=False)
    t.eq(r.returncode, 2, "check-message: usage error is exit 2")
    r = inst.cli("check-message", os.path.join(inst.tmp, "nope"),
                 check=False)
    t.ok(r.returncode == 1 and r.stderr.count("\n") == 1,
         "check-message: a missing file is exit 1, one line", r.stderr)


def checks_spool_reuse(t, inst):
    """A big message refused after it was spooled lends nothing to the
    next one of the same session."""
    bad = msg("a@other.test", "bare lf", body="x" * 300000 + "\n\r\n")
    good = msg("a@other.test", "after it", body=("z" * 70 + "\r\n") * 3000)
    r = Raw("127.0.0.1", inst.ports["smtp"])
    try:
        r.reply()
        r.cmd("EHLO client.other.test")
        codes = []
        for m in (bad, good):
            r.cmd("MAIL FROM:<a@other.test>")
            r.cmd("RCPT TO:<%s>" % BOB)
            r.cmd("DATA")
            r.send(m + b".\r\n")
            codes.append(r.reply()[0])
        r.cmd("QUIT")
    finally:
        r.close()
    t.eq(codes, [550, 250], "spooled bare-LF message refused, next accepted")
    got = pop3_fetch(inst, BOB, delete=True)
    t.ok(len(got) == 1 and got[0].endswith(good),
         "the next spooled message is stored as sent",
         got[0][:300] if got else None)


def checks_report(t, inst):
    code, text = send(inst, "forger@other.test",
                      msg("ceo@bank.test", "forged, report"))
    t.ok(code == 250, "report: forged p=reject accepted", (code, text))
    data = one(t, inst, "report")
    t.ok("dmarc=fail" in authres(data) and
         "header.from=bank.test" in authres(data),
         "report: dmarc=fail recorded", authres(data))
    t.ok(b"X-Spam-Flag" not in data, "report: not marked")
    code, text = send(inst, "forger@other.test",
                      msg("boss@quar.test", "quarantine, report"))
    t.ok(code == 250, "report: p=quarantine accepted", (code, text))
    t.ok(b"X-Spam-Flag" not in one(t, inst, "report quarantine"),
         "report: p=quarantine not marked")
    two = (b"From: a@other.test\r\nFrom: b@other.test\r\n"
           b"Subject: two\r\n\r\nx\r\n")
    code, text = send(inst, "a@other.test", two)
    t.ok(code == 250, "report: two From: accepted", (code, text))
    pop3_fetch(inst, BOB, delete=True)


def checks_dnsbl(t, zone_port):
    base = {"dns": {"resolver": "127.0.0.1:%d" % zone_port, "timeout": "1s"}}
    listed = dict(base, inbound={"dnsbl": "slowbl.test, bl.test"})
    with instance(extra=listed) as inst:
        inst.start("smtpd")
        s = socket.create_connection(("127.0.0.1", inst.ports["smtp"]), 10)
        t0 = time.monotonic()
        greet = s.recv(4096).decode()
        waited = time.monotonic() - t0
        s.close()
        t.ok(greet.startswith("554 5.7.1 ") and "bl.test" in greet and
             "Listed: see https://bl.test/q?127.0.0.1" in greet,
             "DNSBL listed: 554 5.7.1 with the zone and its TXT", greet)
        t.ok(waited < 3.0, "DNSBL: the greeting waits at most one DNS "
             "timeout (%.1fs)" % waited)
        t.ok("reject client=127.0.0.1 check=dnsbl code=554" in
             inst.log("smtpd"), "DNSBL refusal: one log line")
        t.eq(inst.stored(BOB), [], "DNSBL: nothing stored")
    quiet = dict(base, inbound={"dnsbl": "slowbl.test"})
    with instance(extra=quiet) as inst:
        inst.start("smtpd")
        with smtplib.SMTP("127.0.0.1", inst.ports["smtp"],
                          local_hostname="client.other.test",
                          timeout=20) as c:
            refused = c.sendmail("a@other.test", [BOB],
                                 b"Subject: hi\r\n\r\nhi\r\n")
        t.eq(refused, {}, "DNSBL that times out: nobody refused")


def rcpt(inst, sender, to, auth=False):
    """MAIL and RCPT on port 25 (AUTH first when asked): the RCPT reply,
    then RSET and QUIT."""
    r = Raw("127.0.0.1", inst.ports["smtp"])
    try:
        r.reply()
        r.cmd("EHLO client.other.test")
        if auth:
            plain = base64.b64encode(
                ("\0%s\0%s" % (BOB, PASSWORD)).encode()).decode()
            assert r.cmd("AUTH PLAIN " + plain)[0] == 235
        assert r.cmd("MAIL FROM:<%s>" % sender)[0] == 250
        code, lines = r.cmd("RCPT TO:<%s>" % to)
        r.cmd("QUIT")
        return code, lines[-1]
    finally:
        r.close()


def checks_greylist(t, zone_port):
    from smtp_util import ALICE
    extra = {"dns": {"resolver": "127.0.0.1:%d" % zone_port,
                     "timeout": "1s"},
             "inbound": {"spf": "true", "greylist": "true",
                         "greylist_delay": "2s"}}
    with instance(extra=extra) as inst:
        inst.start("smtpd")
        code, text = rcpt(inst, "x@nospf.test", BOB)
        t.ok(code == 451 and "4.7.1" in text,
             "greylist: first attempt 451 4.7.1 at RCPT", (code, text))
        t.ok("check=greylist" in inst.log("smtpd"),
             "greylist: one log line")
        code, text = rcpt(inst, "x@nospf.test", BOB)
        t.eq(code, 451, "greylist: a retry within the delay still 451")
        time.sleep(2.2)
        code, text = rcpt(inst, "x@nospf.test", BOB)
        t.ok(code == 250, "greylist: accepted after greylist_delay",
             (code, text))
        code, text = rcpt(inst, "x@nospf.test", BOB)
        t.eq(code, 250, "greylist: a passed triplet is remembered")
        code, text = rcpt(inst, "x@nospf.test", ALICE)
        t.eq(code, 451, "greylist: another recipient is a new triplet")
        code, text = rcpt(inst, "bob@example.test", ALICE, auth=True)
        t.eq(code, 250, "greylist: authenticated clients skip it")
        # SPF pass (other.test allows 127.0.0.0/8): the domain passes
        # once, then its new triplets skip the wait.
        code, text = rcpt(inst, "a@other.test", BOB)
        t.eq(code, 451, "greylist: SPF pass, first time: 451")
        time.sleep(2.2)
        t.eq(rcpt(inst, "a@other.test", BOB)[0], 250,
             "greylist: SPF pass domain passes after the delay")
        t.eq(rcpt(inst, "b@other.test", ALICE)[0], 250,
             "greylist: SPF pass for a domain that passed: no wait")
        with smtplib.SMTP("127.0.0.1", inst.ports["smtp"],
                          local_hostname="client.other.test",
                          timeout=20) as c:
            refused = c.sendmail("x@nospf.test", [BOB],
                                 msg("x@nospf.test", "after greylisting"))
        t.eq(refused, {}, "greylist: the retried message is delivered")
        t.eq(len(inst.stored(BOB)), 1, "greylist: stored once")


def checks_relay(t):
    """postroom A (a.test, signs) relays to postroom B (b.test) over MX
    records from dnsmasq; B verifies A's signature."""
    from relay_util import (close_all, message, submit, two_servers,
                            two_servers_dns, wait_for, zone_txt)
    alice, bob = "alice@a.test", "bob@b.test"
    port, a, b = two_servers()
    dns = None
    try:
        txt = zone_txt(a.cli("dkim", "keygen", "a.test").stdout)
        txt["_dmarc.a.test"] = "v=DMARC1; p=reject"
        dns = two_servers_dns(a, b, port, txt)
        for inst in (a, b):
            inst.extra["dns"] = {"resolver": dns.resolver, "timeout": "1s"}
            inst.extra["inbound"] = {"dkim": "true", "dmarc": "true"}
            inst.write_config()
        # A new key is pending until its record is out (postroom(8),
        # dkim activate): checked against the DNS server above.
        t.eq(a.cli("dkim", "activate", "a.test", "postroom",
                   check=False).returncode, 0, "relay: A's key activated")
        for inst in (a, b):
            inst.start("smtpd")
        b.start("pop3d")
        m = message(alice, bob, "signed by A")
        t.eq(submit(a, alice, [bob], m), {}, "relay: alice submits on A")
        t.ok(wait_for(lambda: len(b.stored(bob)) == 1, 20),
             "relay: the message arrives at B", a.log("smtpd")[-1500:])
        data = pop3_fetch(b, bob)[0]
        h = header(data)
        ar = ""
        for ln in h.split("\r\n"):
            if ln.startswith("Authentication-Results: mx.b.test"):
                ar = ln
        t.ok("dkim=pass header.d=a.test header.s=postroom" in ar,
             "relay: B's A-R has dkim=pass for A's signature", h[:1200])
        t.ok("dmarc=pass header.from=a.test" in ar,
             "relay: B's A-R has dmarc=pass", ar)
        t.ok(b"Authentication-Results: mx.a.test" not in data,
             "relay: A adds no A-R to a submission")
    finally:
        close_all(a, b, dns)


def main():
    t = Check()
    with DNSServer(ZONE) as dns:
        extra = {"dns": {"resolver": "127.0.0.1:%d" % dns.port,
                         "timeout": "1s"},
                 "inbound": {"spf": "true", "dkim": "true", "dmarc": "true",
                             "dmarc_policy": "enforce"}}
        with instance(extra=extra) as inst:
            inst.start("smtpd")
            try:
                inst.start("pop3d")
            except RuntimeError:
                print(inst.log("pop3d"))
                raise
            checks_enforce(t, inst)
            checks_cli(t, inst)
        extra["inbound"] = dict(extra["inbound"], dmarc_policy="report")
        with instance(extra=extra) as inst:
            inst.start("smtpd")
            inst.start("pop3d")
            checks_report(t, inst)
            checks_spool_reuse(t, inst)
        checks_dnsbl(t, dns.port)
        checks_greylist(t, dns.port)
    checks_relay(t)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
