#!/usr/bin/python3
"""The TLS policy of every TLS port: TLS 1.2 or newer, and for TLS 1.2 only
ECDHE with AEAD suites ([tls] ciphers' default).

testssl.sh (Debian's package) scans port 465 in full (protocols, cipher
categories, forward secrecy, known vulnerabilities) and must flag nothing
above INFO.  The same TLS layer serves 995 and STARTTLS on 587 and 110;
there `openssl s_client` probes the suites a weak policy would let in
(static RSA, CBC with SHA-1, DHE, TLS 1.1) and the good ones."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from smtp_util import Check, instance

TESTSSL = shutil.which("testssl") or "/usr/bin/testssl"

WEAK = [
    ("TLS 1.1", ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
    ("static RSA AES128-SHA", ["-tls1_2", "-cipher", "AES128-SHA"]),
    ("static RSA AES256-GCM", ["-tls1_2", "-cipher", "AES256-GCM-SHA384"]),
    ("ECDHE with CBC-SHA1", ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"]),
    ("DHE", ["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"]),
]
GOOD = [
    ("TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256",
     ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]),
    ("TLS 1.2 ECDHE-RSA-CHACHA20-POLY1305",
     ["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"]),
    ("TLS 1.3", ["-tls1_3"]),
]


def handshake(host, port, starttls, args):
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (host, port),
           "-brief"] + args
    if starttls:
        cmd += ["-starttls", starttls]
    r = subprocess.run(cmd, input=b"", capture_output=True, timeout=30)
    return b"CONNECTION ESTABLISHED" in r.stderr + r.stdout


def main():
    t = Check()
    inst = instance()
    tmp = tempfile.mkdtemp(prefix="postroom-testssl-")
    try:
        inst.start("smtpd")
        inst.start("pop3d")
        h = inst.host
        ports = [("465", inst.ports["submissions"], None),
                 ("995", inst.ports["pop3s"], None),
                 ("587 STARTTLS", inst.ports["submission"], "smtp"),
                 ("110 STLS", inst.ports["pop3"], "pop3")]
        for name, port, st in ports:
            for what, args in WEAK:
                t.ok(not handshake(h, port, st, args),
                     "%s refuses %s" % (name, what))
            for what, args in GOOD:
                t.ok(handshake(h, port, st, args),
                     "%s accepts %s" % (name, what))

        out = os.path.join(tmp, "465.json")
        r = subprocess.run([TESTSSL, "--quiet", "--color", "0",
                            "--warnings", "off", "--jsonfile", out,
                            "-p", "-s", "-f", "-U",
                            "%s:%d" % (h, inst.ports["submissions"])],
                           capture_output=True, text=True, timeout=600,
                           cwd=tmp)
        t.ok(os.path.exists(out), "testssl.sh ran against 465", r.stdout)
        findings = json.load(open(out)) if os.path.exists(out) else []
        # engine_problem is about the scanning machine's openssl (no
        # GOST engine on a minimal system), not about the server.
        bad = [f for f in findings
               if f.get("severity") not in ("OK", "INFO", "DEBUG") and
               f.get("id") != "engine_problem"]
        t.eq(bad, [], "testssl.sh: nothing above INFO on 465")
        t.ok(any(f.get("id") == "TLS1_3" for f in findings),
             "testssl.sh saw the protocols")
    finally:
        inst.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
