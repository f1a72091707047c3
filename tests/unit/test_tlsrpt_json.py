#!/usr/bin/python3
"""The TLS report of mailauth/tlsrpt_*.c (through tlsrpt_tool), read back
by python3's json, gzip and email and checked against the RFC 8460 4.4
field list and types and the 5.3 message format (tests/lib/tlsrpt_check)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("POSTROOM_SOURCE_DIR", "."),
                                "tests", "lib"))
from tap import Check  # noqa: E402
import tlsrpt_check  # noqa: E402

tool = sys.argv[1]
t = Check()
out = subprocess.run([tool, "json"], capture_output=True, check=True).stdout
import json  # noqa: E402
try:
    obj = json.loads(out.decode("utf-8"))
except ValueError as e:
    obj = None
    t.ok(False, "the JSON parses", "%s\n%s" % (e, out))
if obj is not None:
    t.ok(True, "the JSON parses")
    p = tlsrpt_check.report_problems(obj)
    t.ok(p == [], "RFC 8460 4.4 fields and types", "\n".join(p))
    t.eq(obj["date-range"], {"start-datetime": "2024-10-04T00:00:00Z",
                             "end-datetime": "2024-10-04T23:59:59Z"},
         "the UTC day")
    pols = obj["policies"]
    t.eq([x["policy"]["policy-type"] for x in pols],
         ["no-policy-found", "sts", "tlsa"], "one entry per policy")
    t.eq(pols[0]["summary"], {"total-successful-session-count": 5,
                              "total-failure-session-count": 6},
         "no-policy-found counts")
    t.ok("policy-string" not in pols[0]["policy"],
         "no policy-string without a policy")
    t.eq(pols[0]["failure-details"][1],
         {"result-type": "starttls-not-supported",
          "sending-mta-ip": "127.0.0.1",
          "receiving-mx-hostname": "mx2.b.test", "receiving-ip": "::1",
          "failed-session-count": 4}, "a failure's details")
    t.eq(pols[1]["policy"]["policy-string"],
         ["version: STSv1", "mode: testing", "mx: mx.b.test",
          "max_age: 86400"], "the policy, line by line")
    t.eq(pols[1]["policy"]["mx-host"], ["mx.b.test"], "sts mx-host")
    t.eq(pols[1]["failure-details"][0]["failure-reason-code"],
         "name \"x\\y\" \x01 \u00e9 \ufffd", "text escaped, UTF-8 kept")
    t.eq(pols[2]["policy"]["mx-host"], ["mx3.b.test"], "tlsa mx-host")
    t.eq(pols[0]["policy"]["policy-domain"], "b.test", "policy-domain")

raw = subprocess.run([tool, "mime"], capture_output=True, check=True).stdout
t.ok(b"\n" not in raw.replace(b"\r\n", b""), "CRLF lines only")
try:
    msg, obj2, fname = tlsrpt_check.read_message(raw)
    t.ok(True, "RFC 8460 5.3 message")
    t.eq(obj2, obj, "the attachment is the JSON, gzip'd")
    t.eq(fname, "mail.a.test!b.test!1728000000!1728086399!20241004x1"
         ".json.gz", "5.3.1 file name")
    t.eq(str(msg["To"]), "reports@b.test", "To")
except ValueError as e:
    t.ok(False, "RFC 8460 5.3 message", str(e))
sys.exit(t.done())
