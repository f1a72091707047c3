#!/usr/bin/python3
"""TLS input that has already arrived is processed without more input.

A client that sends a whole message (or a long pipeline) over TLS and then
waits must get its reply: records that OpenSSL holds decrypted or still
encrypted in its memory BIO when the session's input buffer fills up must
be processed as soon as the session makes room, not when the next packet
happens to arrive.  Plaintext sessions never had the problem; TLS ones
stalled at the end of some big messages and long pipelines.

Checked here over real sockets with Python's ssl: big messages over 465,
587 with STARTTLS and AUTH, and 25 with STARTTLS, each reply within a
second of the last byte; POP3S RETR of the same messages; pipelines of
20,000 NOOPs over TLS on both daemons (authenticated sessions: POP3S
logged in, 587 after STARTTLS and AUTH), every reply received.
"""

import base64
import random
import select
import socket
import ssl
import sys
import time

from smtp_util import ALICE, BOB, PASSWORD, Check, instance, tls_client_context

# A reply that does not come within this long is a stall; one that comes
# later than REPLY_MAX after the last byte is too slow.
STALL = 10.0
REPLY_MAX = 1.0
MESSAGES = 100
NOOPS = 20000


class Conn:
    """A raw TLS-capable line client that times replies."""

    def __init__(self, host, port, implicit=False):
        self.sock = socket.create_connection((host, port), timeout=STALL)
        if implicit:
            self.sock = tls_client_context().wrap_socket(self.sock)
        self.buf = b""

    def starttls(self):
        self.sock = tls_client_context().wrap_socket(self.sock)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed; have %r" % self.buf[-200:])
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3:4] == b"-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def body(rng, n):
    """A message of about n octets: headers, then 76-octet text lines."""
    head = (b"From: alice@example.test\r\nTo: bob@example.test\r\n"
            b"Subject: big %d\r\n\r\n" % n)
    line = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 ")
                 for _ in range(76)) + b"\r\n"
    return head + line * (n // len(line))


def smtp_session(inst, mode):
    """A session ready for MAIL: 465 implicit TLS, 587 STARTTLS + AUTH,
    or 25 STARTTLS."""
    port = {"465": "submissions", "587": "submission", "25": "smtp"}[mode]
    c = Conn(inst.host, inst.ports[port], implicit=(mode == "465"))
    c.reply()
    c.cmd("EHLO client.test")
    if mode != "465":
        c.cmd("STARTTLS")
        c.starttls()
        c.cmd("EHLO client.test")
    if mode != "25":
        tok = base64.b64encode(b"\0" + ALICE.encode() + b"\0" +
                               PASSWORD.encode()).decode()
        code, _ = c.cmd("AUTH PLAIN " + tok)
        assert code == 235, code
    return c


def send_messages(inst, mode, sizes, rng):
    """Sends one message per size; returns (stalls, slow, worst latency,
    accepted)."""
    stalls = slow = accepted = 0
    worst = 0.0
    c = smtp_session(inst, mode)
    for n in sizes:
        data = body(rng, n)
        try:
            # On port 25 an anonymous sender of a hosted domain is
            # refused: a remote one sends there.
            c.cmd("MAIL FROM:<%s>" % (ALICE if mode != "25" else
                                      "sender@remote.test"))
            c.cmd("RCPT TO:<%s>" % BOB)
            code, _ = c.cmd("DATA")
            assert code == 354, code
            c.sock.sendall(data + b".\r\n")
            t0 = time.monotonic()
            code, _ = c.reply()
            dt = time.monotonic() - t0
        except (socket.timeout, TimeoutError):
            stalls += 1
            c.close()
            c = smtp_session(inst, mode)
            continue
        worst = max(worst, dt)
        if dt > REPLY_MAX:
            slow += 1
        if code == 250:
            accepted += 1
    c.cmd("QUIT")
    c.close()
    return stalls, slow, worst, accepted


def pipeline(c, command, count):
    """Sends count commands in one go while reading the replies; returns
    how many replies came before STALL seconds without progress.  One
    thread does both: an SSL socket may not be read and written from two
    threads at once (OpenSSL's SSL object is not thread-safe), which made
    a reader thread see a spurious end of stream."""
    data = (command + "\r\n").encode() * count
    sock = c.sock
    pending = getattr(sock, "pending", lambda: 0)
    again = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError)
    got, sent, why = 0, 0, []
    quiet_until = time.monotonic() + STALL
    sock.setblocking(False)
    try:
        while got < count:
            while b"\r\n" in c.buf and got < count:
                ln, c.buf = c.buf.split(b"\r\n", 1)
                if ln[:1] in (b"2", b"+"):
                    got += 1
                elif len(why) < 3:
                    why.append("reply %d: %r" % (got, ln[:200]))
            if got >= count:
                break
            writing = sent < len(data)
            r, w, _ = select.select([sock], [sock] if writing else [], [],
                                    0.5)
            moved = False
            if r or pending():
                try:
                    d = sock.recv(65536)
                    if not d:
                        why.append("after %d replies: closed" % got)
                        break
                    c.buf += d
                    moved = True
                except again:
                    pass
            if writing and w:
                try:
                    sent += sock.send(data[sent:sent + 65536])
                    moved = True
                except again:
                    pass
            now = time.monotonic()
            if moved:
                quiet_until = now + STALL
            elif now > quiet_until:
                why.append("after %d replies: %.0f s without progress"
                           % (got, STALL))
                break
    except OSError as e:
        why.append("after %d replies: %r" % (got, e))
    finally:
        sock.settimeout(STALL)
    pipeline.why = "; ".join(why)
    return got


