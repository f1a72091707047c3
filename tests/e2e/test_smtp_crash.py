#!/usr/bin/python3
"""The durability contract (docs/ARCHITECTURE.md 4): kill -9 postroom-smtpd in the middle
of a burst of deliveries from several clients; after a restart, every
message a client got 250 for is in the mailbox exactly once, and nothing
is there twice.  Repeated a few times at different moments."""

import random
import smtplib
import sys
import threading
import time

from smtp_util import ALICE, BOB, Check, instance, messages

CLIENTS = 8


def sender(inst, cid, acked, attempted, stop):
    n = 0
    while not stop.is_set():
        try:
            with smtplib.SMTP(inst.host, inst.ports["smtp"],
                              timeout=10) as s:
                while not stop.is_set():
                    n += 1
                    tag = "c%d-m%d-%d" % (cid, n, random.randrange(1 << 30))
                    msg = ("Message-ID: <%s@crash.test>\r\nSubject: %s\r\n"
                           "\r\n%s\r\n" % (tag, tag, "body " * 50)).encode()
                    attempted.add(tag)
                    # Two recipients: both copies or none.
                    s.sendmail("load@remote.test", [ALICE, BOB], msg)
                    acked.append(tag)
        except (smtplib.SMTPException, OSError):
            time.sleep(0.02)


def tags(inst, addr):
    out = []
    for m in messages(inst, addr):
        for line in m.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                out.append(line[9:].decode())
                break
    return out


def main():
    t = Check()
    inst = instance()
    acked_all = []
    attempted_all = set()
    try:
        for rnd in range(3):
            inst.start("smtpd")
            acked, attempted = [], set()
            stop = threading.Event()
            threads = [threading.Thread(target=sender,
                                        args=(inst, i, acked, attempted,
                                              stop))
                       for i in range(CLIENTS)]
            for th in threads:
                th.start()
            time.sleep(1.0 + random.random())
            inst.kill("smtpd")
            stop.set()
            for th in threads:
                th.join()
            t.ok(len(acked) > 20, "round %d: %d messages acknowledged before "
                 "the kill" % (rnd, len(acked)))
            acked_all += acked
            attempted_all |= attempted
        inst.start("smtpd")
        for addr in (ALICE, BOB):
            got = tags(inst, addr)
            counts = {}
            for g in got:
                counts[g] = counts.get(g, 0) + 1
            missing = [a for a in acked_all if counts.get(a, 0) != 1]
            t.ok(not missing, "%s: all %d acknowledged messages present "
                 "once" % (addr, len(acked_all)), missing[:10])
            dups = [g for g, c in counts.items() if c > 1]
            t.ok(not dups, "%s: no message twice" % addr, dups[:10])
            strange = [g for g in counts if g not in attempted_all]
            t.ok(not strange, "%s: nothing that was not sent" % addr,
                 strange[:10])
        t.eq(sorted(tags(inst, ALICE)), sorted(tags(inst, BOB)),
             "both recipients got the same set (one transaction each)")
        log = inst.log("smtpd")
        t.ok("committed a batch of" in log, "group commit at work")
        batches = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines()
                   if "committed a batch of" in line]
        t.ok(any(b > 1 for b in batches),
             "some batches hold several messages (max %d)" %
             (max(batches) if batches else 0))
        t.eq(inst.stop("smtpd"), 0, "clean stop after the restarts")
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
