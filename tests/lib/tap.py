"""A tiny TAP producer for end-to-end tests, so that a failing check does
not hide the ones after it.

    t = Check(); t.ok(cond, "name", detail); t.eq(got, want, "name")
    sys.exit(t.done())

A test that cannot run here calls skip(why).  meson reads this output
(protocol 'tap'), so a test exits 0 whenever no check failed: a TAP test
that exits non-zero is an error, and a skip is said in the plan
("1..0 # SKIP why") or as a directive ("ok N # SKIP why").
"""

import sys


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
