#!/usr/bin/python3
"""The milter steps against the SMTP state machine, end to end: the real
postroom-smtpd, raw sockets and smtplib as clients, the scripted filter
of tests/lib/milter_filter.py (docs/MILTER.md 1, 3).

- MAIL, RCPT, RCPT, DATA in one packet (RFC 2920) while the filter is
  slow: the replies in order, the refused RCPT in its place;
- QUIT in the same packet as a RCPT whose step is pending: 250, 250,
  221, the filter gets SMFIC_ABORT and SMFIC_QUIT;
- the client closes while a step is pending: the daemon serves the next
  session, the filter's connection ends;
- RSET in every state (before EHLO, after EHLO, MAIL, RCPT): 250, one
  SMFIC_ABORT per open message;
- BDAT: SMFIC_DATA at BDAT LAST, its refusal that chunk's reply; two
  chunks through the filter;
- a second EHLO within a transaction: SMFIC_ABORT before its SMFIC_HELO;
  STARTTLS then EHLO: a new SMFIC_HELO with {tls_version}, no second
  SMFIC_CONNECT;
- a filter's 421 closes the session (RFC 5321 3.8); its refusals of
  RCPTs count toward [smtp] hard_error_limit (421 4.7.0);
- SMFIR_REPLYCODE: a multiline reply is one reply line; one that tries
  to smuggle a line of another code (CRLF injection) is a broken filter
  (451 4.7.1, nothing injected);
- a filter that hangs up between messages: the next MAIL 451 4.7.1
  (on_failure = tempfail), logged once; a filter that answers a step it
  said it would not (SMFIP_NR_RCPT): broken, the message not accepted.
"""

import os
import smtplib
import socket
import ssl
import sys
import time

from smtp_util import ALICE, BOB, Check, instance, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from milter_filter import MilterFilter  # noqa: E402
# The session helpers of the milter test (same instance layout).
from test_milter import dialog as session, restart  # noqa: E402

MSG = ("From: <sender@remote.test>\r\nTo: <alice@example.test>\r\n"
       "Subject: state\r\n\r\nThe body.\r\n")


class Raw:
    """A line client on a plain socket: sends what it is given as it
    is, reads replies (the last line of each) with a generous timeout."""

    def __init__(self, inst):
        self.s = socket.create_connection(("127.0.0.1", inst.ports["smtp"]),
                                          timeout=60)
        self.buf = b""
        self.reply()

    def send(self, data):
        self.s.sendall(data.encode())

    def ehlo(self):
        self.send("EHLO client.remote.test\r\n")
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(4096)
            if not d:
                raise EOFError
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode()

    def reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines

    def closed(self):
        try:
            self.s.settimeout(30)
            return self.s.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.s.close()


def codes(raw, n):
    return [int(raw.reply()[-1][:3]) for _ in range(n)]


def last_conn(f, n_before):
    """The filter's record of the session just ended."""
    wait_for(lambda: len(f.seen()) > n_before and f.seen()[-1]["closed"],
             timeout=60)
    return f.seen()[-1]


def main():
    t = Check()
    inst = instance(extra={"smtp": {"hard_error_limit": "6"}})
    f = MilterFilter(inst.tmp, name="st")
    try:
        run(t, inst, f)
    finally:
        f.stop()
        inst.close()
    return t.done()


def pipelining(t, inst, f):
    # One packet, the filter slow on bob: the replies keep their order.
    f.script = {"rcpt:" + BOB: [("sleep", 1), ("replycode",
                                               "550 5.7.1 Not bob")]}
    n = len(inst.mailbox(ALICE))
    r = Raw(inst)
    r.ehlo()
    r.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<%s>\r\n"
           "RCPT TO:<%s>\r\nDATA\r\n" % (ALICE, BOB))
    got = codes(r, 4)
    t.eq(got, [250, 250, 550, 354], "one packet: replies in order")
    r.send(MSG + ".\r\nQUIT\r\n")
    t.eq(codes(r, 2), [250, 221], "one packet: the message accepted")
    r.close()
    t.eq(len(inst.mailbox(ALICE)), n + 1, "one packet: alice has it")

    # QUIT in the packet of a pending RCPT step.
    f.script = {"rcpt": [("sleep", 1), "continue"]}
    k = len(f.seen())
    r = Raw(inst)
    r.ehlo()
    r.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<%s>\r\nQUIT\r\n"
           % ALICE)
    t.eq(codes(r, 3), [250, 250, 221], "QUIT behind a pending step")
    t.ok(r.closed(), "QUIT behind a pending step: closed")
    r.close()
    st = last_conn(f, k)["steps"]
    t.ok(st[-2:] == ["abort", "quit"], "QUIT: the filter gets ABORT, QUIT",
         st)

    # The client goes away while the step is pending.
    f.script = {"rcpt": [("sleep", 2), "continue"]}
    k = len(f.seen())
    r = Raw(inst)
    r.send("EHLO client.remote.test\r\nMAIL FROM:<sender@remote.test>\r\n"
           "RCPT TO:<%s>\r\n" % ALICE)
    r.reply()
    r.reply()
    r.close()
    f.script = {}
    t.eq(session(inst, ["MAIL FROM:<a@remote.test>"])[0][0], 250,
         "closed mid-step: the next session is served")
    t.ok(wait_for(lambda: len(f.seen()) >= k + 2 and
                  all(c["closed"] for c in f.seen()[k:]), timeout=60),
         "closed mid-step: the filter's connection ends too")
    t.ok("quit" in f.seen()[k]["steps"],
         "closed mid-step: the filter gets QUIT", f.seen()[k]["steps"])


