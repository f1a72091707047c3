"""The servers under test: a private Postfix instance (virtual(8) delivery
into Maildirs), a private Dovecot POP3 instance on those Maildirs, Postfix's
smtp-sink, and a private postroom installation.

Every server listens on 127.0.0.1 on its own unprivileged port, keeps all
its state under the benchmark's temporary directory and is stopped by the
PID the harness recorded when it started it.
"""

import grp
import os
import pwd
import shutil
import subprocess

import benchlib
import postfix  # noqa: E402 (tests/lib, on the path through benchlib)
import procs  # noqa: E402

BENCH_USER = "prbench"
DOMAIN = "bench.test"


def bench_ids():
    """uid and gid of the unprivileged owner of the peers' Maildirs."""
    pw = pwd.getpwnam(BENCH_USER)
    return pw.pw_uid, pw.pw_gid


def ensure_bench_user():
    """Creates the system user that owns the Maildirs (no login, no home)
    if it does not exist; needs root."""
    try:
        return bench_ids()
    except KeyError:
        pass
    benchlib.run(["useradd", "--system", "--no-create-home",
                  "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                  BENCH_USER])
    return bench_ids()


def password_for(user):
    return "password-" + user


# --- Postfix ---------------------------------------------------------------

# Postfix's defaults everywhere (durability included: cleanup(8) fsyncs
# the queue file before the 250, virtual(8) fsyncs each Maildir file
# before it renames it into new/), except what a private instance on a
# loopback port needs (tests/lib/postfix.py).
class Postfix:
    """A private Postfix instance: `postfix -c DIR start`, own
    config/queue/data directories, SMTP on 127.0.0.1:port, virtual(8)
    delivery into VMAIL/USER/Maildir/."""

    name = "Postfix"

    def __init__(self, tmp, vmail, users):
        self.vmail = vmail
        self.port = benchlib.free_port()
        uid, gid = bench_ids()
        self.pf = postfix.Postfix(os.path.join(tmp, "postfix"), "127.0.0.1",
                                  self.port, {
                                      "myhostname": "mx." + DOMAIN,
                                      "mydomain": DOMAIN,
                                      "myorigin": "$myhostname",
                                      "mydestination": "localhost",
                                      "inet_interfaces": "127.0.0.1",
                                      "smtpd_client_connection_count_limit":
                                          "0",
                                  })
        self.pf.set(postfix.virtual_mailboxes(
            self.pf, DOMAIN,
            {"%s@%s" % (u, DOMAIN): "%s/Maildir/" % u for u in users},
            vmail, uid, gid))

    @property
    def pid(self):
        return self.pf.pid

    def start(self):
        self.pf.start()

    def maildir_new(self, user):
        return os.path.join(self.vmail, user, "Maildir", "new")

    def delivered(self, user):
        try:
            return len(os.listdir(self.maildir_new(user)))
        except FileNotFoundError:
            return 0

    def clear(self, user):
        """Removes delivered messages of user (between runs)."""
        d = self.maildir_new(user)
        if os.path.isdir(d):
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))

    def queue_empty(self):
        return self.pf.queue_empty()

    def log_tail(self, n=20):
        return "".join(self.pf.read_log().splitlines(True)[-n:])

    def stop(self):
        if self.pf.pid is not None:
            kids = benchlib.tree(self.pf.pid)
            self.pf.stop(timeout=20)
            benchlib.wait_children_gone(kids, 10)


# --- Dovecot ---------------------------------------------------------------

