"""Shared helpers of the benchmark harness: process accounting from /proc,
statistics, ports, bounded child processes.

Everything here reads /proc of processes the harness started itself and
talks to loopback addresses only.
"""

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

# The peers' set-up and the process helpers are shared with the e2e tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tests", "lib"))

from procs import read_pidfile, stop_pid  # noqa: E402,F401

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc accounting ----------------------------------------------------

def use_build(build_dir):
    """Points tests/lib/harness.py (and the daemons its instances start)
    at the binaries of build_dir; returns the harness module."""
    build = os.path.abspath(build_dir)
    os.environ["POSTROOM_BUILD_DIR"] = build
    import harness
    harness.BIN.update({
        "cli": os.path.join(build, "tools", "postroom"),
        "smtpd": os.path.join(build, "smtpd", "postroom-smtpd"),
        "pop3d": os.path.join(build, "pop3d", "postroom-pop3d"),
    })
    return harness


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (index 0 is
    field 3, the state)."""
    with open("/proc/%d/stat" % pid, "rb") as f:
        s = f.read().decode("ascii", "replace")
    return s[s.rindex(")") + 2:].split()


def children(pid):
    """Direct children of pid (all threads' children)."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pid):
    """pid and all its living descendants."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack += children(p)
    return out


def cpu_seconds(pid):
    """user+sys CPU seconds consumed by the process tree rooted at pid:
    the root's own and reaped children's time (cutime/cstime) plus the
    own time of every living descendant.  Differences of two readings
    are exact even when workers come and go in between, because a worker
    that exits is reaped by its parent into cutime/cstime."""
    total = 0
    for i, p in enumerate(tree(pid)):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        # utime stime cutime cstime are fields 14..17 (index 11..14 here).
        total += int(f[11]) + int(f[12])
        if i == 0:
            total += int(f[13]) + int(f[14])
    return total / CLK_TCK


def _proc_kib_field(pid, name, field):
    """field ("Pss:", "VmHWM:") of /proc/PID/name in bytes; 0 when the
    process is gone."""
    try:
        with open("/proc/%d/%s" % (pid, name)) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss_bytes(pid):
    """Proportional set size of one process, from smaps_rollup."""
    return _proc_kib_field(pid, "smaps_rollup", "Pss:")


def pss_parts(pid):
    """PSS of one process split as smaps_rollup splits it: anonymous
    (heap, thread arenas, stacks), file-backed (code and data of the
    binary and its libraries, mapped files) and shared memory (the
    SQLite WAL index)."""
    return {k: _proc_kib_field(pid, "smaps_rollup", "Pss_%s:" % k)
            for k in ("Anon", "File", "Shmem")}


def tree_pss(pid):
    """Summed PSS of pid and its living descendants."""
    return sum(pss_bytes(p) for p in tree(pid))


def hwm_bytes(pid):
    """Peak resident set size (VmHWM) of one process."""
    return _proc_kib_field(pid, "status", "VmHWM:")


class PssSampler:
    """Samples the PSS of a process tree in the background of a workload
    (from the caller's thread, via poll()) and keeps the peak."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.samples = 0

    def poll(self):
        v = tree_pss(self.pid)
        self.samples += 1
        if v > self.peak:
            self.peak = v
        return v


def wait_children_gone(pid_list, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists("/proc/%d" % p) for p in pid_list):
            return True
        time.sleep(0.05)
    return False


# --- statistics ----------------------------------------------------------

class Sample:
    """Repeated measurements of one quantity."""

    def __init__(self, values=None):
        self.values = list(values or [])

    def add(self, v):
        self.values.append(v)

    def __bool__(self):
        return bool(self.values)

    @property
    def median(self):
        return statistics.median(self.values) if self.values else None

    @property
    def lo(self):
        return min(self.values) if self.values else None

    @property
    def hi(self):
        return max(self.values) if self.values else None


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a list of numbers."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def fmt_num(v, unit=""):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 100:
        s = "%.0f" % v
    elif a >= 10:
        s = "%.1f" % v
    elif a >= 1:
        s = "%.2f" % v
    else:
        s = "%.3g" % v
    return s + unit


def fmt_sample(s, unit="", scale=1.0):
    """'median (min–max)' of a Sample."""
    if not s:
        return "n/a"
    if len(s.values) == 1:
        return fmt_num(s.median * scale, unit)
    return "%s (%s–%s)" % (fmt_num(s.median * scale, unit),
        fmt_num(s.lo * scale), fmt_num(s.hi * scale))


def emit_rows(rows, out=""):
    """Prints the table rows; appends them to the file out too, if one
    is named (a results file being written)."""
    for r in rows:
        print(r)
    if out:
        with open(out, "a") as f:
            f.write("\n".join(rows) + "\n")


def fmt_bytes(v):
    if v is None:
        return "n/a"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= div:
            return "%.1f %s" % (v / div, unit)
    return "%d B" % v


# --- network -------------------------------------------------------------

def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=15.0, proc=None, banner=True):
    """Waits until something on host:port accepts and (if banner) sends
    its greeting line."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                if banner:
                    s.recv(512)
                return
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise RuntimeError("nothing answers on %s:%d (%s)" % (host, port, last))


def raise_nofile(want=65536):
    """Raises RLIMIT_NOFILE's soft limit as far as the hard limit allows
    (children inherit it); returns the new soft limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if new > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            return soft
        return new
    return soft


# --- concurrent client sessions -----------------------------------------

def run_together(jobs, names=None, join_timeout=600):
    """Runs each job in a thread of its own.  A job(sync) does what is not
    measured (connect, log in, warm up), calls sync(), then does the
    measured part and returns its result; sync() returns once every job
    has reached it, so the measured parts start together.

    Returns (results in job order, errors, wall seconds from the start of
    the measured parts until every thread ended).  A job that raises
    adds "name: error" to errors and releases the others' sync() (they
    fail too: a run with a broken session measures nothing)."""
    ready = threading.Barrier(len(jobs) + 1)
    go = threading.Event()
    results = [None] * len(jobs)
    errors = []

    def sync():
        ready.wait(timeout=120)
        go.wait(timeout=120)

    def worker(k, job):
        try:
            results[k] = job(sync)
        except Exception as e:  # reported by the caller
            errors.append("%s: %s" % (names[k], e) if names else str(e))
            try:
                ready.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=worker, args=(k, j), daemon=True)
               for k, j in enumerate(jobs)]
    for th in threads:
        th.start()
    try:
        ready.wait(timeout=120)
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    go.set()
    for th in threads:
        th.join(timeout=join_timeout)
    return results, errors, time.perf_counter() - t0


