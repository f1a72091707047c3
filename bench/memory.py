"""Memory after a burst (bench.py --only memory), postroom only.

postroom-smtpd and postroom-pop3d are restarted; their PSS
(/proc/PID/smaps_rollup, benchlib.pss_bytes) is read fresh, right after
a burst and after IDLE_S seconds without sessions:

- smtpd: smtp-source (or bench/smtpclient.py) with 50 sessions at once,
  one 10 KiB message per session (FULL: 1000 messages);
- pop3d: 20 users at once downloading their maildrop (the bench's
  c01..c20 users, filled here if empty).

Once a daemon has had no connection open for a few seconds after some,
it calls malloc_trim(3) (common/daemon.h, daemon_trim).  Target: PSS
after the idle wait within 2x of fresh.
"""

import time

import benchlib
from benchlib import fmt_bytes
import peers

KiB = 1024
FULL = {"burst": (50, 1000), "pop_users": 20, "pop_msgs": 50, "idle": 60}
SMOKE = {"burst": (4, 20), "pop_users": 2, "pop_msgs": 3, "idle": 7}


def pop_burst(port, users):
    import poplib
    from harness import parallel  # tests/lib, on the path via benchlib

    def one(i):
        p = poplib.POP3("127.0.0.1", port, timeout=120)
        p.user("%s@%s" % (users[i], peers.DOMAIN))
        p.pass_(peers.password_for(users[i]))
        n, _ = p.stat()
        for k in range(1, n + 1):
            p.retr(k)
        p.quit()
    errors = [r for r in parallel(len(users), one) if isinstance(r, Exception)]
    if errors:
        raise RuntimeError("POP3 burst: %d failed: %r" % (len(errors),
                                                          errors[0]))


def w_memory(bench):
    if not bench.pr:
        return
    c = SMOKE if bench.args.smoke else FULL
    pr = bench.pr
    rep = bench.report
    users = bench.conc_users(min(c["pop_users"], len(
        [u for u in bench.users() if u.startswith("c")])))
    for u in users:
        have = pr.mailbox_count(u)
        if have < c["pop_msgs"]:
            bench.send(pr.smtp_port, 5, c["pop_msgs"] - have, 10 * KiB,
                       "%s@%s" % (u, peers.DOMAIN))
    for daemon in ("smtpd", "pop3d"):
        pr.stop(daemon)
        pr.start(daemon)
        time.sleep(0.5)
        pid = pr.pid(daemon)
        fresh = benchlib.pss_bytes(pid)
        parts = [benchlib.pss_parts(pid)]
        if daemon == "smtpd":
            conc, n = c["burst"]
            bench.send(pr.smtp_port, conc, n, 10 * KiB,
                       "smtp@%s" % peers.DOMAIN)
            what = "SMTP 10 KiB x %d, %d messages" % (conc, n)
        else:
            pop_burst(pr.pop3_port, users)
            what = "POP3 %d users at once x %d RETR of 10 KiB" % (
                len(users), c["pop_msgs"])
        after = benchlib.pss_bytes(pid)
        parts.append(benchlib.pss_parts(pid))
        time.sleep(c["idle"])
        idle = benchlib.pss_bytes(pid)
        parts.append(benchlib.pss_parts(pid))
        rep.detail("- PSS of postroom-%s by kind, fresh / after the burst /"
                   " idle: %s" % (daemon, "; ".join(
                       "%s %s" % (k.lower(), " / ".join(
                           fmt_bytes(p[k]) for p in parts))
                       for k in ("Anon", "File", "Shmem"))))
        ok = idle <= 2 * fresh
        rep.row("PSS of postroom-%s: fresh / after %s / %d s idle" % (
                daemon, what, c["idle"]),
                "%s / %s / %s" % (fmt_bytes(fresh), fmt_bytes(after),
                                  fmt_bytes(idle)),
                "", None, None, "idle <= 2x fresh", ok)
        rep.targets.append((
            "postroom-%s PSS after %d s idle within 2x of fresh" % (
                daemon, c["idle"]), ok,
            "%s fresh, %s after the burst, %s idle (%.2fx)" % (
                fmt_bytes(fresh), fmt_bytes(after), fmt_bytes(idle),
                idle / fresh if fresh else 0)))
