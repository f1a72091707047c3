#!/usr/bin/python3
"""Content filters over the milter protocol, end to end: the real
postroom-smtpd, smtplib as the client, a scripted filter of our own
(tests/lib/milter_filter.py) on a unix socket and on TCP; what is stored
is read back over POP3 (poplib) and with the CLI.

- the filter sees every step with the macros (j, {client_addr}, i,
  {mail_addr}, {rcpt_addr}), the header fields and the body;
- reject with the filter's reply and with the default 550 5.7.1,
  tempfail 451 4.7.1, discard (250, nothing stored, logged);
- add, insert and change (delete) header fields, change the sender (and
  Return-Path), add and delete recipients, replace the body;
- quarantine: held in the store, in no mailbox; `queue list --held`,
  `queue release` delivers, `queue del` drops;
- progress keeps a slow filter alive past [milter] timeout; a hanging
  filter, one sending garbage, one closing mid-packet and one that is
  down get on_failure: tempfail (451 4.7.1, nothing stored, the down
  filter logged once for two messages) and accept (delivered
  unfiltered);
- two filters in order: header changes of both, in order; the first
  rejecting filter's reply wins and the second is not asked;
- authenticated submissions: not filtered without submission_servers,
  filtered with {auth_authen} with it.
"""

import os
import signal
import smtplib
import sys

from relay_util import pop3_fetch
from smtp_util import ALICE, BOB, PASSWORD, Check, instance, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from milter_filter import MilterFilter  # noqa: E402

MSG = ("From: <sender@remote.test>\r\nTo: <alice@example.test>\r\n"
       "Subject: hello\r\nX-Old: gone soon\r\n\r\nThe body.\r\n")


# A submission's From: must be the user's own (docs/ARCHITECTURE.md 3.5).
SUB = MSG.replace("From: <sender@remote.test>", "From: <alice@example.test>")


def send(inst, rcpts=(ALICE,), msg=MSG, sender="sender@remote.test",
         port="smtp", login=None):
    """(code, reply) of the end of data; the RCPTs must pass."""
    s = smtplib.SMTP("127.0.0.1", inst.ports[port], timeout=60)
    try:
        s.ehlo("client.remote.test")
        if login:
            s.login(*login)
        s.mail(sender)
        for r in rcpts:
            code, _ = s.rcpt(r)
            assert code == 250, code
        code, reply = s.data(msg.encode())
        s.quit()
        return code, reply.decode()
    finally:
        s.close()


def restart(inst, **milter):
    inst.stop("smtpd")
    inst.extra["milter"] = milter
    inst.write_config()
    inst.start("smtpd")


def main():
    t = Check()
    inst = instance()
    fa = MilterFilter(inst.tmp, name="a")
    fb = MilterFilter(inst.tmp, tcp=True, name="b")
    try:
        run(t, inst, fa, fb)
    finally:
        fa.stop()
        fb.stop()
        inst.close()
    return t.done()


