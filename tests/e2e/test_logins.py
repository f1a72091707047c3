#!/usr/bin/python3
"""Logins besides user@domain and the user's own password, with real
clients against both daemons:

- [server] default_domain: POP3 USER alice (fetchmail) and SMTP AUTH
  PLAIN alice (msmtp) with the bare name; the logs and the Received
  field name the full address; without default_domain the bare name is
  refused;
- app passwords: `postroom user app-password add|list|del`, over POP3S
  and 587 with curl, the main password still working, the label in the
  log, a deleted one refused at once, failures counted on its own
  account;
- devices: `postroom device add|list|del`, POP3 refused, its own sender
  accepted, another refused (553), past its rate refused (452), port 25
  refused, failures counted on its own account.
"""

import glob
import os
import poplib
import re
import shutil
import smtplib
import subprocess
import sys

from smtp_util import ALICE, BOB, PASSWORD, Check, instance, log_has, \
    messages, split_stored

DEVICE = "scanner"
DEVICE_FROM = "scanner@example.test"


def run(args, stdin=None, env=None):
    r = subprocess.run(args, input=stdin, capture_output=True, timeout=120,
                       env=env)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def msg(subject, sender=ALICE, to=BOB):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (
        sender, to, subject, subject)).encode()


def send_in(inst, subject, to=ALICE):
    """A message from outside to `to`, over port 25."""
    with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=30) as s:
        s.sendmail("friend@remote.test", [to],
                   msg(subject, "friend@remote.test", to))


def pop3_login(inst, user, password):
    """True if a POP3S login succeeds; the -ERR text otherwise."""
    import ssl
    ctx = ssl.create_default_context(cafile=inst.cert)
    ctx.check_hostname = False
    p = poplib.POP3_SSL(inst.host, inst.ports["pop3s"], context=ctx,
                        timeout=30)
    try:
        p.user(user)
        p.pass_(password)
        p.quit()
        return True
    except poplib.error_proto as e:
        return str(e)
    finally:
        try:
            p.close()
        except OSError:
            pass


def smtp_session(inst, user, password, port="submission"):
    """An SMTP session on 587 (STARTTLS) logged in as user, or the
    SMTPAuthenticationError."""
    import ssl
    ctx = ssl.create_default_context(cafile=inst.cert)
    ctx.check_hostname = False
    s = smtplib.SMTP(inst.host, inst.ports[port], timeout=30)
    s.ehlo("client.test")
    s.starttls(context=ctx)
    s.ehlo("client.test")
    try:
        # One AUTH PLAIN: login() would try LOGIN after a 535 as well.
        s.user, s.password = user, password
        s.auth("PLAIN", s.auth_plain)
    except smtplib.SMTPAuthenticationError as e:
        s.close()
        return e
    return s


def fetchmail(inst, user, password, out):
    os.makedirs(out, exist_ok=True)
    rc = os.path.join(out, "..", "fetchmailrc")
    with open(rc, "w") as f:
        f.write(
            'set no bouncemail\n'
            'poll 127.0.0.1 service %d protocol POP3 timeout 30\n'
            '  user "%s" there with password "%s" is "%s" here\n'
            '  ssl sslproto "TLS1.2+" sslcertck sslcertfile "%s"\n'
            '  sslcommonname "localhost"\n'
            '  nokeep fetchall\n'
            '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n' % (
                inst.ports["pop3s"], user, password,
                os.environ.get("USER") or "nobody", inst.cert, out))
    os.chmod(rc, 0o600)
    home = os.path.dirname(rc)
    env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
    return run(["fetchmail", "-f", rc, "-N", "--nosyslog", "-v"], env=env)


def account_failures(inst):
    with inst.db() as c:
        return {r[0]: r[1] for r in c.execute(
            "SELECT name, failures FROM auth_failures WHERE scope = 1")}


