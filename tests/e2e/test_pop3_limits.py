#!/usr/bin/python3
"""postroom-pop3d at the edge, with a raw client:

- no log line ever holds a password or a SASL response, on every login
  error path (wrong PASS, PASS without USER, AUTH PLAIN refused, bad
  base64, cancelled, too long), with credentials pipelined behind;
- a command line must be complete within one timeout of its first octet,
  a line being discarded after "-ERR Line too long" included, however
  slowly it trickles in;
- CAPA after CAPA without logging in ends the session; a logged-in user's
  NOOPs do not.
"""

import base64
import socket
import sys
import time

from pop3_util import Raw, new_instance
from tap import Check

USER = "carol@example.test"
PASSWORD = "Zq7-unlikely-passw0rd"
TIMEOUT = 2  # [pop3] timeout, seconds


def b64(s):
    return base64.b64encode(s.encode()).decode()


PLAIN = b64("\0%s\0%s" % (USER, PASSWORD))
SECRETS = {
    "password": PASSWORD,
    "PLAIN response": PLAIN,
    "PLAIN response, authzid": b64("%s\0%s\0%s" % (USER, USER, PASSWORD)),
    "base64 password": b64(PASSWORD),
}


def drain(r, quiet=2.5):
    """Reads lines until the server has been quiet for a moment."""
    r.sock.settimeout(quiet)
    out = []
    try:
        while True:
            out.append(r.line())
    except (socket.timeout, TimeoutError, EOFError, OSError):
        pass
    return out


def login_paths(t, inst):
    port = inst.ports["pop3"]
    pipelined = "\r\n".join([PLAIN, PASSWORD, "PASS " + PASSWORD,
                             b64(PASSWORD)]) + "\r\n"
    wrong = b64("\0%s\0%s" % (USER, PASSWORD + "x"))
    for name, data, want in (
            ("wrong password", "USER %s\r\nPASS %sx\r\n" % (USER, PASSWORD),
             b"+OK"),
            ("PASS without USER", "PASS " + PASSWORD + "\r\n", b"-ERR"),
            ("AUTH PLAIN refused", "AUTH PLAIN " + wrong + "\r\n", b"-ERR"),
            ("AUTH PLAIN refused, continuation",
             "AUTH PLAIN\r\n" + wrong + "\r\n", b"+ "),
            ("bad base64", "AUTH PLAIN !!" + PASSWORD + "\r\n", b"-ERR"),
            ("cancelled", "AUTH PLAIN\r\n*\r\n", b"+ "),
            ("too long", "PASS " + PASSWORD + "x" * 300 + "\r\n", b"-ERR"),
            ("SASL response too long", "AUTH PLAIN\r\n" + PLAIN +
             "A" * 3000 + "\r\n", b"+ ")):
        r = Raw(inst.host, port)
        r.line()
        r.send(data + pipelined)
        got = drain(r)
        t.ok(got and got[0].startswith(want), "%s: %r" % (name, want), got)
        r.close()
    time.sleep(0.5)
    log = inst.log("pop3d")
    for name, s in SECRETS.items():
        t.ok(s not in log, "no %s in the log" % name,
             "\n".join(ln for ln in log.splitlines() if s in ln))


def trickle(t, inst, first, name):
    """Sends first, then one octet every 0.4 s without an end of line;
    the session must close within the timeout of the line's first
    octet (plus a margin)."""
    r = Raw(inst.host, inst.ports["pop3"])
    r.line()
    t0 = time.monotonic()
    r.send(first)
    closed = False
    while time.monotonic() - t0 < 4 * TIMEOUT:
        try:
            r.send("q")
        except OSError:
            closed = True
            break
        if r.closed(0.4):
            closed = True
            break
    took = time.monotonic() - t0
    t.ok(closed and took < TIMEOUT + 1.5, "%s: closed after %.1f s" %
         (name, took), "closed %s after %.1f s" % (closed, took))
    r.close()


def junk(t, inst):
    port = inst.ports["pop3"]
    r = Raw(inst.host, port, timeout=20)
    r.line()
    r.send("CAPA\r\n" * 150)
    answered = 0
    last = b""
    try:
        while True:
            line = r.line()
            if line.startswith(b"+OK"):
                r.multi()
                answered += 1
            else:
                last = line
                break
    except (EOFError, OSError):
        pass
    t.eq(answered, 100, "100 CAPA answered without logging in")
    t.ok(last.startswith(b"-ERR"), "then -ERR", last)
    t.ok(r.closed(5), "and the session is closed")
    r.close()

    r = Raw(inst.host, port, timeout=20)
    r.login(USER, PASSWORD)
    r.send("NOOP\r\n" * 300 + "CAPA\r\n" * 150)
    got = [r.line() for _ in range(300)]
    t.eq(got, [b"+OK"] * 300, "a logged-in user's NOOPs are all answered")
    n = 0
    for _ in range(150):
        if r.line().startswith(b"+OK"):
            r.multi()
            n += 1
    t.eq(n, 150, "... and CAPAs")
    t.ok(r.cmd("QUIT").startswith(b"+OK"), "QUIT")
    r.close()


def main():
    t = Check()
    inst = new_instance(users=[(USER, "the real one, not " + PASSWORD)],
                        extra={"pop3": {"timeout": "%ds" % TIMEOUT}},
                        start=False)
    try:
        inst.start("pop3d")
        login_paths(t, inst)
        trickle(t, inst, "CA", "a command trickled in")
        trickle(t, inst, "q" * 300, "a line trickled in after "
                "-ERR Line too long")
        inst.cli("user", "passwd", USER, "--password-stdin",
                 input=PASSWORD + "\n")
        junk(t, inst)
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
