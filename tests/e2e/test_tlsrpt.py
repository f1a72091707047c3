#!/usr/bin/python3
"""SMTP TLS Reporting (RFC 8460) end to end, and our own TLS records.

Four postroom installations on loopback, found through a private
dnsmasq: A (mx.a.test, a.test) relays; B (mx.b.test, b.test) has a
certificate from a private CA that A trusts through [relay] ca_file; C
(mx.c.test, c.test) a self-signed one; D (mx.d.test, d.test) none, so
it offers no STARTTLS.  b.test, c.test and d.test publish _smtp._tls
with rua=mailto:reports@b.test.  alice@a.test sends to all three: the
session to B succeeds, the ones to C and D are delivered (opportunistic
TLS) but counted as certificate-not-trusted and starttls-not-supported
failures.  A clean SIGTERM writes the counts to the store (`postroom
tlsrpt list`); `postroom tlsrpt send DAY` queues the three reports, A's
relay delivers them, DKIM-signed, to B, and the test fetches them by
POP3 and checks the message (RFC 8460 5.3) and the gunzipped JSON's
fields and counts (4.4).  The daemon's own daily run does the same the
next day (libfaketime).  Then `postroom dns` and `postroom mta-sts`
(RFC 8461 3.1, 3.2)."""

import glob
import os
import re
import sqlite3
import sys
import time

from relay_util import (PASSWORD, Check, Dns, Instance, TestCA, close_all,
                        dkim_verify, free_port_on, mailbox_bodies, message,
                        pop3_fetch, queued, skip, submit, wait_for,
                        zone_txt)

sys.path.insert(0, os.path.join(os.environ.get("POSTROOM_SOURCE_DIR", "."),
                                "tests", "lib"))
import tlsrpt_check  # noqa: E402

ALICE = "alice@a.test"
REPORTS = "reports@b.test"


def utc_day(t=None):
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def parse_sts_policy(text):
    """RFC 8461 3.2: "key: value" lines, each ending in LF or CRLF,
    version first; returns [(key, value)] or raises ValueError."""
    if not text.endswith("\n"):
        raise ValueError("the last line has no end")
    lines = text.split("\n")[:-1]
    out = []
    for line in lines:
        if line.endswith("\r"):
            line = line[:-1]
        m = re.match(r"^([A-Za-z0-9_]+):[ \t]*([\x21-\x3a\x3c\x3e-\x7e]"
                     r"[\x20-\x3a\x3c\x3e-\x7e]*)[ \t]*$", line)
        if m is None:
            raise ValueError("bad line %r" % line)
        out.append((m.group(1), m.group(2)))
    if not out or out[0] != ("version", "STSv1"):
        raise ValueError("version: STSv1 does not come first")
    return out


def start_on_day(inst, t):
    """Starts inst's smtpd with its clock at unix time t (Debian's
    libfaketime; the monotonic clock of its timers stays real)."""
    libs = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
    if not libs:
        skip("faketime is not installed")
    env = inst.env()
    env["LD_PRELOAD"] = libs[0]
    env["FAKETIME"] = time.strftime("@%Y-%m-%d %H:%M:%S", time.gmtime(t))
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    env["TZ"] = "UTC"
    # An ASan build wants its runtime first; libfaketime only wraps the
    # clock calls, so the order does not matter here.
    env["ASAN_OPTIONS"] = ":".join(filter(None, [
        env.get("ASAN_OPTIONS", ""), "verify_asan_link_order=0"]))
    inst.env = lambda: env
    try:
        inst.start("smtpd")
    finally:
        del inst.env


