#!/usr/bin/python3
"""TLS session resumption on both daemons (docs/ARCHITECTURE.md, TLS).

A client that kept the session of its last connection (Python's
SSLSocket.session: the TLS 1.3 NewSessionTicket of RFC 8446 4.6.1, or the
TLS 1.2 ticket of RFC 5077) resumes it on the next one without a full
handshake (session_reused), and a TLS 1.3 resumption brings a fresh
ticket (RFC 8446 C.4: tickets are for one use).  Checked on 25 and 587 with STARTTLS, 465,
995 and 110 with STLS, for TLS 1.3 and TLS 1.2; a ticket of one port
resumes on another port of the same daemon (one set of ticket keys per
daemon) and not on the other daemon; a SIGHUP certificate reload keeps
the keys, so tickets issued before it resume after it; a restart makes
new keys, so they no longer do (a full handshake, not an error).
"""

import signal
import socket
import ssl

from smtp_util import ALICE, PASSWORD, Check, instance, wait_for

TIMEOUT = 30


def context(version):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


class Conn:
    """One connection: plaintext until starttls(), then TLS."""

    def __init__(self, port, ctx, session=None, implicit=False):
        self.ctx = ctx
        self.session = session
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=TIMEOUT)
        self.buf = b""
        if implicit:
            self.wrap()

    def wrap(self):
        self.sock = self.ctx.wrap_socket(self.sock, session=self.session)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise EOFError("closed after %r" % self.buf[-200:])
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def smtp_reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def cmd(self, line, smtp=True):
        self.sock.sendall(line + b"\r\n")
        return self.smtp_reply() if smtp else [self.line()]

    def close(self):
        self.sock.close()


def smtp(port, ctx, session=None, implicit=False):
    """A session on an SMTP port up to an EHLO under TLS; returns
    (reused, session, ok) and leaves nothing open."""
    c = Conn(port, ctx, session, implicit)
    try:
        c.smtp_reply()
        if not implicit:
            c.cmd(b"EHLO client.test")
            if not c.cmd(b"STARTTLS")[0].startswith(b"220"):
                return False, None, False
            c.wrap()
        ok = c.cmd(b"EHLO client.test")[0].startswith(b"250")
        # The reply came after the ticket (the server sends its
        # NewSessionTicket right after the handshake), so the session
        # to keep is complete now.
        ok = ok and c.cmd(b"QUIT")[0].startswith(b"221")
        return c.sock.session_reused, c.sock.session, ok
    finally:
        c.close()


def pop3(port, ctx, session=None, implicit=False):
    c = Conn(port, ctx, session, implicit)
    try:
        c.line()
        if not implicit:
            if not c.cmd(b"STLS", smtp=False)[0].startswith(b"+OK"):
                return False, None, False
            c.wrap()
        ok = c.cmd(b"USER " + ALICE.encode(), smtp=False)[0].startswith(
            b"+OK")
        ok = ok and c.cmd(b"PASS " + PASSWORD.encode(),
                          smtp=False)[0].startswith(b"+OK")
        ok = ok and c.cmd(b"QUIT", smtp=False)[0].startswith(b"+OK")
        return c.sock.session_reused, c.sock.session, ok
    finally:
        c.close()


def main():
    t = Check()
    inst = instance()
    try:
        inst.start("smtpd")
        inst.start("pop3d")
        p = inst.ports
        ports = [
            ("25 STARTTLS", smtp, p["smtp"], False),
            ("587 STARTTLS", smtp, p["submission"], False),
            ("465", smtp, p["submissions"], True),
            ("995", pop3, p["pop3s"], True),
            ("110 STLS", pop3, p["pop3"], False),
        ]
        versions = [("TLS 1.3", ssl.TLSVersion.TLSv1_3),
                    ("TLS 1.2", ssl.TLSVersion.TLSv1_2)]
        sessions = {}
        for vname, v in versions:
            ctx = context(v)
            for name, fn, port, implicit in ports:
                reused, sess, ok = fn(port, ctx, None, implicit)
                t.ok(ok and not reused and sess is not None,
                     "%s %s: full handshake, a session to keep" % (
                         vname, name))
                r2, sess2, ok2 = fn(port, ctx, sess, implicit)
                t.ok(ok2 and r2, "%s %s: resumed" % (vname, name),
                     inst.log("smtpd" if fn is smtp else "pop3d"))
                if v == ssl.TLSVersion.TLSv1_3:
                    # RFC 8446 C.4: a client should not offer a ticket
                    # twice, so a resumption brings a fresh one (its
                    # session id is the hash of the new ticket).
                    t.ok(sess2 is not None and sess2.id != sess.id,
                         "%s %s: a fresh ticket on resumption" % (
                             vname, name))
                # The resumed session's ticket resumes again.
                r3, _, ok3 = fn(port, ctx, sess2, implicit)
                t.ok(ok3 and r3, "%s %s: resumed again" % (vname, name))
                sessions[(vname, name)] = (fn, port, implicit, ctx, sess2)

        # One key set per daemon: a ticket from 25 resumes on 465 and
        # from 995 on 110; smtpd's tickets mean nothing to pop3d.
        ctx13 = context(ssl.TLSVersion.TLSv1_3)
        _, s25, _ = smtp(p["smtp"], ctx13)
        r, _, ok = smtp(p["submissions"], ctx13, s25, True)
        t.ok(ok and r, "a ticket from 25 resumes on 465")
        _, s995, _ = pop3(p["pop3s"], ctx13, None, True)
        r, _, ok = pop3(p["pop3"], ctx13, s995, False)
        t.ok(ok and r, "a ticket from 995 resumes on 110 STLS")
        r, _, ok = pop3(p["pop3s"], ctx13, s25, True)
        t.ok(ok and not r, "smtpd's ticket is a full handshake on pop3d")

        # SIGHUP: the certificate is reloaded, the keys stay.
        for d in ("smtpd", "pop3d"):
            before = inst.log(d).count("reloaded")
            inst.procs[d].send_signal(signal.SIGHUP)
            t.ok(wait_for(lambda: inst.log(d).count("reloaded") > before,
                          timeout=30), "%s reloaded on SIGHUP" % d)
        for (vname, name), (fn, port, implicit, ctx, sess) in \
                sessions.items():
            r, _, ok = fn(port, ctx, sess, implicit)
            t.ok(ok and r, "%s %s: a ticket from before SIGHUP resumes"
                 % (vname, name))

        # A restart: new keys; old tickets give a full handshake.
        inst.stop("smtpd")
        inst.start("smtpd")
        fn, port, implicit, ctx, sess = sessions[("TLS 1.3", "465")]
        r, sess_new, ok = fn(port, ctx, sess, implicit)
        t.ok(ok and not r, "after a restart an old ticket is a full "
             "handshake")
        r, _, ok = fn(port, ctx, sess_new, implicit)
        t.ok(ok and r, "after a restart new tickets resume")

        log = inst.log("smtpd") + inst.log("pop3d")
        t.ok("ticket" not in log.lower(), "nothing about ticket keys logged")
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    raise SystemExit(main())
