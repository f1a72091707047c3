#!/usr/bin/python3
"""postroom-smtpd with Debian's real mail filters as milters ([milter]
servers, timeout, on_failure; postroom.conf(5)), each started privately
by tests/lib/milters.py (the fixtures test_milter_postfix.py checks
against Postfix):

- rspamd: GTUBE is rejected at end of data with rspamd's own reply; a
  clean message is accepted and rspamd's headers (X-Spam-Status,
  X-Rspamd-*) are in it when read over POP3; with rspamd stopped, mail
  gets 451 4.7.1 under on_failure = tempfail and is delivered under
  on_failure = accept.
- clamd + clamav-milter: an EICAR attachment (sent by swaks) is rejected,
  a clean attachment passes.
- OpenDKIM: a python3-dkim-signed message gets OpenDKIM's
  Authentication-Results (read over POP3).
- rspamd then clamav-milter on one listener: each rejects what it
  rejects, clean mail carries both filters' headers.
- One SMTP session, several messages, an RSET between them: the
  filters' one connection each carries SMFIC_ABORT (libmilter's
  clamav-milter and OpenDKIM, and rspamd) and judges each message.

Nothing rejected is stored; every 250 is a stored message.
"""

import os
import smtplib
import subprocess
import sys

from smtp_util import ALICE, Check, instance
from relay_util import pop3_fetch, rsa_key
import milters
from tap import skip

SENDER = "bob@sender.test"
SWAKS = "/usr/bin/swaks"


def send(inst, msg, sender=SENDER):
    """(code, text) of postroom's final reply to msg on port 25."""
    try:
        with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=180,
                          local_hostname="client.sender.test") as s:
            s.sendmail(sender, [ALICE], msg)
        return 250, ""
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode("utf-8", "replace")
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode("utf-8", "replace")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        return code, text.decode("utf-8", "replace")


