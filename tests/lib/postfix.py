"""Debian's Postfix as a private peer on loopback, for the end-to-end
tests (an MX that receives what postroom relays; a relay that hands mail
to postroom) and the benchmarks (the SMTP server postroom is measured
against).

An instance has a directory of its own (config, queue, data, log), one
smtpd(8) on host:port and nothing else reachable; `postfix -c DIR start`
needs root, and stop() ends it by its master's PID.

    pf = Postfix(root, "127.0.0.9", port, {"myhostname": "mx.c.test", ...})
    pf.start()
    ...
    pf.stop()
"""

import glob
import grp
import os
import pwd
import shutil
import socket
import subprocess
import time

import procs

POSTFIX = "/usr/sbin/postfix"

# master.cf(5): service, type, private, unpriv, chroot, wakeup, maxproc,
# command.  The services a private instance needs, none chrooted (its
# directories are not set up for that); the smtpd line is added per
# instance.
SERVICES = """\
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
proxywrite unix - - n -     1 proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
local     unix  - n n -     - local
virtual   unix  - n n -     - virtual
lmtp      unix  - - n -     - lmtp
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available():
    """None when a private Postfix can run here, else why not."""
    if not os.path.exists(POSTFIX):
        return "%s is not installed" % POSTFIX
    if os.geteuid() != 0:
        return "starting Postfix needs root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user"
    return None


def virtual_mailboxes(pf, domain, mailboxes, base, uid, gid):
    """main.cf settings for virtual(8) delivery of domain: mailboxes maps
    each address to its Maildir ("dir/", relative to base), owned by
    uid:gid; other addresses of domain get 550 5.1.1."""
    path = os.path.join(pf.root, "vmailbox")
    with open(path, "w") as f:
        for addr, maildir in mailboxes.items():
            f.write("%s %s\n" % (addr, maildir))
    return {
        "virtual_mailbox_domains": domain,
        "virtual_mailbox_base": base,
        "virtual_mailbox_maps": "texthash:" + path,
        "virtual_minimum_uid": str(uid),
        "virtual_uid_maps": "static:%d" % uid,
        "virtual_gid_maps": "static:%d" % gid,
    }


def maildir_messages(maildir):
    """The messages (bytes) in maildir/new, oldest first."""
    files = glob.glob(os.path.join(maildir, "new", "*"))
    files.sort(key=os.path.getmtime)
    out = []
    for p in files:
        with open(p, "rb") as f:
            out.append(f.read())
    return out


class Postfix:
    """A private Postfix in root (created): root/conf, root/queue,
    root/data, root/maillog.  settings are main.cf parameters on top of
    the ones every private instance has (paths, owner, loopback
    networks, no aliases); set() adds more before start()."""

    def __init__(self, root, host, port, settings=None, services="",
                 wrap=None):
        # services: more master.cf lines (a policy service, ...); wrap:
        # a command prefix for `postfix start` (a mount namespace with a
        # resolv.conf of the test's, ...), which the master inherits.
        self.services = services
        self.wrap = list(wrap or [])
        self.root = root
        self.host, self.port = host, port
        self.conf = os.path.join(root, "conf")
        self.queue = os.path.join(root, "queue")
        self.data = os.path.join(root, "data")
        self.log = os.path.join(root, "maillog")
        self.pid = None
        # More master.cf lines (another smtpd on another port with its
        # own -o settings, say), written after the main smtpd.
        self.master_extra = []
        pf = pwd.getpwnam("postfix")
        os.makedirs(root, exist_ok=True)
        # Postfix's unprivileged processes must reach their files;
        # postfix-script creates the queue's subdirectories.
        os.chmod(root, 0o755)
        for d in (self.conf, self.queue, self.data):
            os.mkdir(d, 0o755)
        os.chown(self.data, pf.pw_uid, pf.pw_gid)
        try:
            grp.getgrnam("postdrop")
            setgid = "postdrop"
        except KeyError:
            setgid = "postfix"
        self.settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": setgid,
            "maillog_file": self.log,
            "maillog_file_prefixes": root,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
        }
        self.settings.update(settings or {})

    def set(self, settings):
        self.settings.update(settings)

    def start(self, timeout=15.0):
        """Writes the config, starts the master and waits until smtpd
        answers.  Raises RuntimeError (with the log) when it does not."""
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in self.settings.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("%s:%d inet n - n - - smtpd\n" % (self.host, self.port))
            for line in self.master_extra:
                f.write(line + "\n")
            f.write(SERVICES)
            f.write(self.services)
        env = dict(os.environ)
        env.pop("MAIL_CONFIG", None)
        r = subprocess.run(self.wrap + [POSTFIX, "-c", self.conf, "start"],
                           env=env,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start: %s" % (
                r.stdout + r.stderr).strip().replace("\n", " | "))
        self.pid = procs.read_pidfile(
            os.path.join(self.queue, "pid", "master.pid"), timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), 0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("postfix does not listen: %s" %
                                       self.read_log()[-2000:])
                time.sleep(0.1)

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def queue_empty(self):
        for q in ("incoming", "active", "deferred"):
            for _dp, _dn, files in os.walk(os.path.join(self.queue, q)):
                if files:
                    return False
        return True

    def stop(self, timeout=15.0):
        """Ends the master (it stops its children) by its PID."""
        if self.pid is not None:
            procs.stop_pid(self.pid, timeout)
            self.pid = None

    def close(self):
        """stop(), then removes root."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
