"""End-to-end test harness: a private postroom instance on loopback.

An Instance owns a temporary directory with a config file, a self-signed
certificate, a data dir and free unprivileged ports; it runs the real
`postroom` CLI and starts the real daemons, and stops them by PID.

    with Instance() as inst:
        inst.cli("domain", "add", "example.test")
        inst.add_user("alice@example.test", "secret-pw")
        inst.start("smtpd")
        ...
"""

import os
import random
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time

import procs

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("POSTROOM_BUILD_DIR", os.path.join(SRC_ROOT, "build"))

BIN = {
    "cli": os.path.join(BUILD, "tools", "postroom"),
    "smtpd": os.path.join(BUILD, "smtpd", "postroom-smtpd"),
    "pop3d": os.path.join(BUILD, "pop3d", "postroom-pop3d"),
}

_CERT_CACHE = os.path.join(tempfile.gettempdir(), "postroom-test-cert")


def _ephemeral_low():
    """The first port of the kernel's ephemeral range (the source ports
    of outgoing connections), 32768 when it cannot be read."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_ports_given = set()


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now, below the ephemeral range.

    A port the kernel handed out for bind(0) comes from the ephemeral
    range, where any client socket of a parallel test may take it as its
    source port before the daemon binds it (the daemon then exits with
    "address in use").  Ports below that range are never given to
    clients; each is handed out once per process."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = min(_ephemeral_low(), 65536)
    first = 10000 if low > 20000 else 1024
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(first, low)
        if port in _ports_given:
            continue
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def closed_udp_port(host="127.0.0.1"):
    """A UDP port on host that nothing listens on (free a moment ago): a
    query sent there is refused at once (ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def parallel(n, fn):
    """Runs fn(i) for i in range(n) at once (released together by a
    barrier); their results in order, an exception as a result too."""
    out = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(30)
            out[i] = fn(i)
        except Exception as e:   # a failed client is a result too
            out[i] = e
    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out


def make_cert(dirpath, cn="localhost"):
    """A self-signed RSA certificate and key (PEM) for cn and 127.0.0.1."""
    cert = os.path.join(dirpath, "cert.pem")
    key = os.path.join(dirpath, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1,IP:::1" % cn],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    return cert, key


def wait_for(pred, timeout=10.0, step=0.05):
    """Polls pred until it is true or timeout passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def close_all(*things):
    """Closes each of things that is not None (instances, fake servers,
    DNS, peers), in order."""
    for x in things:
        if x is not None:
            x.close()


def wait_port(host, port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("daemon exited with %s" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %s:%d" % (host, port))


class Instance:
    """A config, a data dir and the daemons of one postroom installation."""

    def __init__(self, host="127.0.0.1", hostname="mx.example.test",
                 extra=None, tls=True):
        self.tmp = tempfile.mkdtemp(prefix="postroom-e2e-")
        self.host = host
        self.hostname = hostname
        self.data_dir = os.path.join(self.tmp, "data")
        self.ports = {k: free_port(host) for k in
                      ("smtp", "submission", "submissions", "pop3", "pop3s")}
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_cert(self.tmp)
        self.extra = extra or {}
        # smtpd looks up every client on port 25 whatever [inbound]
        # says (iprev, RFC 8601 3); unless a test names a DNS server of
        # its own, those queries are refused on loopback rather than
        # sent to the machine's resolver.
        self.no_dns = "127.0.0.1:%d" % closed_udp_port()
        self.procs = {}
        self.logs = {}
        self.config = os.path.join(self.tmp, "postroom.conf")
        self.write_config()
        self.cli("init")

    def hp(self, name):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (h, self.ports[name])

    def write_config(self):
        sections = {
            "server": {
                "hostname": self.hostname,
                "data_dir": self.data_dir,
                "user": "",
                "log_level": "debug",
            },
            "smtp": {
                "listen": self.hp("smtp"),
                "submission": self.hp("submission"),
                "submissions": self.hp("submissions") if self.cert else "",
                "allow_plaintext_auth": "true",
                "max_connections_per_ip": "0",
            },
            "pop3": {
                "listen": self.hp("pop3"),
                "pop3s": self.hp("pop3s") if self.cert else "",
                "allow_plaintext_auth": "true",
            },
            "tls": {"cert": self.cert or "", "key": self.key or ""},
            "relay": {},
            # The inbound checks ask DNS about every sender; a test that
            # wants them turns them on with its own loopback DNS server
            # (tests/lib/dnsserver.py), so that no test asks the
            # machine's resolver about test domains.
            "inbound": {"spf": "false", "dkim": "false", "dmarc": "false"},
            "dns": {"resolver": self.no_dns},
        }
        for sec, kv in self.extra.items():
            sections.setdefault(sec, {}).update(kv)
        # A test's own server named the 0.1 way ([relay] resolver, an
        # alias of [dns] resolver) replaces the closed port too.
        if ("resolver" in sections["relay"]
                and "resolver" not in self.extra.get("dns", {})):
            del sections["dns"]["resolver"]
        with open(self.config, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    def env(self):
        e = dict(os.environ)
        e["POSTROOM_CONFIG"] = self.config
        return e

    def cli(self, *args, input=None, check=True):
        """Runs the postroom CLI; returns the CompletedProcess (text)."""
        r = subprocess.run([BIN["cli"], "-c", self.config] + list(args),
                           input=input, capture_output=True, text=True,
                           env=self.env(), timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("postroom %s: exit %d: %s" % (
                " ".join(args), r.returncode, r.stderr.strip()))
        return r

    def add_domain(self, domain):
        self.cli("domain", "add", domain)

    def add_user(self, address, password, quota=None):
        args = ["user", "add", address, "--password-stdin"]
        if quota is not None:
            args += ["--quota", str(quota)]
        self.cli(*args, input=password + "\n")

    def start(self, daemon):
        """Starts postroom-smtpd or postroom-pop3d; waits for its ports."""
        log = open(os.path.join(self.tmp, daemon + ".log"), "ab")
        p = subprocess.Popen([BIN[daemon], "-c", self.config],
                             stdout=log, stderr=subprocess.STDOUT,
                             env=self.env())
        self.procs[daemon] = p
        self.logs[daemon] = log
        names = {"smtpd": ["smtp", "submission"] +
                 (["submissions"] if self.cert else []),
                 "pop3d": ["pop3"] + (["pop3s"] if self.cert else [])}[daemon]
        try:
            for n in names:
                wait_port(self.host, self.ports[n], proc=p)
        except RuntimeError as e:
            # The daemon's own words say why it did not come up.
            log.flush()
            with open(log.name, "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace")
            raise RuntimeError("%s %s; its log ends:\n%s" % (
                daemon, e, tail)) from None
        return p

    def stop(self, daemon, sig=signal.SIGTERM, timeout=15):
        p = self.procs.pop(daemon, None)
        if p is None:
            return None
        procs.stop_popen(p, timeout, sig)
        self.logs.pop(daemon).close()
        return p.returncode

    def kill(self, daemon):
        return self.stop(daemon, sig=signal.SIGKILL)

    def log(self, daemon):
        with open(os.path.join(self.tmp, daemon + ".log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def mailbox(self, address):
        """`postroom mailbox list` lines for address."""
        out = self.cli("mailbox", "list", address).stdout
        return [line for line in out.splitlines() if line]

    # The store's tables, read directly and read-only, for what the CLI
    # does not show (stored octets, queue rows).

    def db(self):
        path = os.path.join(self.data_dir, "mail.db")
        return sqlite3.connect("file:%s?mode=ro" % path, uri=True,
                               timeout=10)

    def stored(self, address):
        """The stored octets (prepended trace fields + message) of each
        message in address's mailbox, in arrival order."""
        with self.db() as c:
            rows = c.execute(
                "SELECT b.data FROM mailbox m"
                " JOIN bodies b ON b.id = m.body_id"
                " JOIN users u ON u.id = m.user_id WHERE u.address = ?"
                " ORDER BY m.id", (address.lower(),)).fetchall()
        return [bytes(r[0]) for r in rows]

    def queued_rcpts(self):
        """The outbound queue's pending recipients, sorted."""
        with self.db() as c:
            return sorted(r[0] for r in c.execute(
                "SELECT address FROM queue_rcpt").fetchall())

    def close(self):
        for d in list(self.procs):
            self.stop(d)
        procs.remove_tmp(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
