"""Debian's Postfix as a private MX on loopback, for the relay tests.

A config dir and queue of its own (`postfix -c DIR start`, as root),
listening on host:port only, accepting mail for one domain into a
maildir under its directory.  Stopped by the master's PID.
"""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available():
    """None when a private Postfix can run here, else why not."""
    if not os.path.exists(POSTFIX):
        return "%s is not installed" % POSTFIX
    if os.geteuid() != 0:
        return "starting Postfix needs root"
    try:
        import pwd
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user"
    return None


class Postfix:
    """Postfix for domain on host:port; users are the addresses it has
    (others get 550 5.1.1); cert/key enable STARTTLS."""

    def __init__(self, host, port, domain, users, hostname, cert=None,
                 key=None):
        import pwd
        import grp
        pw = pwd.getpwnam("postfix")
        self.dir = tempfile.mkdtemp(prefix="postroom-postfix-")
        # Postfix's unprivileged processes must reach their files.
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.mail = os.path.join(self.dir, "mail")
        data = os.path.join(self.dir, "data")
        for d in (self.conf, self.queue, self.mail, data):
            os.mkdir(d, 0o755)
        for d in (self.mail, data):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.log = os.path.join(self.dir, "maillog")
        maps = ", ".join("%s=maildir/" % u for u in users)
        tls = ""
        if cert:
            tls = ("smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"
                   "smtpd_tls_security_level = may\n"
                   "smtpd_tls_received_header = yes\n"
                   "smtpd_tls_loglevel = 1\n" % (cert, key))
        try:
            grp.getgrnam("postdrop")
            setgid = "postdrop"
        except KeyError:
            setgid = "postfix"
        main_cf = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = {setgid}
myhostname = {hostname}
mydomain = {domain}
myorigin = {domain}
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {log}
maillog_file_prefixes = {dir}
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {mail}
virtual_mailbox_maps = inline:{{ {maps} }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
biff = no
smtputf8_enable = yes
{tls}""".format(queue=self.queue, data=data, setgid=setgid,
                hostname=hostname, domain=domain, log=self.log, dir=self.dir,
                mail=self.mail, maps=maps, uid=pw.pw_uid, gid=pw.pw_gid,
                tls=tls)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main_cf)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen="%s:%d" % (host, port)))
        r = subprocess.run([POSTFIX, "-c", self.conf, "start"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start: %s %s" % (r.stdout,
                                                         r.stderr))
        self.pid = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with open(os.path.join(self.queue, "pid",
                                       "master.pid")) as f:
                    self.pid = int(f.read().split()[0])
                import socket
                with socket.create_connection((host, port), 0.5):
                    break
            except (OSError, ValueError):
                time.sleep(0.1)
        else:
            raise RuntimeError("postfix does not listen: %s" %
                               self.read_log())

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def maildir(self):
        """The delivered messages (bytes), oldest first."""
        files = glob.glob(os.path.join(self.mail, "maildir", "new", "*"))
        files.sort(key=os.path.getmtime)
        out = []
        for p in files:
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def close(self):
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(self.pid, 0)
                    time.sleep(0.1)
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
