#!/usr/bin/python3
"""postroom-sendmail end to end: the machine's local mail.

Real programs from Debian submit through the build tree's sendmail
(bsd-mailx through its `sendmail` variable, mailutils through its
`sendmail` URL), the mail reaches the postmaster's POP3 mailbox; sendmail
-t (Bcc stripped, each recipient once), -bs, a relayed message to a
remote domain (dnsmasq + a fake MX on loopback), mail kept while smtpd is
stopped and delivered exactly once (also after a kill -9 of sendmail and
after a crash between the commit and the unlink), a local user who
cannot forge another hosted address with -f (a throwaway Unix user and
a set-group-ID copy of sendmail in the test's directory), mailq,
newaliases, the exit codes of sysexits.h and a full spool disk.

Needs root (useradd, chgrp, a tmpfs); everything listens on loopback and
every process started here is stopped by PID.
"""

import os
import poplib
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from harness import BUILD, Instance, free_port, wait_for  # noqa: E402
from tap import Check, skip  # noqa: E402
from relay_util import Dns, FakeMX  # noqa: E402

SENDMAIL = os.path.join(BUILD, "tools", "postroom-sendmail")
HOST = "box.example.test"
PM = "pm@example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
PW = "secret pw"
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 64, 65, 67, 75


def pop3_fetch(inst, user, password=PW):
    """Every message of user's maildrop over POP3, as bytes."""
    host, port = inst.hp("pop3").rsplit(":", 1)
    c = poplib.POP3(host, int(port), timeout=10)
    try:
        c.user(user)
        c.pass_(password)
        n = len(c.list()[1])
        return [b"\r\n".join(c.retr(i + 1)[1]) for i in range(n)]
    finally:
        c.quit()


class Env:
    def __init__(self, t):
        self.t = t
        self.users = []
        self.groups = []
        self.mounts = []
        self.servers = []
        self.dns = None
        self.inst = None

    def run(self, args, input=b"", env=None, user=None, argv0=None,
            binary=None):
        e = dict(os.environ)
        e["POSTROOM_CONFIG"] = self.inst.config
        e.update(env or {})
        cmd = [binary or SENDMAIL] + list(args)
        kw = {}
        if user is not None:
            # setpriv keeps the binary's set-group-ID bit working (no
            # no_new_privs), as a login shell would.
            cmd = ["setpriv", "--reuid=" + user, "--regid=nogroup",
                   "--init-groups"] + cmd
        if argv0 is not None:
            kw["executable"] = cmd[0]
            cmd = [argv0] + cmd[1:]
        return subprocess.run(cmd, input=input, capture_output=True,
                              env=e, timeout=60, **kw)

    def close(self):
        if self.inst is not None:
            self.inst.close()
        for s in self.servers:
            s.close()
        if self.dns is not None:
            self.dns.close()
        for m in self.mounts:
            if subprocess.run(["umount", m]).returncode != 0:
                subprocess.run(["umount", "-l", m])
        for u in self.users:
            subprocess.run(["userdel", u], capture_output=True)
        for g in self.groups:
            subprocess.run(["groupdel", g], capture_output=True)


def stored(inst, address):
    return [bytes(x) for x in inst.stored(address)]


def maildrop_files(path):
    return sorted(os.listdir(path))


def main():
    t = Check()
    if os.geteuid() != 0:
        skip("needs root (useradd, set-group-ID copy, tmpfs)")
    env = Env(t)
    try:
        body(t, env)
    finally:
        env.close()
    return t.done()


