"""A tiny TAP producer for end-to-end tests, so that a failing check does
not hide the ones after it.

    t = Check(); t.ok(cond, "name", detail); t.eq(got, want, "name")
    sys.exit(t.done())

A unittest module ends with sys.exit(tap.unittest_main()) instead of
unittest.main(): each test method is a check.

A test that cannot run here calls skip(why).  meson reads this output
(protocol 'tap'), so a test exits 0 whenever no check failed: a TAP test
that exits non-zero is an error, and a skip is said in the plan
("1..0 # SKIP why") or as a directive ("ok N # SKIP why").
"""

import sys
import unittest


class Check:
    current = None      # the last one made, for skip()

    def __init__(self, detail_lines=30):
        Check.current = self
        self.n = 0
        self.failed = 0
        self.detail_lines = detail_lines

    def ok(self, cond, name, detail=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name))
            if detail is not None:
                # The end of a log says most about what went wrong.
                for line in str(detail).splitlines()[-self.detail_lines:]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def skipped(self, name, why):
        """A check that could not run here: neither passed nor failed
        (tests/lib/count_results.py --strict counts it as failed)."""
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why))
        sys.stdout.flush()

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got  %r\nwant %r" % (got, want))

    def done(self):
        print("1..%d" % self.n)
        return 1 if self.failed else 0


def skip(why):
    """Ends the test as skipped.  Before any check the whole test is
    skipped; after some, the rest is one skipped check."""
    c = Check.current
    if c is None or c.n == 0:
        print("1..0 # SKIP " + why)
        failed = 0
    else:
        c.n += 1
        print("ok %d # SKIP %s" % (c.n, why))
        print("1..%d" % c.n)
        failed = c.failed
    sys.stdout.flush()
    sys.exit(1 if failed else 0)


class _UnittestResult(unittest.TestResult):
    """Each unittest test is one TAP check, named by its class and
    method; a skipTest() is a "# SKIP" check, not a pass."""

    def __init__(self, check):
        super().__init__()
        self.check = check

    @staticmethod
    def _name(test):
        return test.id().split(".", 1)[-1]

    def addSuccess(self, test):
        super().addSuccess(test)
        self.check.ok(True, self._name(test))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.check.ok(False, self._name(test),
                      self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self.check.ok(False, self._name(test),
                      self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.check.skipped(self._name(test), reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.check.ok(True, self._name(test) + " (expected failure)")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.check.ok(False, self._name(test) + " (unexpected success)")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.check.ok(False, str(subtest),
                          self._exc_info_to_string(err, subtest))


def unittest_main(module="__main__"):
    """Runs a unittest module (load_tests() included) with TAP output on
    stdout; returns the exit status.  Tracebacks go out whole, as TAP
    comments."""
    t = Check(detail_lines=200)
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[module])
    suite.run(_UnittestResult(t))
    return t.done()
