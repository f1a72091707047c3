#!/usr/bin/env python3
"""The openspf RFC 7208 test suite (rfc7208-tests.yml, see README) run
against `postroom spf`, each scenario's zone served by
tests/lib/dnsserver.py on loopback.

Each case is one TAP check: its result must be the suite's `result` (or
one of them, where it lists several) and, where the suite gives an
`explanation` other than DEFAULT (the implementation's own), line 2 must
be "explanation: TEXT".  A case may be named on the command line to run
it alone.
"""

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import tap  # noqa: E402
from dnsserver import DNSServer, openspf_zone  # noqa: E402

import yaml  # noqa: E402

SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("POSTROOM_BUILD_DIR", os.path.join(SRC_ROOT, "build"))
CLI = os.path.join(BUILD, "tools", "postroom")


def run_case(cfg, case):
    args = [CLI, "-c", cfg, "spf", str(case["host"]),
            str(case.get("mailfrom", "")), str(case.get("helo", ""))]
    r = subprocess.run(args, capture_output=True, timeout=60)
    return r


def main():
    only = set(sys.argv[1:])
    with open(os.path.join(HERE, "rfc7208-tests.yml"), "rb") as f:
        docs = list(yaml.safe_load_all(f))
    t = tap.Check()
    tmp = tempfile.mkdtemp(prefix="postroom-spf-")
    cfg = os.path.join(tmp, "postroom.conf")
    for doc in docs:
        cases = [(n, c) for n, c in doc["tests"].items()
                 if not only or n in only]
        if not cases:
            continue
        with DNSServer(openspf_zone(doc.get("zonedata"))) as dns:
            with open(cfg, "w") as f:
                f.write("[server]\nhostname = receiver.example.org\n"
                        "data_dir = %s\nuser =\n"
                        "[dns]\nresolver = 127.0.0.1:%d\ntimeout = 1s\n"
                        % (os.path.join(tmp, "data"), dns.port))
            # The cases are independent: run a few at once (most of
            # the time goes to the ones that wait for a timeout).
            with ThreadPoolExecutor(4) as ex:
                results = list(ex.map(lambda nc: run_case(cfg, nc[1]),
                                      cases))
        for (name, case), r in zip(cases, results):
            want = case["result"]
            want = want if isinstance(want, list) else [want]
            out = r.stdout.decode("latin-1").splitlines()
            got = out[0] if out else ""
            detail = ("%s: %s\ncommand: spf %r %r %r\nexit %d\n"
                      "stdout: %r\nstderr: %r" % (
                          doc["description"], case.get("description", ""),
                          case["host"], case.get("mailfrom"),
                          case.get("helo"), r.returncode, r.stdout,
                          r.stderr))
            ok = r.returncode == 0 and got in want
            exp = case.get("explanation")
            if ok and exp is not None and exp != "DEFAULT":
                ok = len(out) > 1 and out[1] == "explanation: " + exp
            t.ok(ok, "%s (%s)" % (name, "/".join(want)), detail)
    os.rmdir(tmp) if not os.listdir(tmp) else None
    for fn in os.listdir(tmp):
        p = os.path.join(tmp, fn)
        if os.path.isfile(p):
            os.unlink(p)
    sys.exit(t.done())


if __name__ == "__main__":
    main()
