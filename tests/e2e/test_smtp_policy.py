#!/usr/bin/python3
"""The SMTP policy layer at the edge, against the real postroom-smtpd.

- no log line ever holds a SASL response or what may be one, on every
  AUTH error path (refused, in a transaction, before TLS, cancelled, bad
  base64, too long), pipelined after the refusal;
- an anonymous MAIL FROM a hosted domain on port 25 is refused; the null
  sender and forwarding aliases keep working;
- <Postmaster>, postmaster@ and abuse@ reach [server] postmaster, and
  `postroom check` warns when it is unset or names nobody;
- the hard error limit: 200 unknown recipients in one session get 20
  refusals, then 421; past half of the limit each refusal waits a second
  while other sessions are served at once;
- the junk-command limit: NOOP after NOOP ends an anonymous session;
- a submission's header From: and Sender: name the user's addresses only.
"""

import base64
import smtplib
import socket
import sys
import time

from smtp_util import (ALICE, PASSWORD, Check, Raw, instance, messages,
                       queued_rcpts, wait_for)

SECRET_USER = "carol@example.test"
SECRET_PASS = "Zq7-unlikely-passw0rd"


def b64(s):
    return base64.b64encode(s.encode()).decode()


PLAIN = b64("\0%s\0%s" % (SECRET_USER, SECRET_PASS))
SECRETS = {
    "password": SECRET_PASS,
    "PLAIN response": PLAIN,
    "PLAIN response, authzid": b64("%s\0%s\0%s" % (SECRET_USER, SECRET_USER,
                                                   SECRET_PASS)),
    "LOGIN user": b64(SECRET_USER),
    "LOGIN password": b64(SECRET_PASS),
}


def drain(r, timeout=3.0):
    """Reads replies until the server has been quiet for a moment."""
    r.sock.settimeout(timeout)
    out = []
    try:
        while True:
            out.append(r.reply())
    except (socket.timeout, TimeoutError, EOFError, OSError):
        pass
    return out


def check_logs(t, inst, where):
    log = inst.log("smtpd")
    for name, s in SECRETS.items():
        t.ok(s not in log, "%s: no %s in the log" % (where, name),
             "\n".join(ln for ln in log.splitlines() if s in ln))


def auth_paths(t, inst):
    """Every AUTH error path, each followed by pipelined credentials."""
    sub = inst.ports["submission"]
    subs = inst.ports["submissions"]
    pipelined = "\r\n".join([PLAIN, SECRETS["LOGIN user"],
                             SECRETS["LOGIN password"], SECRET_PASS]) + "\r\n"

    # AUTH before TLS: 538, then the responses arrive as commands.
    r = Raw(inst.host, sub)
    r.reply()
    r.cmd("EHLO client.test")
    r.send("AUTH PLAIN\r\n" + pipelined + "AUTH LOGIN\r\n" + pipelined)
    got = drain(r)
    t.ok(got and got[0][0] == 538, "AUTH before TLS: 538", got)
    r.close()

    # Refused AUTH (wrong password), cancelled, bad base64: over TLS
    # (465), with the responses pipelined behind; one session each.
    wrong = b64("\0%s\0%s" % (SECRET_USER, SECRET_PASS + "x"))
    for name, data, idx, want in (
            ("wrong password", "AUTH PLAIN " + wrong + "\r\n", 0, 535),
            ("AUTH LOGIN cancelled", "AUTH LOGIN\r\n*\r\n", 1, 501),
            ("cancelled after the user name", "AUTH LOGIN\r\n" +
             SECRETS["LOGIN user"] + "\r\n*\r\n", 2, 501),
            ("PLAIN cancelled", "AUTH PLAIN\r\n*\r\n", 1, 501),
            ("bad base64", "AUTH PLAIN !!" + SECRET_PASS + "\r\n", 0, 501),
            ("bad base64 in LOGIN", "AUTH LOGIN\r\n!!" + SECRET_PASS +
             "\r\n", 1, 501)):
        r = Raw(inst.host, subs, tls=True)
        r.reply()
        r.cmd("EHLO client.test")
        r.send(data + pipelined)
        got = drain(r)
        t.ok(len(got) > idx and got[idx][0] == want, "%s: %d" % (name, want),
             got)
        r.close()

    r = Raw(inst.host, subs, tls=True)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (ALICE, PASSWORD)))
    r.cmd("MAIL FROM:<%s>" % ALICE)
    r.send("AUTH PLAIN " + PLAIN + "\r\n" + pipelined +
           "AUTH LOGIN\r\n" + pipelined)
    got = drain(r)
    t.ok(got and got[0][0] == 503, "AUTH in a transaction: 503", got)
    r.close()

    # Too long: an AUTH line past 12288 octets, credentials inside it
    # and after it.
    r = Raw(inst.host, subs, tls=True)
    r.reply()
    r.cmd("EHLO client.test")
    r.send("AUTH PLAIN " + PLAIN + "A" * 13000 + "\r\n" + pipelined)
    got = drain(r)
    t.ok(got and got[0][0] == 500, "AUTH line too long: 500", got)
    r.close()

    # Three failures: 421, and what follows is not read as commands.
    r = Raw(inst.host, subs, tls=True)
    r.reply()
    r.cmd("EHLO client.test")
    r.send(("AUTH PLAIN " + wrong + "\r\n") * 3 + pipelined)
    got = drain(r, 25)
    t.ok(got and got[-1][0] == 421, "third failure: 421", got)
    r.close()
    time.sleep(0.5)
    check_logs(t, inst, "SMTP")


