#!/usr/bin/python3
"""Session limits of both daemons: an IPv6 client counts as its /64 (for
max_connections_per_ip and for login throttling), the global session
caps ([smtp] max_connections, [pop3] max_connections, answered inside TLS
on the implicit-TLS ports), and [smtp] min_data_rate in DATA and BDAT.

The IPv6 cases need several addresses of one /64 and one of another.  The
test runs itself in a network namespace of its own (unshare -n, as root)
and adds fd00:1::/64 and fd00:2::/64 addresses to that namespace's
loopback device; the daemons it starts live and die in there with it.
"""

import base64
import os
import re
import subprocess
import sys
import time

from smtp_util import ALICE, PASSWORD, Check, instance, tls_client_context

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import parallel  # noqa: E402
from lineclient import Pop3Raw, SmtpRaw  # noqa: E402

NET1 = ["fd00:1::%x" % i for i in range(1, 0x20)]
NET2 = "fd00:2::2"
SERVER6 = NET1[0]


def in_own_netns():
    """Re-runs this script inside a new network namespace, once."""
    if os.environ.get("POSTROOM_TEST_NETNS") == "1":
        return
    env = dict(os.environ, POSTROOM_TEST_NETNS="1")
    r = subprocess.run(["unshare", "-n", sys.executable,
                        os.path.abspath(__file__)], env=env)
    sys.exit(r.returncode)


def setup_netns():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for a in NET1 + [NET2]:
        subprocess.run(["ip", "-6", "addr", "add", a + "/64", "dev", "lo",
                        "nodad"], check=True)


def plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" +
                            password.encode()).decode()


def first_line(host, port, source=None, tls=False):
    """The first line the server sends, and whether it closes then."""
    c = SmtpRaw(host, port, timeout=10, tls=tls, source=source)
    try:
        line = c.line()
        return line, c.closed(5)
    finally:
        c.close()



def per_64(t):
    inst = instance(host=SERVER6, extra={
        "smtp": {"max_connections_per_ip": "2"},
        "pop3": {"max_connections_per_ip": "2"}})
    held = []
    try:
        inst.start("smtpd")
        inst.start("pop3d")
        for name, want in (("smtp", "421 4.7.0 "),
                           ("pop3", "-ERR [SYS/TEMP] ")):
            port = inst.ports[name]
            for src in NET1[1:3]:
                c = SmtpRaw(SERVER6, port, timeout=10, source=src)
                c.line()
                held.append(c)
            line, closed = first_line(SERVER6, port, source=NET1[3])
            t.ok(line.startswith(want) and closed,
                 "%s: a third address of the same /64 is over the "
                 "per-IP limit of 2" % name, line)
            line, _ = first_line(SERVER6, port, source=NET2)
            t.ok(not line.startswith(want) and line[:1] in ("2", "+"),
                 "%s: an address of another /64 is let in" % name, line)
            for c in held:
                c.close()
            held.clear()
            time.sleep(0.5)
        t.ok("refused client=%s reason=max_connections_per_ip "
           "connections=3" % NET1[3] in
             inst.log("smtpd"), "smtp: the refusal is logged")

        # Login failures from ten addresses of one /64 add up.
        def fail(i):
            c = SmtpRaw(SERVER6, inst.ports["submission"], timeout=60,
                        source=NET1[4 + i])
            try:
                c.reply()
                c.cmd("EHLO client.test")
                return c.cmd("AUTH PLAIN " + plain(
                    "guess%d@example.test" % i, "wrong"))[0]
            finally:
                c.close()
        # Limit 2 per /64: the failing clients come two at a time.
        codes = []
        for k in range(5):
            codes += parallel(2, lambda i: fail(2 * k + i))
            # The daemon counts the closes before the next pair.
            time.sleep(0.5)
        t.ok(codes == [535] * 10, "ten failures from ten addresses of "
             "fd00:1::/64", codes)
        c = SmtpRaw(SERVER6, inst.ports["submission"], timeout=60,
                    source=NET1[20])
        c.reply()
        c.cmd("EHLO client.test")
        code, lines = c.cmd("AUTH PLAIN " + plain(ALICE, PASSWORD))
        c.close()
        t.ok(code == 454, "an eleventh address of the /64 is throttled, "
             "right password or not", lines)
        t.ok("auth client=%s status=throttled user=%s failures=10 "
             "account_failures=0 net=fd00:1::/64" % (NET1[20], ALICE) in
             inst.log("smtpd"), "the log names the address and its /64")
        c = SmtpRaw(SERVER6, inst.ports["submission"], timeout=60,
                    source=NET2)
        c.reply()
        c.cmd("EHLO client.test")
        code, lines = c.cmd("AUTH PLAIN " + plain(ALICE, PASSWORD))
        c.close()
        t.ok(code == 235, "another /64 logs in", lines)
    finally:
        for c in held:
            c.close()
        inst.close()


