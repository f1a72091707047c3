"""Raw line clients for the end-to-end tests.

They send exactly the bytes they are given and read CRLF lines as they
come, for what smtplib and poplib cannot express: pipelining, over-long
lines, dropped connections, STARTTLS injection.  TLS starts either with
the first byte (ports 465 and 995, RFC 8314 3.3) or after STARTTLS/STLS
(RFC 3207, RFC 2595 4).

    r = SmtpRaw(host, port)              code, lines = r.cmd("EHLO x")
    p = Pop3Raw(host, port, ctx=tls_context(inst.cert))
"""

import socket
import ssl


def tls_context(cafile=None):
    """A TLS client context that trusts cafile (an instance's self-signed
    certificate) or, without one, any certificate at all.  Host names are
    not checked: the tests connect to loopback addresses."""
    if cafile is not None:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        return ctx
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class LineClient:
    """A TCP connection (IPv4 or IPv6 by the address's form) with a
    receive buffer; ctx wraps it in TLS at once."""

    def __init__(self, host, port, timeout=15.0, ctx=None, source=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source is not None:
            # Another client address: 127.0.0.0/8, or an address of a
            # test's own network namespace.
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        if ctx is not None:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def raw_line(self):
        """The next line without its CRLF, as bytes."""
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def starttls(self, ctx=None):
        """Wraps the connection in TLS (after the server's go-ahead)."""
        self.sock = (ctx or tls_context()).wrap_socket(
            self.sock, server_hostname="localhost")

    def closed(self, timeout=10.0):
        """True when the server closes the connection (EOF or reset)
        within timeout; data that comes before is kept in self.buf."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except OSError:     # reset, or a TLS alert on the way out
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __del__(self):
        self.close()


class SmtpRaw(LineClient):
    """SMTP: lines as text, replies as (code, [lines]) (RFC 5321 4.2)."""

    def __init__(self, host, port, timeout=20, tls=False, source=None):
        super().__init__(host, port, timeout, tls_context() if tls else None,
                         source)

    def line(self):
        return self.raw_line().decode("utf-8", "replace")

    def reply(self):
        """One complete (possibly multi-line) reply: (code, [lines])."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self, timeout=5.0):
        return super().closed(timeout)


class Pop3Raw(LineClient):
    """POP3: lines as bytes, multi-line responses still dot-stuffed
    (RFC 1939 3)."""

    def __init__(self, host, port, ctx=None, timeout=15.0, source=None):
        super().__init__(host, port, timeout, ctx, source)

    def line(self):
        return self.raw_line()

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def multi(self):
        """The lines of a multi-line response up to '.'."""
        lines = []
        while True:
            line = self.line()
            if line == b".":
                return lines
            lines.append(line)

    def login(self, user, password):
        assert self.line().startswith(b"+OK"), "no greeting"
        r = self.cmd("USER " + user)
        assert r.startswith(b"+OK"), r
        r = self.cmd("PASS " + password)
        assert r.startswith(b"+OK"), r
        return r

    def starttls(self, ctx=None):
        """After +OK to STLS; bytes that arrived in plaintext beyond the
        reply would be a server bug (RFC 2595 4)."""
        assert self.buf == b"", "data after the STLS reply: %r" % self.buf
        super().starttls(ctx)
