#!/usr/bin/python3
"""Connections over the per-IP limit get one clear refusal that a client
can read: in plaintext on 25, 587 and 110; inside TLS on 465 and 995,
after the handshake (an implicit-TLS client can't read plaintext).
The connections that were allowed carry on."""

import socket
import sys
import time

from smtp_util import Check, instance, tls_client_context

LIMIT = 2


def first_line(host, port, tls):
    """The first line the server sends, and whether it then closes."""
    s = socket.create_connection((host, port), timeout=10)
    if tls:
        s = tls_client_context().wrap_socket(s)
    buf = b""
    try:
        while b"\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        line = buf.split(b"\r\n", 1)[0]
        closed = False
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    closed = True
                    break
        except (socket.timeout, TimeoutError):
            pass
        except OSError:
            closed = True
        return line, closed
    finally:
        s.close()


def main():
    t = Check()
    inst = instance(extra={
        "smtp": {"max_connections_per_ip": str(LIMIT)},
        "pop3": {"max_connections_per_ip": str(LIMIT)}})
    held = []
    try:
        inst.start("smtpd")
        inst.start("pop3d")
        for name, tls, want in (("smtp", False, b"421 4.7.0 "),
                                ("submissions", True, b"421 4.7.0 "),
                                ("pop3", False, b"-ERR [SYS/TEMP] "),
                                ("pop3s", True, b"-ERR [SYS/TEMP] ")):
            port = inst.ports[name]
            for _ in range(LIMIT):
                s = socket.create_connection((inst.host, port), timeout=10)
                if tls:
                    s = tls_client_context().wrap_socket(s)
                s.recv(4096)        # the greeting
                held.append(s)
            line, closed = first_line(inst.host, port, tls)
            t.ok(line.startswith(want), "%s over the limit: %r" %
                 (name, want.decode().strip()), line)
            t.ok(closed, "%s: then the server closes" % name)
            # The sessions that were let in still work.
            held[-1].sendall(b"NOOP\r\n")
            t.ok(held[-1].recv(4096)[:1] in (b"2", b"-", b"+"),
                 "%s: an allowed session still answers" % name)
            if tls:
                # A client over the limit that never starts its
                # handshake is not kept waiting for it for long.
                s = socket.create_connection((inst.host, port), timeout=30)
                t0 = time.monotonic()
                try:
                    gone = s.recv(1) == b""
                except OSError:
                    gone = True
                dt = time.monotonic() - t0
                s.close()
                t.ok(gone and dt < 20, "%s: a silent client over the "
                     "limit is closed (after %.1f s)" % (name, dt))
            for s in held:
                s.close()
            held.clear()
            # The daemon counts the closes before the next port's round.
            time.sleep(1.0)
    finally:
        for s in held:
            s.close()
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
