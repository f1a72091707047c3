"""Helpers for the postroom-smtpd end-to-end tests.

A populated instance, a raw line-oriented SMTP client for the cases the
standard clients refuse to produce, and read-only access to the stored
messages (Python's sqlite3 on <data_dir>/mail.db, tables of store/).
"""

import os
import socket
import sqlite3
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import Instance  # noqa: E402
from tap import Check  # noqa: E402,F401

PASSWORD = "correct horse battery"
DOMAIN = "example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"


def instance(extra=None, host="127.0.0.1", users=True, relay=False, **kw):
    """An Instance with example.test, alice, bob and a few aliases.

    The relay is off unless asked for: these tests look at what lands in
    the outbound queue, and no test may look up or reach real hosts."""
    extra = {k: dict(v) for k, v in (extra or {}).items()}
    if not relay:
        extra.setdefault("relay", {})["enabled"] = "false"
    inst = Instance(host=host, extra=extra, **kw)
    if users:
        inst.add_domain(DOMAIN)
        inst.add_user(ALICE, PASSWORD)
        inst.add_user(BOB, PASSWORD)
        inst.add_user("small@example.test", PASSWORD, quota=2000)
        inst.cli("alias", "add", "team@example.test", ALICE + "," + BOB)
        inst.cli("alias", "add", "fwd@example.test",
                 ALICE + ",friend@remote.test")
    return inst


def db(inst):
    path = os.path.join(inst.data_dir, "mail.db")
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)


def messages(inst, address):
    """The stored octets (prepended trace fields + message) of each
    message in address's mailbox, in arrival order."""
    with db(inst) as c:
        rows = c.execute(
            "SELECT b.data FROM mailbox m JOIN bodies b ON b.id = m.body_id"
            " JOIN users u ON u.id = m.user_id WHERE u.address = ?"
            " ORDER BY m.id", (address.lower(),)).fetchall()
    return [bytes(r[0]) for r in rows]


def count_bodies(inst):
    with db(inst) as c:
        return c.execute("SELECT count(*) FROM bodies").fetchone()[0]


def queued_rcpts(inst):
    with db(inst) as c:
        return sorted(r[0] for r in c.execute(
            "SELECT address FROM queue_rcpt").fetchall())


def split_stored(data):
    """(trace header block, rest): the fields postroom prepended end where
    the client's message starts; we find that by the known field names."""
    lines = data.split(b"\r\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith((b"Return-Path:", b"Received:")) or \
                ln.startswith((b"\t", b" ")):
            i += 1
            continue
        break
    return b"\r\n".join(lines[:i]) + b"\r\n", b"\r\n".join(lines[i:])


def tls_client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A line-oriented SMTP client that sends exactly the bytes given."""

    def __init__(self, host, port, timeout=20, tls=False):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        if tls:
            self.sock = tls_client_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def reply(self):
        """One complete (possibly multi-line) reply: (code, [lines])."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def starttls(self):
        self.sock = tls_client_context().wrap_socket(self.sock)

    def closed(self, timeout=5):
        """True if the server closes the connection (EOF) in time."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def wait_for(pred, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def log_has(inst, text, daemon="smtpd", timeout=5.0):
    return wait_for(lambda: text in inst.log(daemon), timeout)
