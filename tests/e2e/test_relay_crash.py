#!/usr/bin/python3
"""Crash safety and shutdown of the relay.

- postroom-smtpd is killed (SIGKILL) after the whole message went to the
  MX but before the MX's final reply: the recipient is still queued, and
  after a restart the message goes again -- a duplicate, never a loss.
- SIGTERM while a delivery waits for a slow greeting: the daemon stops at
  once and the entry stays queued; the next start delivers it.
- [relay] enabled = false: mail is queued and never sent.
"""

import signal
import sys
import time

from relay_util import (Check, Dns, FakeMX, Instance, PASSWORD, close_all,
                        free_port_on, message, queued, submit, wait_for)

ALICE = "alice@a.test"


def main():
    t = Check()
    port = free_port_on(["127.0.0.4", "127.0.0.5"])
    dns = Dns(mx={"slow.test": [(10, "mx.slow.test")],
                  "hang.test": [(10, "mx.hang.test")]},
              a={"mx.slow.test": "127.0.0.4", "mx.hang.test": "127.0.0.5"})
    servers = []
    a = off = None
    try:
        a = Instance(host="127.0.0.2", hostname="mx.a.test",
                     extra={"relay": {"resolver": dns.resolver,
                                      "mx_port": str(port)}})
        a.add_domain("a.test")
        a.add_user(ALICE, PASSWORD)

        slow = FakeMX("127.0.0.4", port, data_delay=5)
        servers.append(slow)
        a.start("smtpd")
        submit(a, ALICE, ["u@slow.test"],
               message(ALICE, "u@slow.test", "crash test"))
        t.ok(wait_for(lambda: slow.data_received == 1, 15),
             "the MX has the whole message", a.log("smtpd"))
        a.kill("smtpd")
        t.eq(queued(a), ["u@slow.test"],
             "killed before the MX's 250: still queued")
        slow.data_delay = 0
        a.start("smtpd")
        t.ok(wait_for(lambda: queued(a) == [], 20),
             "after the restart it is delivered", a.log("smtpd"))
        t.ok(wait_for(lambda: len(slow.messages) == 2, 10),
             "the MX got it twice: a duplicate, not a loss")

        # SIGTERM with a delivery stuck at the greeting.
        hang = FakeMX("127.0.0.5", port, greeting_delay=30)
        servers.append(hang)
        submit(a, ALICE, ["u@hang.test"],
               message(ALICE, "u@hang.test", "stop test"))
        t.ok(wait_for(lambda: hang.sessions == 1, 15),
             "delivery waits for the greeting", a.log("smtpd"))
        start = time.monotonic()
        rc = a.stop("smtpd")
        took = time.monotonic() - start
        t.eq(rc, 0, "SIGTERM: clean exit")
        t.ok(took < 5, "stops without waiting for the MX (%.1fs)" % took)
        t.eq(queued(a), ["u@hang.test"], "the entry stays queued")
        hang.close()
        servers.remove(hang)
        fine = FakeMX("127.0.0.5", port)
        servers.append(fine)
        a.start("smtpd")
        t.ok(wait_for(lambda: len(fine.messages) == 1, 15),
             "delivered right after the next start", a.log("smtpd"))
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty")

        # [relay] enabled = false.
        off = Instance(host="127.0.0.2", hostname="mx3.a.test",
                       extra={"relay": {"enabled": "false",
                                        "resolver": dns.resolver,
                                        "mx_port": str(port)}})
        off.add_domain("a.test")
        off.add_user(ALICE, PASSWORD)
        off.start("smtpd")
        n = fine.sessions
        submit(off, ALICE, ["v@hang.test"],
               message(ALICE, "v@hang.test", "relay off"))
        time.sleep(2)
        t.eq(queued(off), ["v@hang.test"], "relay disabled: stays queued")
        t.eq(fine.sessions, n, "relay disabled: no connection")
        t.eq(off.stop("smtpd"), 0, "relay disabled: clean stop")
    finally:
        close_all(a, off, *servers, dns)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
