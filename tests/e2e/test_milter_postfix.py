#!/usr/bin/python3
"""The milter fixtures of tests/lib/milters.py checked against Postfix,
an MTA that is not postroom: a private Postfix (tests/lib/postfix.py) runs
one smtpd per filter (smtpd_milters = that filter's socket) and delivers
into a Maildir, so what the filters do is known good before postroom's
milter client is measured against them (test_milter_real.py).

- rspamd (proxy worker, milter mode): GTUBE is rejected with rspamd's
  reply at end of data; clean mail gets X-Spam-Status and X-Rspamd-*.
- clamd + clamav-milter, one local signature: an EICAR attachment is
  rejected, a clean one passes with X-Virus-Status: Clean.
- OpenDKIM (verify mode, its DNS on loopback): a python3-dkim-signed
  message gets Authentication-Results with dkim=pass.

Needs root, Postfix and the filters (tests/install-deps.sh).
"""

import os
import pwd
import shutil
import smtplib
import sys
import tempfile

from smtp_util import Check, wait_for
from relay_util import rsa_key
import milters
import postfix
from harness import free_port
from tap import skip

RCPT = "alice@example.test"
SENDER = "bob@sender.test"


def send(port, msg, sender=SENDER):
    """(code, text) of the final reply to msg."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
            s.sendmail(sender, [RCPT], msg)
        return 250, ""
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode("utf-8", "replace")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        return code, text.decode("utf-8", "replace")


def head_of(msg):
    return msg.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]


def main():
    why = postfix.available() or milters.available()
    if why:
        skip(why)
    t = Check()
    root = tempfile.mkdtemp(prefix="postroom-milter-postfix-")
    # Postfix's unprivileged processes and virtual(8) (as nobody) must
    # reach their directories under root.
    os.chmod(root, 0o755)
    nobody = pwd.getpwnam("nobody")
    vmail = os.path.join(root, "vmail")
    os.makedirs(vmail)
    os.chown(vmail, nobody.pw_uid, nobody.pw_gid)
    maildir = os.path.join(vmail, "alice", "Maildir")
    priv, pub = rsa_key()
    rs, cv, od = milters.the_three(pub)
    pf = None
    try:
        if not milters.start_checked(t, rs, cv, od):
            return t.done()
        pf = postfix.Postfix(os.path.join(root, "pf"), "127.0.0.1",
                             free_port(), {
                                 "myhostname": "mx.example.test",
                                 "mydestination": "",
                                 "inet_interfaces": "127.0.0.1",
                                 "milter_protocol": "6",
                                 # A filter that fails is a failure here.
                                 "milter_default_action": "tempfail",
                                 "smtpd_relay_restrictions":
                                     "reject_unauth_destination",
                             })
        pf.set(postfix.virtual_mailboxes(
            pf, "example.test", {RCPT: "alice/Maildir/"}, vmail,
            nobody.pw_uid, nobody.pw_gid))
        ports = {}
        for f in (rs, cv, od):
            ports[f.what] = free_port()
            pf.master_extra.append(
                "127.0.0.1:%d inet n - n - - smtpd -o smtpd_milters=%s" % (
                    ports[f.what], f.milter))
        try:
            pf.start()
        except RuntimeError as e:
            t.ok(False, "private postfix started", str(e))
            return t.done()

        def delivered(n):
            return wait_for(lambda: len(postfix.maildir_messages(maildir))
                            >= n, 60)

        # rspamd
        code, text = send(ports["rspamd"], milters.gtube_message(SENDER,
                                                                 RCPT))
        t.ok(code == 554 and rs.gtube_reply in text,
             "rspamd: GTUBE rejected at end of data with rspamd's reply",
             "%s %s | %s" % (code, text, pf.read_log()[-1500:]))
        code, text = send(ports["rspamd"], milters.clean_message(SENDER,
                                                                 RCPT))
        t.ok(code == 250, "rspamd: clean mail accepted", text)
        t.ok(delivered(1), "rspamd: clean mail delivered",
             pf.read_log()[-1500:])
        got = postfix.maildir_messages(maildir)
        head = head_of(got[-1]) if got else b""
        t.ok(b"X-Spam-Status: No" in head and b"X-Rspamd-Server:" in head
             and b"X-Rspamd-Queue-Id:" in head,
             "rspamd: X-Spam-Status and X-Rspamd-* added", head)

        # clamav-milter
        code, text = send(ports["clamav"], milters.eicar_message(SENDER,
                                                                 RCPT))
        t.ok(code == 550 and "Eicar-Test-Signature" in text,
             "clamav-milter: EICAR attachment rejected",
             "%s %s | %s" % (code, text, cv.read_log()[-1500:]))
        code, text = send(ports["clamav"],
                          milters.clean_attachment_message(SENDER, RCPT))
        t.ok(code == 250, "clamav-milter: clean attachment accepted", text)
        t.ok(delivered(2), "clamav-milter: clean attachment delivered")
        got = postfix.maildir_messages(maildir)
        head = head_of(got[-1]) if len(got) >= 2 else b""
        t.ok(b"X-Virus-Status: Clean" in head,
             "clamav-milter: X-Virus-Status: Clean added", head)

        # OpenDKIM
        msg, _name = milters.dkim_signed_message(SENDER, RCPT, priv)
        code, text = send(ports["opendkim"], msg)
        t.ok(code == 250, "opendkim: signed mail accepted", text)
        t.ok(delivered(3), "opendkim: signed mail delivered")
        got = postfix.maildir_messages(maildir)
        head = head_of(got[-1]) if len(got) >= 3 else b""
        t.ok(b"Authentication-Results: dkim.milter.test;" in head and
             b"dkim=pass" in head and b"header.d=sender.test" in head,
             "opendkim: Authentication-Results with dkim=pass", head)
        # Only three messages were accepted: the rejected ones are gone.
        t.eq(len(postfix.maildir_messages(maildir)), 3,
             "nothing rejected was delivered")
    finally:
        for x in (pf, rs, cv, od):
            if x is not None:
                x.close()
        shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
