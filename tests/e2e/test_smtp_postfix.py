#!/usr/bin/python3
"""A real Postfix relays to postroom-smtpd: a private Postfix instance
(its own config and queue directories, loopback ports only) accepts a
message and hands it to postroom over SMTP with STARTTLS, as an MX would
receive it from the Internet.  The message must arrive byte for byte,
with Postfix's trace fields and ours.

Needs /usr/sbin/postfix and root (Postfix's master runs as root and drops
to the postfix user); otherwise exits 77, which meson reports as skipped.
"""

import os
import pwd
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time

from smtp_util import ALICE, Check, instance, messages, split_stored, \
    wait_for
from harness import free_port

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relay_domains =
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = encrypt
smtp_tls_loglevel = 1
smtputf8_enable = yes
biff = no
"""


def postfix(confdir, *args):
    return subprocess.run([POSTFIX, "-c", confdir] + list(args),
                          capture_output=True, text=True, timeout=60)


def main():
    if not os.path.exists(POSTFIX):
        print("# SKIP: %s not installed" % POSTFIX)
        return 77
    if os.geteuid() != 0:
        print("# SKIP: a private Postfix instance needs root")
        return 77
    t = Check()
    inst = instance()
    pdir = tempfile.mkdtemp(prefix="postroom-postfix-")
    os.chmod(pdir, 0o755)
    master_pid = None
    try:
        inst.start("smtpd")
        pport = free_port()
        with open(os.path.join(pdir, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=pdir,
                                   relay_port=inst.ports["smtp"]))
        with open(os.path.join(pdir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port="127.0.0.1:%d" % pport))
        # postfix-script creates the queue's subdirectories, not these.
        os.mkdir(os.path.join(pdir, "queue"), 0o755)
        os.mkdir(os.path.join(pdir, "data"), 0o700)
        pw = pwd.getpwnam("postfix")
        os.chown(os.path.join(pdir, "data"), pw.pw_uid, pw.pw_gid)
        r = postfix(pdir, "start")
        if r.returncode != 0:
            print("# SKIP: postfix would not start: %s" %
                  (r.stdout + r.stderr).strip().replace("\n", " | "))
            return 77
        pidfile = os.path.join(pdir, "queue", "pid", "master.pid")
        wait_for(lambda: os.path.exists(pidfile), 10)
        with open(pidfile) as f:
            master_pid = int(f.read().strip())
        t.ok(master_pid > 0, "private postfix started (pid %d)" % master_pid)

        msg = (b"From: someone@relay.test\r\n"
               b"To: alice@example.test\r\n"
               b"Subject: via postfix\r\n"
               b"Message-ID: <postfix-test@relay.test>\r\n"
               b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
               b"\r\n"
               b"Relayed by Postfix.\r\n"
               b".A line with a leading dot.\r\n")
        ok = False
        for _ in range(50):
            try:
                with smtplib.SMTP("127.0.0.1", pport, timeout=10) as s:
                    s.sendmail("someone@relay.test", [ALICE], msg)
                ok = True
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.2)
        t.ok(ok, "postfix accepted the message")
        arrived = wait_for(lambda: len(messages(inst, ALICE)) > 0, 30)
        plog = ""
        if os.path.exists(os.path.join(pdir, "maillog")):
            with open(os.path.join(pdir, "maillog")) as f:
                plog = f.read()
        t.ok(arrived, "postfix relayed it to postroom", plog[-2000:])
        if arrived:
            stored = messages(inst, ALICE)[0]
            head, rest = split_stored(stored)
            t.ok(b"with ESMTPS id" in head and b"(using TLSv1." in head,
                 "postfix used STARTTLS towards postroom", head)
            t.ok(b"Received: from relay.test ([127.0.0.1])" in head,
                 "our Received names postfix's EHLO", head)
            t.ok(head.count(b"Received: ") == 2 and
                 b"by relay.test (Postfix)" in head,
                 "postfix's own Received field is kept below ours", head)
            t.ok(rest.endswith(msg), "message intact through postfix",
                 rest)
        t.ok("status=sent" in plog, "postfix logged status=sent",
             plog[-2000:])
    finally:
        if master_pid is not None:
            try:
                os.kill(master_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            wait_for(lambda: not os.path.exists(
                "/proc/%d" % master_pid), 15)
        inst.close()
        shutil.rmtree(pdir, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
