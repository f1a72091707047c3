#!/usr/bin/python3
"""A full disk: deliveries are refused with 452 4.3.1 (RFC 3463 "mail
system full"), nothing acknowledged is lost, and POP3 users can still
log in and delete mail to make room (the store's reserve file).

data_dir sits on a small tmpfs of its own that the test mounts (root).
"""

import gc
import os
import poplib
import smtplib
import subprocess
import sys
import tempfile

from smtp_util import (ALICE, BOB, PASSWORD, Check, instance, messages,
                       wait_for)

FS_SIZE = 48 << 20
# Port 25 takes mail from other domains only (a hosted sender logs in).
SENDER = "sender@remote.test"


def fill(path):
    """Writes a file until the file system is full."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
    # The last partial megabyte too.
    with open(path + ".2", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def main():
    t = Check()
    inst = instance()
    mnt = tempfile.mkdtemp(prefix="postroom-full-")
    mounted = False
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d,mode=0755" % FS_SIZE, "tmpfs", mnt],
                           capture_output=True, text=True)
        if not t.ok(r.returncode == 0, "a tmpfs for data_dir (needs root)",
                    r.stderr):
            return t.done()
        mounted = True
        # The instance, moved onto the small file system.
        inst.data_dir = os.path.join(mnt, "data")
        inst.write_config()
        inst.cli("init")
        inst.add_domain("example.test")
        inst.add_user(ALICE, PASSWORD)
        inst.add_user(BOB, PASSWORD)
        inst.start("smtpd")
        inst.start("pop3d")
        reserve = os.path.join(inst.data_dir, "reserve")
        # pop3d makes it once it runs, maybe just after its ports answer.
        t.ok(wait_for(lambda: os.path.exists(reserve) and
                      os.path.getsize(reserve) >= 16 << 20, 10),
             "pop3d keeps a reserve file in data_dir")

        msg = (b"From: alice@example.test\r\nTo: bob@example.test\r\n"
               b"Subject: %s\r\n\r\n" + b"x" * 76 + b"\r\n")
        body = msg.replace(b"x" * 76 + b"\r\n", (b"x" * 76 + b"\r\n") * 3000)
        with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=30) as s:
            for i in range(5):
                s.sendmail(SENDER, [BOB], body % (b"before %d" % i))
        t.eq(len(messages(inst, BOB)), 5, "five messages stored")

        fill(os.path.join(mnt, "filler"))
        with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=30) as s:
            s.ehlo("client.test")
            s.mail(SENDER)
            s.rcpt(BOB)
            code, text = s.data(body % b"on a full disk")
        t.eq((code, text[:5]), (452, b"4.3.1"),
             "a message on a full disk: 452 4.3.1")
        t.ok(b"full" in text.lower(), "... saying the mail system is full",
             text)
        t.eq(len(messages(inst, BOB)), 5, "nothing half-stored")

        # POP3 on the full disk: log in, delete, quit.
        p = poplib.POP3(inst.host, inst.ports["pop3"], timeout=30)
        p.user(BOB)
        t.ok(p.pass_(PASSWORD).startswith(b"+OK"), "POP3 login on a full "
             "disk")
        t.eq(p.stat()[0], 5, "STAT on a full disk")
        for i in range(1, 6):
            p.dele(i)
        t.ok(p.quit().startswith(b"+OK"), "DELE and QUIT on a full disk")
        t.eq(messages(inst, BOB), [], "the deletions are committed")
        t.ok("reserve" in inst.log("pop3d"),
             "pop3d logs that it used the reserve", inst.log("pop3d"))

        # Room again: mail flows, and the reserve comes back.
        os.unlink(os.path.join(mnt, "filler"))
        os.unlink(os.path.join(mnt, "filler.2"))
        with smtplib.SMTP(inst.host, inst.ports["smtp"], timeout=30) as s:
            t.eq(s.sendmail(SENDER, [BOB], body % b"after"), {},
                 "delivery works again once there is room")
        p = poplib.POP3(inst.host, inst.ports["pop3"], timeout=30)
        p.user(BOB)
        p.pass_(PASSWORD)
        p.dele(1)
        p.quit()
        t.ok(os.path.exists(os.path.join(inst.data_dir, "reserve")),
             "the reserve is made again")
    finally:
        inst.close()
        if mounted:
            # Python's sqlite3 connections of the read helpers close
            # when collected; a lazy unmount copes with a straggler.
            gc.collect()
            if subprocess.run(["umount", mnt]).returncode != 0:
                subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
