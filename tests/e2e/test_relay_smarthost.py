#!/usr/bin/python3
"""[relay] smarthost: everything goes through one host, in one
transaction per message, with AUTH when smarthost_user and
smarthost_password_file are set -- and only inside TLS whose certificate
verified for the smarthost's configured name (RFC 8314 3.3, 5.1):

- a certificate of the private CA in smarthost_ca, STARTTLS: delivered,
  AUTH PLAIN inside TLS;
- a certificate of another CA, a self-signed one, one for another name,
  or the private CA without smarthost_ca (system store): deferred, the
  log and the queue name the verification error, no AUTH, no retry in
  plaintext;
- a smarthost without STARTTLS: deferred, no AUTH;
- smarthost_tls = implicit (port 465): TLS before the greeting;
- a server without SASL-IR: AUTH PLAIN, then the response after 334;
- a smarthost given as an IP address: checked against the certificate's
  IP addresses.

The smarthost is a FakeMX on 127.0.0.4, found as smarthost.test through
a private dnsmasq."""

import os
import shutil
import sys
import tempfile

from relay_util import (Check, Dns, FakeMX, Instance, PASSWORD, TestCA,
                        close_all, free_port, message, queue_list, queued,
                        submit, wait_for)
from harness import make_cert  # noqa: E402 (path set up by relay_util)

ALICE = "alice@a.test"
SMART_USER = "relay@isp.test"
SMART_PASS = "s3cret smarthost pass"
SMART_IP = "127.0.0.4"
SMART_NAME = "smarthost.test"


class Scenario:
    """One postroom instance relaying through its own fake smarthost."""

    def __init__(self, label, dns, pwfile, fake_kw, relay=None,
                 host=SMART_NAME):
        self.label = label
        port = free_port(SMART_IP)
        self.fake = FakeMX(SMART_IP, port, auth=(SMART_USER, SMART_PASS),
                           name="smtp.isp.test", **fake_kw)
        self.inst = Instance(host="127.0.0.2", hostname="mx.a.test",
                             tls=False)
        conf = {"smarthost": "%s:%d" % (host, port),
                "smarthost_user": SMART_USER,
                "smarthost_password_file": pwfile,
                "resolver": dns.resolver}
        conf.update(relay or {})
        self.inst.extra["relay"] = conf
        self.inst.write_config()
        self.inst.add_domain("a.test")
        self.inst.add_user(ALICE, PASSWORD)
        self.inst.start("smtpd")

    def send(self, to=("bob@b.test",)):
        return submit(self.inst, ALICE, list(to),
                      message(ALICE, ", ".join(to), self.label))

    def log(self):
        return self.inst.log("smtpd")

    def delivered(self, t, n_rcpts=1):
        t.ok(wait_for(lambda: len(self.fake.messages) == 1, 20),
             "%s: delivered to the smarthost" % self.label, self.log())
        t.eq(self.fake.auth_seen[:1],
             [("PLAIN", SMART_USER, SMART_PASS, True)],
             "%s: AUTH PLAIN with the credentials, inside TLS" % self.label)
        t.ok(wait_for(lambda: queued(self.inst) == [], 10),
             "%s: queue empty" % self.label)
        t.ok("Verified" in self.log(),
             "%s: the log says the certificate verified" % self.label)
        t.ok(SMART_PASS not in self.log(),
             "%s: password never logged" % self.label)

    def deferred(self, t, why):
        """Deferred before AUTH, with why in the log and the queue."""
        t.ok(wait_for(lambda: "attempts=1" in queue_list(self.inst), 20),
             "%s: deferred" % self.label, self.log())
        ql = queue_list(self.inst)
        t.eq(self.fake.auth_seen, [], "%s: no AUTH" % self.label)
        t.ok(not any(c.upper().startswith("AUTH")
                     for c in self.fake.commands),
             "%s: no AUTH command at all" % self.label, self.fake.commands)
        t.eq(self.fake.messages, [], "%s: nothing delivered" % self.label)
        t.eq(queued(self.inst), ["bob@b.test"],
             "%s: message kept in the queue" % self.label)
        t.ok(why in self.log(), "%s: the log says %r" % (self.label, why),
             self.log())
        t.ok(why in ql, "%s: the queue's last error says %r" % (
             self.label, why), ql)
        t.ok("without TLS" not in self.log(),
             "%s: no second try in plaintext" % self.label)
        t.ok(not any(c.upper().startswith("MAIL")
                     for c in self.fake.commands),
             "%s: no MAIL in plaintext either" % self.label,
             self.fake.commands)

    def close(self):
        close_all(self.inst, self.fake)


