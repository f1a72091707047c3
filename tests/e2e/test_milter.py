#!/usr/bin/python3
"""Content filters over the milter protocol, end to end: the real
postroom-smtpd, smtplib as the client, a scripted filter of our own
(tests/lib/milter_filter.py) on a unix socket and on TCP; what is stored
is read back over POP3 (poplib) and with the CLI.

- the filter sees every step with the macros (j, {client_addr}, i,
  {mail_addr}, {rcpt_addr}), the header fields and the body;
- each step at its command (docs/MILTER.md): a refusal at connect or
  HELO refuses the MAIL commands with the filter's reply, at MAIL that
  MAIL (reject and tempfail), at one RCPT of three that recipient with
  the filter's reply while the two others are delivered; two messages
  and an abandoned one in one SMTP session go over one filter
  connection (SMFIC_ABORT at RSET, SMFIC_QUIT at the end); swaks
  --pipeline through a filter refusing one RCPT;
- reject with the filter's reply and with the default 550 5.7.1,
  tempfail 451 4.7.1, discard (250, nothing stored, logged);
- add, insert and change (delete) header fields, change the sender (and
  Return-Path), add and delete recipients (the RCPTs that stay keep their
  DSN parameters, SMFIR_ADDRCPT_PAR's NOTIFY and ORCPT apply), replace
  the body;
- quarantine: held in the store, in no mailbox; `queue list --held`,
  `queue release` delivers, `queue del` drops;
- progress keeps a slow filter alive past [milter] timeout (progress
  every second for longer than the timeout, then accept); a hanging
  filter, one sending garbage, one closing mid-packet and one that is
  down get on_failure: tempfail (451 4.7.1, nothing stored, the down
  filter logged once for two messages) and accept (delivered
  unfiltered);
- two filters in order: header changes of both, in order; the first
  rejecting filter's reply wins and the second is not asked;
- authenticated submissions: not filtered without submission_servers,
  filtered with {auth_authen} and {auth_type} (PLAIN, LOGIN) with it.
"""

import os
import signal
import smtplib
import subprocess
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


