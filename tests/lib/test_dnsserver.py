#!/usr/bin/env python3
"""tests/lib/dnsserver.py against dnslib's client, over UDP and TCP:
records of every type, several strings in a TXT record, NXDOMAIN and
NODATA, TIMEOUT and SERVFAIL with the openspf ordering rule, CNAMEs
followed, case-insensitive names, truncation over UDP, and
openspf_zone()."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from dnsserver import DNSServer, openspf_zone  # noqa: E402

from dnslib import DNSQuestion, DNSRecord, QTYPE  # noqa: E402

BIG = ["x" * 200] * 12

ZONE = {
    "a.test": [{"A": "192.0.2.1"}, {"AAAA": "2001:db8::1"},
               {"MX": [10, "mx.a.test"]}, {"TXT": ["v=spf1 ", "-all"]},
               {"SPF": "v=spf1 -all"}, {"PTR": "p.a.test"}],
    "null.test": [{"MX": [0, ""]}],
    "alias.test": [{"CNAME": "a.test"}],
    "slow.test": [{"TXT": "early"}, "TIMEOUT"],
    "down.test": ["SERVFAIL"],
    "big.test": [{"TXT": BIG}],
    "odd.test": [{"RAW": [65280, "c0ffee"]}],
}


def ask(port, name, qtype, tcp=False, timeout=1.0):
    if isinstance(qtype, int):
        q = DNSRecord(q=DNSQuestion(name, qtype))
    else:
        q = DNSRecord.question(name, qtype)
    try:
        data = q.send("127.0.0.1", port, tcp=tcp, timeout=timeout)
    except socket.timeout:
        return None
    return DNSRecord.parse(data)


def main():
    t = tap.Check()
    with DNSServer(ZONE) as dns:
        p = dns.port
        r = ask(p, "a.test", "A")
        t.eq([str(x.rdata) for x in r.rr], ["192.0.2.1"], "A")
        r = ask(p, "A.TEST", "AAAA")
        t.eq([str(x.rdata) for x in r.rr], ["2001:db8::1"],
             "AAAA, name in another case")
        r = ask(p, "a.test", "MX")
        t.eq([(x.rdata.preference, str(x.rdata.label)) for x in r.rr],
             [(10, "mx.a.test.")], "MX")
        r = ask(p, "null.test", "MX")
        t.eq([str(x.rdata.label) for x in r.rr], ["."], "null MX")
        r = ask(p, "a.test", "TXT")
        t.eq([list(x.rdata.data) for x in r.rr], [[b"v=spf1 ", b"-all"]],
             "TXT of two strings")
        r = ask(p, "a.test", 99)
        t.eq(len(r.rr), 1, "type SPF (99)")
        r = ask(p, "a.test", "PTR")
        t.eq([str(x.rdata) for x in r.rr], ["p.a.test."], "PTR")
        r = ask(p, "nowhere.test", "A")
        t.eq((r.header.rcode, len(r.rr)), (3, 0), "NXDOMAIN")
        r = ask(p, "null.test", "A")
        t.eq((r.header.rcode, len(r.rr)), (0, 0), "NODATA")
        r = ask(p, "alias.test", "A")
        t.eq([(QTYPE.get(x.rtype), str(x.rdata)) for x in r.rr],
             [("CNAME", "a.test."), ("A", "192.0.2.1")], "CNAME followed")
        t.eq(ask(p, "slow.test", "A"), None, "TIMEOUT: no answer")
        r = ask(p, "slow.test", "TXT")
        t.ok(r is not None and len(r.rr) == 1,
             "TIMEOUT after a record of the type asked: answered")
        r = ask(p, "down.test", "TXT")
        t.eq(r.header.rcode, 2, "SERVFAIL")
        r = ask(p, "big.test", "TXT")
        t.ok(r.header.tc == 1 and len(r.rr) == 0, "too big for UDP: TC")
        r = ask(p, "big.test", "TXT", tcp=True)
        t.eq(sum(len(s) for s in r.rr[0].rdata.data), 2400,
             "over TCP: all of it")
        r = ask(p, "odd.test", 65280)
        t.eq(bytes(r.rr[0].rdata.data), bytes.fromhex("c0ffee"),
             "RAW record")
    z = openspf_zone({"a": [{"SPF": "v=spf1"}],
                      "b": [{"SPF": "v=spf1"}, {"TXT": "NONE"}]})
    t.eq(z["a"], [{"SPF": "v=spf1"}, {"TXT": "v=spf1"}],
         "openspf_zone: SPF copied to TXT")
    t.eq(z["b"], [{"SPF": "v=spf1"}, {"TXT": "NONE"}],
         "openspf_zone: not where a TXT entry is")
    sys.exit(t.done())


if __name__ == "__main__":
    main()
