#!/usr/bin/python3
"""Submission with TLS and AUTH: STARTTLS on 587, implicit TLS on 465
(RFC 8314), AUTH PLAIN and LOGIN, sender ownership, relaying for
authenticated users, the fields a submission server adds, and the AUTH
failure policy (growing delay, 421 after three, logged without the
password)."""

import smtplib
import sys
import time

from smtp_util import (ALICE, BOB, PASSWORD, Check, Raw, instance, log_has,
                       messages, queued_rcpts, split_stored,
                       tls_client_context)


def main():
    t = Check()
    # Plaintext AUTH is off here: the real-world configuration.
    inst = instance(extra={"smtp": {"allow_plaintext_auth": "false"}})
    try:
        inst.start("smtpd")
        host = inst.host
        ctx = tls_client_context()

        # 587 before TLS: no AUTH offered, MAIL asks for STARTTLS.
        with smtplib.SMTP(host, inst.ports["submission"], timeout=20) as s:
            s.ehlo("client.test")
            t.ok(s.has_extn("starttls"), "587 offers STARTTLS")
            t.ok(not s.has_extn("auth"), "no AUTH before TLS")
            code, msg = s.mail(ALICE)
            t.eq((code, msg[:5]), (530, b"5.7.0"), "MAIL before TLS: 530")
            s.rset()
            code, msg = s.docmd("AUTH", "PLAIN AGFAYgBj")
            t.eq((code, msg[:6]), (538, b"5.7.11"),
                 "AUTH over plaintext: 538 5.7.11")
            s.starttls(context=ctx)
            s.ehlo("client.test")
            t.ok(s.has_extn("auth"), "AUTH offered after STARTTLS")
            t.ok(not s.has_extn("starttls"), "no STARTTLS inside TLS")
            code, msg = s.mail(ALICE)
            t.eq((code, msg[:5]), (530, b"5.7.0"),
                 "MAIL before AUTH: 530 5.7.0 Authentication required")
            s.rset()
            # smtplib picks PLAIN; login() returns the final reply.
            code, _text = s.login(ALICE, PASSWORD)
            t.eq(code, 235, "AUTH PLAIN after STARTTLS: 235")
            msg = (b"From: Alice <alice@example.test>\r\n"
                   b"To: friend@remote.test, bob@example.test\r\n"
                   b"Subject: submission\r\n\r\nHi.\r\n")
            t.eq(s.sendmail(ALICE, ["friend@remote.test", BOB], msg), {},
                 "submission to a local and a remote recipient")
            code, m = s.mail(BOB)
            t.eq((code, m[:5]), (553, b"5.7.1"),
                 "MAIL FROM someone else's address: 553 5.7.1")
            s.rset()
            code, m = s.mail("")
            t.eq(code, 553, "null sender refused for a user")
            s.rset()
            t.eq(s.mail("alice+tag@example.test")[0], 250,
                 "MAIL FROM a +tag of one's own address")
            s.rset()
        stored = messages(inst, BOB)
        t.eq(len(stored), 1, "local copy delivered")
        head, body = split_stored(stored[0]) if stored else (b"", b"")
        t.ok(b"with ESMTPSA id" in head, "Received says ESMTPSA", head)
        t.ok(b"(using TLSv1." in head and b"with cipher" in head,
             "Received names the TLS version and cipher", head)
        t.ok(b"(authenticated as alice@example.test)" in head,
             "Received names the authenticated user", head)
        added = body[:body.find(b"From: Alice")]
        t.ok(added.startswith(b"Date: ") and b"\r\nMessage-ID: <" in added,
             "Date and Message-ID added to a submission without them",
             added)
        t.ok(body.endswith(msg), "message intact after the added fields",
             body)
        t.eq(queued_rcpts(inst), ["friend@remote.test"],
             "remote recipient queued for the relay")

        # 465: implicit TLS, AUTH LOGIN, a message that has its own
        # Date and Message-ID keeps them.
        with smtplib.SMTP_SSL(host, inst.ports["submissions"], timeout=20,
                              context=ctx) as s:
            s.ehlo("client.test")
            t.ok(s.has_extn("auth") and not s.has_extn("starttls"),
                 "465: AUTH, no STARTTLS")
            s.user, s.password = ALICE, PASSWORD
            code, m = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
            t.eq(code, 235, "AUTH LOGIN on 465")
            own = (b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                   b"Message-ID: <own@example.test>\r\n"
                   b"Subject: own fields\r\n\r\nx\r\n")
            t.eq(s.sendmail(ALICE, [BOB], own), {}, "submission on 465")
        head, body = split_stored(messages(inst, BOB)[-1])
        t.ok(b"Message-ID" not in head and b"\r\nDate" not in head,
             "existing Date/Message-ID kept, none added", head)
        t.eq(body, own, "message byte for byte")

        # Port 25 with STARTTLS: ESMTPS, and AUTH allows relaying there.
        with smtplib.SMTP(host, inst.ports["smtp"], timeout=20) as s:
            s.starttls(context=ctx)
            s.ehlo("mta.remote.test")
            t.eq(s.sendmail("x@remote.test", [ALICE],
                            b"Subject: tls on 25\r\n\r\nx\r\n"), {},
                 "STARTTLS on 25")
            s.login(ALICE, PASSWORD)
            t.eq(s.sendmail(ALICE, ["other@remote.test"],
                            b"Subject: relay\r\n\r\nx\r\n"), {},
                 "authenticated relaying on 25")
        head, _ = split_stored(messages(inst, ALICE)[-1])
        t.ok(b"with ESMTPS id" in head, "Received says ESMTPS", head)

        # AUTH failures: growing delay, 421 after three, logged with
        # the user and address but never the password.
        r = Raw(host, inst.ports["submissions"], tls=True)
        r.reply()
        r.cmd("EHLO brute.test")
        times = []
        replies = []
        for i in range(3):
            t0 = time.monotonic()
            code, lines = r.cmd("AUTH PLAIN " + __import__("base64")
                                .b64encode(b"\0alice@example.test\0"
                                           b"wrong-guess-%d" % i).decode())
            times.append(time.monotonic() - t0)
            replies.append(code)
        t.eq(replies, [535, 535, 421], "535, 535, then 421")
        t.ok(times[0] >= 0.9 and times[1] >= 1.9 and times[2] >= 3.9,
             "delays grow: %s" % ["%.1f" % x for x in times])
        t.ok(r.closed(), "disconnected after the third failure")
        r.close()
        log = inst.log("smtpd")
        t.ok("auth client=127.0.0.1 status=failed "
             "user=alice@example.test " in log,
             "failure logged with user and address")
        t.ok("wrong-guess" not in log and PASSWORD not in log,
             "no password in the log")
        t.ok(log_has(inst, "status=ok user=alice@example.test"),
             "success logged")

        # Other sessions are not held up by a delayed one.
        slow = Raw(host, inst.ports["submissions"], tls=True)
        slow.reply()
        slow.cmd("EHLO slow.test")
        slow.send("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB4\r\n")
        t0 = time.monotonic()
        with smtplib.SMTP(host, inst.ports["smtp"], timeout=20) as s:
            t.eq(s.noop()[0], 250, "another session is served")
        t.ok(time.monotonic() - t0 < 0.9, "without waiting for the delay")
        t.eq(slow.reply()[0], 535, "the delayed session gets its 535")
        slow.close()
    finally:
        inst.close()

    # allow_plaintext_auth = true (loopback tests): AUTH without TLS.
    inst = instance()
    try:
        inst.start("smtpd")
        with smtplib.SMTP(inst.host, inst.ports["submission"],
                          timeout=20) as s:
            s.ehlo()
            t.ok(s.has_extn("auth"), "AUTH offered without TLS when allowed")
            s.login(ALICE, PASSWORD)
            t.eq(s.sendmail(ALICE, [BOB], b"Subject: p\r\n\r\np\r\n"), {},
                 "plaintext submission")
        head, _ = split_stored(messages(inst, BOB)[0])
        t.ok(b"with ESMTPA id" in head, "Received says ESMTPA", head)
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