def dialog(inst, cmds, ehlo="client.remote.test"):
    """The (code, text) of each command of one session, after EHLO;
    "DATA" sends MSG as the message.  Ends with QUIT."""
    s = smtplib.SMTP("127.0.0.1", inst.ports["smtp"], timeout=60)
    out = []
    try:
        s.ehlo(ehlo)
        for c in cmds:
            if c == "DATA":
                code, text = s.data(MSG.encode())
            else:
                code, text = s.docmd(c)
            out.append((code, text.decode()))
        s.quit()
    finally:
        s.close()
    return out


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
    inst.add_user("carol@example.test", PASSWORD)
    restart(inst, servers=fa.spec, timeout="2s")
    inst.start("pop3d")

    # --- Every step reaches the filter ----------------------------------
    code, reply = send(inst)
    t.eq(code, 250, "continue: accepted")
    wait_for(lambda: fa.seen()[-1]["closed"])
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
    r = dialog(inst, ["MAIL FROM:<sender@remote.test>",
                      "RCPT TO:<%s>" % ALICE])
    t.eq(r[1][0], 451, "tempfail at RCPT: the RCPT's 451")
    t.ok(r[1][1].startswith("4.7.1"), "tempfail: 4.7.1", r)
    fa.script = {"eom": ["discard"]}
    code, reply = send(inst)
    t.eq(code, 250, "discard: 250")
    t.eq(len(inst.mailbox(ALICE)), before, "nothing stored after reject, "
         "tempfail, discard")
    t.ok(wait_for(lambda: "verdict=discard" in inst.log("smtpd")),
         "discard logged")
    t.ok("verdict=reject filter=%s" % fa.spec in inst.log("smtpd"),
         "reject logged with the filter", inst.log("smtpd"))

    # --- Step by step ---------------------------------------------------
    steps(t, inst, fa)

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

    # The DSN parameters: an RCPT that stays keeps its own (alice's
    # NOTIFY=SUCCESS: a "delivered" report goes back to the sender), an
    # added recipient gets SMFIR_ADDRCPT_PAR's.
    fa.script = {"eom": [("addrcpt_par", "<dsn-added@remote.test>",
                          "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;orig@remote.test"
                          " XFOO=1"), "continue"]}
    s = smtplib.SMTP("127.0.0.1", inst.ports["smtp"], timeout=60)
    s.ehlo("client.remote.test")
    s.mail("dsn-sender@remote.test")
    code, _ = s.docmd("RCPT TO:<%s> NOTIFY=SUCCESS "
                      "ORCPT=rfc822;kept-orig@example.test" % ALICE)
    t.eq(code, 250, "DSN: RCPT with NOTIFY and ORCPT")
    code, _ = s.data(MSG.encode())
    s.quit()
    t.eq(code, 250, "DSN: accepted")
    with inst.db() as d:
        rows = dict((r[0], (r[1], r[2])) for r in d.execute(
            "SELECT address, notify, orcpt FROM queue_rcpt WHERE address "
            "LIKE 'dsn-%'").fetchall())
    t.eq(rows.get("dsn-added@remote.test"),
         (1 | 4, "rfc822;orig@remote.test"),
         "DSN: SMFIR_ADDRCPT_PAR's NOTIFY and ORCPT")
    t.ok(wait_for(lambda: "dsn-sender@remote.test" in inst.queued_rcpts()),
         "DSN: the RCPT that stays keeps NOTIFY=SUCCESS (a delivered "
         "report is queued)", inst.queued_rcpts())
    alice_before = len(inst.mailbox(ALICE))

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
    # Progress every second for more than twice [milter] timeout (2s),
    # then accept: the end of the message's deadline (10 minutes) is
    # far, so it is delivered.
    n = len(inst.mailbox(ALICE))
    fa.script = {"eom": [("progress_for", 5), "accept"]}
    code, _ = send(inst)
    t.eq(code, 250, "progress for 5 s with a 2 s timeout: accepted")
    t.eq(len(inst.mailbox(ALICE)), n + 1, "... and delivered")

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
    # The first step that needs the filter is MAIL: it gets the 451.
    r1 = dialog(inst, ["MAIL FROM:<sender@remote.test>"])[0]
    r2 = dialog(inst, ["MAIL FROM:<sender@remote.test>"])[0]
    t.eq((r1[0], r2[0]), (451, 451), "filter down: MAIL 451 both")
    t.ok(r1[1].startswith("4.7.1"), "filter down: 4.7.1", r1)
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
    fa.script = {"eom": [("replycode", "550 5.7.1 first says no")]}
    fb.script = {"eom": [("replycode", "550 5.7.1 second says no")]}
    code, reply = send(inst)
    t.eq((code, reply), (550, "5.7.1 first says no"),
         "the first rejecting filter's reply wins")
    t.ok(wait_for(lambda: fb.seen()[-1]["closed"]) and
         "eom" not in fb.seen()[-1]["steps"],
         "the second filter is not asked at the end of the message",
         fb.seen()[-1]["steps"])
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
    # AUTH LOGIN: the mechanism the session logged in with.
    s = smtplib.SMTP("127.0.0.1", inst.ports["submission"], timeout=60)
    s.ehlo("client.remote.test")
    s.user, s.password = ALICE, PASSWORD
    s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    s.sendmail(ALICE, [BOB], SUB.encode())
    s.quit()
    t.ok(wait_for(lambda: fb.seen()[-1]["closed"]) and
         fb.seen()[-1]["macros"].get("{auth_type}") == "LOGIN",
         "submission: {auth_type} LOGIN", fb.seen()[-1]["macros"])

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

