"""Debian's real mail filters as private milters for the tests and the
benchmarks: rspamd (its proxy worker in milter mode, scanning itself),
clamd with clamav-milter, and OpenDKIM verifying.

Each fixture owns a temporary directory (config, sockets, databases,
logs), listens on a loopback port or a unix socket in that directory,
runs in the foreground as a child of the test (as root: none of them is
told to change user) and is stopped by its PID.  Nothing is fetched from
the network: rspamd and OpenDKIM send their DNS queries to a
tests/lib/dnsserver.py on loopback, ClamAV's only signatures are the
EICAR test file's hash written here.  The system services of these
packages are never touched.  rspamd keeps the hyperscan databases it
compiles in a cache shared by the runs of the machine
($POSTROOM_RSPAMD_CACHE, default TMPDIR/postroom-rspamd-cache): a cold
start takes a minute or more on a busy machine, a warm one seconds.

    with Rspamd() as rs:                    # rs.milter = "inet:127.0.0.1:N"
        ...                                 # Postfix: smtpd_milters
    with ClamAV() as cv: ...                # clamd + clamav-milter
    with OpenDKIM({"s1._domainkey.a.test": "v=DKIM1; p=..."}) as od: ...

`milter` is the socket in the form that both postroom's [milter]
servers (postroom.conf(5)) and Postfix's smtpd_milters take:
inet:HOST:PORT or unix:PATH.  POSTROOM_KEEP_TMP=1 keeps the directories
(logs) after a run.
"""

import os
import socket
import subprocess
import tempfile
import time

import procs
from dnsserver import DNSServer
from harness import free_port

RSPAMD = "/usr/bin/rspamd"
CLAMD = "/usr/sbin/clamd"
CLAMAV_MILTER = "/usr/sbin/clamav-milter"
OPENDKIM = "/usr/sbin/opendkim"

# The GTUBE test string (rspamd's core rejects a text part carrying it)
# and the EICAR test file (68 octets); ClamAV's .hdb signature format is
# MD5:size:name.
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         b"$H+H*")
EICAR_HDB = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"


def available(*which):
    """None when the filters named ("rspamd", "clamav", "opendkim") are
    installed and can be run here, else why not."""
    need = {"rspamd": [RSPAMD], "clamav": [CLAMD, CLAMAV_MILTER],
            "opendkim": [OPENDKIM]}
    for w in which or need:
        for path in need[w]:
            if not os.path.exists(path):
                return "%s is not installed (tests/install-deps.sh)" % path
    return None


