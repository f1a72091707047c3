"""Helpers for the POP3 end-to-end tests (tests/e2e/test_pop3_*.py).

The tests run the real postroom-pop3d through tests/lib/harness.py and put
mail into mailboxes with build/pop3d/pop3_deliver, which calls the store's
store_deliver exactly as postroom-smtpd's local delivery does.
"""

import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import harness  # noqa: E402
import procs  # noqa: E402
from procs import sanitized  # noqa: E402,F401
from lineclient import Pop3Raw as Raw  # noqa: E402,F401
from lineclient import tls_context  # noqa: E402

BUILD = harness.BUILD
DELIVER = os.path.join(BUILD, "pop3d", "pop3_deliver")
DOMAIN = "example.test"


def message(subject, body=b"hello\r\n", headers=()):
    """A small RFC 5322 message with CRLF line ends, as smtpd stores it."""
    head = [b"From: sender@example.org", b"To: someone@example.test",
            b"Subject: " + subject.encode()]
    head += [h.encode() if isinstance(h, str) else h for h in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def deliver(inst, data, *addresses, count=1):
    """Stores data (bytes) count times into each address's mailbox."""
    path = os.path.join(inst.tmp, "deliver-%d.eml" % time.monotonic_ns())
    with open(path, "wb") as f:
        f.write(data)
    args = [DELIVER]
    if count != 1:
        args += ["-n", str(count)]
    r = subprocess.run(args + [inst.data_dir, path] + list(addresses),
                       capture_output=True, text=True, timeout=600)
    os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError("pop3_deliver: " + r.stderr.strip())
    return r.stdout.split()


def new_instance(users=(), extra=None, host="127.0.0.1", tls=True,
                 start=True, cert=None):
    """An Instance with domain example.test, the given (address, password)
    users, and postroom-pop3d started.  cert=(cert, key) reuses an
    existing certificate instead of generating one (RSA keys are slow)."""
    inst = harness.Instance(host=host, extra=extra or {},
                            tls=tls and cert is None)
    try:
        if tls and cert is not None:
            inst.cert, inst.key = cert
            inst.write_config()
        inst.add_domain(DOMAIN)
        for addr, pw in users:
            inst.add_user(addr, pw)
        if start:
            inst.start("pop3d")
    except BaseException:
        inst.close()
        raise
    return inst


def client_context(inst):
    """A TLS client context that trusts the instance's certificate."""
    return tls_context(inst.cert)


def wait_log(inst, pattern, timeout=10.0, daemon="pop3d"):
    """Waits until the daemon's log matches pattern (a regex); returns
    the match."""
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, inst.log(daemon))
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError("log never matched %r:\n%s" %
                                 (pattern, inst.log(daemon)[-3000:]))
        time.sleep(0.05)


def count_log(inst, pattern, daemon="pop3d"):
    return len(re.findall(pattern, inst.log(daemon)))


def wait_idle(inst, at_least=None, timeout=10.0):
    """Waits until the daemon has seen at_least sessions (default: the
    harness's probe of each port) and every one of them has ended."""
    if at_least is None:
        at_least = 2 if inst.cert else 1
    deadline = time.monotonic() + timeout
    while (count_log(inst, r"\] connect client=") < at_least or
           count_log(inst, r"\] connect client=") !=
           count_log(inst, r"\] disconnect ")):
        if time.monotonic() > deadline:
            raise AssertionError("sessions still open:\n" +
                                 inst.log("pop3d")[-3000:])
        time.sleep(0.05)


def unstuff(lines):
    """Undoes RFC 1939 dot-stuffing and joins lines with CRLF."""
    out = [ln[1:] if ln.startswith(b".") else ln for ln in lines]
    return b"".join(ln + b"\r\n" for ln in out)


def pid_rss_kib(pid):
    """Anonymous resident memory of a process (heap, not mapped files),
    KiB."""
    return procs.status_kib(pid, "RssAnon:")