def max_connections(t):
    inst = instance(extra={
        "smtp": {"max_connections": "3"},
        "pop3": {"max_connections": "3"}})
    held = []
    try:
        inst.start("smtpd")
        inst.start("pop3d")
        for name, tls, want in (
                ("smtp", False, "421 4.7.0 Too many connections"),
                ("submissions", True, "421 4.7.0 Too many connections"),
                ("pop3", False, "-ERR [SYS/TEMP] Too many connections"),
                ("pop3s", True, "-ERR [SYS/TEMP] Too many connections")):
            port = inst.ports[name]
            # Three sessions from three addresses: no per-IP limit is
            # what stops the fourth.
            for i in range(3):
                c = SmtpRaw(inst.host, port, timeout=10, tls=tls,
                            source="127.0.3.%d" % (i + 1))
                c.line()
                held.append(c)
            line, closed = first_line(inst.host, port, tls=tls,
                                      source="127.0.3.9")
            t.ok(line.startswith(want) and closed,
                 "%s: the fourth session is refused%s" %
                 (name, " inside TLS" if tls else ""), line)
            held[0].send("NOOP\r\n")
            t.ok(held[0].line()[:1] in ("2", "+", "-"),
                 "%s: the sessions let in still work" % name)
            held.pop(0).close()
            time.sleep(0.5)
            line, _ = first_line(inst.host, port, tls=tls,
                                 source="127.0.3.9")
            t.ok(line[:1] in ("2", "+"), "%s: with one gone a new one "
                 "is let in" % name, line)
            for c in held:
                c.close()
            held.clear()
            time.sleep(0.5)
        full = (r"refused client=\S+ reason=max_connections sessions=\d+ "
                r"max_connections=3")
        t.ok(re.search(full, inst.log("smtpd")) and
             re.search(full, inst.log("pop3d")),
             "the refusals are logged")
    finally:
        for c in held:
            c.close()
        inst.close()


def start_tx(inst):
    c = SmtpRaw(inst.host, inst.ports["smtp"], timeout=30)
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<someone@remote.test>")
    code, _ = c.cmd("RCPT TO:<%s>" % ALICE)
    assert code == 250, code
    return c


def trickle(c, chunks, gap):
    """Sends chunks with gap seconds between them; the reply line that
    came instead, or None if all went out."""
    for ch in chunks:
        try:
            c.send(ch)
        except OSError:
            break
        time.sleep(gap)
        c.sock.setblocking(False)
        try:
            data = c.sock.recv(4096)
        except (BlockingIOError, OSError):
            data = None
        c.sock.setblocking(True)
        c.sock.settimeout(30)
        if data is not None:
            c.buf += data
            if b"\r\n" in c.buf or data == b"":
                break
    try:
        return c.line()
    except (EOFError, OSError):
        return None


def min_data_rate(t):
    # 200 octets/s after 2 s.
    inst = instance(extra={"smtp": {"min_data_rate": "200/2s"}})
    try:
        inst.start("smtpd")
        # A quick message is unaffected.
        c = start_tx(inst)
        c.cmd("DATA")
        code, lines = c.cmd("Subject: quick\r\n\r\n" +
                            ("x" * 70 + "\r\n") * 40 + ".")
        t.ok(code == 250, "a fast DATA is accepted", lines)
        c.close()

        # DATA trickled at ~20 octets/s.
        c = start_tx(inst)
        code, _ = c.cmd("DATA")
        t0 = time.monotonic()
        line = trickle(c, [b"Subject: slow\r\n"] +
                       [b"0123456789\r\n"] * 40, 0.5)
        took = time.monotonic() - t0
        t.ok(line is not None and line.startswith("421 4.4.2"),
             "DATA below min_data_rate gets 421 4.4.2 (%.1fs)" % took,
             line)
        t.ok(c.closed(5), "... and the connection is closed")
        t.ok(2.0 <= took < 6.0, "... once the grace period is over")
        c.close()

        # BDAT: a chunk announced, its octets trickled.
        c = start_tx(inst)
        c.send("BDAT 5000 LAST\r\n")
        t0 = time.monotonic()
        line = trickle(c, [b"x" * 10] * 40, 0.5)
        took = time.monotonic() - t0
        t.ok(line is not None and line.startswith("421 4.4.2"),
             "a BDAT chunk below min_data_rate gets 421 4.4.2 (%.1fs)" %
             took, line)
        c.close()

        # Between BDAT chunks the transfer goes on too.
        c = start_tx(inst)
        c.send("BDAT 10\r\n0123456789")
        code, _ = c.reply()
        t.ok(code == 250, "a first BDAT chunk is taken", code)
        t0 = time.monotonic()
        c.sock.settimeout(10)
        try:
            line = c.line()
        except (EOFError, OSError):
            line = None
        took = time.monotonic() - t0
        t.ok(line is not None and line.startswith("421 4.4.2"),
             "idling between BDAT chunks is below the rate too (%.1fs)" %
             took, line)
        c.close()

        log = inst.log("smtpd")
        t.ok(re.search(r"\] slow client=\S+ octets=\d+ seconds=[\d.]+ "
                       r"min_data_rate=200/s", log), "the cut is logged")
        t.ok(len(inst.stored(ALICE)) == 1, "only the fast message was "
             "delivered")
    finally:
        inst.close()


def main():
    in_own_netns()
    setup_netns()
    t = Check()
    per_64(t)
    max_connections(t)
    min_data_rate(t)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
