#!/usr/bin/python3
"""The fail2ban filter of packaging/fail2ban/ against the daemons' own
log lines (docs/LOGGING.md): real SMTP AUTH and POP3 login failures
and successes from different loopback addresses, logged by smtpd and
pop3d, then Debian's fail2ban-regex with the filter.  It must report
the address of every failure and none of a successful login, and a
user name that carries a forged "client=" must not get another address
banned.

The daemons run twice: on a terminal (a pty: ISO 8601 time first), and
on a stream named by JOURNAL_STREAM, as under systemd, whose "<N>"
priorities the test checks and turns into the lines fail2ban's systemd
backend hands its filter (the journal's time, host, SYSLOG_IDENTIFIER[PID]:
MESSAGE)."""

import os
import poplib
import pty
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

from smtp_util import ALICE, PASSWORD, Check, instance, wait_for

import harness
import procs

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FILTER = os.path.join(SRC, "packaging", "fail2ban", "filter.d",
                      "postroom.conf")
JAIL = os.path.join(SRC, "packaging", "fail2ban", "jail.d", "postroom.conf")
COMMON = "/etc/fail2ban/filter.d/common.conf"
REGEX = shutil.which("fail2ban-regex") or "/usr/bin/fail2ban-regex"

SMTP_BAD = "127.0.0.21"     # fails AUTH twice
SMTP_GOOD = "127.0.0.22"    # logs in
POP_BAD = "127.0.0.23"      # fails USER/PASS
POP_GOOD = "127.0.0.24"     # logs in
FORGER = "127.0.0.25"       # a user name with " client=127.0.0.99 "
FORGED = "127.0.0.99"
WRONG = "not-the-password-7f3a"