def test_default_domain(t, inst):
    # POP3 USER alice with fetchmail.
    send_in(inst, "for fetchmail")
    out = os.path.join(inst.tmp, "fm", "out")
    rc, text = fetchmail(inst, "alice", PASSWORD, out)
    t.ok(rc == 0, "fetchmail logs in as the bare name alice (POP3S)", text)
    got = b"".join(open(p, "rb").read()
                   for p in glob.glob(os.path.join(out, "msg.*")))
    t.ok(b"Subject: for fetchmail" in got, "fetchmail got alice's message",
         got)
    t.eq(messages(inst, ALICE), [], "nokeep: deleted on the server")
    t.ok(log_has(inst, "status=ok user=alice@example.test method=USER",
                 "pop3d"), "pop3d logs the full address",
         inst.log("pop3d"))
    # The domain compares without case, the local part as stored.
    t.eq(pop3_login(inst, "ALICE", PASSWORD), True,
         "POP3 USER ALICE is alice@example.test")
    t.eq(pop3_login(inst, "alice@EXAMPLE.TEST", PASSWORD), True,
         "the full address still works, domain in any case")

    # SMTP AUTH PLAIN alice with msmtp.
    n = len(messages(inst, BOB))
    rc, text = run(["msmtp", "--host=" + inst.host,
                    "--port=%d" % inst.ports["submission"],
                    "--domain=msmtp.test", "--from=" + ALICE,
                    "--auth=plain", "--user=alice",
                    "--passwordeval=echo '%s'" % PASSWORD,
                    "--tls=on", "--tls-starttls=on",
                    "--tls-certcheck=off", BOB],
                   stdin=msg("msmtp bare name"))
    t.ok(rc == 0, "msmtp AUTH PLAIN as the bare name alice on 587", text)
    got = messages(inst, BOB)[n:]
    t.eq(len(got), 1, "msmtp's message stored")
    if got:
        head = split_stored(got[0])[0]
        t.ok(b"(authenticated as alice@example.test)" in head,
             "Received names the full address", head)
    t.ok(log_has(inst, "status=ok user=alice@example.test"),
         "smtpd logs the full address", inst.log("smtpd"))
    # The bare name owns what alice owns, and nothing else.
    s = smtp_session(inst, "alice", PASSWORD)
    if t.ok(isinstance(s, smtplib.SMTP), "smtplib AUTH as alice", s):
        code, _ = s.mail(BOB)
        t.eq(code, 553, "alice (bare) may not send as bob")
        s.quit()


def test_no_default_domain(t):
    inst = instance()
    try:
        inst.start("smtpd")
        inst.start("pop3d")
        r = pop3_login(inst, "alice", PASSWORD)
        t.ok(r is not True and "-ERR" in r,
             "without default_domain POP3 USER alice is refused", r)
        s = smtp_session(inst, "alice", PASSWORD)
        t.ok(isinstance(s, smtplib.SMTPAuthenticationError) and
             s.smtp_code == 535,
             "without default_domain AUTH alice gets 535", s)
        t.ok(pop3_login(inst, ALICE, PASSWORD) is True,
             "the full address works there")
    finally:
        inst.close()


