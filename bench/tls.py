"""TLS on every session: postroom vs Postfix (+ Dovecot SASL) and Dovecot.

Workloads (bench.py --only tls), each with and without session
resumption (the client offers the session of its previous connection: a TLS
1.3 ticket, RFC 8446 4.6.1):

- SMTP 25 STARTTLS, one 10 KiB message per session, 10 and 50 sessions
  at once: postroom vs Postfix (smtpd_tls_security_level = may).
- Submission 587 STARTTLS + AUTH PLAIN, one message per session: postroom
  vs Postfix with Dovecot SASL (smtpd_sasl_type = dovecot on the private
  Dovecot's auth socket; both check the same argon2id hash, so a login
  costs both the same: reported on its own).
- POP3S (995, implicit TLS): login + RETR 100 x 10 KiB + QUIT per
  session, 10 sessions at once on 10 maildrops: postroom vs Dovecot with
  TLS.

All servers use one certificate and key: ECDSA P-256, self-signed
(openssl req).  Both sides negotiate what OpenSSL 3.0 picks: TLS 1.3,
TLS_AES_256_GCM_SHA384, X25519; the rows say what was negotiated.

Rates: messages (or sessions) / wall time; Postfix's until the last
message is in its Maildir, as bench.py does.  CPU per session =
user+sys of the server's process tree (benchlib.cpu_seconds) / sessions:
the handshake's share is the difference between the full and the
resumed row.  The client is bench/tlsload.c (C, OpenSSL, a thread per
concurrent session, TCP_NODELAY), on the same two cores: its own CPU per
session is in the details.  (A Python client spent more CPU per session
than postroom-smtpd and bounded the rates it measured.)
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
from benchlib import Sample, fmt_num  # noqa: E402
import peers  # noqa: E402
import procs  # noqa: E402 (tests/lib, on the path through benchlib)

KiB = 1024

FULL = {
    "smtp": [(10, 300), (50, 500)],   # (sessions at once, messages)
    "handshake": (10, 300),           # EHLO, STARTTLS, EHLO, QUIT only
    "sub": [(10, 60)],
    "pop_sessions": 10,
    "pop_msgs": 100,
    "pop_rounds": 3,                  # sessions per maildrop
}
SMOKE = {
    "smtp": [(2, 6)],
    "handshake": (2, 4),
    "sub": [(1, 2)],
    "pop_sessions": 1,
    "pop_msgs": 3,
    "pop_rounds": 1,
}



def make_cert(dirpath):
    """An ECDSA P-256 self-signed certificate for mx.bench.test."""
    cert = os.path.join(dirpath, "tls-cert.pem")
    key = os.path.join(dirpath, "tls-key.pem")
    benchlib.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                  "-out", cert, "-days", "30", "-subj", "/CN=mx.bench.test",
                  "-addext", "subjectAltName=DNS:mx.bench.test,"
                  "IP:127.0.0.1"])
    os.chmod(key, 0o644)  # the peers' unprivileged processes read it
    return cert, key


# --- the client -------------------------------------------------------------

# bench/tlsload.c, built with postroom (set by TlsBench from the build
# directory).
TLSLOAD = None


def drive(kind, port, jobs, conc, resume, start_cb=None):
    """Runs jobs over conc sessions at once with one tlsload process (a
    thread per concurrent session; jobs on its stdin); returns its counts
    and the client's own CPU seconds ("client_cpu")."""
    rcpt, auth = "", ""
    lines = []
    for job in jobs:
        if kind == "pop3s":
            user, pw, n = job
            lines.append("%s %s %d" % (user, pw, n))
        else:
            if job:
                rcpt, auth = job[0], job[1] or ""
            lines.append("-")
    argv = [TLSLOAD, "handshake" if kind == "handshake" else kind,
            str(port), str(conc), "1" if resume else "0"]
    if kind == "smtp":
        argv += [rcpt] + ([auth] if auth else [])
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        p.stdin.write("\n".join(lines) + "\n\n")
        p.stdin.flush()
        # The clock starts once the client is up.
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("TLS client did not start")
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if start_cb is not None:
            start_cb()
        p.stdin.write("go\n")
        p.stdin.close()
        out = p.stdout.read()
        p.wait(timeout=1200)
    finally:
        if p.poll() is None:
            procs.stop_popen(p, 10)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError("TLS client exited %d" % p.returncode)
    res = json.loads(out)
    if res["failed"]:
        raise RuntimeError("%d sessions failed: %s" % (
            res["failed"], res["errors"][0]))
    # tlsload's whole CPU (it parses its jobs before "ready": a few ms).
    res["client_cpu"] = (ru1.ru_utime + ru1.ru_stime -
                         ru0.ru_utime - ru0.ru_stime)
    return res