def _wait_socket(addr, proc, what, log, timeout):
    """Waits until addr (a (host, port) or a unix socket path) accepts;
    raises RuntimeError with the end of log when proc exits first or the
    deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s: %s" % (
                what, proc.returncode, _tail(log)))
        try:
            if isinstance(addr, str):
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(addr)
            else:
                with socket.create_connection(addr, 1):
                    pass
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("%s does not listen on %s: %s" % (
                    what, addr, _tail(log)))
            time.sleep(0.1)


def _tail(path, n=3000):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]
    except OSError:
        return ""


class _Filter:
    """A temporary directory and the processes started in it."""

    what = "filter"

    def __init__(self, unix=False, host="127.0.0.1"):
        self.tmp = tempfile.mkdtemp(prefix="postroom-%s-" % self.what)
        # Filters that drop privileges or are run by Postfix's smtpd
        # (user postfix) must reach their sockets in here.
        os.chmod(self.tmp, 0o755)
        self.unix = unix
        self.host = host
        self.port = None if unix else free_port(host)
        self.path = os.path.join(self.tmp, "milter.sock") if unix else None
        self.procs = []
        self.log = os.path.join(self.tmp, "%s.log" % self.what)

    @property
    def milter(self):
        """The socket as [milter] servers and smtpd_milters name it."""
        if self.unix:
            return "unix:" + self.path
        return "inet:%s:%d" % (self.host, self.port)

    @property
    def address(self):
        return self.path if self.unix else (self.host, self.port)

    def _spawn(self, args, logname):
        out = open(os.path.join(self.tmp, logname), "ab")
        try:
            p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=self.tmp)
        finally:
            out.close()
        self.procs.append(p)
        return p

    def read_log(self):
        return _tail(self.log, 1 << 20)

    @property
    def pid(self):
        return self.procs[-1].pid if self.procs else None

    def running(self):
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def stop(self):
        """Ends every process started here, the last started first, by
        PID."""
        while self.procs:
            procs.stop_popen(self.procs.pop(), 20)

    def close(self):
        self.stop()
        procs.remove_tmp(self.tmp)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


# --- rspamd ----------------------------------------------------------------

# Debian's /etc/rspamd/rspamd.conf with $LOCAL_CONFDIR pointed at our
# directory: local.d/ and override.d/ there add to and replace what the
# packaged config says (rspamd's documented way to change it).  Only the
# proxy worker runs; it scans in-process (self_scan), so no normal worker
# and no controller are needed.  Modules that ask DNS block lists, fuzzy
# servers or URL feeds are off; whatever else asks DNS gets NXDOMAIN from
# our own server on loopback, so a scan is the same offline as online.
# GTUBE is matched by rspamd's core (no module needed).
RSPAMD_OFF = ("rbl", "surbl", "fuzzy_check", "asn", "phishing", "emails",
              "url_redirector", "mx_check", "neural", "ratelimit",
              "greylist", "replies", "reputation", "dcc", "spamassassin",
              "external_services", "antivirus", "rspamd_update",
              "history_redis", "metadata_exporter", "clickhouse",
              "elastic", "p0f", "bimi")


class Rspamd(_Filter):
    """rspamd's proxy worker in milter mode (rspamd(8)), private config
    in self.tmp, listening on inet:127.0.0.1:port or unix:tmp/milter.sock.

    Its reject reply is "554 5.7.1 <reject_message>"; clean mail gets
    X-Spam-Status, X-Rspamd-Server, X-Rspamd-Queue-Id and X-Spamd-Result
    (milter_headers module)."""

    what = "rspamd"
    reject_message = "Spam message rejected by rspamd"
    # What rspamd's core says of GTUBE (it replaces reject_message).
    gtube_reply = "5.7.1 Gtube pattern"

    def __init__(self, unix=False, host="127.0.0.1", count=1):
        super().__init__(unix, host)
        self.count = count
        # rspamd compiles its TLD list (and rules) into hyperscan
        # databases, keyed by their content: a cache shared by the runs
        # of this machine turns a start of minutes into seconds.  Losing
        # it costs only time.
        self.cache = os.environ.get(
            "POSTROOM_RSPAMD_CACHE",
            os.path.join(tempfile.gettempdir(), "postroom-rspamd-cache"))
        self.dns = None

    def _write(self, rel, text):
        p = os.path.join(self.tmp, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)

    def start(self, timeout=600.0):
        # Loading the packaged rules (and compiling rspamd's list of
        # 9,600 TLD suffixes) takes minutes on a busy 2-core machine.
        if self.dns is None:
            self.dns = DNSServer({}).start()
        for d in ("db", "run"):
            os.makedirs(os.path.join(self.tmp, d), exist_ok=True)
        os.makedirs(self.cache, exist_ok=True)
        bind = (self.path + " mode=0666") if self.unix else \
            "%s:%d" % (self.host, self.port)
        # override.d (priority 10) replaces the packaged values.
        self._write("override.d/worker-proxy.inc", """\
bind_socket = "%s";
milter = yes;
timeout = 120s;
upstream "local" {
  default = yes;
  self_scan = yes;
}
count = %d;
max_retries = 5;
discard_on_reject = false;
quarantine_on_reject = false;
spam_header = "X-Spam";
reject_message = "%s";
""" % (bind, self.count, self.reject_message))
        for w in ("normal", "controller"):
            self._write("override.d/worker-%s.inc" % w, "enabled = false;\n")
        self._write("override.d/logging.inc", """\
type = "file";
filename = "%s";
level = "info";
""" % self.log)
        self._write("local.d/options.inc", """\
dns {
  nameserver = ["127.0.0.1:%d"];
  timeout = 1s;
  retransmits = 1;
}
disable_hyperscan = true;
hs_cache_dir = "%s";
""" % (self.dns.port, self.cache))
        # The loopback client would otherwise count as local and get no
        # headers (milter_headers' skip_local).
        self._write("local.d/milter_headers.conf", """\
use = ["x-spam-status", "x-rspamd-server", "x-rspamd-queue-id",
       "x-spamd-result"];