# --- child processes -----------------------------------------------------

def run(argv, timeout=120, check=True, **kw):
    """subprocess.run with a bound on time; output captured as text."""
    r = subprocess.run(argv, capture_output=True, text=True,
        timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv),
            r.returncode, (r.stderr or r.stdout).strip()[-2000:]))
    return r


def source_version(root, build=None):
    """What the report calls the version of postroom under test: git's
    short commit (plus a note when the daemons' sources differ from it)
    in a checkout, else the project version meson configured, since a
    release tarball has no .git and a minimal Debian 12 has no git."""
    if shutil.which("git") and os.path.exists(os.path.join(root, ".git")):
        r = run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                check=False)
        if r.returncode == 0 and r.stdout.strip():
            v = r.stdout.strip()
            r = run(["git", "-C", root, "status", "--porcelain", "--",
                     "common", "store", "smtpd", "pop3d", "tools"],
                    check=False)
            if r.returncode == 0 and r.stdout.strip():
                v += " with uncommitted changes"
            return v
    return "version %s (no git checkout)" % project_version(root, build)


def project_version(root, build=None):
    """meson's project version: from the build's introspection data when
    there is a build directory, else from meson.build itself."""
    if build:
        try:
            with open(os.path.join(build, "meson-info",
                                   "intro-projectinfo.json")) as f:
                return json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            pass
    try:
        with open(os.path.join(root, "meson.build")) as f:
            m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'",
                          f.read(), re.S)
        if m:
            return m.group(1)
    except OSError:
        pass
    return "unknown"


def fsync_cost(dirpath, n=200, size=4096):
    """Median seconds of one write(size)+fdatasync in dirpath: the bound
    of a server that commits each message with its own flush."""
    path = os.path.join(dirpath, ".fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        buf = b"x" * size
        deadline = time.monotonic() + 10
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
            if time.monotonic() > deadline:
                break
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(times)
