#!/usr/bin/python3
"""[metrics] listen: the Prometheus endpoints of postroom-smtpd (on the
port given) and postroom-pop3d (the port after it), scraped with curl
before and after traffic (swaks on 25 and 587 with STARTTLS, curl over
POP3), checked with `promtool check metrics` (Debian's prometheus), and
a non-loopback listen refused by `postroom check` and the daemons unless
metrics_public = true."""

import re
import subprocess
import sys

from smtp_util import ALICE, PASSWORD, Check, instance, wait_for
from harness import BIN, free_port  # noqa: E402 (smtp_util sets the path)

SAMPLE = re.compile(r'^([a-z0-9_]+)(\{[^}]*\})? (\S+)$')


def eq(t, got, want, name, detail=None):
    t.ok(got == want, name, "got %r, want %r\n%s" % (got, want, detail or ""))


def scrape(port, path="/metrics"):
    r = subprocess.run(["curl", "-s", "-S", "-m", "20", "-o", "-",
                        "-w", "\n%{http_code} %{content_type}",
                        "http://127.0.0.1:%d%s" % (port, path)],
                       capture_output=True, text=True, timeout=60)
    body, _, tail = r.stdout.rpartition("\n")
    code, _, ctype = tail.partition(" ")
    return body + ("\n" if body else ""), code, ctype