def states(t, inst, f):
    # RSET everywhere: 250 each; one ABORT per message the filter saw.
    f.script = {}
    k = len(f.seen())
    r = Raw(inst)
    r.send("RSET\r\n")
    first = codes(r, 1)
    r.send("EHLO client.remote.test\r\n")
    r.reply()
    r.send("RSET\r\nMAIL FROM:<sender@remote.test>\r\nRSET\r\n"
           "MAIL FROM:<sender@remote.test>\r\nRCPT TO:<%s>\r\nRSET\r\n"
           "RSET\r\nQUIT\r\n" % ALICE)
    t.eq(first + codes(r, 8), [250] * 8 + [221], "RSET in every state")
    r.close()
    st = last_conn(f, k)["steps"]
    t.ok((st.count("mail"), st.count("abort"), st[-1]) == (2, 2, "quit"),
         "RSET: one ABORT per open message", st)

    # EHLO within a transaction ends it, for the filter too.
    k = len(f.seen())
    r = session(inst, ["MAIL FROM:<sender@remote.test>",
                       "RCPT TO:<%s>" % ALICE, "EHLO again.remote.test",
                       "MAIL FROM:<sender@remote.test>"])
    t.eq([c for c, _ in r], [250, 250, 250, 250], "EHLO in a transaction")
    st = last_conn(f, k)["steps"]
    h2 = len(st) - 1 - st[::-1].index("helo")
    t.ok(st.count("helo") == 2 and st[h2 - 1] == "abort",
         "EHLO in a transaction: ABORT before the new HELO", st)

    # STARTTLS: a fresh HELO with the TLS macros, the same connection.
    k = len(f.seen())
    s = smtplib.SMTP("127.0.0.1", inst.ports["smtp"], timeout=60)
    s.ehlo("client.remote.test")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.ehlo("tls.remote.test")
    code, _ = s.mail("sender@remote.test")
    s.quit()
    c = last_conn(f, k)
    t.eq(code, 250, "STARTTLS: MAIL accepted")
    t.ok((c["steps"].count("connect"), c["steps"].count("helo"),
          c["helo"]) == (1, 2, "tls.remote.test"),
         "STARTTLS: one CONNECT, the new HELO after it", c["steps"])
    t.ok(c["macros"].get("{tls_version}", "").startswith("TLS"),
         "STARTTLS: {tls_version} with the new HELO", c["macros"])