skip_local = false;
skip_authenticated = false;
""")
        for m in RSPAMD_OFF:
            self._write("override.d/%s.conf" % m, "enabled = false;\n")
        args = [RSPAMD, "-f", "-i", "-u", "root", "-g", "root",
                "-c", "/etc/rspamd/rspamd.conf",
                "--var=LOCAL_CONFDIR=" + self.tmp,
                "--var=DBDIR=" + os.path.join(self.tmp, "db"),
                "--var=RUNDIR=" + os.path.join(self.tmp, "run"),
                "--var=LOGDIR=" + self.tmp,
                "-p", os.path.join(self.tmp, "run", "rspamd.pid")]
        p = self._spawn(args, "rspamd.out")
        _wait_socket(self.address, p, "rspamd", self.log, timeout)
        return self

    def stop(self):
        # The master ends its workers on SIGTERM.
        super().stop()

    def close(self):
        super().close()
        if self.dns is not None:
            self.dns.stop()
            self.dns = None


# --- ClamAV ----------------------------------------------------------------

class ClamAV(_Filter):
    """clamd(8) with a database of one signature (the EICAR test file's
    MD5, eicar.hdb) and clamav-milter(8) in front of it, both in the
    foreground.  Infected mail is rejected (OnInfected Reject) with
    "550 5.7.1 virus <name> detected"; clean mail gets X-Virus-Scanned
    and X-Virus-Status (AddHeader Replace)."""

    what = "clamav"

    def start(self, timeout=120.0):
        db = os.path.join(self.tmp, "db")
        os.makedirs(db, exist_ok=True)
        with open(os.path.join(db, "eicar.hdb"), "w") as f:
            f.write(EICAR_HDB)
        self.clamd_sock = os.path.join(self.tmp, "clamd.sock")
        clamd_conf = os.path.join(self.tmp, "clamd.conf")
        with open(clamd_conf, "w") as f:
            f.write("""\
LocalSocket %s
LocalSocketMode 666
DatabaseDirectory %s
TemporaryDirectory %s
LogFile %s
LogTime yes
LogVerbose yes
Foreground yes
Bytecode no
MaxThreads 4
""" % (self.clamd_sock, db, self.tmp, os.path.join(self.tmp, "clamd.log")))
        p = self._spawn([CLAMD, "-c", clamd_conf], "clamd.out")
        _wait_socket(self.clamd_sock, p, "clamd",
                     os.path.join(self.tmp, "clamd.log"), timeout)
        sock = ("unix:" + self.path) if self.unix else \
            "inet:%d@%s" % (self.port, self.host)
        conf = os.path.join(self.tmp, "clamav-milter.conf")
        with open(conf, "w") as f:
            f.write("""\
MilterSocket %s
MilterSocketMode 666
ClamdSocket unix:%s
Foreground yes
TemporaryDirectory %s
LogFile %s
LogTime yes
LogVerbose yes
LogInfected Basic
LogClean Basic
OnInfected Reject
OnFail Defer
RejectMsg virus %%v detected
AddHeader Replace
ReadTimeout 60
""" % (sock, self.clamd_sock, self.tmp, self.log))
        p = self._spawn([CLAMAV_MILTER, "-c", conf], "clamav-milter.out")
        _wait_socket(self.address, p, "clamav-milter", self.log, timeout)
        return self


# --- OpenDKIM --------------------------------------------------------------

class OpenDKIM(_Filter):
    """opendkim(8) in verify mode (Mode v).  Its key lookups go through
    libunbound to a dnsserver.py on loopback serving txt ({name: TXT});
    it adds "Authentication-Results: <authserv_id>; dkim=pass ...".
    No host counts as internal (InternalHosts), so mail from loopback is
    verified rather than offered for signing."""

    what = "opendkim"

    def __init__(self, txt, authserv_id="dkim.milter.test", unix=False,
                 host="127.0.0.1"):
        super().__init__(unix, host)
        self.txt = dict(txt)
        self.authserv_id = authserv_id
        self.dns = None

    def start(self, timeout=60.0):
        if self.dns is None:
            self.dns = DNSServer({k: [{"TXT": v}]
                                  for k, v in self.txt.items()},
                                 log=os.path.join(self.tmp,
                                                  "dns.log")).start()
        ub = os.path.join(self.tmp, "unbound.conf")
        with open(ub, "w") as f:
            # Iterator only: the test zone is not signed, so no
            # validator and no trust anchor.  Unbound answers names
            # under test. itself (NXDOMAIN, RFC 6761 6.2) unless told
            # not to.
            f.write("""\