DOVECOT_CONF = """\
# Dovecot's defaults (mail_fsync = optimized, one pop3 process per
# session, login processes in high-security mode) except the private
# paths, the port and plaintext logins on loopback.
base_dir = {root}/run
state_dir = {root}/state
instance_name = prbench-{port}
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = {root}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


class Dovecot:
    """A private Dovecot POP3 server (`dovecot -F -c CONF`) on the
    Maildirs Postfix delivers into; passdb/userdb passwd-file with the
    same password hash as postroom (argon2id, libsodium's interactive
    limits), so a login costs both servers the same."""

    name = "Dovecot"

    def __init__(self, tmp, vmail, users):
        self.root = os.path.join(tmp, "dovecot")
        self.port = benchlib.free_port()
        self.proc = None
        self.pid = None
        uid, gid = bench_ids()
        os.makedirs(os.path.join(self.root, "run"))
        os.makedirs(os.path.join(self.root, "state"))
        self.conf = os.path.join(self.root, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(root=self.root, port=self.port,
                                        uid=uid))
        lines = []
        hashes = {}
        for u in users:
            pw = password_for(u)
            if pw not in hashes:
                hashes[pw] = benchlib.run(
                    ["doveadm", "-c", self.conf, "pw", "-s", "ARGON2ID",
                     "-p", pw]).stdout.strip()
            lines.append("%s@%s:%s:%d:%d::%s/%s::" % (
                u, DOMAIN, hashes[pw], uid, gid, vmail, u))
        path = os.path.join(self.root, "passwd")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o640)
        os.chown(path, 0, grp.getgrnam("dovecot").gr_gid)

    def start(self):
        log = open(os.path.join(self.root, "stderr.log"), "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.pid = self.proc.pid
        benchlib.wait_port("127.0.0.1", self.port, proc=self.proc)

    def log_tail(self, n=20):
        try:
            with open(os.path.join(self.root, "dovecot.log"),
                      errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            kids = benchlib.tree(self.pid)
            procs.stop_popen(self.proc, 20)
            benchlib.wait_children_gone(kids, 10)
            self.proc = None


# --- smtp-sink -------------------------------------------------------------

class Sink:
    """Postfix's smtp-sink: accepts every message and discards it; the
    ceiling of what an SMTP server can do with smtp-source on this box."""

    name = "smtp-sink"

    def __init__(self, tmp):
        self.port = benchlib.free_port()
        self.proc = None
        self.pid = None

    def start(self):
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-m", "1000",
             "127.0.0.1:%d" % self.port, "1024"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        benchlib.wait_port("127.0.0.1", self.port, proc=self.proc)

    def stop(self):
        if self.proc is not None:
            procs.stop_popen(self.proc, 10)
            self.proc = None


# --- postroom --------------------------------------------------------------

class Postroom:
    """A private postroom installation on a fresh data dir (config, data
    dir and ports from tests/lib/harness.py), with the settings a benchmark
    needs: no per-IP connection limit, plaintext auth on loopback, quiet
    logging, no TLS listeners."""

    name = "postroom"

    def __init__(self, tmp, users, build_dir):
        os.environ["POSTROOM_BUILD_DIR"] = build_dir
        import harness
        import tempfile
        self.bin = {
            "cli": os.path.join(build_dir, "tools", "postroom"),
            "smtpd": os.path.join(build_dir, "smtpd", "postroom-smtpd"),
            "pop3d": os.path.join(build_dir, "pop3d", "postroom-pop3d"),
        }
        harness.BIN.update(self.bin)
        # The instance's directory goes under the benchmark's own tmp.
        saved, tempfile.tempdir = tempfile.tempdir, tmp
        try:
            self.inst = harness.Instance(
                hostname="mx." + DOMAIN, tls=False,
                extra={
                    "server": {"log_level": "warning"},
                    "smtp": {"max_connections_per_ip": "0"},
                    "pop3": {"max_connections_per_ip": "0"},
                })
        finally:
            tempfile.tempdir = saved
        self.inst.add_domain(DOMAIN)
        for u in users:
            self.inst.add_user("%s@%s" % (u, DOMAIN), password_for(u))
        self.smtp_port = self.inst.ports["smtp"]
        self.pop3_port = self.inst.ports["pop3"]
        self.procs = {}

    @property
    def data_dir(self):
        return self.inst.data_dir

    def start(self, daemon, prefix=None, wait=20.0):
        """Starts postroom-smtpd or postroom-pop3d (optionally under a
        command prefix such as valgrind); returns its Popen."""
        log = open(os.path.join(self.inst.tmp, daemon + ".log"), "ab")
        argv = list(prefix or []) + [self.bin[daemon], "-c", self.inst.config]
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             env=self.inst.env())
        log.close()
        self.procs[daemon] = p
        port = self.smtp_port if daemon == "smtpd" else self.pop3_port
        benchlib.wait_port("127.0.0.1", port, timeout=wait, proc=p)
        return p

    def pid(self, daemon):
        return self.procs[daemon].pid

    def stop(self, daemon=None, timeout=30):
        for d in ([daemon] if daemon else list(self.procs)):
            p = self.procs.pop(d, None)
            if p is None:
                continue
            procs.stop_popen(p, timeout)

    def log_tail(self, daemon, n=20):
        try:
            with open(os.path.join(self.inst.tmp, daemon + ".log"),
                      errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def mailbox_count(self, user):
        return len(self.inst.mailbox("%s@%s" % (user, DOMAIN)))

    def close(self):
        self.stop()
        shutil.rmtree(self.inst.tmp, ignore_errors=True)
