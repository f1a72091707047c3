#!/usr/bin/python3
"""The relay's client reads a remote server's big replies over TLS.

A remote MX may answer EHLO with a long multi-line reply and pipelined
commands with many replies at once: more than the client's input buffer
holds in one go, arriving as one burst of TLS records.  The client must
work through them as it consumes its input (no stall waiting for more
packets, no "reply too long" for a reply made of many short lines).
"""

import sys

from relay_util import (Check, Dns, FakeMX, Instance, PASSWORD,
                        free_port_on, message, queued, submit, wait_for)

ALICE = "alice@a.test"
IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
RCPTS = 100


def main():
    t = Check()
    port = free_port_on(IPS)
    dns = Dns(mx={"big.test": [(10, "mx.big.test")],
                  "plain.test": [(10, "mx.plain.test")]},
              a={"mx.big.test": "127.0.0.3", "mx.plain.test": "127.0.0.4"})
    servers = []
    a = None
    try:
        a = Instance(host="127.0.0.2", hostname="mx.a.test",
                     extra={"relay": {"resolver": dns.resolver,
                                      "mx_port": str(port)}})
        a.ports["smtp"] = port
        a.write_config()
        # Replies padded to ~450 octets: 100 pipelined RCPT replies are
        # 45 KB; the EHLO reply, 55 lines of 2,000 octets (within the
        # client's bounds: 64 lines of at most 4,096), 110 KB.
        pad = "y" * 420
        big = FakeMX("127.0.0.3", port, starttls=(a.cert, a.key),
                     name="mx.big.test", ehlo_extra=55, ehlo_pad=2000,
                     rcpt=lambda r: "250 2.1.5 <%s> ok %s" % (r, pad))
        plain = FakeMX("127.0.0.4", port, name="mx.plain.test",
                       ehlo_extra=55, ehlo_pad=2000,
                       rcpt=lambda r: "250 2.1.5 <%s> ok %s" % (r, pad))
        servers += [big, plain]
        a.add_domain("a.test")
        a.add_user(ALICE, PASSWORD)
        a.start("smtpd")

        for dom, mx in (("big.test", big), ("plain.test", plain)):
            rcpts = ["u%03d@%s" % (i, dom) for i in range(RCPTS)]
            for n in range(3):
                submit(a, ALICE, rcpts, message(ALICE, rcpts[0],
                                                "burst %d" % n))
            t.ok(wait_for(lambda: len(mx.messages) >= 3, 30),
                 "%s: three messages delivered" % dom, a.log("smtpd"))
            t.eq(sorted(len(m[1]) for m in mx.messages), [RCPTS] * 3,
                 "%s: every recipient accepted in each" % dom)
        t.ok(big.tls_sessions >= 1, "big.test: delivered over TLS")
        t.ok(wait_for(lambda: queued(a) == [], 10), "queue empty",
             a.log("smtpd"))
    finally:
        for s in servers:
            s.close()
        if a is not None:
            a.close()
        dns.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
