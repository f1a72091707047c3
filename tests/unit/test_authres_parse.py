#!/usr/bin/python3
"""Authentication-Results fields built by mailauth/authres.c (through
authres_tool), read back by an independent RFC 8601 parser,
python3-authres: the authserv-id, each method, result, reason and
property must come out as they went in, and lines are folded at 78
columns (RFC 5322 2.1.1)."""

import os
import subprocess
import sys

import authres

sys.path.insert(0, os.path.join(os.environ.get("POSTROOM_SOURCE_DIR", "."),
                                "tests", "lib"))
from tap import Check  # noqa: E402

LONG = "a-rather-long-subdomain.of-an-organisation.example.com"

# (authserv-id, [(method, result, reason, [(ptype, property, value)])])
CASES = [
    ("mx.example.org", [
        ("spf", "pass", None, [("smtp", "mailfrom", "alice@example.com")]),
        ("dkim", "pass", None, [("header", "d", "example.com"),
                                ("header", "s", "sel"),
                                ("header", "b", "AbCd+/Ef")]),
        ("dkim", "fail", "body hash mismatch",
         [("header", "d", "other.test"), ("header", "s", "s2")]),
        ("dmarc", "pass", None, [("header", "from", "example.com")]),
        ("iprev", "pass", None, [("policy", "iprev", "192.0.2.1")]),
    ]),
    ("MX.Example.Org", [
        ("spf", "none", None, [("smtp", "helo", "helo.example.net")]),
        ("dmarc", "fail", "p=reject", [("header", "from", "example.com")]),
        ("iprev", "temperror", None,
         [("policy", "iprev", "2001:db8::1")]),
    ]),
    ("mx.example.org", [
        ("spf", "softfail", None,
         [("smtp", "mailfrom", "first.last+tag@" + LONG)]),
        ("dkim", "permerror", "key revoked",
         [("header", "d", LONG), ("header", "s", "selector-2024-long"),
          ("header", "b", "12345678")]),
        ("dkim", "neutral", "signature syntax", []),
    ]),
]


def script(case):
    sid, results = case
    lines = ["id\t" + sid]
    for method, result, reason, props in results:
        p = {k: v for _, k, v in props}
        if method == "spf":
            lines.append("spf\t%s\t%s\t%s" % (result, p.get("mailfrom", ""),
                                             p.get("helo", "")))
        elif method == "dkim":
            lines.append("dkim\t%s\t%s\t%s\t%s\t%s" % (
                result, p.get("d", ""), p.get("s", ""), p.get("b", ""),
                reason or ""))
        elif method == "dmarc":
            pol = reason.split("=")[1] if reason else "none"
            lines.append("dmarc\t%s\t%s\t%s" % (result, p["from"], pol))
        elif method == "iprev":
            lines.append("iprev\t%s\t%s" % (result, p["iprev"]))
    lines.append("end")
    return "\n".join(lines) + "\n"


def main():
    tool = sys.argv[1]
    t = Check()
    for i, case in enumerate(CASES):
        r = subprocess.run([tool], input=script(case).encode(),
                           capture_output=True)
        if not t.ok(r.returncode == 0, "case %d: built" % i,
                    r.stderr.decode()):
            continue
        field = r.stdout.decode().rstrip("\r\n")
        # A line may pass 78 columns only when it is one unbreakable
        # piece (a value is never split), and never 998 (RFC 5322 2.1.1).
        long_lines = [ln for ln in field.split("\r\n")
                      if len(ln) > 998 or
                      (len(ln) > 78 and " " in ln.strip())]
        t.ok(not long_lines, "case %d: folded at 78 columns" % i,
             "\n".join(long_lines))
        try:
            h = authres.AuthenticationResultsHeader.parse(field)
        except Exception as e:  # the parser raises on a syntax error
            t.ok(False, "case %d: parses" % i, "%s\n%s" % (e, field))
            continue
        t.ok(True, "case %d: parses" % i)
        # python3-authres lower-cases it; RFC 8601 2.5 compares
        # without case.
        t.ok(h.authserv_id == case[0].lower(), "case %d: authserv-id" % i,
             h.authserv_id)
        got = [(r.method, r.result, r.reason,
                [(p.type, p.name, p.value) for p in r.properties])
               for r in h.results]
        t.ok(got == case[1], "case %d: results read back" % i,
             "got  %r\nwant %r\n%s" % (got, case[1], field))
    # No result at all: "none" (RFC 8601 2.2).
    r = subprocess.run([tool], input=b"id\tmx.example.org\nend\n",
                       capture_output=True, check=True)
    h = authres.AuthenticationResultsHeader.parse(
        r.stdout.decode().rstrip("\r\n"))
    t.ok(h.authserv_id == "mx.example.org" and not h.results,
         "no-result parses as none")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
