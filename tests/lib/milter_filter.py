"""A scripted mail filter speaking the milter protocol (version 6) to an
MTA, over a unix or TCP socket on loopback, for postroom's tests.

It is the filter side of what libmilter implements (Sendmail's
libmilter/docs, the packet format in docs/MILTER.md): it answers
SMFIC_OPTNEG with the actions and protocol steps a test asks for,
records every step, macro, header and body chunk it sees, and answers
each step as the test scripted it:

    f = MilterFilter(tmpdir)                 # unix socket; tcp=True: inet
    f.script["eom"] = [("addheader", "X-Test", "yes"), ("continue",)]
    ... f.spec is "unix:/tmp/.../milter.sock" for [milter] servers
    f.conns[-1]["macros"]["{auth_authen}"], f.conns[-1]["headers"], ...
    f.stop()

Steps are connect, helo, mail, rcpt, data, header, eoh, body, eom; a
key "rcpt:ADDRESS" answers the RCPT of that address only.  A step
without a script entry gets SMFIR_CONTINUE (nothing for a step the
filter negotiated as no-reply).  One record in conns per MTA connection,
which serves a whole SMTP session: its "steps" list every message's
(abort and quit included).  Actions: continue, accept, reject,
tempfail, discard, ("replycode", "550 5.7.1 text"), ("addheader", name,
value), ("insheader", idx, name, value), ("chgheader", idx, name, value),
("chgfrom", addr), ("addrcpt", addr), ("addrcpt_par", addr, esmtp_args),
("delrcpt", addr), ("replbody", bytes), ("quarantine", reason),
progress, ("progress_for", seconds) (SMFIR_PROGRESS every second for
that long), ("sleep", seconds), hang (no answer until the MTA gives up),
garbage (a packet of no known command), close_mid (half a packet, then
close), close (hang up, after the answers before it).
"""

import os
import socket
import struct
import threading
import time

SMFIF_ALL = 0x1ff

STEP_OF = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt",
           b"T": "data", b"L": "header", b"N": "eoh", b"B": "body",
           b"E": "eom", b"A": "abort", b"Q": "quit"}
NR_FLAG = {"connect": 0x1000, "helo": 0x2000, "mail": 0x4000,
           "rcpt": 0x8000, "data": 0x10000, "header": 0x80,
           "eoh": 0x40000, "body": 0x80000}


def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def _z(s):
    if isinstance(s, str):
        s = s.encode()
    return s + b"\0"


