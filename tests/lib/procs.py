"""Stopping the processes a test or a benchmark started, by PID only.

    stop_popen(proc)        a child we hold a Popen for
    stop_pid(pid)           a process we started some other way (a
                            daemon's master that forked itself away)
    read_pidfile(path)      the PID a daemon we started wrote

and looking at their memory: status_kib(pid, "VmRSS:"), sanitized(pid);
remove_tmp(path) removes what they left in a temporary directory.
"""

import os
import shutil
import signal
import subprocess
import time


def stop_popen(proc, timeout=10.0, sig=signal.SIGTERM):
    """sig to a child, SIGKILL if it has not exited after timeout;
    reaps it either way.  Returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _gone(pid):
    """True once pid has exited: reaped if it is our child, else absent
    from /proc or a zombie of some other parent."""
    try:
        r, _ = os.waitpid(pid, os.WNOHANG)
        return r == pid
    except ChildProcessError:
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return True


def stop_pid(pid, timeout=15.0):
    """SIGTERM to one process we started, then SIGKILL after timeout."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_pidfile(path, timeout=10.0):
    """The PID in path once it names a live process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                v = int(f.read().split()[0])
            if os.path.exists("/proc/%d" % v):
                return v
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.05)
    raise RuntimeError("no pid in %s" % path)


def status_kib(pid, field):
    """A KiB field of /proc/PID/status ("VmRSS:", "RssAnon:"); 0 when
    absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def sanitized(pid):
    """True when the process runs with AddressSanitizer, whose
    quarantine keeps freed memory resident: memory bounds cannot be
    measured there (the optimised build's run measures them)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def remove_tmp(path):
    """Removes a test's temporary directory, or keeps it (and says so)
    when POSTROOM_KEEP_TMP is set, for a look after a failure."""
    if os.environ.get("POSTROOM_KEEP_TMP"):
        print("kept", path)
    else:
        shutil.rmtree(path, ignore_errors=True)