# --- the servers ------------------------------------------------------------

DOVECOT_TLS = """\
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
service auth {{
  unix_listener {root}/auth-postfix {{
    mode = 0666
  }}
}}
"""


class TlsDovecot(peers.Dovecot):
    """peers.Dovecot with TLS: pop3s on its own port, the plain
    listener off, and an auth socket for Postfix's SASL."""

    def __init__(self, tmp, vmail, users, cert, key):
        super().__init__(os.path.join(tmp, "tlsdv"), vmail, users)
        self.pop3s_port = benchlib.free_port()
        with open(self.conf) as f:
            conf = f.read()
        conf = conf.replace("ssl = no\n", DOVECOT_TLS.format(
            cert=cert, key=key, root=self.root))
        conf = conf.replace("""  inet_listener pop3s {
    port = 0
  }""", """  inet_listener pop3s {
    address = 127.0.0.1
    port = %d
  }""" % self.pop3s_port)
        with open(self.conf, "w") as f:
            f.write(conf)
        self.auth_socket = os.path.join(self.root, "auth-postfix")


class TlsPostfix(peers.Postfix):
    """peers.Postfix with STARTTLS on its smtpd (level may) and a
    submission smtpd (TLS required, SASL through Dovecot)."""

    def __init__(self, tmp, vmail, users, cert, key, auth_socket):
        super().__init__(os.path.join(tmp, "tlspf"), vmail, users)
        self.sub_port = benchlib.free_port()
        self.pf.set({
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": cert,
            "smtpd_tls_key_file": key,
            "smtpd_tls_loglevel": "0",
        })
        self.pf.master_extra.append(
            "127.0.0.1:%d inet n - n - - smtpd"
            " -o smtpd_tls_security_level=encrypt"
            " -o smtpd_sasl_auth_enable=yes"
            " -o smtpd_sasl_type=dovecot"
            " -o smtpd_sasl_path=%s"
            " -o smtpd_relay_restrictions=permit_sasl_authenticated,reject"
            % (self.sub_port, auth_socket))


def postroom_tls(pr, cert, key):
    """Gives a peers.Postroom the certificate: 465 and 995 listen too."""
    pr.inst.cert, pr.inst.key = cert, key
    pr.inst.write_config()


# --- the workloads ----------------------------------------------------------

def auth_plain(user):
    import base64
    addr = "%s@%s" % (user, peers.DOMAIN)
    return base64.b64encode(b"\0" + addr.encode() + b"\0" +
                            peers.password_for(user).encode()).decode()


