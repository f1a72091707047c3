"""POP3 clients used against every server alike.

Two clients download a maildrop (USER/PASS, STAT, RETR 1..n, QUIT; nothing
is deleted, so a maildrop can be downloaded again by the next run):

- "poplib": Python's poplib, line by line, as most scripts do;
- "raw":    a socket reading 64 KiB at a time, looking only for the
            terminating CRLF.CRLF of each multi-line reply.

Times exclude the login (USER/PASS), which both servers make cost the same
argon2id verification; it is measured on its own.
"""

import poplib
import socket
import time

import benchlib

CHUNK = 65536


class Pop3Error(Exception):
    pass


class RawPop3:
    """Minimal POP3 client over a plain socket with 64 KiB reads."""

    def __init__(self, host, port, timeout=60):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""
        line = self._line()
        if not line.startswith(b"+OK"):
            raise Pop3Error("greeting: %r" % line)

    def _line(self):
        while b"\r\n" not in self.pending:
            d = self.s.recv(CHUNK)
            if not d:
                raise Pop3Error("connection closed")
            self.pending += d
        line, self.pending = self.pending.split(b"\r\n", 1)
        return line

    def cmd(self, c):
        self.s.sendall(c + b"\r\n")
        line = self._line()
        if not line.startswith(b"+OK"):
            raise Pop3Error("%s: %r" % (c.split(b" ")[0].decode(), line))
        return line

    def multi(self, c):
        """Sends c, returns the length of the multi-line reply's body
        (including the terminating line)."""
        self.cmd(c)
        n = len(self.pending)
        # The status line's CRLF starts the terminator of an empty body.
        tail = (b"\r\n" + self.pending)[-5:]
        self.pending = b""
        while tail != b"\r\n.\r\n":
            data = self.s.recv(CHUNK)
            if not data:
                raise Pop3Error("connection closed in %r" % c)
            n += len(data)
            tail = (tail + data)[-5:]
        return n

    def login(self, user, password):
        self.cmd(b"USER " + user.encode())
        self.cmd(b"PASS " + password.encode())

    def stat(self):
        parts = self.cmd(b"STAT").split()
        return int(parts[1]), int(parts[2])

    def retr(self, i):
        return self.multi(b"RETR %d" % i)

    def quit(self):
        try:
            self.cmd(b"QUIT")
        finally:
            self.s.close()

    def close(self):
        self.s.close()


def connect(host, port, user, password, client="raw"):
    """A logged-in session of client ("raw" or "poplib")."""
    if client == "poplib":
        p = poplib.POP3(host, port, timeout=60)
        p.user(user)
        p.pass_(password)
    else:
        p = RawPop3(host, port)
        p.login(user, password)
    return p


def retr_all(p, client="raw"):
    """STAT, RETR of every message, QUIT; returns (messages, octets)."""
    n, _size = p.stat()
    total = 0
    for i in range(1, n + 1):
        total += p.retr(i)[2] if client == "poplib" else p.retr(i)
    p.quit()
    return n, total


def download(host, port, user, password, client="raw", expect=None,
             on_login=None):
    """Logs in and RETRs every message once.  Returns a dict with
    messages, bytes, login_s (USER/PASS round trips) and seconds (STAT,
    the RETRs and QUIT).  on_login(), if given, runs right after the
    login, before the clock of the download starts."""
    t0 = time.perf_counter()
    p = connect(host, port, user, password, client)
    login = time.perf_counter() - t0
    if on_login:
        on_login()
    t1 = time.perf_counter()
    n, total = retr_all(p, client)
    t2 = time.perf_counter()
    if expect is not None and n != expect:
        raise Pop3Error("%s has %d messages, expected %d" % (user, n, expect))
    return {"messages": n, "bytes": total, "login_s": login,
            "seconds": t2 - t1}


def _together(users, job):
    """One session per user, job(user)(sync) each, measured parts
    together (benchlib.run_together); (results, wall seconds)."""
    results, errors, wall = benchlib.run_together(
        [job(u) for u in users], names=users, join_timeout=300)
    if errors:
        raise Pop3Error("; ".join(errors[:5]))
    return results, wall


def parallel_download(host, port, users, password_of, client="raw",
                      expect=None):
    """Downloads the maildrops of all users at once, one session (thread)
    each; returns (messages, bytes, wall seconds of the download phase,
    list of login seconds).  All sessions log in first and start their
    RETRs together, so the wall time measures concurrent downloads."""

    def job(u):
        def run(sync):
            t0 = time.perf_counter()
            p = connect(host, port, u, password_of(u), client)
            login = time.perf_counter() - t0
            sync()
            n, total = retr_all(p, client)
            if expect is not None and n != expect:
                raise Pop3Error("%s has %d messages" % (u, n))
            return (n, total, login)
        return run

    results, wall = _together(users, job)
    return (sum(r[0] for r in results), sum(r[1] for r in results), wall,
            [r[2] for r in results])


def retr_latency(host, port, users, password_of, per_session, msgno=1,
                 warmup=0):
    """Each user's session (all at once, one thread each) RETRs message
    msgno warmup times unmeasured, then per_session times measured, all
    sessions starting together; returns the list of per-RETR seconds."""

    def job(u):
        def run(sync):
            p = RawPop3(host, port)
            p.login(u, password_of(u))
            for _ in range(warmup):
                p.retr(msgno)
            sync()
            mine = []
            for _ in range(per_session):
                t = time.perf_counter()
                p.retr(msgno)
                mine.append(time.perf_counter() - t)
            p.quit()
            return mine
        return run

    results, _wall = _together(users, job)
    return [x for r in results for x in r]