class Daemon:
    """A daemon whose stderr goes to a pty (style "terminal") or to a
    file named by JOURNAL_STREAM (style "journal"); lines collects it."""

    def __init__(self, inst, name, style):
        self.inst, self.name, self.style = inst, name, style
        env = inst.env()
        env.pop("JOURNAL_STREAM", None)
        self.path = os.path.join(inst.tmp, "%s.%s.log" % (name, style))
        self.reader = None
        if style == "terminal":
            master, slave = pty.openpty()
            out = slave
        else:
            self.f = open(self.path, "wb")
            st = os.fstat(self.f.fileno())
            env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
            out = self.f
        self.proc = subprocess.Popen([harness.BIN[name], "-c", inst.config],
                                     stdout=out, stderr=out, env=env)
        if style == "terminal":
            os.close(slave)
            self.f = open(self.path, "wb")
            self.reader = threading.Thread(target=self.pump, args=(master,),
                                           daemon=True)
            self.reader.start()
        ports = {"smtpd": ["smtp", "submission"],
                 "pop3d": ["pop3"]}[name]
        for p in ports:
            harness.wait_port(inst.host, inst.ports[p], proc=self.proc)

    def pump(self, fd):
        while True:
            try:
                d = os.read(fd, 65536)
            except OSError:
                break
            if not d:
                break
            # The terminal turns LF into CR LF.
            self.f.write(d.replace(b"\r\n", b"\n"))
            self.f.flush()
        os.close(fd)

    def text(self):
        with open(self.path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        rc = procs.stop_popen(self.proc)
        if self.reader is not None:
            self.reader.join(10)
        self.f.close()
        return rc


def smtp_auth(inst, src, user, password):
    """AUTH PLAIN on 587 from src; returns the reply code."""
    s = smtplib.SMTP(inst.host, inst.ports["submission"], timeout=30,
                     source_address=(src, 0), local_hostname="client.test")
    try:
        s.ehlo()
        # One AUTH PLAIN exchange: login() would try every mechanism.
        s.user, s.password = user, password
        try:
            code = s.auth("PLAIN", s.auth_plain)[0]
        except smtplib.SMTPAuthenticationError as e:
            code = e.smtp_code
        return code
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


class SourcePOP3(poplib.POP3):
    """poplib.POP3 from a chosen source address."""

    def __init__(self, host, port, source, timeout):
        self.source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def pop_login(inst, src, user, password):
    """USER/PASS on 110 from src; True if logged in."""
    p = SourcePOP3(inst.host, inst.ports["pop3"], src, 30)
    try:
        p.user(user)
        p.pass_(password)
        ok = True
    except poplib.error_proto:
        ok = False
    try:
        p.quit()
    except (poplib.error_proto, OSError):
        pass
    return ok


def fail2ban_ips(tmp, logfile):
    """The addresses fail2ban-regex reports for logfile with the filter
    (one per matched line), and its whole output."""
    fdir = os.path.join(tmp, "filter.d")
    os.makedirs(fdir, exist_ok=True)
    shutil.copy(FILTER, os.path.join(fdir, "postroom.conf"))
    if not os.path.exists(os.path.join(fdir, "common.conf")):
        os.symlink(COMMON, os.path.join(fdir, "common.conf"))
    r = subprocess.run([REGEX, "-o", "ip", logfile,
                        os.path.join(fdir, "postroom.conf")],
                       capture_output=True, text=True, timeout=120)
    ips = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    return ips, r.returncode, r.stdout + r.stderr


def exercise(inst):
    """The logins whose lines the filter is run on."""
    codes = [smtp_auth(inst, SMTP_BAD, ALICE, WRONG) for _ in range(2)]
    good = smtp_auth(inst, SMTP_GOOD, ALICE, PASSWORD)
    forged = smtp_auth(inst, FORGER, "x client=%s status=failed" % FORGED,
                       WRONG)
    pop_bad = pop_login(inst, POP_BAD, "nobody@example.test", WRONG)
    pop_good = pop_login(inst, POP_GOOD, ALICE, PASSWORD)
    pop_forged = pop_login(inst, FORGER, "y client=%s status=failed" %
                           FORGED, WRONG)
    return codes, good, forged, pop_bad, pop_good, pop_forged


def check_ips(t, style, ips, out, log):
    t.ok(ips.count(SMTP_BAD) == 2, "%s: both SMTP AUTH failures match, "
         "with the client's address" % style, out)
    t.ok(ips.count(POP_BAD) == 1, "%s: the POP3 login failure matches" %
         style, out)
    t.ok(SMTP_GOOD not in ips and POP_GOOD not in ips,
         "%s: successful logins do not match" % style, out)
    t.ok(FORGED not in ips, "%s: a forged client= in the user name bans "
         "nobody else" % style, out)
    # POP3 refuses a USER name with spaces before any password check;
    # SMTP AUTH PLAIN takes it and fails it.
    t.ok(ips.count(FORGER) >= 1, "%s: the forger's own address is the one "
         "reported" % style, out + "\n".join(
             ln for ln in log.splitlines() if FORGER in ln))


def main():
    t = Check()
    if not os.path.exists(REGEX) or not os.path.exists(COMMON):
        from tap import skip
        skip("fail2ban is not installed (tests/install-deps.sh)")
    inst = instance(tls=False)
    tmp = tempfile.mkdtemp(prefix="postroom-f2b-")
    running = []
    try:
        # --- On a terminal: ISO 8601 time first. -------------------------
        for name in ("smtpd", "pop3d"):
            running.append(Daemon(inst, name, "terminal"))
        codes, good, forged, pop_bad, pop_good, pop_forged = exercise(inst)
        t.eq(codes, [535, 535], "terminal: two wrong passwords: 535")
        t.eq(good, 235, "terminal: the right password: 235")
        t.ok(forged >= 500, "terminal: the forged user name fails")
        t.ok(not pop_bad and pop_good and not pop_forged,
             "terminal: POP3 login fails, succeeds, fails")
        smtpd, pop3d = running
        t.ok(wait_for(lambda: "auth client=%s status=failed" % POP_BAD in
                      pop3d.text() and "auth client=%s status=ok" %
                      POP_GOOD in pop3d.text() and "auth client=%s "
                      "status=ok" % SMTP_GOOD in smtpd.text(), 10),
             "terminal: failures and successes are logged",
             smtpd.text()[-2000:] + pop3d.text()[-2000:])
        for d in running:
            t.eq(d.stop(), 0, "terminal: %s stops cleanly" % d.name)
        running = []
        both = smtpd.text() + pop3d.text()
        auth = [ln for ln in both.splitlines() if " auth client=" in ln]
        t.ok(auth and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}"
                                   r"[+-]\d\d:\d\d postroom-(smtpd|pop3d)"
                                   r"\[\d+\]: ", ln) for ln in auth),
             "terminal: each line starts with an ISO 8601 time", both)
        t.ok(WRONG not in both and PASSWORD not in both,
             "terminal: no password in the log")
        t.ok('user="x client=%s status=failed"' % FORGED in both,
             "terminal: a user name with spaces is one quoted value", both)
        logfile = os.path.join(tmp, "terminal.log")
        with open(logfile, "w") as f:
            f.write(both)
        ips, rc, out = fail2ban_ips(tmp, logfile)
        t.eq(rc, 0, "terminal: fail2ban-regex runs")
        check_ips(t, "terminal", ips, out, both)

        # --- Under systemd: JOURNAL_STREAM, "<N>" priorities. ------------
        for name in ("smtpd", "pop3d"):
            running.append(Daemon(inst, name, "journal"))
        exercise(inst)
        smtpd, pop3d = running
        t.ok(wait_for(lambda: "auth client=%s status=ok" % POP_GOOD in
                      pop3d.text(), 10), "journal: logins are logged")
        pids = {d.name: d.proc.pid for d in running}
        for d in running:
            t.eq(d.stop(), 0, "journal: %s stops cleanly" % d.name)
        running = []
        lines = []
        bad_prefix = []
        for d, text in ((smtpd, smtpd.text()), (pop3d, pop3d.text())):
            for ln in text.splitlines():
                m = re.match(r"<([0-7])>(.*)", ln)
                if m is None:
                    bad_prefix.append(ln)
                    continue
                lines.append((d.name, int(m.group(1)), m.group(2)))
        t.ok(not bad_prefix and lines, "journal: every line has an "
             "sd-daemon priority prefix", "\n".join(bad_prefix[:10]))
        t.ok(not any(re.search(r"postroom-(smtpd|pop3d)\[\d+\]", msg) or
                     msg.startswith(("info:", "warning:", "error:"))
                     for _, _, msg in lines),
             "journal: no program name, PID or level word of their own")
        fails = [(p, msg) for _, p, msg in lines if
                 "status=failed" in msg and " auth client=" in msg]
        oks = [p for _, p, msg in lines if "status=ok" in msg and
               " auth client=" in msg]
        t.ok(fails and all(p == 4 for p, _ in fails),
             "journal: a failed login is <4> (warning)", fails)
        t.ok(oks and all(p == 6 for p in oks),
             "journal: a login is <6> (info)", oks)
        # What fail2ban's systemd backend matches: the journal's time,
        # then "HOST SYSLOG_IDENTIFIER[PID]: MESSAGE".
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        logfile = os.path.join(tmp, "journal.log")
        with open(logfile, "w") as f:
            for name, _, msg in lines:
                f.write("%s mx postroom-%s[%d]: %s\n" % (
                    stamp, name, pids[name], msg))
        ips, rc, out = fail2ban_ips(tmp, logfile)
        t.eq(rc, 0, "journal: fail2ban-regex runs")
        with open(logfile) as f:
            check_ips(t, "journal", ips, out, f.read())

        # The jail: an example, not enabled, using this filter.
        with open(JAIL) as f:
            jail = f.read()
        t.ok(re.search(r"(?m)^enabled\s*=\s*false", jail) and
             re.search(r"(?m)^filter\s*=\s*postroom", jail),
             "the jail is an example: filter postroom, not enabled")
        # Enabled as the package's README says, fail2ban-client reads it:
        # a journal jail with the filter and both units.
        conf = os.path.join(tmp, "etc-fail2ban")
        shutil.copytree("/etc/fail2ban", conf, symlinks=True)
        for f in os.listdir(os.path.join(conf, "jail.d")):
            os.unlink(os.path.join(conf, "jail.d", f))
        shutil.copy(FILTER, os.path.join(conf, "filter.d"))
        with open(os.path.join(conf, "jail.d", "postroom.local"), "w") as f:
            f.write(re.sub(r"(?m)^enabled(\s*)=\s*false",
                           r"enabled\1= true", jail))
        r = subprocess.run([shutil.which("fail2ban-client") or
                            "/usr/bin/fail2ban-client", "-c", conf, "-d"],
                           capture_output=True, text=True, timeout=60)
        dump = r.stdout + r.stderr
        t.ok(r.returncode == 0 and "['add', 'postroom', 'systemd']" in dump
             and "_SYSTEMD_UNIT=postroom-smtpd.service" in dump and
             "_SYSTEMD_UNIT=postroom-pop3d.service" in dump and
             "auth client=<HOST>" in dump,
             "fail2ban-client reads the enabled jail: journal, both units",
             dump[-3000:])
    finally:
        for d in running:
            d.stop()
        inst.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