def main():
    t = Check()
    inst = instance(extra={"smtp": {"max_message_size": str(8 << 20)}})
    rng = random.Random(20)
    try:
        inst.start("smtpd")
        inst.start("pop3d")
        sizes = [rng.randint(128 << 10, 1 << 20) for _ in range(MESSAGES)]
        total = 0
        for mode in ("465", "587", "25"):
            stalls, slow, worst, ok = send_messages(inst, mode, sizes, rng)
            total += ok
            t.eq(stalls, 0, "%s: no big message waits for more input" % mode)
            t.ok(slow == 0, "%s: every reply within %.0f s of the last byte"
                 % (mode, REPLY_MAX), "%d slow, worst %.3f s" % (slow, worst))
            t.eq(ok, MESSAGES, "%s: every message accepted" % mode)

        # POP3S: RETR each of the stored messages, timed.
        c = Conn(inst.host, inst.ports["pop3s"], implicit=True)
        c.line()
        c.sock.sendall(b"USER %s\r\nPASS %s\r\n" % (BOB.encode(),
                                                    PASSWORD.encode()))
        c.line()
        t.ok(c.line().startswith(b"+OK"), "POP3S login")
        c.sock.sendall(b"STAT\r\n")
        n = int(c.line().split()[1])
        t.eq(n, total, "POP3S: every message in the maildrop")
        stalls = 0
        worst = 0.0
        for i in range(1, n + 1):
            c.sock.sendall(b"RETR %d\r\n" % i)
            t0 = time.monotonic()
            try:
                ln = c.line()
                while True:
                    ln = c.line()
                    if ln == b".":
                        break
            except (socket.timeout, TimeoutError):
                stalls += 1
                break
            worst = max(worst, time.monotonic() - t0)
        t.eq(stalls, 0, "POP3S: every RETR completes")
        t.ok(worst < REPLY_MAX * 2, "POP3S: RETR of up to 1 MiB within 2 s",
             "worst %.3f s" % worst)

        # 20,000 pipelined NOOPs, three runs on each daemon.
        for run in range(3):
            got = pipeline(c, "NOOP", NOOPS)
            t.ok(got == NOOPS, "POP3S run %d: every NOOP answered" % run,
                 "%d of %d (%s)\n%s" % (got, NOOPS, pipeline.why,
                                       inst.log("pop3d")[-3000:]))
        c.sock.sendall(b"QUIT\r\n")
        c.line()
        c.close()
        # Authenticated (587, STARTTLS + AUTH PLAIN): an anonymous
        # session would meet the junk-command limit long before.
        for run in range(3):
            s = smtp_session(inst, "587")
            got = pipeline(s, "NOOP", NOOPS)
            t.ok(got == NOOPS, "SMTP STARTTLS run %d: every NOOP answered"
                 % run, "%d of %d (%s)\n%s" % (got, NOOPS, pipeline.why,
                                              inst.log("smtpd")[-3000:]))
            s.close()
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