def hosted_sender(t, inst):
    port = inst.ports["smtp"]
    r = Raw(inst.host, port)
    r.reply()
    r.cmd("EHLO client.test")
    code, lines = r.cmd("MAIL FROM:<bob@example.test>")
    t.eq((code, lines[0][4:9]), (550, "5.7.1"),
         "anonymous MAIL FROM a hosted domain on port 25: 550 5.7.1")
    t.eq(r.cmd("MAIL FROM:<>")[0], 250, "the null sender: 250")
    t.eq(r.cmd("RCPT TO:<%s>" % ALICE)[0], 250, "... to a local user")
    r.cmd("RSET")
    t.eq(r.cmd("MAIL FROM:<someone@remote.test>")[0], 250,
         "another domain's sender: 250")
    t.eq(r.cmd("RCPT TO:<fwd@example.test>")[0], 250, "to a forwarding alias")
    r.cmd("DATA")
    r.send("Subject: forwarded\r\n\r\nx\r\n.\r\n")
    t.eq(r.reply()[0], 250, "forwarded mail accepted")
    r.cmd("QUIT")
    r.close()
    t.ok("friend@remote.test" in queued_rcpts(inst),
         "forward target queued", queued_rcpts(inst))
    with smtplib.SMTP_SSL(inst.host, inst.ports["submissions"],
                          context=_ctx(), timeout=20) as s:
        s.login(ALICE, PASSWORD)
        t.eq(s.sendmail(ALICE, ["bob@example.test"],
                        b"From: " + ALICE.encode() + b"\r\nSubject: s\r\n\r\n"
                        b"x\r\n"), {},
             "an authenticated user sends as their hosted address")


def _ctx():
    from smtp_util import tls_client_context
    return tls_client_context()


def postmaster(t, inst):
    port = inst.ports["smtp"]
    n = len(messages(inst, ALICE))
    r = Raw(inst.host, port)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<a@remote.test>")
    for rcpt in ("<Postmaster>", "<POSTMASTER>", "<postmaster@example.test>",
                 "<abuse@example.test>", "<Abuse@Example.Test>",
                 "<postmaster@mx.example.test>"):
        t.eq(r.cmd("RCPT TO:%s" % rcpt)[0], 250, "RCPT TO:%s accepted" % rcpt)
    t.eq(r.cmd("RCPT TO:<postmaster@remote.test>")[0], 554,
         "another domain's postmaster is still relaying")
    r.cmd("DATA")
    r.send("Subject: to the postmaster\r\n\r\nx\r\n.\r\n")
    t.eq(r.reply()[0], 250, "message to the postmaster delivered")
    r.close()
    t.eq(len(messages(inst, ALICE)), n + 1,
         "[server] postmaster (alice) got it, once")

    t.ok("postmaster" not in inst.cli("check").stdout,
         "postroom check: no warning with a postmaster that exists")
    for value, why in (("", "unset"), ("nobody@example.test", "no such user")):
        inst.extra["server"]["postmaster"] = value
        inst.write_config()
        r = inst.cli("check", check=False)
        t.eq(r.returncode, 0, "postroom check, postmaster %s: exit 0" % why)
        t.ok(any(ln.startswith("warning:") and "postmaster" in ln
                 for ln in r.stdout.splitlines()),
             "postroom check, postmaster %s: a warning line" % why, r.stdout)
    inst.extra["server"]["postmaster"] = ALICE
    inst.write_config()