def bdat(t, inst, f):
    # BDAT (RFC 3030): SMFIC_DATA goes with the message at BDAT LAST, its
    # refusal is the reply to that chunk.
    body = MSG.encode()
    f.script = {"data": [("replycode", "550 5.7.1 No chunks today")]}
    r = Raw(inst)
    r.send("EHLO client.remote.test\r\nMAIL FROM:<sender@remote.test>\r\n"
           "RCPT TO:<%s>\r\n" % ALICE)
    r.reply()
    t.eq(codes(r, 2), [250, 250], "BDAT: envelope")
    r.s.sendall(b"BDAT %d LAST\r\n" % len(body) + body)
    t.eq(r.reply(), ["550 5.7.1 No chunks today"],
         "BDAT LAST: the filter's DATA refusal")
    f.script = {}
    n = len(inst.mailbox(ALICE))
    r.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<%s>\r\n" % ALICE)
    t.eq(codes(r, 2), [250, 250], "BDAT: second envelope")
    half = len(body) // 2
    r.s.sendall(b"BDAT %d\r\n" % half + body[:half])
    t.eq(codes(r, 1), [250], "BDAT: first chunk")
    r.s.sendall(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
    t.eq(codes(r, 1), [250], "BDAT: in two chunks, accepted")
    r.close()
    t.eq(len(inst.mailbox(ALICE)), n + 1, "BDAT: stored")
    st = f.seen()[-1]["steps"]
    t.ok(st.count("data") == 2 and st.count("eom") == 1,
         "BDAT: SMFIC_DATA for each message, one end of message", st)


def refusals(t, inst, f):
    # A filter's 421: said, then the session ends.
    f.script = {"mail": [("replycode", "421 4.7.0 Closing, go away")]}
    r = Raw(inst)
    r.ehlo()
    r.send("MAIL FROM:<sender@remote.test>\r\n")
    t.eq(r.reply(), ["421 4.7.0 Closing, go away"], "filter 421: the reply")
    t.ok(r.closed(), "filter 421: the session is closed")
    r.close()

    # Refused recipients count toward hard_error_limit (6).
    f.script = {"rcpt": [("replycode", "550 5.1.1 No such user here")]}
    r = Raw(inst)
    r.ehlo()
    r.send("MAIL FROM:<sender@remote.test>\r\n")
    got = codes(r, 1)
    for i in range(10):
        try:
            r.send("RCPT TO:<u%d@example.test>\r\n" % i)
            got += codes(r, 1)
        except (EOFError, OSError):
            break
        if got[-1] == 421:
            break
    r.close()
    t.ok(got[-1] == 421 and got.count(550) == 6,
         "filter RCPT refusals: 421 at hard_error_limit", got)

    # SMFIR_REPLYCODE, multiline: one line out.
    f.script = {"mail": [("replycode", "550-5.7.1 Line one\r\n"
                                       "550 5.7.1 line two")]}
    r = Raw(inst)
    r.ehlo()
    r.send("MAIL FROM:<sender@remote.test>\r\n")
    t.eq(r.reply(), ["550 5.7.1 Line one line two"],
         "multiline SMFIR_REPLYCODE: one reply line")
    r.close()
    # ... and one smuggling a 250 line: the filter is broken.
    f.script = {"mail": [("replycode", "550 5.7.1 x\r\n250 2.0.0 injected")]}
    r = Raw(inst)
    r.ehlo()
    r.send("MAIL FROM:<sender@remote.test>\r\nNOOP\r\n")
    a, b = r.reply(), r.reply()
    r.close()
    t.ok(a[0].startswith("451 4.7.1") and len(a) == 1 and
         b == ["250 2.0.0 Ok"],
         "CRLF in SMFIR_REPLYCODE: 451 4.7.1, nothing injected", (a, b))


def broken(t, inst, f):
    # Hangs up after the first message: the second MAIL is deferred.
    f.script = {"eom": ["continue", "close"]}
    n = len(inst.mailbox(ALICE))
    log0 = len(inst.log("smtpd"))
    r = session(inst, ["MAIL FROM:<sender@remote.test>",
                       "RCPT TO:<%s>" % ALICE, "DATA",
                       "MAIL FROM:<sender@remote.test>",
                       "MAIL FROM:<sender@remote.test>"])
    t.eq([c for c, _ in r[:3]], [250, 250, 250],
         "filter gone between messages: the first delivered")
    t.ok(r[3][0] == 451 and r[3][1].startswith("4.7.1") and
         r[4][0] == 451, "... each later MAIL 451 4.7.1", r)
    t.eq(len(inst.mailbox(ALICE)), n + 1, "... one stored")
    t.eq(inst.log("smtpd")[log0:].count("filter=%s status=down" % f.spec), 1,
         "... logged once")

    # A reply to a step negotiated as no-reply.
    f.protocol = 0x8000  # SMFIP_NR_RCPT
    f.script = {"rcpt": ["continue"]}
    n = len(inst.mailbox(ALICE))
    s = smtplib.SMTP("127.0.0.1", inst.ports["smtp"], timeout=60)
    s.ehlo("client.remote.test")
    s.mail("sender@remote.test")
    s.rcpt(ALICE)
    time.sleep(0.5)
    try:
        s.data(MSG.encode())
        t.ok(False, "a reply to a no-reply step: the message was accepted")
    except smtplib.SMTPDataError as e:
        t.ok(e.smtp_code == 451, "a reply to a no-reply step: 451",
             e.smtp_code)
    except smtplib.SMTPResponseException as e:
        t.ok(e.smtp_code == 451, "a reply to a no-reply step: 451",
             e.smtp_code)
    s.quit()
    t.eq(len(inst.mailbox(ALICE)), n, "... nothing stored")
    f.protocol = 0


def run(t, inst, f):
    restart(inst, servers=f.spec, timeout="10s")
    pipelining(t, inst, f)
    states(t, inst, f)
    bdat(t, inst, f)
    refusals(t, inst, f)
    broken(t, inst, f)
    t.ok(inst.procs["smtpd"].poll() is None, "smtpd still runs")


if __name__ == "__main__":
    sys.exit(main())
