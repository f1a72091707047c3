"""A small SMTP client for the latency workload (and a stand-in for
smtp-source where Postfix's test tools are not installed).

One transaction = MAIL FROM, RCPT TO, DATA, the message and its final
reply; no pipelining, as smtp-source does it.
"""

import socket
import threading
import time

import benchlib


class SmtpError(Exception):
    pass


def make_message(size, sender, rcpt, tag=""):
    """Headers plus size bytes of 76-column body lines, CRLF, dot-safe."""
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: bench %s\r\n"
            "Message-ID: <%s.%f@bench.client>\r\n\r\n" % (
                sender, rcpt, tag, tag or "m", time.time())).encode()
    line = b"x" * 76 + b"\r\n"
    body = line * (size // len(line))
    body += b"y" * (size - len(body)) + b"\r\n" if size > len(body) else b""
    return head + body


class RawSmtp:
    def __init__(self, host, port, helo="client.test", timeout=60,
                 source=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        if source:
            self.s.bind((source, 0))
        self.s.connect((host, port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""
        self.expect(220)
        self.command(b"EHLO " + helo.encode(), 250)

    def reply(self):
        """Reads one (possibly multi-line) reply; returns (code, text)."""
        lines = []
        while True:
            while b"\r\n" not in self.pending:
                d = self.s.recv(65536)
                if not d:
                    raise SmtpError("connection closed")
                self.pending += d
            line, self.pending = self.pending.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        try:
            code = int(lines[-1][:3])
        except ValueError:
            raise SmtpError("bad reply %r" % lines[-1])
        return code, b"\n".join(lines)

    def expect(self, code):
        c, text = self.reply()
        if c != code:
            raise SmtpError("expected %d, got %r" % (code, text))
        return text

    def command(self, line, code):
        self.s.sendall(line + b"\r\n")
        return self.expect(code)

    def transaction(self, sender, rcpt, message):
        """Sends one message; returns the seconds from MAIL FROM to the
        final 250."""
        t = time.perf_counter()
        self.command(b"MAIL FROM:<" + sender.encode() + b">", 250)
        self.command(b"RCPT TO:<" + rcpt.encode() + b">", 250)
        self.command(b"DATA", 354)
        self.s.sendall(message + b".\r\n")
        self.expect(250)
        return time.perf_counter() - t

    def quit(self):
        try:
            self.s.sendall(b"QUIT\r\n")
            self.reply()
        except (OSError, SmtpError):
            pass
        self.s.close()


def latency(host, port, sessions, per_session, size, sender, rcpt,
            warmup=0):
    """sessions concurrent sessions (one thread each) send warmup
    unmeasured messages, then per_session measured ones of size bytes, all
    sessions starting together; returns the list of transaction seconds."""
    msg = make_message(size, sender, rcpt, "lat")

    def job(sync):
        c = RawSmtp(host, port)
        for _ in range(warmup):
            c.transaction(sender, rcpt, msg)
        sync()
        mine = [c.transaction(sender, rcpt, msg) for _ in range(per_session)]
        c.quit()
        return mine

    results, errors, _wall = benchlib.run_together([job] * sessions)
    if errors:
        raise SmtpError("; ".join(errors[:5]))
    return [x for r in results for x in r]


def source(host, port, sessions, count, size, sender, rcpt):
    """What `smtp-source -s sessions -m count -l size` does: count
    messages over sessions parallel clients, a new connection per
    message.  Returns the number of messages accepted."""
    msg = make_message(size, sender, rcpt, "src")
    return source_messages(host, port, sessions, [msg] * count, sender,
                           rcpt)


def source_messages(host, port, sessions, msgs, sender, rcpt,
                    helo="client.test"):
    """msgs over sessions parallel clients, a new connection per message
    (as smtp-source does); each client greets with helo.  Returns the
    number of messages accepted; raises SmtpError after the first
    failure."""
    left = list(msgs)
    done = [0]
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if not left or errors:
                    return
                msg = left.pop()
            try:
                c = RawSmtp(host, port, helo=helo)
                c.transaction(sender, rcpt, msg)
                c.quit()
                with lock:
                    done[0] += 1
            except Exception as e:
                errors.append(str(e))
                return

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    if errors:
        raise SmtpError("; ".join(errors[:5]))
    return done[0]