class TlsBench:
    def __init__(self, bench):
        self.b = bench
        self.c = dict(SMOKE if bench.args.smoke else FULL)
        self.runs = 1 if bench.args.smoke else bench.c["runs"]
        f = bench.args.scale
        if f != 1.0 and not bench.args.smoke:
            def sc(n):
                return max(2, int(round(n * f)))
            c = self.c
            c["smtp"] = [(k, sc(n)) for k, n in c["smtp"]]
            c["sub"] = [(k, sc(n)) for k, n in c["sub"]]
            c["handshake"] = (c["handshake"][0], sc(c["handshake"][1]))
            c["pop_msgs"] = sc(c["pop_msgs"])
        self.tmp = os.path.join(bench.tmp, "tls")
        os.makedirs(self.tmp)
        os.chmod(self.tmp, 0o755)
        self.cert, self.key = make_cert(self.tmp)
        global TLSLOAD
        TLSLOAD = os.path.join(bench.build, "bench", "tlsload")
        if not os.access(TLSLOAD, os.X_OK):
            raise RuntimeError("%s is not built" % TLSLOAD)
        self.pr = self.pf = self.dv = None
        self.users = ["tls", "tsub"] + ["tp%02d" % i for i in
                                        range(self.c["pop_sessions"])]

    def setup(self):
        b = self.b
        if b.peers:
            vmail = os.path.join(self.tmp, "vmail")
            os.makedirs(vmail)
            uid, gid = peers.bench_ids()
            os.chown(vmail, uid, gid)
            self.dv = TlsDovecot(self.tmp, vmail, self.users, self.cert,
                                  self.key)
            self.dv.start()
            self.pf = TlsPostfix(self.tmp, vmail, self.users, self.cert,
                                 self.key, self.dv.auth_socket)
            self.pf.start()
        if not b.args.no_postroom:
            self.pr = peers.Postroom(self.tmp, self.users, b.build)
            postroom_tls(self.pr, self.cert, self.key)
            self.pr.start("smtpd")
            self.pr.start("pop3d")

    def teardown(self):
        for s in (self.pr, self.pf, self.dv):
            if s is None:
                continue
            try:
                s.close() if s is self.pr else s.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping others
                print("stopping %s: %s" % (s.name, e), file=sys.stderr)

    # One run of count sessions; returns (seconds, cpu seconds, counts).
    def run_smtp(self, who, port, conc, count, user, auth, resume):
        rcpt = "%s@%s" % (user, peers.DOMAIN)
        jobs = [(rcpt, auth)] * count
        if who == "postroom":
            pid = self.pr.pid("smtpd")
            before = self.pr.mailbox_count(user)
        else:
            deadline = time.monotonic() + 120
            while not self.pf.queue_empty():
                if time.monotonic() > deadline:
                    raise RuntimeError("Postfix queue does not drain")
                time.sleep(0.05)
            self.pf.clear(user)
            pid = self.pf.pid
        # Postfix's logins are checked by Dovecot's auth process: its CPU
        # counts for the Postfix+Dovecot pair.
        pids = [pid] + ([self.dv.pid] if auth and who != "postroom" else [])

        def cpu():
            return sum(benchlib.cpu_seconds(p) for p in pids)
        mark = {}

        def start():
            mark["cpu"] = cpu()
            mark["t"] = time.perf_counter()
        out = drive("smtp", port, jobs, conc, resume, start)
        cpu0, t0 = mark["cpu"], mark["t"]
        if who == "postroom":
            got = self.pr.mailbox_count(user) - before
            if got != count:
                raise RuntimeError("postroom stored %d of %d" % (got, count))
        else:
            deadline = time.monotonic() + 600
            while self.pf.delivered(user) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError("Postfix delivered %d of %d" % (
                        self.pf.delivered(user), count))
                time.sleep(0.005)
        t = time.perf_counter() - t0
        return t, cpu() - cpu0, out

    def run_handshakes(self, who, port, resume):
        conc, count = self.c["handshake"]
        pid = self.pr.pid("smtpd") if who == "postroom" else self.pf.pid
        return self.timed(pid, "handshake", port, [None] * count, conc,
                          resume)

    @staticmethod
    def timed(pid, kind, port, jobs, conc, resume):
        """drive() with the clock and the server's CPU from the moment
        the clients are ready."""
        mark = {}

        def start():
            mark["cpu"] = benchlib.cpu_seconds(pid)
            mark["t"] = time.perf_counter()
        out = drive(kind, port, jobs, conc, resume, start)
        t = time.perf_counter() - mark["t"]
        return t, benchlib.cpu_seconds(pid) - mark["cpu"], out

    def run_pop3s(self, who, port, resume):
        n = self.c["pop_msgs"]
        conc = self.c["pop_sessions"]
        users = ["tp%02d" % i for i in range(conc)]
        jobs = []
        for _ in range(self.c["pop_rounds"]):
            for u in users:
                jobs.append(("%s@%s" % (u, peers.DOMAIN),
                             peers.password_for(u), n))
        pid = self.pr.pid("pop3d") if who == "postroom" else self.dv.pid
        return self.timed(pid, "pop3s", port, jobs, conc, resume)

    def populate(self):
        n = self.c["pop_msgs"]
        users = ["tp%02d" % i for i in range(self.c["pop_sessions"])]
        for u in users:
            rcpt = "%s@%s" % (u, peers.DOMAIN)
            if self.pr:
                self.b.send(self.pr.smtp_port, 5, n, 10 * KiB, rcpt)
            if self.pf:
                self.b.send(self.pf.port, 5, n, 10 * KiB, rcpt)
        if self.pf:
            deadline = time.monotonic() + 600
            while any(self.pf.delivered(u) < n for u in users):
                if time.monotonic() > deadline:
                    raise RuntimeError("Postfix does not deliver the "
                                       "POP3S maildrops")
                time.sleep(0.05)

    def measure(self, label, unit, fn_pr, fn_peer, peer_name, target):
        """runs alternate postroom / peer; adds the rows."""
        rep = self.b.report
        for resume in (False, True):
            rate = {"pr": Sample(), "peer": Sample()}
            cpu = {"pr": Sample(), "peer": Sample()}
            info = {}
            for _ in range(self.runs):
                for who, fn in (("pr", fn_pr), ("peer", fn_peer)):
                    if fn is None:
                        continue
                    t, c, out = fn(resume)
                    rate[who].add(out["n"] / t)
                    cpu[who].add(c / out["n"])
                    info[who] = out
            tag = "%s, %s" % (label, "resumed" if resume else "full handshake")
            r = ratio(rate["pr"], rate["peer"])
            met = None
            if target and r is not None and not resume:
                met = r >= target
            rep.row("TLS: " + tag + " (%s)" % unit,
                    benchlib.fmt_sample(rate["pr"], ""), peer_name if
                    fn_peer else "", benchlib.fmt_sample(rate["peer"], "")
                    if fn_peer else None, r,
                    (">= %gx" % target) if target and not resume else "",
                    met)
            rep.row("TLS: " + tag + " (server CPU ms per session)",
                    benchlib.fmt_sample(cpu["pr"], "", 1000.0),
                    peer_name if fn_peer else "",
                    benchlib.fmt_sample(cpu["peer"], "", 1000.0)
                    if fn_peer else None,
                    ratio(cpu["pr"], cpu["peer"]))
            for who, out in info.items():
                name = "postroom" if who == "pr" else peer_name
                extra = ""
                if out["login"]:
                    extra = ", login p50 %s ms" % fmt_num(
                        benchlib.percentile(out["login"], 50) * 1000)
                rep.detail("- %s, %s: %d sessions, %d resumed, %s%s, "
                           "client CPU %s ms per session" % (
                               tag, name, out["n"], out["reused"],
                               out["proto"] or "TLS", extra,
                               fmt_num(out["client_cpu"] * 1000.0 /
                                       max(1, out["n"]))))

    def run(self):
        b = self.b
        self.populate()
        conc = self.c["handshake"][0]
        self.measure("SMTP 25 STARTTLS handshake only x %d" % conc,
                     "handshakes/s",
                     (lambda r: self.run_handshakes(
                         "postroom", self.pr.smtp_port, r))
                     if self.pr else None,
                     (lambda r: self.run_handshakes("postfix", self.pf.port,
                                                    r))
                     if self.pf else None, "Postfix", None)
        for conc, count in self.c["smtp"]:
            def pr_fn(resume, conc=conc, count=count):
                return self.run_smtp("postroom", self.pr.smtp_port, conc,
                                     count, "tls", None, resume)

            def pf_fn(resume, conc=conc, count=count):
                return self.run_smtp("postfix", self.pf.port, conc, count,
                                     "tls", None, resume)
            self.measure("SMTP 25 STARTTLS 10 KiB x %d" % conc, "msg/s",
                         pr_fn if self.pr else None,
                         pf_fn if self.pf else None, "Postfix", 3)
        for conc, count in self.c["sub"]:
            auth = auth_plain("tsub")

            def pr_sub(resume, conc=conc, count=count, auth=auth):
                return self.run_smtp(
                    "postroom", self.pr.inst.ports["submission"], conc,
                    count, "tsub", auth, resume)

            def pf_sub(resume, conc=conc, count=count, auth=auth):
                return self.run_smtp("postfix", self.pf.sub_port, conc,
                                     count, "tsub", auth, resume)
            self.measure("submission 587 STARTTLS+AUTH PLAIN 10 KiB x %d"
                         % conc, "msg/s",
                         pr_sub if self.pr else None,
                         pf_sub if self.pf else None,
                         "Postfix+Dovecot SASL", 3)

        def pr_pop(resume):
            return self.run_pop3s("postroom", self.pr.inst.ports["pop3s"],
                                  resume)

        def dv_pop(resume):
            return self.run_pop3s("dovecot", self.dv.pop3s_port, resume)
        self.measure("POP3S login+RETR %d x 10 KiB, %d sessions" % (
            self.c["pop_msgs"], self.c["pop_sessions"]), "sessions/s",
            pr_pop if self.pr else None, dv_pop if self.dv else None,
            "Dovecot", 1.5)
        if self.pr and not b.args.smoke and shutil.which("perf"):
            self.profile()
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        b.report.detail("- Load average after the TLS workloads: %s (other "
                        "work shares this machine; the ratios of runs "
                        "that alternate are what count)" % load)
        b.report.detail("- TLS certificate of every server: ECDSA P-256 "
                        "(self-signed, openssl req); CPU per session is "
                        "user+sys of the server's process tree / sessions")


    def profile(self):
        """Where postroom-smtpd's CPU goes in SMTP STARTTLS sessions with
        full handshakes: perf record (linux-perf) over one more run, the
        shares by shared object and the hottest symbols."""
        conc, count = self.c["smtp"][0]
        data = os.path.join(self.tmp, "perf.data")
        rec = subprocess.Popen(
            ["perf", "record", "-q", "-F", "999", "-o", data, "-p",
             str(self.pr.pid("smtpd"))], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            self.run_smtp("postroom", self.pr.smtp_port, conc, count, "tls",
                          None, False)
        finally:
            rec.send_signal(2)
            rec.wait(60)
        rep = self.b.report
        rep.detail("")
        rep.detail("perf profile of postroom-smtpd, SMTP STARTTLS 10 KiB x "
                   "%d, full handshakes (share of samples):" % conc)
        rep.detail("")
        for sort, top in (("dso", 6), ("dso,sym", 12)):
            r = subprocess.run(
                ["perf", "report", "-i", data, "--stdio", "--no-children",
                 "--sort", sort, "--percent-limit", "1"],
                capture_output=True, text=True, timeout=120)
            lines = [ln.strip() for ln in r.stdout.splitlines()
                     if ln.strip() and not ln.startswith("#")][:top]
            rep.detail("```")
            rep.detail("\n".join(lines))
            rep.detail("```")


def ratio(a, b):
    if not a or not b or not b.median:
        return None
    return a.median / b.median


def w_tls(bench):
    """bench.py's "tls" workload."""
    tb = TlsBench(bench)
    try:
        tb.setup()
        tb.run()
    finally:
        tb.teardown()