server:
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "test." nodefault
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@%d
""" % self.dns.port)
        sock = ("local:" + self.path) if self.unix else \
            "inet:%d@%s" % (self.port, self.host)
        conf = os.path.join(self.tmp, "opendkim.conf")
        with open(conf, "w") as f:
            f.write("""\
Mode v
Socket %s
UMask 000
Background no
Syslog yes
LogWhy yes
AuthservID %s
InternalHosts 192.0.2.255
ResolverConfiguration %s
PidFile %s
""" % (sock, self.authserv_id, ub, os.path.join(self.tmp, "opendkim.pid")))
        p = self._spawn([OPENDKIM, "-f", "-x", conf, "-l"], "opendkim.log")
        _wait_socket(self.address, p, "opendkim", self.log, timeout)
        return self

    def close(self):
        super().close()
        if self.dns is not None:
            self.dns.stop()
            self.dns = None


def start_all(*filters):
    """Starts the filters at once (rspamd alone takes a minute to load its
    rules on a busy machine); raises the first failure after all have
    finished starting."""
    import threading
    errors = []

    def run(f):
        try:
            f.start()
        except Exception as e:   # reported below, after the others
            errors.append("%s: %s" % (f.what, e))
    ts = [threading.Thread(target=run, args=(f,)) for f in filters]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors))


def the_three(pub, domain="sender.test", selector="s1"):
    """rspamd (inet), clamd + clamav-milter (unix socket) and OpenDKIM
    (inet) with pub (a p= value) as the DKIM key of selector and domain;
    not started yet."""
    return (Rspamd(), ClamAV(unix=True),
            OpenDKIM({"%s._domainkey.%s" % (selector, domain):
                      "v=DKIM1; k=rsa; p=" + pub}))


def start_checked(t, *filters):
    """start_all(filters) as one check of t (tests/lib/tap.py Check);
    True when all of them run."""
    try:
        start_all(*filters)
    except RuntimeError as e:
        t.ok(False, "filters started", str(e))
        return False
    t.ok(True, "filters started: %s" % ", ".join(f.what for f in filters))
    return True


# --- Messages the filters judge ---------------------------------------------

def _message(sender, rcpt, subject, body, extra=b""):
    """An RFC 5322 message, CRLF line ends."""
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            "Message-ID: <%s.%d@milter.test>\r\n" % (
                sender, rcpt, subject, subject.replace(" ", "-"),
                time.monotonic_ns())).encode() + extra + b"\r\n" + body


def clean_message(sender, rcpt, subject="clean mail"):
    return _message(sender, rcpt, subject,
                    b"Hello,\r\n\r\nthe minutes of Monday's meeting are"
                    b" below.\r\n\r\nRegards\r\n")


def gtube_message(sender, rcpt):
    return _message(sender, rcpt, "gtube",
                    b"This is the GTUBE test string:\r\n\r\n" +
                    GTUBE.encode() + b"\r\n")


def attachment_message(sender, rcpt, payload, name, subject):
    """A multipart/mixed message with payload (bytes) attached as name,
    base64 (RFC 2045 6.8)."""
    import base64
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    body = (b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
            b"--b1\r\nContent-Type: application/octet-stream; name=\"" +
            name.encode() + b"\"\r\nContent-Disposition: attachment;"
            b" filename=\"" + name.encode() + b"\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 +
            b"--b1--\r\n")
    return _message(sender, rcpt, subject, body,
                    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed;"
                    b" boundary=\"b1\"\r\n")


def eicar_message(sender, rcpt):
    return attachment_message(sender, rcpt, EICAR, "eicar.com", "eicar")


def clean_attachment_message(sender, rcpt):
    return attachment_message(sender, rcpt,
                              b"quarterly figures, nothing to see\n" * 40,
                              "figures.txt", "clean attachment")


def dkim_signed_message(sender, rcpt, priv, selector="s1"):
    """clean_message signed by python3-dkim (rsa-sha256, relaxed) for
    sender's domain with the PEM key priv; returns (message, the key
    record's name)."""
    import dkim
    domain = sender.rsplit("@", 1)[1]
    m = clean_message(sender, rcpt, "dkim signed")
    sig = dkim.sign(m, selector.encode(), domain.encode(), priv,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date",
                                     b"message-id"],
                    linesep=b"\r\n")
    return sig + m, "%s._domainkey.%s" % (selector, domain)
