#!/usr/bin/env python3
"""Replays tests/dialog/pop3/*.dlg over loopback TCP against the running
postroom-pop3d (docs/ARCHITECTURE.md 6.1).  The dialog runner in tests/unit runs the
same files in process against the core with a fake store; here the users
and messages are real, STLS is a real TLS handshake, and the UIDLs of the
files are mapped to the ones the store assigned.

Dialogs that need a store failure the daemon cannot be made to show
(! locked, ! tempfail, failing message reads) or non-default limits run
only in process (dialog-pop3); they are listed as TAP comments."""

import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import unittest

from pop3_util import (DOMAIN, Raw, client_context, count_log, deliver,
                       harness, new_instance, wait_idle)
import tap  # noqa: E402

DLG_DIR = os.path.join(harness.SRC_ROOT, "tests", "dialog", "pop3")


def expand(s):
    """%hex[..]%, %repeat[N x s]% and %nocrlf% (returns bytes, nocrlf)."""
    out = b""
    nocrlf = False
    i = 0
    while i < len(s):
        if s.startswith("%hex[", i):
            e = s.index("]%", i)
            out += bytes.fromhex(s[i + 5:e].replace(" ", ""))
            i = e + 2
        elif s.startswith("%repeat[", i):
            e = s.index("]%", i)
            n, rest = s[i + 8:e].split(" x ", 1)
            out += rest.encode() * int(n)
            i = e + 2
        elif s.startswith("%nocrlf%", i):
            nocrlf = True
            i += 8
        else:
            out += s[i].encode("latin-1")
            i += 1
    return out, nocrlf


class Dialog:
    def __init__(self, path):
        self.name = os.path.basename(path)
        self.tls = "starttls"
        self.plaintext = False
        self.users = []
        self.messages = []          # (user, uidl, bytes)
        self.sessions = [[]]        # list of phases: [client bytes, [S]]
        self.remaining = None
        self.unsupported = None
        msg = None
        new_phase = True
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for line in lines:
            if msg is not None:
                if line == "! end":
                    self.messages.append(msg)
                    msg = None
                    continue
                data, nocrlf = expand(line)
                msg[2] += data + (b"" if nocrlf else b"\r\n")
                continue
            if not line or line.startswith("#"):
                continue
            if line.startswith("! config "):
                for w in line[9:].split():
                    k, v = w.split("=")
                    if k == "tls":
                        self.tls = v
                    elif k == "plaintext":
                        self.plaintext = v == "yes"
                    else:
                        self.unsupported = "config " + w
            elif line.startswith("! user "):
                addr, pw = line[7:].split(" ", 1)
                self.users.append((addr, expand(pw)[0].decode()))
            elif line.startswith("! message "):
                w = line[10:].split()
                if len(w) > 2:
                    self.unsupported = "message " + w[2]
                msg = [w[0], w[1], b""]
            elif line.startswith(("! locked", "! tempfail", "! permfail")):
                self.unsupported = line
            elif line == "! phase":
                new_phase = True
            elif line == "! session":
                self.sessions.append([])
                new_phase = True
            elif line.startswith("! remaining "):
                w = line[12:].split()
                self.remaining = (w[0], w[1:])
            elif line.startswith("C:"):
                if new_phase:
                    self.sessions[-1].append([b"", []])
                    new_phase = False
                data, nocrlf = expand(line[3:])
                self.sessions[-1][-1][0] += data + (
                    b"" if nocrlf else b"\r\n")
                if line.upper() == "C: STLS":
                    new_phase = True
            elif line.startswith("S:"):
                if not self.sessions[-1]:
                    self.sessions[-1].append([b"", []])
                self.sessions[-1][-1][1].append(line[3:])
            else:
                raise ValueError("%s: cannot parse %r" % (self.name, line))


