#!/usr/bin/env python3
"""One postroom-smtpd and one postroom-pop3d per data_dir: a second one
on the same data_dir exits 1 naming the one that runs (two queue runners
on one queue would deliver twice), on the same ports or on others; a
daemon killed with SIGKILL leaves no stale lock behind."""

import os
import subprocess
import sys

from smtp_util import Check, instance
from harness import BIN, free_port


def second(inst, daemon, config):
    """Runs a second daemon with config; (exit status, output)."""
    r = subprocess.run([BIN[daemon], "-c", config], capture_output=True,
                       text=True, env=inst.env(), timeout=30)
    return r.returncode, r.stdout + r.stderr


def other_ports_config(inst):
    """A copy of inst's config with the same data_dir, other ports."""
    path = os.path.join(inst.tmp, "other.conf")
    with open(inst.config) as f:
        text = f.read()
    for name, port in inst.ports.items():
        text = text.replace(":%d\n" % port, ":%d\n" % free_port(inst.host))
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    t = Check()
    inst = instance()
    try:
        other = other_ports_config(inst)
        for daemon, lock in (("smtpd", "smtpd.pid"), ("pop3d", "pop3d.pid")):
            p = inst.start(daemon)
            path = os.path.join(inst.data_dir, lock)
            with open(path) as f:
                t.eq(f.read().strip(), str(p.pid),
                     "%s records its pid in data_dir/%s" % (daemon, lock))
            for name, config in (("same ports", inst.config),
                                 ("other ports", other)):
                code, out = second(inst, daemon, config)
                t.eq(code, 1, "a second %s on the same data_dir (%s) "
                     "exits 1" % (daemon, name))
                want = "another postroom-%s (pid %d) is running" % (
                    daemon, p.pid)
                t.ok(want in out, "... saying '%s'" % want, out)
                t.ok(p.poll() is None, "... and the first one runs on")
            inst.kill(daemon)
            p = inst.start(daemon)
            t.ok(p.poll() is None, "%s starts again after a SIGKILL: the "
                 "lock died with its holder" % daemon)
            code, out = second(inst, daemon, other)
            t.eq(code, 1, "... and holds the lock again")
        t.eq(inst.stop("smtpd"), 0, "smtpd stops cleanly")
        t.eq(inst.stop("pop3d"), 0, "pop3d stops cleanly")
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