def test_app_password(t, inst):
    r = inst.cli("user", "app-password", "add", ALICE, "phone")
    pw = r.stdout.strip()
    t.ok(re.fullmatch(r"[a-z2-9]{8}-[a-z2-9]{24}", pw) is not None,
         "app-password add prints the generated password once", r.stdout)
    r2 = inst.cli("user", "app-password", "add", ALICE, "phone",
                  check=False)
    t.ok(r2.returncode == 1 and r2.stdout == "" and
         r2.stderr.count("\n") == 1,
         "a second label phone is a user error, one line", r2.stderr)
    r3 = inst.cli("user", "app-password", "add", ALICE, "laptop")
    lst = inst.cli("user", "app-password", "list", ALICE).stdout
    t.ok(lst.startswith("laptop\t") and "\nphone\t" in lst and
         pw not in lst and "argon2" not in lst,
         "list names the labels, never a password or hash", lst)
    with inst.db() as c:
        hashes = [h for (h,) in c.execute(
            "SELECT hash FROM app_passwords")]
    t.ok(len(hashes) == 2 and all(h.startswith("$argon2id$")
                                  for h in hashes),
         "app passwords are stored as argon2id hashes", hashes)
    other = r3.stdout.strip()

    # POP3S with curl.
    send_in(inst, "for the phone")
    rc, text = run(["curl", "-sS", "--max-time", "30", "-u",
                    "%s:%s" % (ALICE, pw), "--cacert", inst.cert,
                    "pop3s://localhost:%d/1" % inst.ports["pop3s"],
                    "--resolve", "localhost:%d:127.0.0.1" %
                    inst.ports["pop3s"]])
    t.ok(rc == 0 and "Subject: for the phone" in text,
         "curl POP3S RETR with the app password", text)
    t.ok(log_has(inst, "status=ok user=alice@example.test app-password=phone",
                 "pop3d"), "pop3d's log names the label",
         inst.log("pop3d"))
    # 587 with curl, as the bare name too.
    path = os.path.join(inst.tmp, "app.eml")
    with open(path, "wb") as f:
        f.write(msg("sent with the phone"))
    n = len(messages(inst, BOB))
    rc, text = run(["curl", "-sS", "--max-time", "30", "--url",
                    "smtp://%s:%d/curl.test" % (inst.host,
                                                inst.ports["submission"]),
                    "--ssl-reqd", "--insecure",
                    "--user", "alice:%s" % pw,
                    "--mail-from", ALICE, "--mail-rcpt", BOB,
                    "--upload-file", path])
    t.ok(rc == 0, "curl smtp:// 587 STARTTLS + AUTH with the app password",
         text)
    t.eq(len(messages(inst, BOB)) - n, 1, "its message stored")
    t.ok(log_has(inst, "status=ok user=alice@example.test "
                 "app-password=phone"), "smtpd's log names the label",
         inst.log("smtpd"))
    t.ok(pop3_login(inst, ALICE, PASSWORD) is True,
         "the main password keeps working")
    t.ok(pop3_login(inst, ALICE, other) is True,
         "the other app password works too")
    t.ok(pop3_login(inst, BOB, pw) is not True,
         "alice's app password is not bob's")

    # Failures of an app password count on its own account.
    wrong = pw[:9] + ("a" if pw[9] != "a" else "b") + pw[10:]
    t.ok(pop3_login(inst, ALICE, wrong) is not True,
         "a mistyped app password is refused")
    f = account_failures(inst)
    t.ok(f.get("app/phone/alice@example.test") == 1 and
         ALICE not in f, "its failure counts on the app password's "
         "account, not alice's", f)

    # Deleted: refused at once, without a restart.
    r = inst.cli("user", "app-password", "del", ALICE, "phone")
    t.ok(r.returncode == 0, "app-password del")
    t.ok(pop3_login(inst, ALICE, pw) is not True,
         "a deleted app password stops working at once (POP3)")
    s = smtp_session(inst, ALICE, pw)
    t.ok(isinstance(s, smtplib.SMTPAuthenticationError),
         "a deleted app password stops working at once (SMTP)", s)
    t.ok(pop3_login(inst, ALICE, other) is True,
         "the other app password still works")
    r = inst.cli("user", "app-password", "del", ALICE, "phone",
                 check=False)
    t.eq(r.returncode, 1, "deleting it twice is a user error")
    t.eq(inst.cli("user", "app-password", "list", check=False).returncode,
         2, "list without an address is a usage error")