def error_limit(t, inst):
    """200 unknown recipients in one session: 20 refusals, then 421."""
    port = inst.ports["smtp"]
    r = Raw(inst.host, port, timeout=30)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<a@remote.test>")
    t0 = time.monotonic()
    r.send("".join("RCPT TO:<nobody%d@example.test>\r\n" % i
                   for i in range(200)))
    codes, stamps = [], []
    other = None
    while True:
        try:
            code, _ = r.reply()
        except (EOFError, OSError):
            break
        codes.append(code)
        stamps.append(time.monotonic() - t0)
        if len(codes) == 12 and other is None:
            # The delay is a timer: another session is served meanwhile.
            t1 = time.monotonic()
            o = Raw(inst.host, port)
            o.reply()
            o.cmd("EHLO other.test")
            other = time.monotonic() - t1
            o.close()
        if code == 421:
            break
    t.eq(codes, [550] * 20 + [421], "20 refusals, then 421")
    t.ok(r.closed(5), "and the session is closed")
    t.ok(stamps and stamps[9] < 3.0, "the first 10 refusals at once",
         stamps[:10])
    t.ok(len(stamps) > 19 and stamps[19] - stamps[9] >= 8.5,
         "refusals 11 to 20 each wait a second", stamps)
    t.ok(other is not None and other < 1.0,
         "another session is served during the delays", other)
    r.close()


def junk_limit(t, inst):
    port = inst.ports["smtp"]
    r = Raw(inst.host, port, timeout=40)
    r.reply()
    r.cmd("EHLO client.test")
    r.send("NOOP\r\n" * 300)
    codes = []
    while True:
        try:
            code, _ = r.reply()
        except (EOFError, OSError):
            break
        codes.append(code)
        if code == 421:
            break
    # 100 free, then each counts: the 20th error is the 421.
    t.eq((codes.count(250), codes[-1:]), (119, [421]),
         "anonymous NOOP after NOOP: closed with 421 after the limit")
    r.close()
    # A transaction's NOOPs are not junk.
    r = Raw(inst.host, port, timeout=40)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<a@remote.test>")
    r.send("NOOP\r\n" * 300)
    got = [r.reply()[0] for _ in range(300)]
    t.eq(got, [250] * 300, "NOOPs inside a transaction are not junk")
    r.close()


def header_from(t, inst):
    with smtplib.SMTP_SSL(inst.host, inst.ports["submissions"],
                          context=_ctx(), timeout=20) as s:
        s.login(ALICE, PASSWORD)
        try:
            s.sendmail(ALICE, ["friend@remote.test"],
                       b"From: The CEO <ceo@example.org>\r\n"
                       b"Subject: spoof\r\n\r\nx\r\n")
            t.ok(False, "header From: of another domain refused")
        except smtplib.SMTPDataError as e:
            t.eq((e.smtp_code, e.smtp_error[:5]), (550, b"5.7.1"),
                 "header From: of another domain refused: 550 5.7.1")
        try:
            s.sendmail(ALICE, ["friend@remote.test"],
                       b"From: " + ALICE.encode() + b"\r\n"
                       b"Sender: bob@example.test\r\n\r\nx\r\n")
            t.ok(False, "Sender: of another user refused")
        except smtplib.SMTPDataError as e:
            t.eq(e.smtp_code, 550, "Sender: of another user refused")
        t.eq(s.sendmail(ALICE, ["friend@remote.test"],
                        b'From: "ceo@example.org" <' + ALICE.encode() +
                        b'> (ceo@example.org)\r\nSubject: ok\r\n\r\nx\r\n'),
             {}, "display name and comment are not addresses")
    t.ok(wait_for(lambda: "Header address not owned" in inst.log("smtpd")),
         "refusal logged")


def main():
    t = Check()
    # No AUTH without TLS here: "AUTH before TLS" is one of the paths.
    inst = instance(extra={"server": {"postmaster": ALICE},
                           "smtp": {"timeout": "20s",
                                    "allow_plaintext_auth": "false"}})
    try:
        inst.add_user(SECRET_USER, "another password")
        inst.start("smtpd")
        auth_paths(t, inst)
        hosted_sender(t, inst)
        postmaster(t, inst)
        header_from(t, inst)
        error_limit(t, inst)
        junk_limit(t, inst)
        check_logs(t, inst, "SMTP, at the end")
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