def samples(text):
    """{"name{labels}": value} of a scrape."""
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def promtool(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def swaks(inst, *args):
    return subprocess.run(["swaks", "--server", inst.host,
                           "--from", "sender@remote.test",
                           "--timeout", "30"] + list(args),
                          capture_output=True, text=True, timeout=120)


def main():
    t = Check()
    port = free_port()
    inst = instance(relay=True,
                    extra={"metrics": {"listen": "127.0.0.1:%d" % port}})
    try:
        r = inst.cli("check", check=False)
        t.ok(r.returncode == 0, "check: a loopback listen is fine",
             r.stderr)
        inst.start("smtpd")
        inst.start("pop3d")
        t.ok(wait_for(lambda: scrape(port)[1] == "200", 20) and
             wait_for(lambda: scrape(port + 1)[1] == "200", 20),
             "both endpoints answer (smtpd on the port, pop3d after it)")
        s0, code, ctype = scrape(port)
        p0, _, _ = scrape(port + 1)
        t.ok(ctype.startswith("text/plain; version=0.0.4"),
             "content type of the text format 0.0.4", ctype)
        for name, text in (("smtpd", s0), ("pop3d", p0)):
            rc, out = promtool(text)
            t.ok(rc == 0, "promtool check metrics: %s, before" % name, out)
        b = samples(s0)
        pb = samples(p0)
        eq(t, b.get("postroom_smtp_messages_accepted_total"), 0.0,
             "nothing accepted yet")
        t.ok("postroom_pop3_logins_total{result=\"ok\"}" in pb and
             "postroom_smtp_messages_accepted_total" not in pb,
             "pop3d shows its own families")

        # Traffic: two messages on 25, one with STARTTLS on 587 with
        # AUTH, one to a remote domain (deferred: no DNS here), one
        # refused recipient, a failed and a good POP3 login.
        for i in range(2):
            r = swaks(inst, "--port", str(inst.ports["smtp"]),
                      "--to", ALICE, "--header", "Subject: m%d" % i)
            t.ok(r.returncode == 0, "swaks: message %d on 25" % i,
                 r.stdout[-500:])
        r = swaks(inst, "--port", str(inst.ports["submission"]), "-tls",
                  "--auth", "PLAIN", "--auth-user", ALICE,
                  "--auth-password", PASSWORD, "--from", ALICE,
                  "--to", "someone@remote.test")
        t.ok(r.returncode == 0, "swaks: STARTTLS, AUTH, to a remote",
             r.stdout[-500:])
        r = swaks(inst, "--port", str(inst.ports["smtp"]),
                  "--to", "nobody@example.test")
        t.ok(r.returncode != 0 and "550" in r.stdout,
             "swaks: an unknown recipient is refused", r.stdout[-500:])
        r = swaks(inst, "--port", str(inst.ports["submission"]),
                  "--auth", "PLAIN", "--auth-user", ALICE,
                  "--auth-password", "wrong", "--to", ALICE)
        t.ok(r.returncode != 0, "swaks: a wrong password fails")
        url = "pop3://127.0.0.1:%d/1" % inst.ports["pop3"]
        r = subprocess.run(["curl", "-s", "-u", ALICE + ":wrong", url],
                           capture_output=True, timeout=60)
        t.ok(r.returncode != 0, "curl POP3: a wrong password fails")
        r = subprocess.run(["curl", "-s", "-u", "%s:%s" % (ALICE, PASSWORD),
                            url], capture_output=True, timeout=60)
        t.ok(r.returncode == 0 and b"Subject: m" in r.stdout,
             "curl POP3: RETR of message 1", r.stderr)

        def moved():
            a = samples(scrape(port)[0])
            return a.get('postroom_relay_recipients_total'
                         '{status="deferred"}', 0) >= 1

        t.ok(wait_for(moved, 60), "the relay attempt is counted",
             inst.log("smtpd")[-2000:])
        s1, _, _ = scrape(port)
        p1, _, _ = scrape(port + 1)
        for name, text in (("smtpd", s1), ("pop3d", p1)):
            rc, out = promtool(text)
            t.ok(rc == 0, "promtool check metrics: %s, after" % name, out)
        a = samples(s1)
        pa = samples(p1)

        def delta(name, before=b, after=a):
            return after.get(name, 0) - before.get(name, 0)

        eq(t, delta("postroom_smtp_messages_accepted_total"), 3.0,
             "accepted: +3")
        eq(t, delta("postroom_local_deliveries_total"), 2.0,
             "local deliveries: +2")
        t.ok(delta('postroom_smtp_sessions_total{listener="smtp"}') >= 3,
             "sessions on 25: +3 at least", s1)
        t.ok(delta('postroom_smtp_sessions_total{listener="submission"}')
             >= 2, "sessions on 587: +2 at least", s1)
        t.ok(sum(v for k, v in a.items()
                 if k.startswith("postroom_smtp_refused_total")) >= 1,
             "a refusal counted by reason", s1)
        eq(t, delta('postroom_auth_failures_total{protocol="smtp"}'), 1.0,
             "SMTP auth failures: +1")
        t.ok(delta('postroom_tls_handshakes_total{version="TLSv1.3"}') >= 1,
             "a TLS 1.3 handshake", s1)
        t.ok(delta("postroom_store_commit_seconds_count") >= 3,
             "store commits observed in the histogram", s1)
        t.ok(a.get('postroom_store_commit_seconds_bucket{le="+Inf"}') ==
             a.get("postroom_store_commit_seconds_count"),
             "+Inf bucket equals the count")
        t.ok(delta('postroom_dns_lookups_total{result="timeout"}') >= 1,
             "the relay's failed MX lookup counted", s1)
        eq(t, a.get("postroom_queue_messages"), 1.0, "one message queued")
        t.ok(a.get("postroom_queue_oldest_seconds", -1) >= 0,
             "the oldest queued message's age")
        eq(t, delta('postroom_pop3_logins_total{result="ok"}', pb, pa), 1.0,
             "POP3 logins ok: +1")
        eq(t, delta('postroom_pop3_logins_total{result="failed"}', pb, pa),
             1.0, "POP3 logins failed: +1")
        eq(t, delta('postroom_auth_failures_total{protocol="pop3"}', pb, pa),
             1.0, "POP3 auth failures: +1")
        t.ok(delta("postroom_pop3_retrieved_octets_total", pb, pa) > 100,
             "POP3 octets retrieved", p1)
        t.ok(delta("postroom_pop3_sessions_total", pb, pa) == 2,
             "POP3 sessions: +2", p1)

        # Bounded HTTP: what is not GET /metrics gets a clear refusal.
        eq(t, scrape(port, "/")[1], "404", "another path: 404")
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                            "%{http_code}", "-X", "POST", "-d", "x",
                            "http://127.0.0.1:%d/metrics" % port],
                           capture_output=True, text=True, timeout=60)
        eq(t, r.stdout, "405", "POST: 405")
        inst.stop("smtpd")
        inst.stop("pop3d")

        # A listen that is not loopback: a config error...
        inst.extra["metrics"] = {"listen": "0.0.0.0:%d" % port}
        inst.write_config()
        r = inst.cli("check", check=False)
        t.ok(r.returncode == 1 and "not a loopback address" in r.stderr
             and len(r.stderr.strip().splitlines()) == 1,
             "check: a non-loopback listen is refused", r.stderr)
        for d in ("smtpd", "pop3d"):
            p = subprocess.run([BIN[d], "-c", inst.config],
                               capture_output=True, text=True, timeout=60)
            t.ok(p.returncode != 0 and "not a loopback address" in
                 p.stderr, "%s does not start with it" % d, p.stderr)
        # ... unless the admin says so.
        inst.extra["metrics"]["metrics_public"] = "true"
        inst.write_config()
        r = inst.cli("check", check=False)
        t.ok(r.returncode == 0, "check: metrics_public = true allows it",
             r.stderr)
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