def main():
    t = Check()
    scen = []
    dns = None
    tmp = tempfile.mkdtemp(prefix="postroom-smarthost-")
    try:
        pwfile = os.path.join(tmp, "smarthost.pw")
        with open(pwfile, "w") as f:
            f.write(SMART_PASS + "\n")
        os.chmod(pwfile, 0o600)
        ca = TestCA(os.path.join(tmp, "ca"))
        other = TestCA(os.path.join(tmp, "other-ca"), "Some Other CA")
        good = ca.issue(SMART_NAME)
        selfdir = os.path.join(tmp, "self")
        os.mkdir(selfdir)
        selfsigned = make_cert(selfdir, SMART_NAME)
        dns = Dns(a={SMART_NAME: SMART_IP})
        pinned = {"smarthost_ca": ca.cert}

        def add(*a, **kw):
            s = Scenario(*a, **kw)
            scen.append(s)
            return s

        ok = add("valid cert", dns, pwfile, {"starttls": good}, pinned)
        bad_ca = add("other CA", dns, pwfile,
                     {"starttls": other.issue(SMART_NAME)}, pinned)
        selfs = add("self-signed", dns, pwfile, {"starttls": selfsigned},
                    pinned)
        system = add("system store", dns, pwfile, {"starttls": good})
        wrong = add("name mismatch", dns, pwfile,
                    {"starttls": ca.issue("other.test")}, pinned)
        notls = add("no STARTTLS", dns, pwfile, {}, pinned)
        implicit = add("implicit TLS", dns, pwfile, {"implicit_tls": good},
                       dict(pinned, smarthost_tls="implicit"))
        implicit_bad = add("implicit TLS, other CA", dns, pwfile,
                           {"implicit_tls": other.issue(SMART_NAME)},
                           dict(pinned, smarthost_tls="implicit"))
        no_ir = add("no SASL-IR", dns, pwfile,
                    {"starttls": good, "sasl_ir": False}, pinned)
        by_ip = add("by IP address", dns, pwfile,
                    {"starttls": ca.issue(SMART_IP)}, pinned, host=SMART_IP)

        t.eq(ok.send(["bob@b.test", "carol@c.test"]), {}, "submitted")
        for s in scen[1:]:
            s.send()

        # (a) The private CA's certificate for the configured name.
        ok.delivered(t)
        t.eq(sorted(ok.fake.messages[0][1]) if ok.fake.messages else None,
             ["bob@b.test", "carol@c.test"],
             "both domains in one transaction")
        t.eq(ok.fake.tls_sessions, 1, "STARTTLS before AUTH")
        cmds = [c.upper() for c in ok.fake.commands]
        t.ok("STARTTLS" in cmds and cmds.index("STARTTLS") <
             min(i for i, c in enumerate(cmds) if c.startswith("AUTH")),
             "STARTTLS came first", ok.fake.commands)

        # (b) Not the private CA, or no CA at all.
        bad_ca.deferred(t, "certificate verification failed: unable to "
                        "get local issuer certificate")
        selfs.deferred(t, "certificate verification failed: self-signed "
                       "certificate")
        system.deferred(t, "certificate verification failed: unable to "
                        "get local issuer certificate")
        # (c) The right CA, another name.
        wrong.deferred(t, "certificate verification failed: hostname "
                       "mismatch")
        # (d) No STARTTLS offered.
        notls.deferred(t, "offers no STARTTLS")
        t.eq(notls.fake.tls_sessions, 0, "no STARTTLS: no TLS session")

        # (e) Implicit TLS: the greeting comes inside TLS.
        implicit.delivered(t)
        t.eq(implicit.fake.tls_sessions, 1, "implicit: one TLS session")
        t.ok("STARTTLS" not in [c.upper() for c in implicit.fake.commands],
             "implicit: no STARTTLS inside TLS", implicit.fake.commands)
        implicit_bad.deferred(t, "certificate verification failed: unable "
                              "to get local issuer certificate")
        t.eq(implicit_bad.fake.commands, [],
             "implicit, other CA: not even EHLO")

        # (f) AUTH PLAIN without an initial response.
        no_ir.delivered(t)
        t.eq(no_ir.fake.ir_refused, 1, "no SASL-IR: one refused AUTH line")
        t.ok("AUTH PLAIN" in no_ir.fake.commands,
             "no SASL-IR: then a bare AUTH PLAIN", no_ir.fake.commands)

        # A smarthost by IP: the certificate's IP address is checked.
        by_ip.delivered(t)
    finally:
        close_all(*scen)
        close_all(dns)
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