def run(t, inst, fa, fb):
    restart(inst, servers=fa.spec, timeout="2s")
    inst.start("pop3d")

    # --- Every step reaches the filter ----------------------------------
    code, reply = send(inst)
    t.eq(code, 250, "continue: accepted")
    c = fa.seen()[-1]
    t.eq([s for s in c["steps"] if s not in ("header",)],
         ["optneg", "connect", "helo", "mail", "rcpt", "data", "eoh",
          "body", "eom", "quit"], "steps in order")
    m = c["macros"]
    t.eq(m.get("j"), inst.hostname, "macro j")
    t.eq(m.get("{client_addr}"), "127.0.0.1", "macro {client_addr}")
    t.eq(m.get("{mail_addr}"), "sender@remote.test", "macro {mail_addr}")
    t.eq(m.get("{rcpt_addr}"), ALICE, "macro {rcpt_addr}")
    t.ok(len(m.get("i", "")) == 16 and m["i"] in reply,
         "macro i is the queued-as id", (m, reply))
    t.eq(c["mail"], "<sender@remote.test>", "MAIL argument")
    names = [h[0] for h in c["headers"]]
    t.ok("Received" in names and "Subject" in names and
         "Return-Path" not in names,
         "header fields, the trace fields but Return-Path included", names)
    t.eq(dict(c["headers"]).get("Subject"), "hello", "header value "
         "without its leading space")
    t.eq(c["body"], b"The body.\r\n", "body")
    t.ok("milter msgid=" in inst.log("smtpd") and
         "verdict=pass" in inst.log("smtpd"), "pass logged")

    # --- Verdicts -------------------------------------------------------
    before = len(inst.mailbox(ALICE))
    fa.script = {"eom": [("replycode", "554 5.7.1 Spam detected here")]}
    code, reply = send(inst)
    t.eq((code, reply), (554, "5.7.1 Spam detected here"),
         "reject with the filter's reply")
    fa.script = {"eom": ["reject"]}
    code, reply = send(inst)
    t.eq(code, 550, "reject: 550")
    t.ok(reply.startswith("5.7.1"), "reject: 5.7.1", reply)
    fa.script = {"rcpt": ["tempfail"]}
    code, reply = send(inst)
    t.eq(code, 451, "tempfail at RCPT: 451 at end of data")
    t.ok(reply.startswith("4.7.1"), "tempfail: 4.7.1", reply)
    fa.script = {"eom": ["discard"]}
    code, reply = send(inst)
    t.eq(code, 250, "discard: 250")
    t.eq(len(inst.mailbox(ALICE)), before, "nothing stored after reject, "
         "tempfail, discard")
    t.ok(wait_for(lambda: "verdict=discard" in inst.log("smtpd")),
         "discard logged")
    t.ok("verdict=reject filter=%s" % fa.spec in inst.log("smtpd"),
         "reject logged with the filter", inst.log("smtpd"))

    # --- Changes --------------------------------------------------------
    fa.script = {"eom": [("addheader", "X-Spam-Score", "1.5"),
                         ("insheader", 0, "X-Top", "first"),
                         ("chgheader", 1, "Subject", "[filtered] hello"),
                         ("chgheader", 1, "X-Old", ""),
                         ("addheader", "X-Folded", "one\n two"),
                         "continue"]}
    code, _ = send(inst)
    t.eq(code, 250, "header changes: accepted")
    got = pop3_fetch(inst, ALICE)[-1]
    head = got.split(b"\r\n\r\n")[0]
    t.ok(head.split(b"\r\n")[1] == b"X-Top: first" and
         head.startswith(b"Return-Path:"),
         "insheader at 0: below the Return-Path", head)
    t.ok(b"Subject: [filtered] hello\r\n" in head, "chgheader", head)
    t.ok(b"X-Old" not in head, "chgheader with no value deletes", head)
    t.ok(head.endswith(b"X-Spam-Score: 1.5\r\nX-Folded: one\r\n two"),
         "addheader at the end, folded", head)
    t.ok(got.endswith(b"The body.\r\n"), "body kept", got)

    fa.script = {"eom": [("replbody", b"A new body.\r\nline 2\r\n"),
                         ("chgfrom", "<bounce@remote.test>"),
                         "accept"]}
    code, _ = send(inst)
    got = pop3_fetch(inst, ALICE)[-1]
    t.ok(got.endswith(b"\r\n\r\nA new body.\r\nline 2\r\n"), "body replaced",
         got)
    t.ok(got.startswith(b"Return-Path: <bounce@remote.test>\r\n"),
         "chgfrom: Return-Path", got[:80])

    bob_before = len(inst.mailbox(BOB))
    alice_before = len(inst.mailbox(ALICE))
    fa.script = {"eom": [("addrcpt", "<bob@example.test>"),
                         ("delrcpt", "<alice@example.test>"),
                         ("addrcpt", "<archive@remote.test>"),
                         "continue"]}
    code, _ = send(inst)
    t.eq(code, 250, "recipient changes: accepted")
    t.eq(len(inst.mailbox(BOB)), bob_before + 1, "addrcpt: bob has it")
    t.eq(len(inst.mailbox(ALICE)), alice_before, "delrcpt: alice not")
    t.ok("archive@remote.test" in inst.queued_rcpts(),
         "addrcpt of a remote address: queued", inst.queued_rcpts())

    fa.script = {"eom": [("delrcpt", "<alice@example.test>"), "continue"]}
    code, _ = send(inst)
    t.eq(code, 250, "every recipient removed: 250")
    t.eq(len(inst.mailbox(ALICE)), alice_before, "... and nothing stored")
    t.ok('reason="no recipient left"' in inst.log("smtpd"),
         "... logged as a discard")

    # A message past [smtp]'s in-memory bound is spooled to a file: the
    # filter gets it from there, in chunks, and the change applies.
    big_body = "".join("line %06d %s\r\n" % (i, "x" * 60)
                       for i in range(6000))
    big = MSG.replace("The body.\r\n", big_body)
    fa.script = {"eom": [("addheader", "X-Big", "seen"), "continue"]}
    code, _ = send(inst, msg=big)
    t.eq(code, 250, "spooled message: accepted")
    t.eq(fa.seen()[-1]["body"], big_body.encode(), "spooled message: the "
         "filter got the whole body (%d octets)" % len(big_body))
    t.ok(max(len(b) for b in [big_body[i:i + 65535]
                              for i in range(0, len(big_body), 65535)])
         <= 65535 and fa.seen()[-1]["steps"].count("body") ==
         (len(big_body) + 65534) // 65535, "spooled message: 64 KiB chunks",
         fa.seen()[-1]["steps"].count("body"))
    got = pop3_fetch(inst, ALICE)[-1]
    t.ok(b"X-Big: seen\r\n" in got and got.endswith(big_body.encode()),
         "spooled message: stored with the change", len(got))
    alice_before = len(inst.mailbox(ALICE))

    # --- Quarantine -----------------------------------------------------
    fa.script = {"eom": [("quarantine", "suspicious attachment"),
                         "continue"]}
    code, reply = send(inst)
    t.eq(code, 250, "quarantine: 250")
    msgid = reply.split()[-1]
    t.eq(len(inst.mailbox(ALICE)), alice_before, "quarantine: in no "
         "mailbox")
    out = inst.cli("queue", "list", "--held").stdout
    t.ok(msgid in out and "suspicious attachment" in out and
         ALICE in out, "queue list --held", out)
    t.ok(msgid not in inst.cli("queue", "list").stdout,
         "not in the outbound queue")
    r = inst.cli("queue", "release", msgid)
    t.eq(r.returncode, 0, "queue release")
    t.eq(len(inst.mailbox(ALICE)), alice_before + 1, "released: in the "
         "mailbox")
    t.ok(pop3_fetch(inst, ALICE)[-1].endswith(b"The body.\r\n"),
         "released: over POP3")
    t.ok("no held" in inst.cli("queue", "list", "--held").stdout,
         "released: not held any more")
    r = inst.cli("queue", "release", msgid, check=False)
    t.ok(r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1,
         "release twice: exit 1, one line", r.stderr)
    with inst.db() as d:
        n_bodies = d.execute("SELECT count(*) FROM bodies").fetchone()[0]
    code, reply = send(inst)
    msgid = reply.split()[-1]
    inst.cli("queue", "del", msgid)
    with inst.db() as d:
        t.eq(d.execute("SELECT count(*) FROM bodies").fetchone()[0],
             n_bodies, "queue del: the held body is gone too")
    t.ok("no held" in inst.cli("queue", "list", "--held").stdout,
         "queue del drops a held message")
    with inst.db() as d:
        n_held = d.execute("SELECT count(*) FROM held").fetchone()[0]
    t.eq(n_held, 0, "no held rows left")

    # --- Time -----------------------------------------------------------
    fa.script = {"eom": [("sleep", 1.2), "progress", ("sleep", 1.2),
                         "progress", ("sleep", 1.2), "continue"]}
    code, _ = send(inst)
    t.eq(code, 250, "progress keeps a slow filter alive past timeout")

    for kind in ("hang", "garbage", "close_mid"):
        fa.script = {"eom": [kind]}
        n = len(inst.mailbox(ALICE))
        code, reply = send(inst)
        t.eq(code, 451, "%s: on_failure tempfail 451" % kind)
        t.ok(reply.startswith("4.7.1"), "%s: 4.7.1" % kind, reply)
        t.eq(len(inst.mailbox(ALICE)), n, "%s: nothing stored" % kind)
        fa.script = {}
        send(inst)   # the filter is back: the episode ends
    log = inst.log("smtpd")
    t.ok(log.count("status=down") >= 3 and "status=up" in log,
         "failures and recoveries logged", log[-2000:])

    # A filter that is down, two messages: logged once.
    down = "unix:" + os.path.join(inst.tmp, "nobody.sock")
    restart(inst, servers=down, timeout="2s")
    n = len(inst.mailbox(ALICE))
    r1 = send(inst)
    r2 = send(inst)
    t.eq((r1[0], r2[0]), (451, 451), "filter down: 451 both")
    t.eq(len(inst.mailbox(ALICE)), n, "filter down: nothing stored")
    t.eq(inst.log("smtpd").count("milter filter=%s status=down" % down), 1,
         "filter down: logged once for two messages")
    restart(inst, servers=down, timeout="2s", on_failure="accept")
    code, _ = send(inst)
    t.eq(code, 250, "on_failure accept: delivered")
    t.eq(len(inst.mailbox(ALICE)), n + 1, "on_failure accept: stored")

    # A failing filter skipped with on_failure = accept: the next one
    # still applies.
    restart(inst, servers="%s,%s" % (down, fb.spec), timeout="2s",
            on_failure="accept")
    fb.script = {"eom": [("addheader", "X-B", "after-down"), "continue"]}
    code, _ = send(inst)
    t.ok(code == 250 and b"X-B: after-down" in
         pop3_fetch(inst, ALICE)[-1], "on_failure accept: the next filter "
         "applies")

    # --- Two filters ----------------------------------------------------
    restart(inst, servers="%s, %s" % (fa.spec, fb.spec), timeout="5s")
    fa.script = {"eom": [("addheader", "X-A", "1"), "continue"]}
    fb.script = {"eom": [("addheader", "X-B", "2"), "continue"]}
    code, _ = send(inst)
    got = pop3_fetch(inst, ALICE)[-1]
    t.ok(got.find(b"X-A: 1") < got.find(b"X-B: 2") and
         got.find(b"X-A: 1") > 0, "two filters: both changes, in order",
         got)
    nb = len(fb.seen())
    fa.script = {"eom": [("replycode", "550 5.7.1 first says no")]}
    fb.script = {"eom": [("replycode", "550 5.7.1 second says no")]}
    code, reply = send(inst)
    t.eq((code, reply), (550, "5.7.1 first says no"),
         "the first rejecting filter's reply wins")
    t.eq(len(fb.seen()), nb, "the second filter is not asked")
    fa.script = {}
    code, reply = send(inst)
    t.eq((code, reply), (550, "5.7.1 second says no"),
         "the second filter's reject")

    # --- Submission -----------------------------------------------------
    fa.script = {}
    fb.script = {}
    na = len(fa.seen())
    code, _ = send(inst, rcpts=(BOB,), sender=ALICE, port="submission",
                   login=(ALICE, PASSWORD), msg=SUB)
    t.eq(code, 250, "submission: accepted")
    t.eq(len(fa.seen()), na, "submission: not filtered without "
         "submission_servers")
    restart(inst, servers=fa.spec, submission_servers=fb.spec)
    nb = len(fb.seen())
    code, _ = send(inst, rcpts=(BOB,), sender=ALICE, port="submission",
                   login=(ALICE, PASSWORD), msg=SUB)
    t.eq(code, 250, "submission with submission_servers: accepted")
    t.eq(len(fb.seen()), nb + 1, "submission: filtered")
    t.eq(fb.seen()[-1]["macros"].get("{auth_authen}"), ALICE,
         "submission: {auth_authen}")
    t.eq(fb.seen()[-1]["macros"].get("{auth_type}"), "PLAIN",
         "submission: {auth_type}")

    # SIGHUP: a new list applies to the next message.
    inst.extra["milter"] = {"servers": fb.spec}
    inst.write_config()
    nb = len(fb.seen())
    na = len(fa.seen())
    n_reload = inst.log("smtpd").count("reloaded certificate")
    inst.procs["smtpd"].send_signal(signal.SIGHUP)
    t.ok(wait_for(lambda: inst.log("smtpd").count("reloaded certificate")
                  > n_reload, 30), "SIGHUP: reloaded")
    code, _ = send(inst)
    t.ok(code == 250 and len(fb.seen()) == nb + 1 and
         len(fa.seen()) == na, "SIGHUP: the new [milter] servers apply",
         (code, nb, len(fb.seen()), na, len(fa.seen())))

    # A bad entry: the config is refused with file:line.
    inst.stop("smtpd")
    inst.extra["milter"] = {"servers": "tcp:1.2.3.4"}
    inst.write_config()
    r = inst.cli("domain", "list", check=False)
    t.ok(r.returncode == 1 and "servers" in r.stderr and
         len(r.stderr.strip().splitlines()) == 1,
         "a bad servers entry is refused", r.stderr)

if __name__ == "__main__":
    sys.exit(main())
