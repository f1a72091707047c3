#!/usr/bin/python3
"""Real SMTP clients against postroom-smtpd: swaks (pipelining, STARTTLS,
implicit TLS, AUTH), curl (smtp:// with STARTTLS, smtps://) and msmtp.
Each message is read back from the store.  A client that is not
installed skips its part."""

import os
import shutil
import subprocess
import sys
import tempfile

from smtp_util import ALICE, BOB, PASSWORD, Check, instance, messages, \
    split_stored


def run(args, stdin=None):
    r = subprocess.run(args, input=stdin, capture_output=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def swaks(host, port, sender, rcpt, *args, auth=None, user=ALICE,
          password=PASSWORD):
    """swaks from sender to rcpt; auth = "PLAIN" or "LOGIN" logs in as
    user."""
    argv = ["swaks", "--server", host, "--port", str(port),
            "--from", sender, "--to", rcpt]
    if auth:
        argv += ["--auth", auth, "--auth-user", user,
                 "--auth-password", password]
    return run(argv + list(args))


def main():
    t = Check()
    inst = instance()
    tmp = tempfile.mkdtemp(prefix="postroom-clients-")
    try:
        inst.start("smtpd")
        h = inst.host
        p25, p587, p465 = (inst.ports["smtp"], inst.ports["submission"],
                           inst.ports["submissions"])

        if shutil.which("swaks"):
            rc, out = swaks(h, p25, "someone@remote.test", ALICE,
                            "--pipeline", "--header", "Subject: swaks-pipe",
                            "--body", "pipelined body")
            t.ok(rc == 0, "swaks --pipeline", out)
            t.ok("<** " not in out, "no errors in the dialog", out)
            rc, out = swaks(h, p587, ALICE, BOB, "--tls",
                            "--header", "Subject: swaks-starttls",
                            "--body", "starttls body", auth="PLAIN")
            t.ok(rc == 0, "swaks STARTTLS + AUTH PLAIN on 587", out)
            rc, out = swaks(h, p465, ALICE, BOB, "--tlsc",
                            "--header", "Subject: swaks-465",
                            "--body", "implicit tls body", auth="LOGIN")
            t.ok(rc == 0, "swaks implicit TLS + AUTH LOGIN on 465", out)
            rc, out = swaks(h, p587, ALICE, BOB, "--tls", auth="PLAIN",
                            password="not the password")
            t.ok(rc != 0 and "535 5.7.8" in out,
                 "swaks with a wrong password gets 535 5.7.8", out)
            rc, out = swaks(h, p25, "spammer@remote.test",
                            "victim@elsewhere.test")
            t.ok(rc != 0 and "554 5.7.1" in out,
                 "swaks relay attempt refused", out)
            subjects = b"".join(messages(inst, ALICE) + messages(inst, BOB))
            for s in (b"swaks-pipe", b"swaks-starttls", b"swaks-465"):
                t.ok(b"Subject: " + s in subjects, "swaks message %s stored"
                     % s.decode())
        else:
            t.skipped("swaks", "not installed")

        msg = (b"From: alice@example.test\r\nTo: bob@example.test\r\n"
               b"Subject: curl\r\n\r\ncurl body\r\n.dot line\r\n")
        path = os.path.join(tmp, "msg.eml")
        with open(path, "wb") as f:
            f.write(msg)
        if shutil.which("curl"):
            n = len(messages(inst, BOB))
            rc, out = run(["curl", "-sS", "--url",
                           "smtp://%s:%d/curl.test" % (h, p587),
                           "--ssl-reqd", "--insecure",
                           "--user", "%s:%s" % (ALICE, PASSWORD),
                           "--mail-from", ALICE, "--mail-rcpt", BOB,
                           "--upload-file", path])
            t.ok(rc == 0, "curl smtp:// with STARTTLS and AUTH", out)
            rc, out = run(["curl", "-sS", "--url",
                           "smtps://%s:%d/curl.test" % (h, p465),
                           "--insecure",
                           "--user", "%s:%s" % (ALICE, PASSWORD),
                           "--login-options", "AUTH=LOGIN",
                           "--mail-from", ALICE, "--mail-rcpt", BOB,
                           "--upload-file", path])
            t.ok(rc == 0, "curl smtps:// with AUTH LOGIN", out)
            got = messages(inst, BOB)[n:]
            t.eq(len(got), 2, "both curl messages stored")
            for i, m in enumerate(got):
                t.ok(m.endswith(msg), "curl message %d byte for byte" % i, m)
            rc, out = run(["curl", "-sS", "--url",
                           "smtp://%s:%d/curl.test" % (h, p25),
                           "--mail-from", "x@remote.test",
                           "--mail-rcpt", "nobody@example.test",
                           "--upload-file", path])
            t.ok(rc != 0, "curl to an unknown user fails", out)
        else:
            t.skipped("curl", "not installed")

        if shutil.which("msmtp"):
            n = len(messages(inst, BOB))
            rc, out = run(["msmtp", "--host=" + h, "--port=%d" % p587,
                           "--domain=msmtp.test", "--from=" + ALICE,
                           "--auth=on", "--user=" + ALICE,
                           "--passwordeval=echo '%s'" % PASSWORD,
                           "--tls=on", "--tls-starttls=on",
                           "--tls-certcheck=off", BOB], stdin=msg)
            t.ok(rc == 0, "msmtp STARTTLS + AUTH", out)
            got = messages(inst, BOB)[n:]
            t.eq(len(got), 1, "msmtp message stored")
            if got:
                t.eq(split_stored(got[0])[1].split(b"\r\n\r\n", 1)[1],
                     msg.split(b"\r\n\r\n", 1)[1], "msmtp body intact")
            rc, out = run(["msmtp", "--host=" + h, "--port=%d" % p465,
                           "--from=" + ALICE, "--auth=on", "--user=" + ALICE,
                           "--passwordeval=echo '%s'" % PASSWORD,
                           "--tls=on", "--tls-starttls=off",
                           "--tls-certcheck=off", BOB], stdin=msg)
            t.ok(rc == 0, "msmtp implicit TLS on 465", out)
            rc, out = run(["msmtp", "--host=" + h, "--port=%d" % p587,
                           "--from=" + BOB, "--auth=on", "--user=" + ALICE,
                           "--passwordeval=echo '%s'" % PASSWORD,
                           "--tls=on", "--tls-starttls=on",
                           "--tls-certcheck=off", BOB], stdin=msg)
            t.ok(rc != 0 and "5.7.1" in out,
                 "msmtp with someone else's sender refused", out)
        else:
            t.skipped("msmtp", "not installed")
    finally:
        inst.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
