#!/usr/bin/python3
"""Counts meson test results.

    count_results.py [--strict] NAME testlog.json
                               -> "NAME tests PASSED FAILED SKIPPED"
    count_results.py --total summary.txt
                               -> per-stage lines, then the total
                                  "N passed, N failed" (exit 1 if
                                  anything failed)

One line of testlog.json is one meson test, whatever the number of TAP
checks it printed: meson folds a TAP test's checks into the test's result
(FAIL if one check failed, SKIP if every check was skipped) and keeps the
checks only in the test's "stdout".  So tests are counted here, and the
checks are read from the stdout only to name the failed and skipped ones
on stderr.

--strict (CI: root, every tool installed by tests/install-deps.sh) counts
a skipped test, and a test with a skipped check, as failed: there nothing
has a reason to be skipped, and a skip would hide a test that never ran.
"""
import json
import re
import sys

TAP_LINE = re.compile(r"^(not ok|ok)\b\s*\d*\s*(?:- )?(.*)$")
TAP_SKIP = re.compile(r"#\s*skip\b", re.I)


def checks(stdout):
    """(failed check lines, skipped check or plan lines) of TAP output."""
    bad, skipped = [], []
    for line in (stdout or "").splitlines():
        if re.match(r"^1\.\.0\b", line) and TAP_SKIP.search(line):
            skipped.append(line)
            continue
        m = TAP_LINE.match(line)
        if not m:
            continue
        if TAP_SKIP.search(m.group(2)):
            skipped.append(line)
        elif m.group(1) == "not ok" and not re.search(r"#\s*todo\b",
                                                       m.group(2), re.I):
            bad.append(line)
    return bad, skipped


def count(name, path, strict=False):
    passed = failed = skipped = 0
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                t = json.loads(line)
                res = t.get("result", "")
                bad, skips = checks(t.get("stdout"))
                if res in ("OK", "EXPECTEDFAIL") and not (strict and skips):
                    passed += 1
                elif res == "SKIP" and not strict:
                    skipped += 1
                else:
                    failed += 1
                    why = res if res != "OK" else "OK with skipped checks"
                    print("%s: %s: %s" % (name, t.get("name"), why),
                          file=sys.stderr)
                for ln in bad + (skips if strict else []):
                    print("    " + ln, file=sys.stderr)
    except FileNotFoundError:
        failed = 1
    print("%s tests %d %d %d" % (name, passed, failed, skipped))


def total(path):
    passed = failed = skipped = 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4:
                continue
            p, fl = int(parts[2]), int(parts[3])
            s = int(parts[4]) if len(parts) > 4 else 0
            print("  %-8s %-6s %4d passed, %d failed, %d skipped" % (
                parts[0], parts[1], p, fl, s))
            passed, failed, skipped = passed + p, failed + fl, skipped + s
    if passed + failed == 0:
        failed = 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--total":
        sys.exit(total(args[1]))
    strict = args[0] == "--strict"
    if strict:
        args = args[1:]
    count(args[0], args[1], strict)
