"""Helpers for the outbound relay end-to-end tests (tests/e2e/test_relay*).

- Dns: a private dnsmasq on loopback serving MX/A/TXT records for the test
  domains, so postroom's resolver ([relay] resolver) finds the test MX hosts.
- FakeMX: a tiny scriptable SMTP server (socketserver) that answers what a
  test needs (refuse a recipient, greylist, advertise or not STARTTLS...)
  and records the transactions it accepted.
- submit(): alice hands a message to postroom's submission port with AUTH.
- TestCA: a private certificate authority (openssl) issuing server
  certificates for test names, for the relay's verified TLS.

Everything binds to 127.0.0.0/8 only, and every process started here is
stopped by PID.
"""

import os
import poplib
import shutil
import smtplib
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from harness import (Instance, close_all, free_port,  # noqa: E402,F401
                     wait_for)
from tap import Check, skip  # noqa: E402,F401
import procs  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"
PASSWORD = "correct horse battery"


def free_port_on(hosts):
    """A TCP port free on every one of hosts (all loopback addresses)."""
    for _ in range(200):
        port = free_port(hosts[0])
        ok = True
        for h in hosts:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((h, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no common free port on %s" % hosts)


def free_udp_tcp_port(host):
    for _ in range(200):
        port = free_port(host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free UDP+TCP port on %s" % host)


class Dns:
    """dnsmasq answering for *.test only from the records given:

        Dns(mx={"b.test": [(10, "mx.b.test")], "null.test": [(0, ".")]},
            a={"mx.b.test": "127.0.0.3"}, txt={"s._domainkey.a.test": "..."})

    Every other name under .test is NXDOMAIN (--local=/test/).

    With ttl=N dnsmasq answers as the authoritative server of .test and
    127.in-addr.arpa would (--auth-zone): TTL N on every record, and an
    SOA with MINIMUM N in every negative answer (RFC 2308 3), as a real
    zone gives them; by default it answers with TTL 0 and no SOA, so
    nothing is cached.  port=53 for peers whose resolver cannot be told
    a port (resolv.conf(5)); zone is the top-level domain served instead
    of .test.  Names in dead get SERVFAIL (dnsmasq forwards them to a
    port where nothing listens)."""

    def __init__(self, mx=None, a=None, txt=None, host="127.0.0.1",
                 ttl=None, port=None, zone="test", dead=()):
        if not os.path.exists(DNSMASQ):
            skip("dnsmasq is not installed")
        self.host = host
        self.port = port or free_udp_tcp_port(host)
        self.tmp = tempfile.mkdtemp(prefix="postroom-dns-")
        self.log = os.path.join(self.tmp, "dnsmasq.log")
        args = [DNSMASQ, "--no-daemon", "--port=%d" % self.port,
                "--listen-address=%s" % host, "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file=", "--local=/%s/" % zone, "--log-queries"]
        if os.geteuid() == 0:
            args.append("--user=root")
        if ttl is not None:
            args += ["--auth-server=ns.%s,%s" % (zone, host),
                     "--auth-zone=%s,127.0.0.0/8" % zone,
                     "--auth-ttl=%d" % ttl, "--local-ttl=%d" % ttl]
        # Names sent on to a server that is not there: dnsmasq answers
        # SERVFAIL for them, a temporary DNS failure.
        for name in dead:
            args.append("--server=/%s/127.0.0.1#9" % name)
        for dom, recs in (mx or {}).items():
            for pref, host_ in recs:
                args.append("--mx-host=%s,%s,%d" % (dom, host_, pref))
        for name, addr in (a or {}).items():
            addrs = addr if isinstance(addr, (list, tuple)) else [addr]
            args.append("--host-record=%s,%s" % (name, ",".join(addrs)))
        for name, text in (txt or {}).items():
            # dnsmasq joins comma-separated pieces into one TXT record of
            # several strings; DKIM verifiers concatenate them again.
            # No quotes: without a shell dnsmasq would serve them as
            # part of the text.
            chunks = [text[i:i + 200] for i in range(0, len(text), 200)]
            args.append("--txt-record=%s,%s" % (name, ",".join(chunks)))
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        # Ready once it answers on TCP.
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited: %s" % self.read_log())
            try:
                with socket.create_connection((host, self.port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("dnsmasq does not answer")
                time.sleep(0.05)

    @property
    def resolver(self):
        return "%s:%d" % (self.host, self.port)

    def read_log(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def close(self):
        procs.stop_popen(self.proc, 10)
        self.logf.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class FakeMX:
    """A scriptable SMTP server on (host, port).

    rcpt(addr) -> reply for RCPT TO (default "250 2.1.5 ok"); greeting,
    mail_reply and data_reply likewise.  starttls=(cert, key) offers
    STARTTLS, implicit_tls=(cert, key) runs TLS from the first byte (port
    465, RFC 8314); sasl_ir=False refuses an AUTH PLAIN initial response
    with 501 5.5.2 and wants it after a 334 (a bare AUTH PLAIN always
    gets the 334).  Accepted transactions land in .messages as
    (mail_from, [rcpts], data bytes); .sessions counts connections and
    .commands logs every command line received."""

    def __init__(self, host, port, greeting="220 fake.test ESMTP",
                 rcpt=None, mail_reply="250 2.1.0 ok",
                 data_reply="250 2.0.0 queued", starttls=None,
                 pipelining=True, name="fake.test", auth=None,
                 greeting_delay=0, data_delay=0, broken_tls=False,
                 ehlo_extra=0, ehlo_pad=90, implicit_tls=None,
                 sasl_ir=True):
        self.host, self.port = host, port
        self.greeting = greeting
        self.rcpt = rcpt or (lambda a: "250 2.1.5 ok")
        self.mail_reply = mail_reply
        self.data_reply = data_reply
        self.pipelining = pipelining
        self.name = name
        self.auth = auth            # (user, password) or None
        self.broken_tls = broken_tls  # offer STARTTLS, then fail it
        self.greeting_delay = greeting_delay
        self.data_delay = data_delay
        self.ehlo_extra = ehlo_extra  # padding lines in one EHLO write
        self.ehlo_pad = ehlo_pad      # ... of this many octets each
        self.data_received = 0      # complete DATA payloads seen
        self.sasl_ir = sasl_ir
        self.ir_refused = 0         # AUTH PLAIN lines refused for the IR
        self.auth_seen = []         # (mechanism, user, password, tls)
        self.messages = []
        self.commands = []
        self.sessions = 0
        self.tls_sessions = 0
        self.lock = threading.Lock()
        self.tls_ctx = None
        if starttls:
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(*starttls)
        self.implicit_ctx = None
        if implicit_tls:
            self.implicit_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.implicit_ctx.load_cert_chain(*implicit_tls)
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    fake.session(self)
                except (OSError, ssl.SSLError):
                    pass    # the client went away: part of some tests

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
            # The relay opens up to 20 connections at once; with the
            # default backlog of 5 the kernel would complete handshakes
            # nobody accepts, and those deliveries would hang.
            request_queue_size = 64

        self.server = Server((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def session(self, h):
        with self.lock:
            self.sessions += 1
        sock = h.connection
        rfile, wfile = h.rfile, h.wfile
        tls = False
        if self.implicit_ctx is not None:
            # RFC 8314 3.3: the handshake first, the greeting inside.
            sock = self.implicit_ctx.wrap_socket(sock, server_side=True)
            rfile = sock.makefile("rb")
            wfile = sock.makefile("wb")
            tls = True
            with self.lock:
                self.tls_sessions += 1

        def send(line):
            wfile.write(line.encode() + b"\r\n")
            wfile.flush()

        if self.greeting_delay:
            time.sleep(self.greeting_delay)
        send(self.greeting)
        if not self.greeting.startswith("220"):
            rfile.readline()
            send("221 bye")
            return
        mail, rcpts = None, []
        while True:
            raw = rfile.readline(4096)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.lock:
                self.commands.append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                ext = ["250-%s" % self.name]
                if self.pipelining:
                    ext.append("250-PIPELINING")
                if (self.tls_ctx is not None or self.broken_tls) and \
                        not tls and self.implicit_ctx is None:
                    ext.append("250-STARTTLS")
                if self.auth is not None:
                    ext.append("250-AUTH PLAIN LOGIN")
                ext.append("250-8BITMIME")
                ext += ["250-X-PAD%05d %s" % (i, "x" * self.ehlo_pad)
                        for i in range(self.ehlo_extra)]
                ext.append("250 SIZE 10000000")
                # One write: a big reply arrives as a burst of records.
                wfile.write("".join(e + "\r\n" for e in ext).encode())
                wfile.flush()
            elif verb == "STARTTLS" and self.broken_tls:
                send("220 2.0.0 go ahead")
                wfile.write(b"this is not a TLS server hello\r\n")
                wfile.flush()
                return
            elif verb == "STARTTLS" and self.tls_ctx is not None:
                send("220 2.0.0 go ahead")
                sock = self.tls_ctx.wrap_socket(sock, server_side=True)
                rfile = sock.makefile("rb")
                wfile = sock.makefile("wb")
                tls = True
                with self.lock:
                    self.tls_sessions += 1
            elif verb == "AUTH" and self.auth is not None:
                import base64
                parts = line.split(" ")
                mech = parts[1].upper() if len(parts) > 1 else ""
                user = pw = None
                if mech == "PLAIN" and len(parts) > 2 and \
                        not self.sasl_ir:
                    with self.lock:
                        self.ir_refused += 1
                    send("501 5.5.2 initial response not supported")
                    continue
                try:
                    if mech == "PLAIN" and len(parts) == 2:
                        # RFC 4954 4: no initial response, so an empty
                        # challenge asks for it.
                        send("334 ")
                        _, user, pw = base64.b64decode(
                            rfile.readline().strip()).decode().split("\0")
                    elif mech == "PLAIN" and len(parts) > 2:
                        _, user, pw = base64.b64decode(
                            parts[2]).decode().split("\0")
                    elif mech == "LOGIN":
                        send("334 VXNlcm5hbWU6")
                        user = base64.b64decode(
                            rfile.readline().strip()).decode()
                        send("334 UGFzc3dvcmQ6")
                        pw = base64.b64decode(
                            rfile.readline().strip()).decode()
                except (ValueError, UnicodeDecodeError):
                    pass
                with self.lock:
                    self.auth_seen.append((mech, user, pw, tls))
                if (user, pw) == tuple(self.auth):
                    send("235 2.7.0 authenticated")
                else:
                    send("535 5.7.8 bad credentials")
            elif verb == "MAIL":
                mail = line[len("MAIL FROM:"):].split(" ")[0].strip("<>")
                rcpts = []
                send(self.mail_reply)
                if not self.mail_reply.startswith("2"):
                    mail = None
            elif verb == "RCPT":
                addr = line[len("RCPT TO:"):].split(" ")[0].strip("<>")
                reply = self.rcpt(addr)
                if reply.startswith("2") and mail is not None:
                    rcpts.append(addr)
                send(reply)
            elif verb == "DATA":
                if mail is None or not rcpts:
                    send("554 5.5.1 no valid recipients")
                    continue
                send("354 go ahead")
                data = b""
                while True:
                    ln = rfile.readline()
                    if not ln:
                        return
                    if ln == b".\r\n":
                        break
                    if ln.startswith(b".."):
                        ln = ln[1:]
                    data += ln
                with self.lock:
                    self.data_received += 1
                if self.data_delay:
                    time.sleep(self.data_delay)
                reply = self.data_reply
                if reply.startswith("2"):
                    with self.lock:
                        self.messages.append((mail, rcpts, data))
                send(reply)
                mail, rcpts = None, []
            elif verb == "RSET":
                mail, rcpts = None, []
                send("250 2.0.0 ok")
            elif verb == "QUIT":
                send("221 2.0.0 bye")
                return
            else:
                send("502 5.5.2 command not implemented")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TestCA:
    """A private certificate authority made with openssl in dirpath:
    ca.pem is its certificate (what [relay] smarthost_ca points at),
    issue(name) a server certificate and key for DNS name name (or IP
    address) signed by it, as (cert, key) paths."""

    def __init__(self, dirpath, cn="Postroom Test CA"):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.cert = os.path.join(dirpath, "ca.pem")
        self.key = os.path.join(dirpath, "ca.key")
        self._n = 0
        self._openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.key,
            "-out", self.cert, "-days", "30", "-subj", "/CN=" + cn,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    @staticmethod
    def _openssl(*args):
        subprocess.run(["openssl"] + list(args), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def issue(self, name, alt=()):
        """alt: more DNS names for the subjectAltName."""
        self._n += 1
        base = os.path.join(self.dir, "srv%d" % self._n)
        cert, key, csr, ext = (base + ".pem", base + ".key", base + ".csr",
                               base + ".ext")
        san = ("IP:" if name.replace(".", "").isdigit() else "DNS:") + name
        san += "".join(",DNS:" + a for a in alt)
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % san)
        self._openssl("req", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.cert,
                      "-CAkey", self.key, "-set_serial",
                      str(1000 + self._n), "-days", "30", "-out", cert,
                      "-extfile", ext)
        os.chmod(key, 0o600)
        return cert, key


def submit(inst, user, to, msg, password=PASSWORD, sender=None):
    """Sends msg (bytes) as user through inst's submission port with AUTH
    (plaintext AUTH is allowed on loopback test instances).  Returns the
    refused-recipients dict of smtplib."""
    with smtplib.SMTP(inst.host, inst.ports["submission"],
                      local_hostname="client.test", timeout=30) as s:
        s.ehlo()
        s.login(user, password)
        return s.sendmail(sender or user, to, msg)


def pop3_fetch(inst, user, password=PASSWORD, delete=False):
    """Every message of user's maildrop over POP3 (RFC 1939), as bytes
    with CRLF line ends; delete marks each for deletion at QUIT."""
    p = poplib.POP3(inst.host, inst.ports["pop3"], timeout=20)
    try:
        p.user(user)
        p.pass_(password)
        count, _ = p.stat()
        out = []
        for i in range(1, count + 1):
            _, lines, _ = p.retr(i)
            out.append(b"\r\n".join(lines) + b"\r\n")
            if delete:
                p.dele(i)
        return out
    finally:
        p.quit()


def message(sender, to, subject, body="Hello.\r\n", extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
            "Message-ID: <%s@test>\r\n%s\r\n%s" % (
                sender, to, subject, subject.replace(" ", "."), extra,
                body)).encode()


def queue_list(inst):
    return inst.cli("queue", "list").stdout


def mailbox_bodies(inst, address):
    return inst.stored(address)


def queued(inst):
    """Pending recipients of the outbound queue."""
    return inst.queued_rcpts()


def relay_instance(host, hostname, dns, mx_port, domain, users=(),
                   relay=None, **kw):
    """An Instance that relays through dns to MX hosts on mx_port."""
    extra = {"relay": {"enabled": "true", "resolver": dns.resolver,
                       "mx_port": str(mx_port)}}
    extra["relay"].update(relay or {})
    inst = Instance(host=host, hostname=hostname, extra=extra, **kw)
    inst.add_domain(domain)
    for u in users:
        inst.add_user(u, PASSWORD)
    return inst


def two_servers():
    """postroom A (mx.a.test on 127.0.0.2, domain a.test, alice@a.test)
    and B (mx.b.test on 127.0.0.3, domain b.test, bob@b.test), both with
    SMTP on one port, so that each finds the other's MX there.  Returns
    (port, a, b); two_servers_dns() publishes them."""
    port = free_port_on(["127.0.0.2", "127.0.0.3"])
    a = Instance(host="127.0.0.2", hostname="mx.a.test")
    b = Instance(host="127.0.0.3", hostname="mx.b.test")
    try:
        for inst, dom in ((a, "a.test"), (b, "b.test")):
            inst.ports["smtp"] = port
            inst.add_domain(dom)
        a.add_user("alice@a.test", PASSWORD)
        b.add_user("bob@b.test", PASSWORD)
    except BaseException:
        close_all(a, b)
        raise
    return port, a, b


def two_servers_dns(a, b, port, txt):
    """A Dns with the MX and address records of two_servers()' a and b
    and the TXT records txt; both relay through it (the caller writes
    their configuration)."""
    dns = Dns(mx={"a.test": [(10, "mx.a.test")],
                  "b.test": [(10, "mx.b.test")]},
              a={"mx.a.test": "127.0.0.2", "mx.b.test": "127.0.0.3"},
              txt=txt)
    for inst in (a, b):
        inst.extra["relay"] = {"resolver": dns.resolver,
                               "mx_port": str(port)}
    return dns


def zone_txt(output):
    """{name: txt} from zone-file TXT records as `postroom dns` and
    `postroom dkim keygen` print them (strings concatenated)."""
    import re
    recs = {}
    text = output.replace("\n", " ")
    for m in re.finditer(r'(\S+)\.\s+IN\s+TXT\s+(\(([^)]*)\)|"[^"]*")',
                         text):
        body = m.group(3) if m.group(3) is not None else m.group(2)
        recs[m.group(1)] = "".join(re.findall(r'"([^"]*)"', body))
    return recs


def rsa_key():
    """A new RSA 2048 key to sign with python3-dkim: (PKCS#1 PEM private
    key, the p= of its key record, RFC 6376 3.6.1)."""
    import base64
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = k.private_bytes(serialization.Encoding.PEM,
                           serialization.PrivateFormat.TraditionalOpenSSL,
                           serialization.NoEncryption())
    pub = k.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, base64.b64encode(pub).decode()


def dkim_verify(data, txt_records, idx=0):
    """Verifies the DKIM signature of data (bytes) with python3-dkim,
    answering its DNS queries from txt_records ({name: txt}); idx picks
    the signature (0 the topmost).  Returns (ok, detail)."""
    import logging
    import dkim
    import io

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        v = txt_records.get(name.rstrip("."))
        return v.encode() if v is not None else None

    buf = io.StringIO()
    log = logging.getLogger("dkimverify")
    log.handlers[:] = [logging.StreamHandler(buf)]
    log.setLevel(logging.DEBUG)
    try:
        ok = dkim.DKIM(data, logger=log).verify(idx=idx, dnsfunc=dnsfunc)
    except Exception as e:  # dkim raises on malformed input
        return False, "%s: %s\n%s" % (type(e).__name__, e, buf.getvalue())
    return bool(ok), buf.getvalue()
