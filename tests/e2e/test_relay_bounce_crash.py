#!/usr/bin/python3
"""Crash safety of bounces: exactly one bounce per failed recipient.

A burst of a couple of hundred messages waits in the queue of
postroom-smtpd (queued with [relay] enabled = false, then the relay is
switched on).  Their MX hosts refuse every recipient: one answers 550 to
RCPT, the other 554 to the final dot of DATA.  While the relay works the
burst off, postroom-smtpd is killed with SIGKILL at random moments and
started again, several times.

In the end the queue is empty and the sender's mailbox holds exactly one
bounce for each failed recipient: an attempt's bounce and the removal of
the recipients it reports are one transaction, so a crash between them
can neither lose the bounce nor repeat it (docs/ARCHITECTURE.md, the
durability contract; postroom-smtpd(8)).
"""

import email
import os
import random
import smtplib
import sqlite3
import sys
import time

from relay_util import (Check, Dns, FakeMX, Instance, PASSWORD,
                        free_port_on, mailbox_bodies, message, queued,
                        wait_for)

ALICE = "alice@a.test"
# One bounce each; enough that the relay, which keeps its sessions to
# the MX hosts for the next message, is still at work at the last kill.
MESSAGES = 420
KILLS = 8               # kills while bounces are being made
SEED = int(os.environ.get("POSTROOM_TEST_SEED", str(int(time.time()))))


def final_recipients(data):
    """The Final-Recipient addresses of one bounce (RFC 3464 2.3.2)."""
    m = email.message_from_bytes(data)
    out = []
    for part in m.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in part.get_payload():
            v = block.get("Final-Recipient")
            if v is not None:
                out.append(v.split(";", 1)[1].strip().lower())
    return out


def stored(inst):
    """How many messages are in alice's mailbox (read-only)."""
    path = os.path.join(inst.data_dir, "mail.db")
    with sqlite3.connect("file:%s?mode=ro" % path, uri=True,
                         timeout=10) as c:
        return c.execute(
            "SELECT count(*) FROM mailbox m JOIN users u"
            " ON u.id = m.user_id WHERE u.address = ?",
            (ALICE,)).fetchone()[0]


def burst():
    """[(recipients)] of every message: one to four recipients, at the
    domain that refuses at RCPT or the one that refuses at DATA."""
    msgs = []
    for i in range(MESSAGES):
        dom = "rcpt.test" if i % 2 == 0 else "data.test"
        n = 1 + i % 4
        msgs.append(["u%d-%d@%s" % (i, j, dom) for j in range(n)])
    return msgs


def main():
    t = Check()
    rng = random.Random(SEED)
    print("# seed %d" % SEED)
    port = free_port_on(["127.0.0.3", "127.0.0.4"])
    dns = Dns(mx={"rcpt.test": [(10, "mx.rcpt.test")],
                  "data.test": [(10, "mx.data.test")]},
              a={"mx.rcpt.test": "127.0.0.3", "mx.data.test": "127.0.0.4"})
    servers = []
    a = None
    try:
        # A slow greeting spreads the burst over several kills.
        servers.append(FakeMX("127.0.0.3", port, greeting_delay=0.2,
                              rcpt=lambda addr: "550 5.1.1 no such user"))
        servers.append(FakeMX("127.0.0.4", port, greeting_delay=0.2,
                              data_reply="554 5.7.1 refused after DATA"))
        a = Instance(host="127.0.0.2", hostname="mx.a.test",
                     extra={"relay": {"enabled": "false",
                                      "resolver": dns.resolver,
                                      "mx_port": str(port)}})
        a.add_domain("a.test")
        a.add_user(ALICE, PASSWORD)

        # The burst, queued while the relay is off.
        msgs = burst()
        want = sorted(r for rcpts in msgs for r in rcpts)
        a.start("smtpd")
        with smtplib.SMTP(a.host, a.ports["submission"],
                          local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            s.login(ALICE, PASSWORD)
            for i, rcpts in enumerate(msgs):
                s.sendmail(ALICE, rcpts, message(
                    ALICE, ", ".join(rcpts), "burst %d" % i))
        t.eq(a.stop("smtpd"), 0, "burst queued, relay off")
        t.eq(queued(a), want, "%d recipients queued" % len(want))

        # The relay on; kills at random moments while it bounces.
        a.extra["relay"]["enabled"] = "true"
        a.write_config()
        # Each kill comes at a random moment once the new run has
        # stored a bounce, so that it lands while bounces are being made
        # however fast the build is; it counts if more were to come.
        mid, before = 0, 0
        for k in range(KILLS + 2):
            if mid >= KILLS:
                break
            a.start("smtpd")
            wait_for(lambda: stored(a) > before, 20, step=0.02)
            time.sleep(rng.uniform(0, 0.03))
            a.kill("smtpd")
            n_bounces = stored(a)
            left = len(queued(a))
            print("# kill %d: %d bounces stored, %d recipients queued" %
                  (k + 1, n_bounces, left))
            if left == 0:
                break
            if n_bounces > before:
                mid += 1
            before = n_bounces
        t.ok(mid >= KILLS, "%d kills while bouncing (want %d)" % (
            mid, KILLS))

        a.start("smtpd")
        t.ok(wait_for(lambda: queued(a) == [], 40),
             "after the last restart the queue empties",
             "left: %s\n%s" % (queued(a)[:10], a.log("smtpd")[-3000:]))
        t.eq(a.stop("smtpd"), 0, "clean stop")

        bodies = mailbox_bodies(a, ALICE)
        got = sorted(r for b in bodies for r in final_recipients(b))
        dups = sorted({r for r in got if got.count(r) > 1})
        missing = sorted(set(want) - set(got))
        t.eq(len(bodies), MESSAGES, "one bounce per message")
        t.ok(not dups, "no recipient bounced twice",
             "%d twice, e.g. %s" % (len(dups), dups[:5]))
        t.ok(not missing, "no failed recipient without a bounce",
             "%d missing, e.g. %s" % (len(missing), missing[:5]))
        t.eq(got, want, "exactly one bounce per failed recipient")
    finally:
        if a is not None:
            a.close()
        for s in servers:
            s.close()
        dns.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
