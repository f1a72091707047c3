"""A tiny TAP producer for end-to-end tests, so that a failing check does
not hide the ones after it.

    t = Check(); t.ok(cond, "name", detail); t.eq(got, want, "name")
    sys.exit(t.done())
"""

import sys


class Check:
    def __init__(self, detail_lines=30):
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
