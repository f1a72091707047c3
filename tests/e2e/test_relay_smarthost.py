#!/usr/bin/python3
"""[relay] smarthost: everything goes through one host, in one
transaction per message, with AUTH when smarthost_user and
smarthost_password_file are set -- and the password is only ever sent
inside TLS: a smarthost without STARTTLS gets nothing and the message
waits in the queue."""

import os
import sys

from relay_util import (Check, FakeMX, Instance, PASSWORD, close_all,
                        free_port, message, queue_list, queued, submit,
                        wait_for)

ALICE = "alice@a.test"
SMART_USER = "relay@isp.test"
SMART_PASS = "s3cret smarthost pass"


def relay_to(inst, port, pwfile):
    inst.extra["relay"] = {"smarthost": "127.0.0.4:%d" % port,
                           "smarthost_user": SMART_USER,
                           "smarthost_password_file": pwfile}
    inst.write_config()
    inst.add_domain("a.test")
    inst.add_user(ALICE, PASSWORD)
    inst.start("smtpd")


def main():
    t = Check()
    a = Instance(host="127.0.0.2", hostname="mx.a.test")
    a2 = Instance(host="127.0.0.2", hostname="mx2.a.test")
    servers = []
    try:
        pwfile = os.path.join(a.tmp, "smarthost.pw")
        with open(pwfile, "w") as f:
            f.write(SMART_PASS + "\n")
        os.chmod(pwfile, 0o600)

        port = free_port("127.0.0.4")
        smart = FakeMX("127.0.0.4", port, starttls=(a.cert, a.key),
                       auth=(SMART_USER, SMART_PASS), name="smtp.isp.test")
        servers.append(smart)
        relay_to(a, port, pwfile)
        t.eq(submit(a, ALICE, ["bob@b.test", "carol@c.test"],
                    message(ALICE, "bob@b.test, carol@c.test",
                            "via smarthost")), {}, "submitted")
        t.ok(wait_for(lambda: len(smart.messages) == 1, 15),
             "delivered to the smarthost", a.log("smtpd"))
        t.eq(sorted(smart.messages[0][1]) if smart.messages else None,
             ["bob@b.test", "carol@c.test"],
             "both domains in one transaction")
        t.eq(smart.auth_seen[:1], [("PLAIN", SMART_USER, SMART_PASS, True)],
             "AUTH PLAIN with the configured credentials, inside TLS")
        t.eq(smart.tls_sessions, 1, "STARTTLS before AUTH")
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty")
        t.ok(SMART_PASS not in a.log("smtpd"), "password never logged")

        # A smarthost without STARTTLS: no password in the clear.
        port2 = free_port("127.0.0.4")
        plain = FakeMX("127.0.0.4", port2, auth=(SMART_USER, SMART_PASS))
        servers.append(plain)
        relay_to(a2, port2, pwfile)
        submit(a2, ALICE, ["bob@b.test"],
               message(ALICE, "bob@b.test", "no tls smarthost"))
        t.ok(wait_for(lambda: "attempts=1" in queue_list(a2), 15),
             "deferred", a2.log("smtpd"))
        ql = queue_list(a2)
        t.ok("STARTTLS" in ql, "last error says TLS is missing", ql)
        t.eq(plain.auth_seen, [], "no AUTH sent without TLS")
        t.ok(not any(c.upper().startswith("AUTH") for c in plain.commands),
             "no AUTH command at all", plain.commands)
        t.eq(plain.messages, [], "nothing delivered")
        t.eq(queued(a2), ["bob@b.test"], "message kept in the queue")
    finally:
        close_all(a, a2, *servers)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
