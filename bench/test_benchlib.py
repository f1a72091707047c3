#!/usr/bin/python3
"""The version line of the benchmark report without git: a release
tarball has no .git and a minimal Debian 12 has no git, and the smoke
test must still describe what it measured (meson's project version)."""

import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC_ROOT, "tests", "lib"))

import benchlib  # noqa: E402
from tap import Check  # noqa: E402


def main():
    t = Check()
    build = os.environ.get("POSTROOM_BUILD_DIR")
    with open(os.path.join(SRC_ROOT, "meson.build")) as f:
        want = re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)
    t.eq(benchlib.project_version(SRC_ROOT), want,
         "project version read from meson.build")
    if build:
        t.eq(benchlib.project_version(SRC_ROOT, build), want,
             "project version read from the build's introspection")
    tmp = tempfile.mkdtemp(prefix="postroom-bench-version-")
    path = os.environ.get("PATH", "")
    try:
        # No git on PATH at all: the call that used to raise
        # FileNotFoundError.
        os.environ["PATH"] = tmp
        try:
            v = benchlib.source_version(SRC_ROOT, build)
            t.eq(v, "version %s (no git checkout)" % want,
                 "no git on PATH: meson's version")
        except OSError as e:
            t.ok(False, "no git on PATH: meson's version", repr(e))
        os.environ["PATH"] = path
        # A tarball: git installed, but no .git.
        shutil.copy(os.path.join(SRC_ROOT, "meson.build"), tmp)
        t.eq(benchlib.source_version(tmp),
             "version %s (no git checkout)" % want,
             "no .git: meson's version")
        t.eq(benchlib.project_version(tmp, os.path.join(tmp, "nobuild")),
             want, "no build directory: meson.build")
    finally:
        os.environ["PATH"] = path
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