class MilterFilter:
    def __init__(self, tmpdir, tcp=False, actions=SMFIF_ALL, protocol=0,
                 name="milter"):
        self.actions = actions
        self.protocol = protocol
        self.script = {}
        self.conns = []
        self.lock = threading.Lock()
        self.stopping = False
        if tcp:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.spec = "inet:127.0.0.1:%d" % self.sock.getsockname()[1]
        else:
            self.path = os.path.join(tmpdir, name + ".sock")
            if os.path.exists(self.path):
                os.unlink(self.path)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(self.path)
            self.spec = "unix:" + self.path
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # --- the listener ---------------------------------------------------

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,),
                             daemon=True).start()

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(5)
        if getattr(self, "path", None) and os.path.exists(self.path):
            os.unlink(self.path)

    def seen(self):
        with self.lock:
            return list(self.conns)

    # --- one MTA connection ---------------------------------------------

    def _read(self, c, n):
        b = b""
        while len(b) < n:
            d = c.recv(n - len(b))
            if not d:
                raise EOFError
            b += d
        return b

    def _conn(self, c):
        rec = {"steps": [], "macros": {}, "headers": [], "body": b"",
               "mail": None, "rcpts": [], "helo": None, "connect": None,
               "closed": False}
        with self.lock:
            self.conns.append(rec)
        c.settimeout(60)
        try:
            while True:
                (n,) = struct.unpack(">I", self._read(c, 4))
                if n < 1 or n > 1 << 20:
                    return
                d = self._read(c, n)
                cmd, data = d[:1], d[1:]
                if cmd == b"O":
                    c.sendall(pkt(b"O", struct.pack(
                        ">III", 6, self.actions, self.protocol)))
                    rec["steps"].append("optneg")
                    continue
                if cmd == b"D":
                    parts = data[1:].split(b"\0")
                    for i in range(0, len(parts) - 1, 2):
                        rec["macros"][parts[i].decode()] = \
                            parts[i + 1].decode()
                    continue
                step = STEP_OF.get(cmd, "unknown")
                rec["steps"].append(step)
                if step == "quit":
                    return
                if step == "abort":
                    continue
                self._record(rec, step, data)
                key = step
                if step == "rcpt":
                    addr = data.split(b"\0")[0].decode().strip("<>")
                    if "rcpt:" + addr in self.script:
                        key = "rcpt:" + addr
                if not self._answer(c, step, key):
                    return
        except (EOFError, OSError, socket.timeout):
            return
        finally:
            rec["closed"] = True
            try:
                c.close()
            except OSError:
                pass

    def _record(self, rec, step, data):
        if step == "header":
            name, value = data.split(b"\0")[:2]
            rec["headers"].append((name.decode(), value.decode()))
        elif step == "body":
            rec["body"] += data
        elif step == "mail":
            rec["mail"] = data.split(b"\0")[0].decode()
        elif step == "rcpt":
            rec["rcpts"].append(data.split(b"\0")[0].decode())
        elif step == "helo":
            rec["helo"] = data.split(b"\0")[0].decode()
        elif step == "connect":
            rec["connect"] = data.split(b"\0")[0].decode()

    def _answer(self, c, step, key):
        """Sends the scripted answer; False to end the connection."""
        acts = self.script.get(key)
        if acts is None:
            if not self.protocol & NR_FLAG.get(step, 0):
                c.sendall(pkt(b"c"))
            return True
        for a in acts:
            if isinstance(a, str):
                a = (a,)
            k = a[0]
            simple = {"continue": b"c", "accept": b"a", "reject": b"r",
                      "tempfail": b"t", "discard": b"d", "progress": b"p",
                      "skip": b"s"}
            if k in simple:
                c.sendall(pkt(simple[k]))
            elif k == "replycode":
                c.sendall(pkt(b"y", _z(a[1])))
            elif k == "addheader":
                c.sendall(pkt(b"h", _z(a[1]) + _z(a[2])))
            elif k == "insheader":
                c.sendall(pkt(b"i", struct.pack(">I", a[1]) + _z(a[2]) +
                              _z(a[3])))
            elif k == "chgheader":
                c.sendall(pkt(b"m", struct.pack(">I", a[1]) + _z(a[2]) +
                              _z(a[3])))
            elif k == "chgfrom":
                c.sendall(pkt(b"e", _z(a[1])))
            elif k == "addrcpt":
                c.sendall(pkt(b"+", _z(a[1])))
            elif k == "addrcpt_par":
                c.sendall(pkt(b"2", _z(a[1]) + _z(a[2])))
            elif k == "progress_for":
                end = time.monotonic() + a[1]
                while time.monotonic() < end:
                    c.sendall(pkt(b"p"))
                    time.sleep(1)
            elif k == "delrcpt":
                c.sendall(pkt(b"-", _z(a[1])))
            elif k == "replbody":
                body = a[1]
                for i in range(0, len(body), 65535):
                    c.sendall(pkt(b"b", body[i:i + 65535]))
            elif k == "quarantine":
                c.sendall(pkt(b"q", _z(a[1])))
            elif k == "sleep":
                time.sleep(a[1])
            elif k == "hang":
                # Until the MTA closes the connection.
                try:
                    while c.recv(4096):
                        pass
                except OSError:
                    pass
                return False
            elif k == "garbage":
                c.sendall(pkt(b"Z", b"junk"))
            elif k == "close_mid":
                c.sendall(struct.pack(">I", 100) + b"h")
                return False
            elif k == "close":
                # After the answers before it: the filter hangs up
                # between steps (between messages, after "eom").
                return False
            else:
                raise ValueError(k)
        return True
