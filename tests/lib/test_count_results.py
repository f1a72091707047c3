#!/usr/bin/python3
"""count_results.py: one meson test is one count whatever its TAP
checks; --strict (CI) counts a skipped test or check as failed; the last
line of --total stays "N passed, N failed"."""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tap import Check  # noqa: E402

COUNT = os.path.join(HERE, "count_results.py")
LOG = [
    {"name": "plain", "result": "OK", "stdout": "ok 1 - a\nok 2 - b\n1..2\n"},
    {"name": "late-skip", "result": "OK",
     "stdout": "ok 1 - a\nok 2 # SKIP no tool\n1..2\n"},
    {"name": "skipped", "result": "SKIP",
     "stdout": "1..0 # SKIP dnsmasq is not installed\n"},
    {"name": "failed", "result": "FAIL",
     "stdout": "ok 1 - a\nnot ok 2 - AUTH PLAIN: 235\n1..2\n"},
    {"name": "exit-code", "result": "OK", "stdout": "no TAP here\n"},
]


def run(*args):
    return subprocess.run([sys.executable, COUNT] + list(args),
                          capture_output=True, text=True, timeout=30)


def main():
    t = Check()
    with tempfile.TemporaryDirectory(prefix="postroom-count-") as tmp:
        log = os.path.join(tmp, "testlog.json")
        with open(log, "w") as f:
            for e in LOG:
                f.write(json.dumps(e) + "\n")
        r = run("unit", log)
        t.eq(r.stdout, "unit tests 3 1 1\n",
             "tests counted, not checks; a skip is neither")
        t.ok("not ok 2 - AUTH PLAIN: 235" in r.stderr,
             "the failed check is named", r.stderr)
        r = run("--strict", "e2e", log)
        t.eq(r.stdout, "e2e tests 2 3 0\n",
             "--strict: skipped test and skipped check fail")
        t.ok("dnsmasq is not installed" in r.stderr and
             "SKIP no tool" in r.stderr, "--strict names the skips",
             r.stderr)
        r = run("none", os.path.join(tmp, "missing.json"))
        t.eq(r.stdout, "none tests 0 1 0\n", "no testlog: one failure")
        summary = os.path.join(tmp, "summary.txt")
        with open(summary, "w") as f:
            f.write("unit tests 3 1 1\ne2e tests 2 3 0\n")
        r = run("--total", summary)
        t.eq(r.stdout.splitlines()[-1], "5 passed, 4 failed",
             "total: the last line sums the stages")
        t.eq(r.returncode, 1, "total: exit 1 when something failed")
        with open(summary, "w") as f:
            f.write("unit tests 3 0 0\n")
        r = run("--total", summary)
        t.eq((r.stdout.splitlines()[-1], r.returncode),
             ("3 passed, 0 failed", 0), "total: all passed, exit 0")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
