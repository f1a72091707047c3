#!/usr/bin/python3
"""postroom-smtpd on port 25 with Python's smtplib and a raw client:
delivery byte for byte, trace fields, aliases, relay refusal, limits,
quota, big messages through the spool, BDAT, IPv6, SIGHUP and SIGTERM."""

import os
import re
import signal
import smtplib
import socket
import sys

from smtp_util import (ALICE, BOB, Check, Raw, count_bodies, db, instance,
                       log_has, messages, queued_rcpts, split_stored,
                       wait_for)

MSG = (b"From: sender@remote.test\r\n"
       b"To: alice@example.test\r\n"
       b"Subject: first\r\n"
       b"Message-ID: <first@remote.test>\r\n"
       b"\r\n"
       b"Hello Alice.\r\n"
       b".leading dot\r\n"
       b"..two dots\r\n"
       b"\xc3\xa9t\xc3\xa9 8-bit\r\n")


def main():
    t = Check()
    inst = instance(extra={"smtp": {"max_message_size": "8M"},
                           "server": {"postmaster": BOB}})
    try:
        inst.start("smtpd")
        port = inst.ports["smtp"]

        # A plain delivery, byte for byte (smtplib does the dot-stuffing).
        with smtplib.SMTP(inst.host, port, local_hostname="client.test",
                          timeout=20) as s:
            code, ehlo = s.ehlo()
            t.eq(code, 250, "EHLO")
            feats = ehlo.decode()
            for ext in ("PIPELINING", "SIZE 8388608", "8BITMIME",
                        "ENHANCEDSTATUSCODES", "STARTTLS", "AUTH PLAIN LOGIN",
                        "SMTPUTF8", "CHUNKING"):
                t.ok(ext in feats, "EHLO advertises " + ext, feats)
            refused = s.sendmail("sender@remote.test", [ALICE], MSG,
                                 mail_options=["BODY=8BITMIME"])
            t.eq(refused, {}, "message accepted")
        stored = messages(inst, ALICE)
        t.eq(len(stored), 1, "one message in alice's mailbox")
        head, body = split_stored(stored[0]) if stored else (b"", b"")
        t.eq(body, MSG, "message stored byte for byte")
        t.ok(head.startswith(b"Return-Path: <sender@remote.test>\r\n"),
             "Return-Path first", head)
        t.ok(b"Received: from client.test ([127.0.0.1])" in head,
             "Received from the EHLO name and the address literal", head)
        t.ok(b"by mx.example.test (postroom) with ESMTP id " in head,
             "Received by/with/id", head)
        t.ok(b"for <alice@example.test>;" in head, "Received for", head)
        t.ok(b"Date:" not in head and b"Message-ID:" not in head,
             "no Date/Message-ID added on the MX", head)
        lines = inst.mailbox(ALICE)
        t.eq(len(lines), 1, "postroom mailbox list shows it")
        t.ok(log_has(inst, "accepted msgid="), "accepted message logged")
        # RFC 5321 4.4: ID = CFWS "ID" FWS ( Atom / msg-id ); an Atom has
        # no dot.  It is the same id as the "queued as" one.
        m = re.search(rb"\bwith ESMTP id ([^ \t\r\n;]+)", head)
        rid = m.group(1).decode() if m else ""
        t.ok(re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+", rid),
             "Received id is an Atom", rid)
        m = re.search(r"accepted msgid=([0-9a-f]+) client=", inst.log("smtpd"))
        t.ok(m is not None and m.group(1) == rid,
             "one id in the Received field and the log line",
             inst.log("smtpd")[-2000:])
        with db(inst) as c:
            ids = [r[0] for r in c.execute("SELECT msgid FROM bodies")]
        t.ok(m is not None and m.group(1) in ids,
             "the logged id is the stored message's id", ids)

        # Several recipients, an alias, plus-addressing: one body.
        before = count_bodies(inst)
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            refused = s.sendmail("sender@remote.test",
                                 [ALICE, "team@example.test",
                                  "bob+lists@example.test"],
                                 b"Subject: team\r\n\r\nhi all\r\n")
            t.eq(refused, {}, "alias and +tag accepted")
        t.eq(count_bodies(inst), before + 1, "the body is stored once")
        t.eq(len(messages(inst, ALICE)), 2, "alice got it once")
        t.eq(len(messages(inst, BOB)), 1, "bob got it once")
        head, _ = split_stored(messages(inst, BOB)[0])
        t.ok(b"for <" not in head, "no 'for' with several recipients", head)

        # Unknown user, relay attempt, sequencing.
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            s.ehlo()
            t.eq(s.mail("sender@remote.test")[0], 250, "MAIL")
            code, msg = s.rcpt("nobody@example.test")
            t.eq((code, msg[:5]), (550, b"5.1.1"), "unknown user: 550 5.1.1")
            code, msg = s.rcpt("victim@elsewhere.test")
            t.eq((code, msg[:5]), (554, b"5.7.1"),
                 "unauthenticated relay: 554 5.7.1")
            code, msg = s.docmd("DATA")
            t.eq(code, 554, "DATA without valid recipients")
            s.rset()
            code, msg = s.docmd("VRFY", ALICE)
            t.eq(code, 252, "VRFY gives nothing away")
        t.eq(queued_rcpts(inst), [], "nothing queued for relaying")

        # RFC 5321 4.5.1: <Postmaster> without a domain must be
        # accepted: [server] postmaster (bob) receives it, unless the
        # host name's parent domain has a postmaster of its own.
        n = len(messages(inst, ALICE))
        nb = len(messages(inst, BOB))
        r = Raw(inst.host, port)
        r.reply()
        r.cmd("EHLO raw.test")
        r.cmd("MAIL FROM:<a@remote.test>")
        t.eq(r.cmd("RCPT TO:<Postmaster>")[0], 250,
             "<Postmaster> with [server] postmaster: 250")
        r.cmd("DATA")
        r.send("Subject: pm\r\n\r\nx\r\n.\r\n")
        t.eq(r.reply()[0], 250, "message to <Postmaster> delivered")
        t.eq(len(messages(inst, BOB)), nb + 1, "[server] postmaster used")
        r.cmd("MAIL FROM:<a@remote.test>")
        inst.cli("alias", "add", "postmaster@example.test", ALICE)
        t.eq(r.cmd("RCPT TO:<Postmaster>")[0], 250, "<Postmaster> accepted")
        r.cmd("DATA")
        r.send("Subject: pm\r\n\r\nx\r\n.\r\n")
        t.eq(r.reply()[0], 250, "message to <Postmaster> delivered")
        r.close()
        t.eq(len(messages(inst, ALICE)), n + 1, "postmaster alias used")

        # An alias that forwards outside: allowed, queued for the relay.
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            t.eq(s.sendmail("sender@remote.test", ["fwd@example.test"],
                            b"Subject: fwd\r\n\r\nforwarded\r\n"), {},
                 "forwarding alias accepted")
        t.eq(queued_rcpts(inst), ["friend@remote.test"],
             "forward target queued in the same transaction")

        # A 3 MB message goes through the spool, intact.
        big = b"Subject: big\r\n\r\n" + b"".join(
            b"%07d the quick brown fox jumps over the lazy dog\r\n" % i
            for i in range(60000))
        with smtplib.SMTP(inst.host, port, timeout=60) as s:
            t.eq(s.sendmail("sender@remote.test", [BOB], big), {},
                 "3 MB message accepted")
        got = messages(inst, BOB)[-1]
        t.eq(split_stored(got)[1], big, "3 MB message stored byte for byte")
        t.eq(os.listdir(os.path.join(inst.data_dir, "tmp")), [],
             "no spool files left behind")

        # SIZE: declared too big at MAIL, real size at the end of data.
        huge = b"Subject: huge\r\n\r\n" + b"x" * 998 + b"\r\n"
        huge = huge * 9000
        with smtplib.SMTP(inst.host, port, timeout=60) as s:
            try:
                s.sendmail("sender@remote.test", [BOB], huge)
                t.ok(False, "oversized message refused")
            except smtplib.SMTPSenderRefused as e:
                t.eq((e.smtp_code, e.smtp_error[:5]), (552, b"5.3.4"),
                     "declared SIZE over the limit: 552 5.3.4")
        r = Raw(inst.host, port)
        r.reply()
        r.cmd("EHLO raw.test")
        r.cmd("MAIL FROM:<sender@remote.test>")
        r.cmd("RCPT TO:<bob@example.test>")
        t.eq(r.cmd("DATA")[0], 354, "DATA")
        chunk = (b"y" * 998 + b"\r\n") * 1024
        for _ in range(9):
            r.send(chunk)
        r.send(b".\r\n")
        code, lines = r.reply()
        t.eq((code, lines[0][4:9]), (552, "5.3.4"),
             "real size over the limit: 552 5.3.4")
        t.eq(r.cmd("NOOP")[0], 250, "session goes on")
        r.close()

        # Quota: small@ has 2000 octets.
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            s.ehlo()
            s.mail("sender@remote.test", ["SIZE=5000"])
            code, msg = s.rcpt("small@example.test")
            t.eq((code, msg[:5]), (552, b"5.2.2"),
                 "message bigger than the quota: 552 5.2.2")
            s.rset()
            t.eq(s.sendmail("sender@remote.test", ["small@example.test"],
                            b"Subject: q\r\n\r\n" + (b"z" * 68 + b"\r\n") * 21),
                 {}, "a message within the quota")
            s.mail("sender@remote.test", ["SIZE=800"])
            code, msg = s.rcpt("small@example.test")
            t.eq((code, msg[:5]), (452, b"4.2.2"),
                 "mailbox full for now: 452 4.2.2")

        # SMTPUTF8 (RFC 6531): a UTF-8 sender to a user whose address is
        # UTF-8, with UTF-8 header fields, stored octet for octet.
        jose = "jösé@example.test"
        inst.add_user(jose, "pw for jose")
        u8msg = ("From: Sénder <sénder@bücher.test>\r\n"
                 "To: José <jösé@example.test>\r\n"
                 "Subject: héllo ✓\r\n\r\nçà va? 日本語\r\n").encode()
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            s.ehlo()
            t.ok(s.has_extn("smtputf8"), "SMTPUTF8 advertised")
            t.eq(s.sendmail("sénder@bücher.test", [jose], u8msg,
                            mail_options=["SMTPUTF8", "BODY=8BITMIME"]),
                 {}, "UTF-8 sender and recipient accepted")
        got = messages(inst, jose)
        t.eq(len(got), 1, "delivered to the UTF-8 mailbox")
        head, body = split_stored(got[0]) if got else (b"", b"")
        t.eq(body, u8msg, "UTF-8 message stored byte for byte")
        t.ok(head.startswith("Return-Path: <sénder@bücher.test>\r\n"
                             .encode()), "UTF-8 Return-Path", head)
        t.ok(b" with UTF8SMTP id " in head,
             "RFC 6531 3.7.3: with UTF8SMTP", head)
        t.ok("for <jösé@example.test>;".encode() in head,
             "UTF-8 'for' clause", head)
        r = Raw(inst.host, port)
        r.reply()
        r.cmd("EHLO raw.test")
        code, lines = r.cmd("MAIL FROM:<sénder@bücher.test>")
        t.eq((code, lines[0][4:9]), (553, "5.6.7"),
             "UTF-8 sender without SMTPUTF8: 553 5.6.7")
        r.cmd("MAIL FROM:<plain@remote.test>")
        code, lines = r.cmd("RCPT TO:<jösé@example.test>")
        t.eq((code, lines[0][4:9]), (553, "5.6.7"),
             "UTF-8 recipient without SMTPUTF8: 553 5.6.7")
        r.close()

        # Bare LF in DATA: refused after the end, nothing delivered.
        n_before = len(messages(inst, ALICE))
        r = Raw(inst.host, port)
        r.reply()
        r.cmd("EHLO raw.test")
        r.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
               "DATA\r\n")
        r.reply()
        r.reply()
        r.reply()
        r.send(b"Subject: lf\r\n\r\nbare\nLF\r\n.\r\n")
        code, lines = r.reply()
        t.eq((code, lines[0][4:9]), (550, "5.6.0"), "bare LF: 550 5.6.0")
        t.eq(len(messages(inst, ALICE)), n_before, "not delivered")

        # BDAT with a dot line and a chunk split.
        r.cmd("MAIL FROM:<a@remote.test>")
        r.cmd("RCPT TO:<alice@example.test>")
        part1 = b"Subject: bdat\r\n\r\n.dot stays\r\n"
        part2 = b"..two\r\n"
        r.send(b"BDAT %d\r\n" % len(part1) + part1)
        t.eq(r.reply()[0], 250, "BDAT chunk")
        r.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        code, lines = r.reply()
        t.ok(code == 250 and "queued as" in lines[0], "BDAT LAST", lines)
        t.eq(split_stored(messages(inst, ALICE)[-1])[1], part1 + part2,
             "BDAT message stored as sent (no unstuffing)")
        t.eq(r.cmd("QUIT")[0], 221, "QUIT")
        r.close()

        # SIGHUP reloads and the daemon keeps serving.
        inst.procs["smtpd"].send_signal(signal.SIGHUP)
        t.ok(log_has(inst, "reloaded certificate"), "SIGHUP reloads")
        with smtplib.SMTP(inst.host, port, timeout=20) as s:
            t.eq(s.noop()[0], 250, "still serving after SIGHUP")

        # SIGTERM: an idle session gets 421 4.3.2, the daemon exits 0.
        r = Raw(inst.host, port)
        r.reply()
        r.cmd("EHLO raw.test")
        rc = inst.stop("smtpd")
        code, lines = r.reply()
        t.eq((code, lines[0][4:9]), (421, "4.3.2"), "421 4.3.2 on SIGTERM")
        r.close()
        t.eq(rc, 0, "clean exit on SIGTERM")
        log = inst.log("smtpd")
        t.ok("disconnect client=127.0.0.1 " in log, "disconnects logged")
    finally:
        inst.close()

    # IPv6 on ::1, if the host has it.
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
        have6 = True
    except OSError:
        have6 = False
    if have6:
        inst = instance(host="::1")
        try:
            inst.start("smtpd")
            with smtplib.SMTP("::1", inst.ports["smtp"], timeout=20,
                              local_hostname="v6.test") as s:
                t.eq(s.sendmail("a@remote.test", [ALICE],
                                b"Subject: v6\r\n\r\nsix\r\n"), {},
                     "delivery over IPv6")
            head, _ = split_stored(messages(inst, ALICE)[0])
            t.ok(b"from v6.test ([IPv6:::1])" in head,
                 "IPv6 address literal in Received", head)
        finally:
            inst.close()
    else:
        t.skipped("IPv6", "no IPv6 loopback")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