def swaks_attach(inst, path):
    """swaks sends a message with path attached; its exit status and
    transcript."""
    r = subprocess.run([SWAKS, "--server", inst.host, "--port",
                        str(inst.ports["smtp"]), "--helo",
                        "client.sender.test", "--from", SENDER, "--to",
                        ALICE, "--header", "Subject: swaks attachment",
                        "--attach-type", "application/octet-stream",
                        "--attach", "@" + path, "--timeout", "180"],
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def head_of(msg):
    return msg.split(b"\r\n\r\n", 1)[0]


def milter_instance(servers, on_failure="tempfail"):
    inst = instance({"milter": {"servers": servers, "timeout": "120s",
                                "on_failure": on_failure}})
    inst.start("smtpd")
    inst.start("pop3d")
    return inst


def stored_count(inst):
    return len(inst.stored(ALICE))


def main():
    why = milters.available()
    if why:
        skip(why)
    if not os.path.exists(SWAKS):
        skip("swaks is not installed")
    t = Check()
    priv, pub = rsa_key()
    rs, cv, od = milters.the_three(pub)
    insts = []
    try:
        if not milters.start_checked(t, rs, cv, od):
            return t.done()
        a = milter_instance(rs.milter)
        insts.append(a)
        acc = milter_instance(rs.milter, "accept")
        insts.append(acc)
        b = milter_instance(cv.milter)
        insts.append(b)
        c = milter_instance(od.milter)
        insts.append(c)
        d = milter_instance("%s,%s" % (rs.milter, cv.milter))
        insts.append(d)

        # --- rspamd
        code, text = send(a, milters.gtube_message(SENDER, ALICE))
        t.ok(code == 554 and text.startswith(rs.gtube_reply),
             "rspamd: GTUBE rejected at end of data with rspamd's reply",
             "%s %s\n%s" % (code, text, a.log("smtpd")[-2000:]))
        t.eq(stored_count(a), 0, "rspamd: the rejected message is not stored")
        code, text = send(a, milters.clean_message(SENDER, ALICE))
        t.ok(code == 250, "rspamd: clean message accepted", "%s %s\n%s" % (
            code, text, a.log("smtpd")[-2000:]))
        got = pop3_fetch(a, ALICE)
        head = head_of(got[-1]) if got else b""
        t.ok(len(got) == 1 and b"X-Spam-Status: No" in head and
             b"X-Rspamd-Server:" in head and b"X-Rspamd-Queue-Id:" in head,
             "rspamd: its headers are in the message read over POP3", head)
        t.ok(b"Subject: clean mail" in head,
             "rspamd: the message's own fields are kept", head)

        # --- clamav-milter, with swaks as the client
        eicar = os.path.join(a.tmp, "eicar.com")
        with open(eicar, "wb") as f:
            f.write(milters.EICAR)
        rc, out = swaks_attach(b, eicar)
        t.ok(rc != 0 and "<** 550 5.7.1" in out and
             "Eicar-Test-Signature" in out,
             "clamav-milter: EICAR attachment rejected (swaks)", out[-2000:])
        t.eq(stored_count(b), 0,
             "clamav-milter: the infected message is not stored")
        clean = os.path.join(a.tmp, "figures.txt")
        with open(clean, "wb") as f:
            f.write(b"quarterly figures, nothing to see\n" * 40)
        rc, out = swaks_attach(b, clean)
        t.ok(rc == 0 and "<-  250" in out,
             "clamav-milter: clean attachment accepted (swaks)", out[-2000:])
        got = pop3_fetch(b, ALICE)
        head = head_of(got[-1]) if got else b""
        t.ok(len(got) == 1 and b"X-Virus-Status: Clean" in head,
             "clamav-milter: X-Virus-Status: Clean in the stored message",
             head)

        # --- OpenDKIM
        msg, _ = milters.dkim_signed_message(SENDER, ALICE, priv)
        code, text = send(c, msg)
        t.ok(code == 250, "opendkim: signed message accepted", text)
        got = pop3_fetch(c, ALICE)
        head = head_of(got[-1]) if got else b""
        t.ok(b"Authentication-Results: dkim.milter.test;" in head and
             b"dkim=pass" in head and b"header.d=sender.test" in head,
             "opendkim: its Authentication-Results (dkim=pass) over POP3",
             head)
        # A changed body breaks the signature: OpenDKIM says so.
        bad = msg.replace(b"the minutes", b"THE MINUTES")
        code, text = send(c, bad)
        got = pop3_fetch(c, ALICE)
        head = head_of(got[-1]) if len(got) == 2 else b""
        t.ok(code == 250 and b"dkim=fail" in head,
             "opendkim: a tampered message gets dkim=fail", head)

        # --- rspamd, then clamav-milter
        code, text = send(d, milters.gtube_message(SENDER, ALICE))
        t.ok(code == 554 and rs.gtube_reply in text,
             "chain: GTUBE rejected by rspamd", "%s %s" % (code, text))
        code, text = send(d, milters.eicar_message(SENDER, ALICE))
        t.ok(code == 550 and "Eicar-Test-Signature" in text,
             "chain: EICAR rejected by clamav-milter after rspamd",
             "%s %s" % (code, text))
        code, text = send(d, milters.clean_attachment_message(SENDER,
                                                              ALICE))
        t.ok(code == 250, "chain: clean attachment accepted", text)
        got = pop3_fetch(d, ALICE)
        head = head_of(got[-1]) if got else b""
        t.ok(len(got) == 1 and b"X-Rspamd-Server:" in head and
             b"X-Virus-Status: Clean" in head,
             "chain: both filters' headers in the message", head)

        # --- One session, several messages (SMFIC_ABORT at RSET)
        before = stored_count(d)
        with smtplib.SMTP(d.host, d.ports["smtp"], timeout=180,
                          local_hostname="client.sender.test") as s:
            s.sendmail(SENDER, [ALICE],
                       milters.clean_attachment_message(SENDER, ALICE))
            s.mail(SENDER)
            s.rcpt(ALICE)
            s.rset()
            s.sendmail(SENDER, [ALICE],
                       milters.clean_message(SENDER, ALICE, "second"))
            try:
                s.sendmail(SENDER, [ALICE],
                           milters.eicar_message(SENDER, ALICE))
                third = 250
            except smtplib.SMTPDataError as e:
                third = e.smtp_code
        t.ok(stored_count(d) == before + 2 and third == 550,
             "chain, one session: two messages stored, EICAR after an "
             "RSET rejected", "%s %s\n%s" % (stored_count(d), third,
                                              d.log("smtpd")[-2000:]))
        t.ok("status=down" not in d.log("smtpd"),
             "chain, one session: no filter failed")
        before = stored_count(c)
        with smtplib.SMTP(c.host, c.ports["smtp"], timeout=180,
                          local_hostname="client.sender.test") as s:
            s.sendmail(SENDER, [ALICE], msg)
            s.mail(SENDER)
            s.rcpt(ALICE)
            s.rset()
            s.sendmail(SENDER, [ALICE], bad)
        got = pop3_fetch(c, ALICE)
        t.ok(stored_count(c) == before + 2 and len(got) >= 2 and
             b"dkim=pass" in head_of(got[-2]) and
             b"dkim=fail" in head_of(got[-1]),
             "opendkim, one session: each message verified on its own",
             [head_of(g)[:300] for g in got[-2:]])

        # --- rspamd down: on_failure
        code, _ = send(acc, milters.clean_message(SENDER, ALICE))
        t.ok(code == 250 and stored_count(acc) == 1,
             "on_failure=accept: filtered while rspamd runs")
        rs.stop()
        code, text = send(a, milters.clean_message(SENDER, ALICE, "down"))
        t.ok(code == 451 and text.startswith("4.7.1"),
             "rspamd stopped, on_failure=tempfail: 451 4.7.1",
             "%s %s\n%s" % (code, text, a.log("smtpd")[-2000:]))
        code2, _ = send(a, milters.clean_message(SENDER, ALICE, "down"))
        t.eq(stored_count(a), 1, "on_failure=tempfail: nothing stored")
        # One log line for the filter going down, not one per message
        # (docs/LOGGING.md).
        downs = [ln for ln in a.log("smtpd").splitlines()
                 if "milter" in ln and "status=down" in ln]
        t.ok(code2 == 451 and len(downs) == 1,
             "on_failure=tempfail: two messages, the failure logged once",
             "\n".join(downs))
        code, text = send(acc, milters.clean_message(SENDER, ALICE,
                                                     "down"))
        t.ok(code == 250, "rspamd stopped, on_failure=accept: 250",
             "%s %s\n%s" % (code, text, acc.log("smtpd")[-2000:]))
        got = pop3_fetch(acc, ALICE)
        t.ok(len(got) == 2 and b"Subject: down" in got[-1] and
             b"X-Rspamd-Server:" not in head_of(got[-1]),
             "on_failure=accept: delivered unfiltered",
             got[-1][:1000] if got else "")
        for i in insts:
            t.ok(i.procs["smtpd"].poll() is None,
                 "postroom-smtpd still runs (%s)" % i.tmp)
        # A clean exit on SIGTERM and, in a sanitizer build, nothing
        # reported.
        for i in insts:
            rc = i.stop("smtpd")
            log = i.log("smtpd")
            t.ok(rc == 0 and "Sanitizer" not in log and
                 "runtime error:" not in log,
                 "postroom-smtpd exits cleanly (%s)" % i.tmp,
                 "exit %s\n%s" % (rc, log[-3000:]))
    finally:
        for x in insts + [rs, cv, od]:
            x.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