def steps(t, inst, fa):
    """Each step at its command, one filter connection per session."""
    fa.script = {"connect": [("replycode", "554 5.7.1 Not from here")]}
    r = dialog(inst, ["MAIL FROM:<sender@remote.test>",
                      "MAIL FROM:<other@remote.test>"])
    t.eq(r, [(554, "5.7.1 Not from here")] * 2,
         "reject at connect: each MAIL gets the filter's reply")
    fa.script = {"helo": ["reject"]}
    r = dialog(inst, ["MAIL FROM:<sender@remote.test>"])
    t.ok(r[0][0] == 550 and r[0][1].startswith("5.7.1"),
         "reject at HELO: MAIL 550 5.7.1", r)
    fa.script = {"mail": [("replycode", "550 5.7.1 Sender refused here")]}
    r = dialog(inst, ["MAIL FROM:<sender@remote.test>",
                      "RCPT TO:<%s>" % ALICE])
    t.eq(r[0], (550, "5.7.1 Sender refused here"),
         "reject at MAIL: the MAIL's reply is the filter's")
    t.eq(r[1][0], 503, "... and the transaction did not start")
    fa.script = {"mail": ["tempfail"]}
    r = dialog(inst, ["MAIL FROM:<sender@remote.test>"])
    t.ok(r[0][0] == 451 and r[0][1].startswith("4.7.1"),
         "tempfail at MAIL: 451 4.7.1", r)
    t.ok("step=mail verdict=tempfail" in inst.log("smtpd"),
         "tempfail at MAIL logged")

    carol = "carol@example.test"
    before = {a: len(inst.mailbox(a)) for a in (ALICE, BOB, carol)}
    fa.script = {"rcpt:" + BOB: [("replycode", "550 5.7.1 Not for bob")]}
    r = dialog(inst, ["MAIL FROM:<sender@remote.test>",
                      "RCPT TO:<%s>" % ALICE, "RCPT TO:<%s>" % BOB,
                      "RCPT TO:<%s>" % carol, "DATA"])
    t.eq([c for c, _ in r], [250, 250, 550, 250, 250],
         "one RCPT of three refused, the message accepted")
    t.eq(r[2][1], "5.7.1 Not for bob", "... with the filter's reply")
    t.eq([len(inst.mailbox(a)) - before[a] for a in (ALICE, BOB, carol)],
         [1, 0, 1], "the two others delivered, bob not")
    t.eq(fa.seen()[-1]["rcpts"], ["<%s>" % ALICE, "<%s>" % BOB,
                                  "<%s>" % carol],
         "the filter saw each RCPT")

    # Two messages and an abandoned one: one connection to the filter.
    fa.script = {}
    n_conns = len(fa.seen())
    n = len(inst.mailbox(ALICE))
    r = dialog(inst, ["MAIL FROM:<one@remote.test>", "RCPT TO:<%s>" % ALICE,
                      "DATA", "MAIL FROM:<two@remote.test>",
                      "RCPT TO:<%s>" % ALICE, "RSET",
                      "MAIL FROM:<three@remote.test>",
                      "RCPT TO:<%s>" % ALICE, "DATA"])
    t.eq([c for c, _ in r], [250] * 9, "two messages, RSET between")
    t.eq(len(inst.mailbox(ALICE)), n + 2, "both delivered")
    t.ok(wait_for(lambda: len(fa.seen()) == n_conns + 1 and
                  fa.seen()[-1]["closed"]),
         "one filter connection for the session",
         (n_conns, len(fa.seen())))
    st = fa.seen()[-1]["steps"]
    t.eq((st.count("connect"), st.count("mail"), st.count("eom"),
          st.count("abort"), st[-1]), (1, 3, 2, 1, "quit"),
         "one connect, three MAILs, two EOMs, one ABORT (RSET), QUIT")
    t.ok(st.index("abort") > st.index("eom") and
         st.index("abort") < len(st) - 1 - st[::-1].index("mail"),
         "the ABORT between the second MAIL and the third", st)

    # A pipelining client (RFC 2920): the replies stay in order, each
    # waiting for the filter's answer.
    fa.script = {"rcpt:" + BOB: [("sleep", 0.5), "reject"]}
    n = len(inst.mailbox(ALICE))
    p = subprocess.run(
        ["swaks", "--pipeline", "--server", "127.0.0.1", "--port",
         str(inst.ports["smtp"]), "--helo", "client.remote.test",
         "--from", "sender@remote.test", "--to", "%s,%s" % (BOB, ALICE),
         "--header", "Subject: pipelined", "--body", "pipelined body"],
        capture_output=True, text=True, timeout=120)
    out = p.stdout
    t.ok("PIPELINING" in out and "550 5.7.1" in out,
         "swaks --pipeline: bob refused at RCPT", out[-1500:])
    t.eq(len(inst.mailbox(ALICE)), n + 1, "swaks --pipeline: alice has it")
    lines = [l for l in out.splitlines() if l[:3] in ("<- ", "<~ ", "<**",
                                                      "<~*")]
    codes = [l.split()[1] for l in lines if len(l.split()) > 1]
    t.ok("550" in codes and codes.index("550") < codes.index("354"),
         "swaks --pipeline: the RCPT replies in order, before the 354",
         lines)


if __name__ == "__main__":
    sys.exit(main())