def pattern(s, uidls):
    """A compiled regex for an S: line: '*' matches anything."""
    data, _ = expand(s)
    text = data.decode("latin-1")
    # Unique-ids appear as "N uid" (listing) or "+OK N uid" (UIDL N).
    m = re.match(r"^(\+OK )?(\d+) (\S+)$", text)
    if m and m.group(3) in uidls:
        text = text[:m.start(3)] + uidls[m.group(3)]
    return re.compile("^" + ".*".join(re.escape(p) for p in text.split("*"))
                      + "$", re.S)


class DialogReplay(unittest.TestCase):
    cert = None

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="postroom-dlg-")
        cls.cert = harness.make_cert(cls.certdir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def replay(self, dlg):
        extra = {"server": {"hostname": "pop.example.test"},
                 "pop3": {"allow_plaintext_auth":
                          "true" if dlg.plaintext else "false"}}
        users = list(dlg.users)
        # The fake store keeps mail for addresses that cannot log in.
        for user, _, _ in dlg.messages:
            if user not in [u[0] for u in users]:
                users.append((user, "unused-password"))
        inst = new_instance(users, extra=extra, tls=dlg.tls != "none",
                            cert=self.cert)
        try:
            self.run_dialog(inst, dlg)
        finally:
            inst.close()

    def run_dialog(self, inst, dlg):
        uidls = {}
        for user, fake, data in dlg.messages:
            deliver(inst, data, user)
            uidls[fake] = inst.mailbox(user)[-1].split("\t")[1]
        wait_idle(inst)
        ctx = client_context(inst) if dlg.tls != "none" else None
        for si, phases in enumerate(dlg.sessions):
            port = inst.ports["pop3s" if dlg.tls == "implicit" else "pop3"]
            r = Raw(inst.host, port,
                    ctx=ctx if dlg.tls == "implicit" else None, timeout=20)
            closed = False
            for data, expect in phases:
                if data:
                    r.send(data)
                for i, s in enumerate(expect):
                    where = "%s session %d: S: %s" % (dlg.name, si + 1, s)
                    if s == "<close>":
                        self.assertTrue(r.closed(10), where)
                        self.assertEqual(r.buf, b"", where)
                        closed = True
                        continue
                    got = r.line().decode("latin-1")
                    self.assertRegex(got, pattern(s, uidls), where)
                    if (got == "+OK Begin TLS negotiation" and
                            i == len(expect) - 1):
                        r.buf = b""
                        r.starttls(ctx)
            if not closed:
                # A client that drops: no QUIT, so no UPDATE.
                before = count_log(inst, r"\] disconnect ")
                r.close()
                deadline = time.monotonic() + 10
                while count_log(inst, r"\] disconnect ") <= before:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.02)
            r.close()
            self.wait_unlocked(inst)
        if dlg.remaining is not None:
            user, want = dlg.remaining
            got = [ln.split("\t")[1] for ln in inst.mailbox(user)]
            self.assertEqual(got, [uidls[u] for u in want], dlg.name)

    def wait_unlocked(self, inst):
        """The next session must not race the unlock of the last one."""
        db = os.path.join(inst.data_dir, "mail.db")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
            try:
                n = c.execute("SELECT count(*) FROM maildrop_locks")
                if n.fetchone()[0] == 0:
                    return
            finally:
                c.close()
            time.sleep(0.02)
        self.fail("maildrop still locked")


def load_tests(loader, tests, pattern_):
    suite = unittest.TestSuite()
    for name in sorted(os.listdir(DLG_DIR)):
        if not name.endswith(".dlg"):
            continue
        dlg = Dialog(os.path.join(DLG_DIR, name))
        if dlg.unsupported:
            # Not a skip: the dialog needs what only the in-process
            # runner (dialog-pop3) can set up, and runs there.
            print("# %s: in-process only (%s)" % (name, dlg.unsupported))
            continue

        def test(self, dlg=dlg):
            self.replay(dlg)

        tname = "test_" + re.sub(r"\W", "_", name[:-4])
        setattr(DialogReplay, tname, test)
        suite.addTest(DialogReplay(tname))
    return suite


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
