"""Helpers for the postroom-smtpd end-to-end tests.

A populated instance, a raw line-oriented SMTP client for the cases the
standard clients refuse to produce, and read-only access to the stored
messages (Python's sqlite3 on <data_dir>/mail.db, tables of store/).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from harness import Instance, wait_for  # noqa: E402,F401
from tap import Check  # noqa: E402,F401
from lineclient import SmtpRaw as Raw  # noqa: E402,F401
from lineclient import tls_context as tls_client_context  # noqa: E402,F401

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
    return inst.db()


def messages(inst, address):
    return inst.stored(address)


def count_bodies(inst):
    with db(inst) as c:
        return c.execute("SELECT count(*) FROM bodies").fetchone()[0]


def queued_rcpts(inst):
    return inst.queued_rcpts()


def split_stored(data):
    """(trace header block, rest): the fields postroom prepended end where
    the client's message starts; we find that by the known field names."""
    lines = data.split(b"\r\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith((b"Return-Path:", b"Received:",
                          b"Authentication-Results:", b"X-Spam-Flag:",
                          b"X-Spam-Reason:")) or \
                ln.startswith((b"\t", b" ")):
            i += 1
            continue
        break
    return b"\r\n".join(lines[:i]) + b"\r\n", b"\r\n".join(lines[i:])


def log_has(inst, text, daemon="smtpd", timeout=5.0):
    return wait_for(lambda: text in inst.log(daemon), timeout)