def main():
    t = Check()
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    port = free_port_on(hosts)
    a = Instance(host=hosts[0], hostname="mx.a.test")
    b = Instance(host=hosts[1], hostname="mx.b.test")
    c = Instance(host=hosts[2], hostname="mx.c.test")
    d = Instance(host=hosts[3], hostname="mx.d.test", tls=False)
    dns = None
    try:
        ca = TestCA(os.path.join(a.tmp, "ca"))
        b.cert, b.key = ca.issue("mx.b.test")
        for inst, dom in ((a, "a.test"), (b, "b.test"), (c, "c.test"),
                          (d, "d.test")):
            inst.ports["smtp"] = port
            inst.add_domain(dom)
        a.add_user(ALICE, PASSWORD)
        b.add_user("bob@b.test", PASSWORD)
        b.add_user(REPORTS, PASSWORD)
        c.add_user("carol@c.test", PASSWORD)
        d.add_user("dave@d.test", PASSWORD)
        txt = zone_txt(a.cli("dkim", "keygen", "a.test").stdout)
        served = dict(txt)
        served["_smtp._tls.b.test"] = "v=TLSRPTv1; rua=mailto:" + REPORTS
        served["_smtp._tls.c.test"] = "v=TLSRPTv1;rua=mailto:" + REPORTS
        served["_smtp._tls.d.test"] = "v=TLSRPTv1; rua=mailto:" + REPORTS
        zone = dict(mx={"a.test": [(10, "mx.a.test")],
                        "b.test": [(10, "mx.b.test")],
                        "c.test": [(10, "mx.c.test")],
                        "d.test": [(10, "mx.d.test")]},
                    a={"mx.a.test": hosts[0], "mx.b.test": hosts[1],
                       "mx.c.test": hosts[2], "mx.d.test": hosts[3]},
                    txt=served)
        dns = Dns(**zone)
        for inst in (a, b, c, d):
            inst.extra["relay"] = {"resolver": dns.resolver,
                                   "mx_port": str(port)}
        a.extra["relay"]["ca_file"] = ca.cert
        for inst in (a, b, c, d):
            inst.write_config()
        a.cli("dkim", "activate", "a.test", "postroom")
        for inst in (a, b, c, d):
            inst.start("smtpd")
        b.start("pop3d")

        # One session to B (verified), one to C (untrusted).
        t.eq(submit(a, ALICE, ["bob@b.test"],
                    message(ALICE, "bob@b.test", "to b")), {},
             "alice sends to bob@b.test")
        t.eq(submit(a, ALICE, ["carol@c.test"],
                    message(ALICE, "carol@c.test", "to c")), {},
             "alice sends to carol@c.test")
        t.eq(submit(a, ALICE, ["dave@d.test"],
                    message(ALICE, "dave@d.test", "to d")), {},
             "alice sends to dave@d.test")
        t.ok(wait_for(lambda: len(mailbox_bodies(b, "bob@b.test")) == 1 and
                      len(mailbox_bodies(c, "carol@c.test")) == 1 and
                      len(mailbox_bodies(d, "dave@d.test")) == 1, 60),
             "all delivered (opportunistic TLS to C, none to D)",
             a.log("smtpd"))
        t.ok(wait_for(lambda: queued(a) == [], 30), "A's queue is empty")
        log = a.log("smtpd")
        t.ok("tlsrpt domain=c.test policy=no-policy-found "
             "result=certificate-not-trusted mx=mx.c.test ip=127.0.0.4"
             in log, "the failure is logged", log[-3000:])

        # A clean stop loses no counts.
        now = int(time.time())
        day, day_n = utc_day(now), now // 86400
        t.eq(a.stop("smtpd"), 0, "SIGTERM: smtpd exits 0")
        out = a.cli("tlsrpt", "list", day).stdout
        lines = out.splitlines()
        t.ok("%s b.test no-policy-found success 1" % day in lines,
             "tlsrpt list: b.test success counted", out)
        # sending_ip: our end of the session (RFC 8460 4.4
        # sending-mta-ip), the kernel's choice of source on loopback.
        bad = [x for x in lines if re.match(
            r"%s c\.test no-policy-found certificate-not-trusted 1 "
            r"mx=mx\.c\.test ip=127\.0\.0\.4 sending_ip=127\.[0-9.]+ "
            r"reason=" % day, x)]
        t.ok(len(bad) == 1 and "self-signed" in bad[0],
             "tlsrpt list: c.test failure with its details", out)
        t.ok(not any(x.startswith("%s c.test no-policy-found success" % day)
                     for x in lines), "no success for c.test", out)
        t.ok(any(re.match(r"%s d\.test no-policy-found "
                          r"starttls-not-supported 1 mx=mx\.d\.test "
                          r"ip=127\.0\.0\.5 sending_ip=127\.[0-9.]+$" % day,
                          x) for x in lines),
             "tlsrpt list: d.test offered no STARTTLS", out)
        t.eq(a.cli("tlsrpt", "list", "2000-01-01").stdout, "",
             "tlsrpt list of a day without results: nothing")
        r = a.cli("tlsrpt", "list", "2024-02-30", check=False)
        t.ok(r.returncode == 1 and r.stderr.count("\n") == 1 and
             "not a day" in r.stderr, "a bad day: exit 1, one line",
             r.stderr)
        r = a.cli("tlsrpt", "mail", check=False)
        t.eq(r.returncode, 2, "tlsrpt with an unknown verb: usage, exit 2")
        r = a.cli("tlsrpt", "send", "2000-01-01", check=False)
        t.ok(r.returncode == 0 and "no TLS results" in r.stdout,
             "send for a day without results says so", r.stdout)

        # The reports of the day, queued now, delivered by the relay.
        a.start("smtpd")
        r = a.cli("tlsrpt", "send", day, check=False)
        t.eq(r.returncode, 0, "tlsrpt send DAY: exit 0 (%s)" % r.stderr)
        t.ok(re.search(r"^b\.test: report \S+ queued as [0-9a-f]{16} to "
                       r"reports@b\.test$", r.stdout, re.M) and
             re.search(r"^c\.test: report \S+ queued as [0-9a-f]{16} to "
                       r"reports@b\.test$", r.stdout, re.M) and
             re.search(r"^d\.test: report \S+ queued as [0-9a-f]{16} to "
                       r"reports@b\.test$", r.stdout, re.M),
             "one report per policy domain queued", r.stdout)
        t.ok(wait_for(lambda: len(mailbox_bodies(b, REPORTS)) == 3, 60),
             "the reports reach reports@b.test", a.log("smtpd"))
        got = pop3_fetch(b, REPORTS)
        t.eq(len(got), 3, "fetched by POP3")
        reports = {}
        for raw in got:
            try:
                msg, obj, fname = tlsrpt_check.read_message(raw)
            except ValueError as e:
                t.ok(False, "an RFC 8460 5.3 message", "%s\n%r"
                     % (e, raw[:2000]))
                continue
            dom = str(msg["TLS-Report-Domain"])
            reports[dom] = (msg, obj, fname, raw)
            p = tlsrpt_check.report_problems(obj)
            t.ok(p == [], "%s: RFC 8460 4.4 fields and types" % dom,
                 "\n".join(p))
        t.eq(sorted(reports), ["b.test", "c.test", "d.test"],
             "one report each")
        if "c.test" in reports:
            msg, obj, fname, raw = reports["c.test"]
            t.eq(str(msg["TLS-Report-Submitter"]), "mx.a.test",
                 "TLS-Report-Submitter")
            t.ok(fname.startswith("mx.a.test!c.test!"), "file name", fname)
            t.eq(obj["date-range"]["start-datetime"], day + "T00:00:00Z",
                 "the report covers the UTC day")
            t.eq(obj["date-range"]["end-datetime"], day + "T23:59:59Z",
                 "up to its last second")
            t.eq(obj["organization-name"], "mx.a.test", "organization-name")
            t.eq(obj["contact-info"], "postmaster@a.test", "contact-info")
            pol = obj["policies"][0] if len(obj["policies"]) == 1 else {}
            t.eq(pol.get("policy", {}).get("policy-type"),
                 "no-policy-found", "c.test: no policy")
            t.eq(pol.get("policy", {}).get("policy-domain"), "c.test",
                 "policy-domain")
            t.eq(pol.get("summary"),
                 {"total-successful-session-count": 0,
                  "total-failure-session-count": 1}, "c.test: one failure")
            fd = pol.get("failure-details", [{}])[0]
            t.eq((fd.get("result-type"), fd.get("receiving-mx-hostname"),
                  fd.get("receiving-ip"), fd.get("failed-session-count")),
                 ("certificate-not-trusted", "mx.c.test", "127.0.0.4", 1),
                 "c.test: the failure's details")
            t.ok("self-signed" in fd.get("failure-reason-code", ""),
                 "failure-reason-code", fd)
            t.ok(b"Return-Path: <>" in raw,
                 "sent from the null reverse-path: no bounce loops")
            t.ok(str(msg["From"]).endswith("<noreply-tlsrpt@a.test>"),
                 "From: noreply-tlsrpt@a.test", msg["From"])
            ok, detail = dkim_verify(raw, txt)
            t.ok(ok, "DKIM-signed by a.test (python3-dkim)", detail)
        if "d.test" in reports:
            pol = reports["d.test"][1]["policies"]
            # RFC 8460 4.4 sending-mta-ip: our end of the session (the
            # kernel's choice of source on loopback).
            sips = [f.pop("sending-mta-ip", None) for x in pol
                    for f in x.get("failure-details", [])]
            t.ok(sips and all(ip and ip.startswith("127.") for ip in sips),
                 "d.test: the failure names our address", sips)
            t.eq([(x["summary"], x.get("failure-details")) for x in pol],
                 [({"total-successful-session-count": 0,
                    "total-failure-session-count": 1},
                   [{"result-type": "starttls-not-supported",
                     "receiving-mx-hostname": "mx.d.test",
                     "receiving-ip": "127.0.0.5",
                     "failed-session-count": 1}])],
                 "d.test: the session without STARTTLS")
        if "b.test" in reports:
            obj = reports["b.test"][1]
            t.eq([x["summary"] for x in obj["policies"]],
                 [{"total-successful-session-count": 1,
                   "total-failure-session-count": 0}],
                 "b.test: one successful session")
            t.ok("failure-details" not in obj["policies"][0],
                 "b.test: no failure details")
        t.ok(re.search(r"tlsrpt report day=\S+ domain=c\.test", a.log(
             "smtpd")) is None, "the daemon did not send today's reports")

        # The daemon's own daily run: the next day at 23:00 UTC (past
        # midnight plus its random delay of at most an hour) it reports
        # the day before, once the day and its domains are no longer
        # marked sent.
        t.eq(a.stop("smtpd"), 0, "smtpd stops")
        db = sqlite3.connect(os.path.join(a.data_dir, "mail.db"))
        with db:
            n = db.execute("DELETE FROM tlsrpt_sent WHERE day = ?",
                           (day_n,)).rowcount
            nd = db.execute("DELETE FROM tlsrpt_domain_sent WHERE day = ?",
                            (day_n,)).rowcount
        db.close()
        t.eq((n, nd), (1, 3), "tlsrpt send marked the day and its three "
             "domains sent")
        start_on_day(a, (day_n + 1) * 86400 + 23 * 3600)
        t.ok(wait_for(lambda: len(mailbox_bodies(b, REPORTS)) == 6, 150),
             "the daily run sends the day's three reports",
             a.log("smtpd")[-3000:])
        log = a.log("smtpd")
        t.ok(re.search(r"tlsrpt report day=%s domain=c\.test report_id=<"
                       r"[^>]+> msgid=[0-9a-f]{16} rcpt=<reports@b\.test> "
                       r"status=queued" % day, log),
             "the run logs each report", log[-3000:])
        got = pop3_fetch(b, REPORTS)
        objs = []
        for raw in got:
            try:
                objs.append(tlsrpt_check.read_message(raw)[1])
            except ValueError:
                pass
        t.eq(len(objs), 6, "six reports in all, each as RFC 8460 5.3 says")
        t.eq(len({o["report-id"] for o in objs}), 6,
             "every report-id is unique")
        t.ok(all(o["date-range"]["start-datetime"] == day + "T00:00:00Z"
                 for o in objs), "all about the same day")
        t.eq(a.stop("smtpd"), 0, "smtpd stops")
        with a.db() as db:
            t.eq(db.execute("SELECT count(*) FROM tlsrpt_sent WHERE day = ?",
                            (day_n,)).fetchone()[0], 1,
                 "the run marked the day sent")
            t.eq(db.execute("SELECT domain FROM tlsrpt_domain_sent WHERE"
                            " day = ? ORDER BY domain",
                            (day_n,)).fetchall(),
                 [("b.test",), ("c.test",), ("d.test",)],
                 "... and each of its domains")

        def forget(domain, key_too):
            """What the store would hold had domain's report of the day
            not gone out: no day mark, no domain mark, and (key_too) no
            delivery key either."""
            db = sqlite3.connect(os.path.join(a.data_dir, "mail.db"))
            with db:
                db.execute("DELETE FROM tlsrpt_sent WHERE day = ?",
                           (day_n,))
                db.execute("DELETE FROM tlsrpt_domain_sent WHERE day = ?"
                           " AND domain = ?", (day_n, domain))
                if key_too:
                    db.execute("DELETE FROM submissions WHERE name = ?",
                               ("tlsrpt/%d/%s" % (day_n, domain),))
            db.close()

        def run_day():
            """Restarts A's smtpd on the next day; returns where its
            log lines begin."""
            mark = len(a.log("smtpd"))
            start_on_day(a, (day_n + 1) * 86400 + 23 * 3600)
            return mark

        def day_marked():
            with a.db() as db:
                return db.execute("SELECT count(*) FROM tlsrpt_sent WHERE"
                                  " day = ?", (day_n,)).fetchone()[0]

        # A crash between a report's commit and its domain's mark: the
        # report's delivery key keeps the next run from sending it again.
        forget("c.test", key_too=False)
        mark = run_day()
        t.ok(wait_for(lambda: re.search(
            r"tlsrpt report day=%s domain=c\.test status=queued-before"
            % day, a.log("smtpd")[mark:]), 150),
            "a report queued before is not queued again",
            a.log("smtpd")[mark:][-3000:])
        t.eq(a.stop("smtpd"), 0, "smtpd stops")
        t.eq((len(mailbox_bodies(b, REPORTS)), queued(a)), (6, []),
             "no report went out again")
        t.eq(day_marked(), 1, "the day is marked sent again")

        # A _smtp._tls lookup that fails (SERVFAIL) leaves that domain
        # unsent, and the day too; a later run sends that one report
        # and no other again.
        forget("c.test", key_too=True)
        port_dns = dns.port
        dns.close()
        # dnsmasq answers a record it holds before it forwards: the
        # dead name has none.
        dead_zone = dict(zone, txt={k: v for k, v in served.items()
                                    if k != "_smtp._tls.c.test"})
        dns = Dns(port=port_dns, dead=["_smtp._tls.c.test"], **dead_zone)
        mark = run_day()
        t.ok(wait_for(lambda: re.search(
            r"tlsrpt day=%s unsent=1 status=deferred" % day,
            a.log("smtpd")[mark:]), 150),
            "a failed lookup: the domain's report is deferred",
            a.log("smtpd")[mark:][-3000:])
        t.eq(a.stop("smtpd"), 0, "smtpd stops")
        t.ok("status=queued" not in a.log("smtpd")[mark:],
             "nothing queued by that run", a.log("smtpd")[mark:][-3000:])
        t.eq((len(mailbox_bodies(b, REPORTS)), queued(a)), (6, []),
             "no report went out")
        t.eq(day_marked(), 0, "the day is not marked sent")
        dns.close()
        dns = Dns(port=port_dns, **zone)
        mark = run_day()
        t.ok(wait_for(lambda: len(mailbox_bodies(b, REPORTS)) == 7, 150),
             "the next run sends the deferred report",
             a.log("smtpd")[mark:][-3000:])
        t.eq(a.stop("smtpd"), 0, "smtpd stops")
        sent = re.findall(r"tlsrpt report day=%s domain=(\S+) .*status=queued size="
                          % day, a.log("smtpd")[mark:])
        t.eq(sent, ["c.test"], "... for that domain only")
        t.eq(day_marked(), 1, "then the day is marked sent")

        # Our own records.
        out = a.cli("dns", "a.test").stdout
        recs = zone_txt(out)
        t.eq(recs.get("_smtp._tls.a.test"),
             "v=TLSRPTv1; rua=mailto:postmaster@a.test",
             "dns: _smtp._tls rua to postmaster@ by default")
        a.add_user("tlsrpt@a.test", PASSWORD)
        recs = zone_txt(a.cli("dns", "a.test").stdout)
        t.eq(recs.get("_smtp._tls.a.test"),
             "v=TLSRPTv1; rua=mailto:tlsrpt@a.test",
             "dns: to tlsrpt@ once it exists")
        m = re.match(r"^v=STSv1; id=([A-Za-z0-9]{1,32})$",
                     recs.get("_mta-sts.a.test", ""))
        t.ok(m is not None, "dns: _mta-sts record (RFC 8461 3.1)", out)
        id0 = m.group(1) if m else None
        t.ok("mta-sts.a.test" in out, "dns: the mta-sts host is named", out)

        pol = os.path.join(a.tmp, "mta-sts.txt")
        r = a.cli("mta-sts", "a.test", "--mode", "enforce", "--max-age",
                  "86400", "-o", pol, check=False)
        t.eq(r.returncode, 0, "mta-sts -o FILE: exit 0 (%s)" % r.stderr)
        with open(pol, "rb") as f:
            text = f.read().decode("ascii")
        try:
            kv = parse_sts_policy(text)
            t.eq(kv, [("version", "STSv1"), ("mode", "enforce"),
                      ("mx", "mx.a.test"), ("max_age", "86400")],
                 "the policy file parses as RFC 8461 3.2 says")
        except ValueError as e:
            t.ok(False, "the policy file parses as RFC 8461 3.2 says",
                 "%s\n%r" % (e, text))
        recs = zone_txt(a.cli("dns", "a.test").stdout)
        m = re.match(r"^v=STSv1; id=([A-Za-z0-9]{1,32})$",
                     recs.get("_mta-sts.a.test", ""))
        id1 = m.group(1) if m else None
        t.ok(id1 is not None and id1 != id0,
             "a new policy, a new id", (id0, id1))
        t.ok(id1 is not None and ("id=%s" % id1) in r.stdout,
             "mta-sts prints the record `postroom dns` prints", r.stdout)
        r2 = a.cli("mta-sts", "a.test", "--mode", "enforce", "--max-age",
                   "86400", check=False)
        t.eq(r2.stdout, text.replace("\r\n", "\n"),
             "without -o: the same policy on stdout")
        recs = zone_txt(a.cli("dns", "a.test").stdout)
        t.eq(recs.get("_mta-sts.a.test"), "v=STSv1; id=%s" % id1,
             "the same policy keeps its id")
        for args, why in ((["--mode", "strict"], "a bad mode"),
                          (["--max-age", "0"], "max_age 0"),
                          (["--max-age", "31557601"], "max_age past a year"),
                          ([], "a domain not hosted")):
            dom = "b.test" if not args else "a.test"
            r = a.cli("mta-sts", dom, *args, check=False)
            t.ok(r.returncode == 1 and r.stderr.count("\n") == 1,
                 "mta-sts with %s: exit 1, one line" % why, r.stderr)
        r = a.cli("mta-sts", "a.test", "--bogus", check=False)
        t.eq(r.returncode, 2, "mta-sts with an unknown option: exit 2")
    finally:
        close_all(a, b, c, d, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