def test_device(t, inst):
    r = inst.cli("device", "add", DEVICE, "--from", DEVICE_FROM,
                 "--rate", "2/hour")
    pw = r.stdout.strip()
    t.ok(re.fullmatch(r"[a-z2-9]{8}-[a-z2-9]{24}", pw) is not None,
         "device add prints the generated password once", r.stdout)
    lst = inst.cli("device", "list").stdout
    t.eq(lst, "%s\tfrom %s\t2/hour\n" % (DEVICE, DEVICE_FROM),
         "device list")
    r = inst.cli("device", "add", "nas", "--from", "nas@elsewhere.test",
                 check=False)
    t.eq(r.returncode, 1, "a device of a domain not hosted here is refused")
    t.eq(inst.cli("device", "add", "nas", check=False).returncode, 2,
         "device add without --from is a usage error")

    # POP3: refused, like a wrong password.
    r = pop3_login(inst, DEVICE, pw)
    t.ok(r is not True and "-ERR" in r, "a device may not use POP3", r)
    t.ok(log_has(inst, "auth client=127.0.0.1 status=refused device=scanner "
                 "reason=\"devices may not use POP3\"", "pop3d"), "pop3d logs why",
         inst.log("pop3d"))

    s = smtp_session(inst, DEVICE, pw)
    if not t.ok(isinstance(s, smtplib.SMTP), "device AUTH on 587", s):
        return
    n = len(messages(inst, BOB))
    code, text = s.mail(ALICE)
    t.eq(code, 553, "the device may not send as alice (553)")
    t.ok(b"5.7.1" in text, "553 5.7.1", text)
    s.rset()
    s.sendmail(DEVICE_FROM, [BOB], msg("scan 1", DEVICE_FROM))
    t.eq(len(messages(inst, BOB)) - n, 1, "the device sends as its address")
    try:
        s.sendmail(DEVICE_FROM, [BOB], msg("forged", ALICE))
        t.ok(False, "a header From: of someone else is refused")
    except smtplib.SMTPDataError as e:
        t.ok(e.smtp_code == 550 and b"5.7.1" in e.smtp_error,
             "a header From: of someone else is refused", e)
    s.rset()
    s.sendmail(DEVICE_FROM, [BOB], msg("scan 2", DEVICE_FROM))
    t.eq(len(messages(inst, BOB)) - n, 2, "the second message of the hour")
    code, text = s.mail(DEVICE_FROM)
    t.ok(code == 452 and b"4.7.0" in text,
         "past its rate: 452 4.7.0", (code, text))
    s.quit()
    # The rate is in the store: a new session is still past it.
    s = smtp_session(inst, DEVICE, pw, port="submission")
    if isinstance(s, smtplib.SMTP):
        code, _ = s.mail(DEVICE_FROM)
        t.eq(code, 452, "a new session is past the rate too")
        s.quit()
    got = b"".join(messages(inst, BOB)[n:])
    t.ok(b"(authenticated as scanner)" in got,
         "Received names the device", got[:400])

    # Port 25 is not a submission port.
    try:
        with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=30) as s:
            s.ehlo("client.test")
            s.login(DEVICE, pw)
            t.ok(False, "a device login on port 25 is refused")
    except smtplib.SMTPAuthenticationError as e:
        t.eq(e.smtp_code, 535, "a device login on port 25 is refused")

    # Failures count on the device's own account.
    wrong = pw[:-1] + ("a" if pw[-1] != "a" else "b")
    e = smtp_session(inst, DEVICE, wrong)
    t.ok(isinstance(e, smtplib.SMTPAuthenticationError),
         "a wrong device password is refused", e)
    f = account_failures(inst)
    t.eq(f.get("device/scanner"), 1, "its failure counts on device/scanner")

    inst.cli("device", "del", DEVICE)
    t.eq(inst.cli("device", "list").stdout, "", "device del")
    e = smtp_session(inst, DEVICE, pw)
    t.ok(isinstance(e, smtplib.SMTPAuthenticationError),
         "a deleted device cannot log in", e)


def main():
    t = Check()
    for tool in ("fetchmail", "msmtp", "curl"):
        if shutil.which(tool) is None:
            t.skipped(tool, "not installed")
    inst = instance({"server": {"default_domain": "Example.Test"}})
    try:
        inst.start("smtpd")
        inst.start("pop3d")
        test_default_domain(t, inst)
        test_app_password(t, inst)
        test_device(t, inst)
    finally:
        inst.close()
    test_no_default_domain(t)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