def body(t, env):
    mx_port = free_port("127.0.0.21")
    env.dns = Dns(mx={"remote.test": [(10, "mx.remote.test")],
                      "down.test": [(10, "mx.down.test")]},
                  a={"mx.remote.test": "127.0.0.21",
                     "mx.down.test": "127.0.0.22"})
    mx = FakeMX("127.0.0.21", mx_port, name="mx.remote.test")
    env.servers.append(mx)

    inst = Instance(hostname=HOST, tls=False, extra={
        "server": {"postmaster": PM},
        "relay": {"enabled": "true", "resolver": env.dns.resolver,
                  "mx_port": str(mx_port)}})
    env.inst = inst
    # Throwaway users reach the test's files: the directory is
    # searchable, the spool a separate 1730 directory in it.
    os.chmod(inst.tmp, 0o755)
    drop = os.path.join(inst.tmp, "maildrop")
    inst.extra["server"]["maildrop"] = drop
    inst.write_config()
    inst.cli("init")
    inst.add_domain("example.test")
    for u in (PM, ALICE, BOB, CAROL):
        inst.add_user(u, PW)

    st = os.stat(drop)
    t.eq(stat.S_IMODE(st.st_mode), 0o1730, "postroom init makes the "
         "maildrop mode 1730")

    # --- smtpd stopped: kept, delivered once it starts ---------------
    r = env.run(["-i", ALICE], b"Subject: while down\n\nkept\n")
    t.eq(r.returncode, 0, "sendmail exits 0 while smtpd is stopped")
    files = maildrop_files(drop)
    t.ok(len(files) == 1 and files[0].startswith("M"),
         "the message waits in the maildrop", files)
    q = env.run(["-bp"], argv0="mailq")
    t.ok(q.returncode == 0 and b"waiting for postroom-smtpd" in q.stdout,
         "mailq lists the message waiting for pickup", q.stdout + q.stderr)
    saved = None
    if files:
        with open(os.path.join(drop, files[0]), "rb") as f:
            saved = (files[0], f.read())

    # A sendmail killed while the message is being written leaves
    # nothing that could be delivered: half a message on stdin ...
    p = subprocess.Popen([SENDMAIL, "-i", BOB], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL,
                         env=dict(os.environ, POSTROOM_CONFIG=inst.config))
    p.stdin.write(b"Subject: half\n\nfirst half ")
    p.stdin.flush()
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdin.close()
    # ... and a temporary file as a sendmail killed after it created it.
    stale = os.path.join(drop, "T1000.00112233445566ff")
    with open(stale, "wb") as f:
        f.write(b"postroom-maildrop 1\nR" + BOB.encode() + b"\n\nhalf")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    inst.start("smtpd")
    inst.start("pop3d")
    t.ok(wait_for(lambda: len(stored(inst, ALICE)) == 1, 15),
         "smtpd delivers the kept message when it starts",
         inst.log("smtpd"))
    t.ok(wait_for(lambda: not os.path.exists(stale), 10),
         "an abandoned temporary spool file is removed", inst.log("smtpd"))
    t.ok(wait_for(lambda: maildrop_files(drop) == [], 10),
         "the spool file is unlinked after the commit",
         maildrop_files(drop))
    time.sleep(0.5)
    t.eq(len(stored(inst, BOB)), 0, "nothing half-submitted is delivered")

    # A crash between the commit and the unlink: the same file again is
    # recognised by its name and not delivered twice.
    if saved is not None:
        inst.stop("smtpd")
        with open(os.path.join(drop, saved[0]), "wb") as f:
            f.write(saved[1])
        inst.start("smtpd")
        t.ok(wait_for(lambda: maildrop_files(drop) == [], 15),
             "a spool file delivered before is removed", inst.log("smtpd"))
        t.eq(len(stored(inst, ALICE)), 1,
             "... and not delivered a second time")
        t.ok("delivered before" in inst.log("smtpd"),
             "... the log says it was delivered before")
    msg = stored(inst, ALICE)[0] if stored(inst, ALICE) else b""
    t.ok(b"Received: by %s (postroom, from userid 0 (root))" %
         HOST.encode() in msg,
         "the Received field records the uid", msg[:400])
    t.ok(b"From: " in msg and b"Date: " in msg and b"Message-ID: " in msg,
         "From, Date and Message-ID are added", msg[:600])

    # --- sendmail -t: To, Cc, Bcc ---------------------------------
    text = (b"From: root@" + HOST.encode() + b"\n"
            b"To: Alice <alice@example.test>, alice@example.test\n"
            b"Cc: \"Bob, B.\" <bob@example.test> (the builder)\n"
            b"Bcc: carol@example.test\n"
            b"Subject: three of them\n\nhello all\n.\nafter the dot\n")
    r = env.run(["-t", "-oi"], text)
    t.eq(r.returncode, 0, "sendmail -t exits 0")
    ok = wait_for(lambda: len(stored(inst, ALICE)) == 2 and
                  len(stored(inst, BOB)) == 1 and
                  len(stored(inst, CAROL)) == 1, 15)
    t.ok(ok, "To, Cc and Bcc recipients each get the message",
         inst.log("smtpd"))
    time.sleep(0.5)
    t.eq((len(stored(inst, ALICE)), len(stored(inst, BOB)),
          len(stored(inst, CAROL))), (2, 1, 1),
         "each recipient gets it exactly once")
    for who in (ALICE, BOB, CAROL):
        got = stored(inst, who)[-1] if stored(inst, who) else b""
        t.ok(b"Bcc:" not in got and b"three of them" in got,
             "no Bcc field in the copy of %s" % who, got[:500])
    t.ok(b"after the dot" in (stored(inst, BOB) or [b""])[-1],
         "-oi: a line with a dot does not end the message")

    # Without -i a lone dot ends the message (old sendmail convention).
    r = env.run([BOB], b"Subject: dot\n\nbefore\n.\nnot this\n")
    t.ok(r.returncode == 0 and wait_for(
        lambda: len(stored(inst, BOB)) == 2, 15), "a message without -i")
    got = stored(inst, BOB)[-1] if len(stored(inst, BOB)) == 2 else b""
    t.ok(b"before" in got and b"not this" not in got,
         "without -i the dot line ends the message", got)

    # --- real programs: bsd-mailx and mailutils --------------------
    mailx = shutil.which("bsd-mailx")
    if mailx is None:
        t.ok(False, "bsd-mailx is installed (tests/install-deps.sh)")
    else:
        rc = os.path.join(inst.tmp, "mailrc")
        with open(rc, "w") as f:
            f.write("set sendmail=%s\n" % SENDMAIL)
        r = subprocess.run([mailx, "-s", "from bsd-mailx", "root"],
                           input=b"body via mailx\n", capture_output=True,
                           timeout=60, env=dict(
                               os.environ, MAILRC=rc, HOME=inst.tmp,
                               POSTROOM_CONFIG=inst.config))
        t.eq(r.returncode, 0, "echo body | mail -s subject root (bsd-mailx)")
    mu = shutil.which("mail.mailutils")
    if mu is None:
        t.ok(False, "mailutils is installed (tests/install-deps.sh)")
    else:
        r = subprocess.run([mu, "-E", "set sendmail=sendmail://" + SENDMAIL,
                            "-s", "from mailutils", "www-data"],
                           input=b"body via mailutils\n",
                           capture_output=True, timeout=60, env=dict(
                               os.environ, HOME=inst.tmp, MAILRC="/dev/null",
                               POSTROOM_CONFIG=inst.config))
        t.ok(r.returncode == 0, "mailutils' mail to www-data", r.stderr)

    def pm_subjects():
        return b"\n".join(pop3_fetch(inst, PM))
    t.ok(wait_for(lambda: b"from bsd-mailx" in pm_subjects() and
                  b"from mailutils" in pm_subjects(), 15),
         "both end up in the postmaster's POP3 mailbox",
         inst.log("smtpd")[-3000:])
    t.ok(b"X-Original-To: <root@" + HOST.encode() + b">" in pm_subjects(),
         "the postmaster's copy says whom it was for")

    # --- -bs: SMTP on stdin/stdout ----------------------------------
    dialog = (b"EHLO client.example\r\n"
              b"MAIL FROM:<root@" + HOST.encode() + b">\r\n"
              b"RCPT TO:<carol@example.test>\r\n"
              b"RCPT TO:<not an address>\r\n"
              b"DATA\r\n"
              b"Subject: over -bs\r\n\r\n..stuffed line\r\n.\r\n"
              b"QUIT\r\n")
    r = env.run(["-bs"], dialog)
    lines = r.stdout.decode().split("\r\n")
    codes = [ln[:3] for ln in lines if ln[:3].isdigit() and
             (len(ln) == 3 or ln[3] == " ")]
    t.eq(codes, ["220", "250", "250", "250", "501", "354", "250", "221"],
         "-bs: the SMTP dialog")
    t.ok(r.returncode == 0 and wait_for(
        lambda: len(stored(inst, CAROL)) == 2, 15), "-bs: delivered")
    got = stored(inst, CAROL)[-1] if len(stored(inst, CAROL)) == 2 else b""
    t.ok(b"\r\n.stuffed line" in got, "-bs: dot-stuffing undone", got)

    # --- exit codes ---------------------------------------------------
    r = env.run(["-i", "bad address@@x"], b"x\n")
    t.ok(r.returncode == EX_NOUSER and len(r.stderr.splitlines()) == 1,
         "an invalid recipient: EX_NOUSER and one line", r)
    r = env.run(["-i"], b"x\n")
    t.ok(r.returncode == EX_USAGE and b"no recipients" in r.stderr,
         "no recipients: EX_USAGE", r)
    r = env.run(["-t"], b"Subject: nobody\n\nx\n")
    t.ok(r.returncode == EX_USAGE and b"no recipient" in r.stderr,
         "-t without recipients: EX_USAGE", r)
    r = env.run(["-bx"], b"")
    t.eq(r.returncode, EX_USAGE, "an unsupported mode: EX_USAGE")
    r = env.run(["-odi", "-oem", "-Otimeout=5", "-N", "never", "-v",
                 "--", CAROL], b"Subject: options\n\nx\n")
    t.eq(r.returncode, 0, "-oX, -O, -N, -v and -- are accepted")
    t.ok(wait_for(lambda: len(stored(inst, CAROL)) == 3, 15),
         "... and the message delivered")

    # --- relay: a local user's mail to a remote domain -----------------
    uid = 0
    users = []
    for i in range(2):
        name = "prsm%d%d" % (os.getpid() % 10000, i)
        r = subprocess.run(["useradd", "-M", "-N", "-s", "/bin/false",
                            "-g", "nogroup", name], capture_output=True)
        if r.returncode != 0:
            t.ok(False, "useradd %s" % name, r.stderr)
            return
        env.users.append(name)
        users.append(name)
    grp = "prsmdrop%d" % (os.getpid() % 10000)
    subprocess.run(["groupadd", grp], check=True)
    env.groups.append(grp)
    # The installed layout in miniature: a set-group-ID copy and the
    # spool of that group.
    sgid = os.path.join(inst.tmp, "sendmail")
    shutil.copy(SENDMAIL, sgid)
    shutil.chown(sgid, "root", grp)
    os.chmod(sgid, 0o2755)
    shutil.chown(drop, None, grp)
    os.chmod(drop, 0o1730)
    u1, u2 = users
    uid = pwd.getpwnam(u1).pw_uid

    r = env.run(["-i", "someone@remote.test"],
                b"Subject: to the world\n\nout\n", user=u1, binary=sgid)
    t.eq(r.returncode, 0, "a local user's sendmail exits 0", )
    t.ok(wait_for(lambda: any("someone@remote.test" in m[1]
                              for m in mx.messages), 20),
         "the message is relayed to the remote MX", inst.log("smtpd"))
    m = [x for x in mx.messages if "someone@remote.test" in x[1]]
    t.ok(m and m[0][0] == "%s@%s" % (u1, HOST),
         "the envelope sender is user@hostname", m[:1])
    t.ok(m and (b"from userid %d (" % uid) in m[0][2],
         "the Received field records the user's uid", m[:1])

    # --- -f: no forging of a hosted address -----------------------
    r = env.run(["-i", "-f", ALICE, BOB],
                b"Subject: forged\n\nI am alice\n", user=u1, binary=sgid)
    t.eq(r.returncode, 0, "sendmail -f exits 0 (smtpd decides)")
    t.ok(wait_for(lambda: "may not send as <%s>" % ALICE in
                  inst.log("smtpd"), 15),
         "smtpd refuses -f of a hosted address the user does not own",
         inst.log("smtpd")[-2000:])
    time.sleep(0.5)
    t.ok(all(b"I am alice" not in x for x in stored(inst, BOB)),
         "the forged message is not delivered")
    t.ok(wait_for(lambda: any(b"sender address refused" in x and
                              (u1.encode() in x)
                              for x in pop3_fetch(inst, PM)), 10),
         "the user is told (their mail goes to the postmaster)")

    # A user mapped to the address (an alias user@hostname -> address)
    # may use it; so may root.
    inst.add_domain(HOST)
    inst.cli("alias", "add", "%s@%s" % (u2, HOST), ALICE)
    r = env.run(["-i", "-f", ALICE, BOB],
                b"Subject: mapped\n\nreally alice\n", user=u2, binary=sgid)
    t.ok(r.returncode == 0 and wait_for(
        lambda: any(b"really alice" in x for x in stored(inst, BOB)), 15),
        "the mapped user may send as that address", inst.log("smtpd"))
    got = [x for x in stored(inst, BOB) if b"really alice" in x]
    t.ok(got and (b"Return-Path: <%s>" % ALICE.encode()) in got[0],
         "... with that envelope sender")
    r = env.run(["-i", "-f", BOB, CAROL], b"Subject: root\n\nas bob\n")
    t.ok(r.returncode == 0 and wait_for(
        lambda: any(b"as bob" in x for x in stored(inst, CAROL)), 15),
        "root may use any -f")
    r = env.run(["-i", "-f", "someone@elsewhere.example", CAROL],
                b"Subject: outside\n\nnot hosted\n", user=u1, binary=sgid)
    t.ok(r.returncode == 0 and wait_for(
        lambda: any(b"not hosted" in x for x in stored(inst, CAROL)), 15),
        "-f of a domain not hosted here is allowed")

    # --- the header From: and Sender: are checked like -f -------------
    # The relay signs for the From: domain and DMARC aligns with it: a
    # forged header would go out with the domain's signature.
    def refusals():
        return inst.log("smtpd").count("may not send as <%s>" % ALICE)
    n0 = refusals()
    r = env.run(["-i", BOB], b"From: Alice <" + ALICE.encode() +
                b">\nSubject: hdr\n\nheader alice\n", user=u1, binary=sgid)
    t.ok(r.returncode == 0 and wait_for(lambda: refusals() > n0, 15),
         "a header From: of a hosted address the user does not own is "
         "refused", inst.log("smtpd")[-2000:])
    r = env.run(["-i", BOB], b"Sender: " + ALICE.encode() +
                b"\nSubject: hdr\n\nsender alice\n", user=u1, binary=sgid)
    t.ok(r.returncode == 0 and wait_for(lambda: refusals() > n0 + 1, 15),
         "... and so is a header Sender:", inst.log("smtpd")[-2000:])
    n1 = len(inst.log("smtpd"))
    r = env.run(["-i", BOB], b"From: " + ALICE.encode() +
                b" (\nSubject: hdr\n\nbroken alice\n", user=u1, binary=sgid)
    t.ok(r.returncode == 0 and wait_for(
        lambda: "may not send as <%s (>" % ALICE in inst.log("smtpd")[n1:],
        15), "... and a From: that does not parse but names a hosted "
        "domain", inst.log("smtpd")[-2000:])
    r = env.run(["-i", BOB], b"From: root (Cron Daemon)\nSubject: cron\n\n"
                b"cron alike\n", user=u1, binary=sgid)
    t.ok(r.returncode == 0 and wait_for(
        lambda: any(b"cron alike" in x for x in stored(inst, BOB)), 15),
        "a bare name in From: (as cron writes it) is delivered",
        inst.log("smtpd")[-2000:])
    t.ok(all(b"header alice" not in x and b"sender alice" not in x and
             b"broken alice" not in x for x in stored(inst, BOB)),
         "none of the forged headers is delivered")

    # --- the set-group-ID program and the caller's own files ----------
    # A file only the group may read is not read for the caller: not as
    # a config (whose errors would show its lines), nor as aliases.
    secret = os.path.join(inst.tmp, "group-only")
    with open(secret, "w") as f:
        f.write("[top secret line]\nroot: x\n")
    shutil.chown(secret, "root", grp)
    os.chmod(secret, 0o640)
    r = env.run(["-C", secret, "-i", BOB], b"x\n", user=u1, binary=sgid)
    t.ok(r.returncode == 78 and b"Permission denied" in r.stderr and
         b"secret" not in r.stderr.replace(secret.encode(), b""),
         "-C of a file only the group can read: EX_CONFIG", r.stderr)
    r = env.run(["-bi", "-oA" + secret], user=u1, binary=sgid)
    t.ok(r.returncode == 66 and b"Permission denied" in r.stderr,
         "newaliases -oA of a file only the group can read: EX_NOINPUT",
         r.stdout + r.stderr)
    # Descriptors 0-2 closed at exec: nothing of ours lands in the spool.
    n = len([x for x in stored(inst, CAROL) if b"closed fds" in x])
    r = subprocess.run(["setpriv", "--reuid=" + u1, "--regid=nogroup",
                        "--init-groups", "sh", "-c",
                        'printf "Subject: closed fds\\n\\nx\\n" | '
                        '"$0" -v -i "$1" >&- 2>&-', sgid, CAROL],
                       env=dict(os.environ, POSTROOM_CONFIG=inst.config),
                       capture_output=True, timeout=60)
    t.ok(r.returncode == 0 and wait_for(lambda: len(
        [x for x in stored(inst, CAROL) if b"closed fds" in x]) == n + 1,
        15), "stdout and stderr closed: delivered", r.stderr)
    got = [x for x in stored(inst, CAROL) if b"closed fds" in x]
    t.ok(got and b"queued as" not in got[-1], "... and nothing else in it")

    # --- max_message_size counts the fields sendmail adds --------------
    conf3 = os.path.join(inst.tmp, "small.conf")
    with open(inst.config) as f:
        text = f.read().replace("[smtp]\n", "[smtp]\nmax_message_size = "
                                "2048\n", 1)
    with open(conf3, "w") as f:
        f.write(text)
    before = maildrop_files(drop)
    r = env.run(["-i", CAROL], b"Subject: s\n\n" + b"y" * 2000 + b"\n",
                env={"POSTROOM_CONFIG": conf3})
    t.ok(r.returncode == EX_DATAERR and b"max_message_size" in r.stderr,
         "a message that the added fields make too big: EX_DATAERR", r)
    t.eq(maildrop_files(drop), before, "... and nothing spooled (held)")
    r = env.run(["-bs"], b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<" +
                CAROL.encode() + b">\r\nDATA\r\nSubject: s\r\n\r\n" +
                b"y" * 2000 + b"\r\n.\r\nQUIT\r\n",
                env={"POSTROOM_CONFIG": conf3})
    codes = [ln[:3] for ln in r.stdout.decode().split("\r\n") if ln]
    t.ok(r.returncode == 0 and codes[-2:] == ["552", "221"] and
         maildrop_files(drop) == before,
         "-bs: the same message gets 552 and the session goes on", r)

    # --- a line that never ends costs no memory ------------------------
    # The message is refused once it passes max_message_size, not after
    # the whole line was read into memory (256 MiB here).
    p = subprocess.Popen([SENDMAIL, "-i", CAROL], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(os.environ, POSTROOM_CONFIG=conf3))
    try:
        chunk = b"z" * (1 << 20)
        for _ in range(256):
            p.stdin.write(chunk)
        p.stdin.close()
    except BrokenPipeError:
        pass
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    t.ok(p.returncode == EX_DATAERR and b"max_message_size" in err and
         ru.ru_maxrss < 64 * 1024,
         "an endless line: EX_DATAERR, memory bounded",
         (p.returncode, ru.ru_maxrss, err))
    t.eq(maildrop_files(drop), before, "... and nothing spooled")
    r = env.run(["-bs"], b"HELO c\r\nNOOP " + b"x" * 2000 +
                b"\r\nQUIT\r\n")
    codes = [ln[:9] for ln in r.stdout.decode().split("\r\n") if ln]
    t.ok(r.returncode == 0 and codes[-2:] == ["500 5.5.2", "221 2.0.0"],
         "-bs: a command line beyond 1000 octets gets 500 5.5.2", r)

    # --- smtpd checks what the spool file says -------------------------
    # The file is the user's; a sender with a CR in it would have made
    # header fields of its own in Return-Path.
    planted = "M%d.%016x" % (int(time.time()), 0xfeed)
    with open(os.path.join(drop, planted + ".w"), "wb") as f:
        f.write(b"postroom-maildrop 1\nFbad\rX-Evil: 1\rx@example.test\n"
                b"R" + CAROL.encode() + b"\n\nSubject: planted\n\nx\n")
    os.rename(os.path.join(drop, planted + ".w"), os.path.join(drop, planted))
    t.ok(wait_for(lambda: "H" + planted[1:] in os.listdir(drop), 15) and
         "%s: malformed sender" % planted in inst.log("smtpd"),
         "a spool file with a malformed sender is held",
         inst.log("smtpd")[-2000:])
    t.ok(all(b"X-Evil" not in x for x in stored(inst, CAROL)),
         "... and not delivered")
    os.unlink(os.path.join(drop, "H" + planted[1:]))

    # A config the caller controls is not trusted with the group.
    own = os.path.join(inst.tmp, "own.conf")
    shutil.copy(inst.config, own)
    os.chmod(own, 0o666)
    r = env.run(["-C", own, "-i", BOB], b"x\n", user=u1, binary=sgid)
    t.ok(r.returncode == EX_TEMPFAIL and b"Permission denied" in r.stderr,
         "a writable config drops the group: no spool access", r.stderr)

    # --- newaliases ---------------------------------------------------
    # Unix user alice reads mail as alice@example.test: the admin's map.
    inst.cli("alias", "add", "alice@" + HOST, ALICE)
    aliases = os.path.join(inst.tmp, "aliases")
    with open(aliases, "w") as f:
        f.write("# /etc/aliases\nmailer-daemon: postmaster\n"
                "postmaster: root\nroot: alice\n"
                "logs: |/usr/bin/logger\n")
    r = env.run(["-oA" + aliases], argv0="newaliases")
    out = r.stdout.decode()
    t.ok(r.returncode == 0 and "root@%s -> alice@%s" % (HOST, HOST) in out
         and "imported 3 aliases" in out, "newaliases imports "
         "/etc/aliases and says what", out + r.stderr.decode())
    t.ok("logger" in out and "not supported" in out,
         "... and what it skipped", out)
    n = len(stored(inst, ALICE))
    r = subprocess.run("echo cron output | %s -s cron root" % mailx,
                       shell=True, capture_output=True, timeout=60,
                       env=dict(os.environ, MAILRC=rc, HOME=inst.tmp,
                                POSTROOM_CONFIG=inst.config)) \
        if mailx else None
    t.ok(r is not None and r.returncode == 0 and wait_for(
        lambda: len(stored(inst, ALICE)) == n + 1, 15),
        "root: alice routes root's mail to alice")

    # --- mailq lists the queue ---------------------------------------
    r = env.run(["-i", "late@down.test"], b"Subject: stuck\n\nx\n")
    t.ok(r.returncode == 0 and wait_for(
        lambda: "late@down.test" in inst.queued_rcpts(), 15),
        "mail to an unreachable MX is queued")
    q = env.run([], argv0="mailq")
    t.ok(q.returncode == 0 and b"late@down.test" in q.stdout and
         b"root@" + HOST.encode() in q.stdout,
         "mailq lists the queue", q.stdout + q.stderr)
    q = env.run(["-bp"], user=u1, binary=sgid)
    t.ok(q.returncode == 77 and len(q.stderr.splitlines()) == 1,
         "mailq as a plain user: EX_NOPERM with one line", q.stderr)

    # --- a full spool disk --------------------------------------------
    small = os.path.join(inst.tmp, "small")
    os.mkdir(small)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755",
                        "tmpfs", small], capture_output=True)
    if not t.ok(r.returncode == 0, "a small tmpfs for the spool",
                r.stderr):
        return
    env.mounts.append(small)
    conf2 = os.path.join(inst.tmp, "full.conf")
    with open(inst.config) as f:
        text = f.read().replace("maildrop = " + drop,
                                "maildrop = " + small + "/drop")
    with open(conf2, "w") as f:
        f.write(text)
    os.mkdir(small + "/drop", 0o1730)
    r = env.run(["-i", BOB], b"Subject: big\n\n" + b"x" * 200000 + b"\n",
                env={"POSTROOM_CONFIG": conf2})
    t.ok(r.returncode == EX_TEMPFAIL and b"No space left" in r.stderr and
         len(r.stderr.splitlines()) == 1,
         "a full disk: EX_TEMPFAIL and why", r.stderr)
    t.eq([x for x in os.listdir(small + "/drop")], [],
         "... and nothing left behind")


if __name__ == "__main__":
    sys.exit(main())
