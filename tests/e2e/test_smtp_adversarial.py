#!/usr/bin/python3
"""Hostile clients against postroom-smtpd: SMTP smuggling, STARTTLS
command injection, a 10 MB line, 1000 recipients, relay tricks, sender
spoofing, bad-command and HTTP floods, a slow client, the idle timeout,
and 1000 connections from one address with a per-IP limit."""

import resource
import smtplib
import socket
import ssl
import sys
import threading
import time

from smtp_util import (ALICE, BOB, PASSWORD, Check, Raw, instance, messages,
                       queued_rcpts, tls_client_context)

SMUGGLE = [
    ("LF.LF", b"\n.\n"),
    ("CR.CR", b"\r.\r"),
    ("CRLF.LF", b"\r\n.\n"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CR.CRLF", b"\r.\r\n"),
    ("CRLF.CR", b"\r\n.\r"),
]


def session(inst, port="smtp"):
    r = Raw(inst.host, inst.ports[port])
    r.reply()
    r.cmd("EHLO attacker.test")
    return r


def main():
    t = Check()
    inst = instance(extra={"smtp": {"max_connections_per_ip": "20",
                                    "timeout": "3"}})
    try:
        inst.start("smtpd")

        # SMTP smuggling: the hidden message must never be delivered and
        # the carrier is refused as a whole.
        for name, end in SMUGGLE:
            r = session(inst)
            r.send("MAIL FROM:<a@remote.test>\r\n"
                   "RCPT TO:<alice@example.test>\r\nDATA\r\n")
            r.reply()
            r.reply()
            r.reply()
            r.send(b"Subject: carrier\r\n\r\ntext" + end +
                   b"MAIL FROM:<admin@example.test>\r\n"
                   b"RCPT TO:<bob@example.test>\r\nDATA\r\n"
                   b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
            code, lines = r.reply()
            t.eq((code, lines[0][4:9]), (550, "5.6.0"),
                 "smuggling with %s: refused after the real end" % name)
            t.eq(r.cmd("NOOP")[0], 250,
                 "smuggling with %s: no further replies queued" % name)
            r.close()
        t.eq(messages(inst, ALICE), [], "no carrier delivered")
        t.eq(messages(inst, BOB), [], "no smuggled message delivered")

        # STARTTLS injection (CVE-2011-0411): RSET pipelined in the same
        # packet must not be answered inside TLS.
        r = session(inst)
        r.send("STARTTLS\r\nRSET\r\n")
        code, _ = r.reply()
        t.eq(code, 220, "STARTTLS ready")
        r.starttls()
        r.sock.settimeout(1.0)
        try:
            extra = r.sock.recv(1024)
        except (socket.timeout, TimeoutError, ssl.SSLError):
            extra = b""
        t.eq(extra, b"", "the injected RSET gets no reply inside TLS")
        r.sock.settimeout(20)
        code, lines = r.cmd("MAIL FROM:<a@remote.test>")
        t.eq(code, 503, "state reset: EHLO needed after STARTTLS")
        t.eq(r.cmd("EHLO attacker.test")[0], 250, "EHLO inside TLS")
        r.close()

        # A 10 MB line: refused after the first kilobyte, then closed.
        r = session(inst)
        try:
            r.send(b"MAIL FROM:<" + b"a" * (10 * 1024 * 1024))
        except OSError:
            pass
        try:
            code, lines = r.reply()
        except (EOFError, OSError):
            code, lines = 0, []
        t.eq(code, 500, "10 MB line: 500 5.5.2 Line too long")
        t.ok(r.closed(), "and the connection is closed")
        r.close()
        with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=20) as s:
            t.eq(s.noop()[0], 250, "daemon fine after the 10 MB line")

        # 1000 RCPTs pipelined: 100 accepted (RFC 5321 4.5.3.1.8), the
        # rest 452 4.5.3; one copy delivered.
        r = session(inst)
        r.send("MAIL FROM:<a@remote.test>\r\n" +
               "RCPT TO:<alice@example.test>\r\n" * 1000 + "DATA\r\n")
        r.reply()
        codes = [r.reply()[0] for _ in range(1000)]
        t.eq(codes.count(250), 100, "100 recipients accepted")
        t.eq(codes.count(452), 900, "900 refused with 452 4.5.3")
        t.eq(r.reply()[0], 354, "DATA")
        r.send("Subject: many\r\n\r\nx\r\n.\r\n")
        t.eq(r.reply()[0], 250, "delivered")
        r.close()
        t.eq(len(messages(inst, ALICE)), 1, "one copy for one mailbox")

        # Relay tricks, unauthenticated: all refused, nothing queued.
        r = session(inst)
        r.cmd("MAIL FROM:<a@remote.test>")
        for rcpt, want in [("<victim@elsewhere.test>", 554),
                           ("<@example.test:victim@elsewhere.test>", 554),
                           ("<victim%elsewhere.test@example.test>", 550),
                           ("<\"victim@elsewhere.test\"@example.test>", 550),
                           ("<victim@elsewhere.test.>", 501),
                           ("<victim@[192.0.2.1]>", 554)]:
            code, _ = r.cmd("RCPT TO:" + rcpt)
            t.eq(code, want, "relay trick %s refused" % rcpt)
        r.close()
        t.eq(queued_rcpts(inst), [], "nothing queued: no open relay")

        # An authenticated user cannot spoof another sender.
        with smtplib.SMTP(inst.host, inst.ports["submission"],
                          timeout=20) as s:
            s.login(ALICE, PASSWORD)
            for sender in (BOB, "postmaster@example.test",
                           "alice@remote.test", "ALICE@example.test.evil"):
                code, _ = s.mail(sender)
                t.eq(code, 553, "MAIL FROM:<%s> as alice refused" % sender)
                s.rset()

        # A bad-command flood and an HTTP request end the session.
        r = session(inst)
        r.send("XYZZY\r\n" * 25)
        codes = []
        try:
            while True:
                codes.append(r.reply()[0])
        except (EOFError, OSError):
            pass
        t.eq(codes, [500] * 20 + [421], "20 errors, then 421 and close")
        r.close()
        r = Raw(inst.host, inst.ports["smtp"])
        r.reply()
        r.send("GET / HTTP/1.1\r\nHost: mx.example.test\r\n\r\n")
        code, _ = r.reply()
        t.eq(code, 421, "HTTP request: 421")
        t.ok(r.closed(), "and closed")
        r.close()

        # A slow client does not hold up the others.
        slow = session(inst)
        stop = threading.Event()

        def trickle():
            try:
                for b in b"MAIL FROM:<slow@remote.test>\r\n":
                    if stop.is_set():
                        return
                    slow.send(bytes([b]))
                    time.sleep(0.05)
            except OSError:
                pass

        th = threading.Thread(target=trickle)
        th.start()
        t0 = time.monotonic()
        with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=20) as s:
            t.eq(s.sendmail("fast@remote.test", [BOB],
                            b"Subject: fast\r\n\r\nx\r\n"), {},
                 "a fast client is served while another trickles")
        t.ok(time.monotonic() - t0 < 1.0, "promptly")
        th.join()
        t.eq(slow.reply()[0], 250, "the slow client's command completes")
        slow.close()

        # Idle timeout ([smtp] timeout = 3 s here): 421 4.4.2.
        r = session(inst)
        t0 = time.monotonic()
        code, lines = r.reply()
        t.eq((code, lines[0][4:9]), (421, "4.4.2"), "idle timeout: 421 4.4.2")
        t.ok(2.5 < time.monotonic() - t0 < 6, "after about 3 s")
        t.ok(r.closed(), "and closed")
        r.close()

        # 1000 connections from one address, limit 20.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 1000
        if soft < want + 64:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE,
                                   (min(hard, want + 256), hard))
            except (ValueError, OSError):
                pass
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            want = min(want, soft - 64)
        socks = []
        greetings = []
        for _ in range(want):
            s = socket.create_connection((inst.host, inst.ports["smtp"]),
                                         timeout=20)
            socks.append(s)
        for s in socks:
            data = b""
            try:
                while b"\r\n" not in data:
                    d = s.recv(256)
                    if not d:
                        break
                    data += d
            except OSError:
                pass
            greetings.append(data[:3])
        t.eq(greetings.count(b"220"), 20, "%d connections: 20 greeted" % want)
        t.eq(greetings.count(b"421"), want - 20,
             "the other %d get 421 4.7.0" % (want - 20))
        for s in socks:
            s.close()
        # The count drops as they close: new connections are welcome.
        ok = False
        for _ in range(50):
            r = Raw(inst.host, inst.ports["smtp"])
            code, _ = r.reply()
            r.close()
            if code == 220:
                ok = True
                break
            time.sleep(0.1)
        t.ok(ok, "connections accepted again after the others closed")
        t.ok("Too many connections" in inst.log("smtpd") or
             "refused client=127.0.0.1 " in inst.log("smtpd"),
             "refusals logged")
        t.ok(inst.procs["smtpd"].poll() is None, "daemon still running")
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
