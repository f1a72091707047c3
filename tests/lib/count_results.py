#!/usr/bin/python3
"""Counts meson test results.

    count_results.py NAME testlog.json   -> "NAME tests PASSED FAILED"
    count_results.py --total summary.txt -> per-stage lines, then the total
                                            "N passed, N failed" (exit 1 if
                                            anything failed)
"""
import json
import sys


def count(name, path):
    passed = failed = skipped = 0
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                res = json.loads(line).get("result", "")
                if res in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif res == "SKIP":
                    skipped += 1
                else:
                    failed += 1
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
    if sys.argv[1] == "--total":
        sys.exit(total(sys.argv[2]))
    count(sys.argv[1], sys.argv[2])
