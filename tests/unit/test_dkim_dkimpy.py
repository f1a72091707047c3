#!/usr/bin/python3
"""Signatures made by mailauth's signer (through dkim_sign_tool), checked
by an independent verifier, python3-dkim: RSA and Ed25519 keys made by
openssl(1), every c= combination, messages fed whole and in small
chunks, and a changed message that must fail."""

import base64
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("POSTROOM_SOURCE_DIR", "."),
                                "tests", "lib"))
from tap import Check  # noqa: E402

MESSAGES = {
    "plain": (b"From: Alice Example <alice@a.test>\r\n"
              b"To: Bob <bob@b.test>\r\n"
              b"Subject:   Lunch \t plans\r\n"
              b"  folded continuation \r\n"
              b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
              b"Message-ID: <1@a.test>\r\n"
              b"\r\n"
              b"Hi Bob,  \r\n\r\n  how about \t noon?\r\n"
              b"caf\xc3\xa9\r\n\r\n\r\n"),
    # RFC 6376 3.4.5's example, with a From: field to sign and without
    # the WSP before "B"'s colon (obsolete syntax, RFC 5322 4.5.8, that
    # python3-dkim refuses to parse; test_dkim_canon.c covers it).
    "rfc6376-3.4.5": (b"From: a@a.test\r\nA: X\r\nB: Y\t\r\n\tZ  \r\n"
                      b"\r\n C \r\nD \t E\r\n\r\n\r\n"),
    "empty body": b"From: a@a.test\r\nSubject: x\r\n\r\n",
    "no empty line": b"From: a@a.test\r\nSubject: x\r\n",
    "no final CRLF": b"From: a@a.test\r\n\r\nlast line",
    "repeated fields": (b"From: a@a.test\r\nTo: b@b.test\r\n"
                        b"To: c@c.test\r\n\r\n \t \r\nx \r\n"),
}

CANONS = ["relaxed/relaxed", "relaxed/simple", "simple/relaxed",
          "simple/simple"]


def keypair(tmp, alg):
    """A private key file and its TXT record, made by openssl(1)."""
    key = os.path.join(tmp, alg + ".pem")
    if alg == "rsa":
        gen = ["openssl", "genpkey", "-algorithm", "RSA",
               "-pkeyopt", "rsa_keygen_bits:2048", "-out", key]
    else:
        gen = ["openssl", "genpkey", "-algorithm", "ED25519", "-out", key]
    subprocess.run(gen, check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    if alg == "ed25519":
        # RFC 8463 4.2: the raw key, the last 32 octets of the SPKI.
        der = der[-32:]
    p = base64.b64encode(der).decode()
    return key, "v=DKIM1; k=%s; p=%s" % (alg, p)


def verify(data, txt):
    import dkim
    import logging

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        if name.rstrip(".") == "sel._domainkey.a.test":
            return txt.encode()
        return None

    log = logging.getLogger("dkimpy")
    log.setLevel(logging.CRITICAL)
    try:
        return bool(dkim.verify(data, logger=log, dnsfunc=dnsfunc)), ""
    except Exception as e:  # dkim raises on malformed input
        return False, "%s: %s" % (type(e).__name__, e)


def main():
    tool = sys.argv[1]
    t = Check()
    with tempfile.TemporaryDirectory(prefix="postroom-dkimpy-") as tmp:
        for alg in ["rsa", "ed25519"]:
            key, txt = keypair(tmp, alg)
            for canon in CANONS:
                bad = []
                for name, msg in MESSAGES.items():
                    for chunk in [len(msg), 7]:
                        r = subprocess.run([tool, key, "A.Test", "sel",
                                            canon, str(chunk)], input=msg,
                                           capture_output=True)
                        if r.returncode != 0:
                            bad.append("%s/%d: %s" % (name, chunk,
                                                      r.stderr.decode()))
                            continue
                        ok, why = verify(r.stdout, txt)
                        if not ok:
                            bad.append("%s/%d: %s\n%s" % (
                                name, chunk, why,
                                r.stdout.decode("utf-8", "replace")))
                t.ok(not bad, "%s %s: python3-dkim verifies every "
                     "message" % (alg, canon), "\n".join(bad))
                # Tampered after signing: must not verify.
                r = subprocess.run([tool, key, "a.test", "sel", canon,
                                    "5"], input=MESSAGES["plain"],
                                   capture_output=True, check=True)
                body = r.stdout.replace(b"noon", b"nine")
                head = r.stdout.replace(b"Lunch", b"lunch")
                t.ok(not verify(body, txt)[0],
                     "%s %s: changed body fails" % (alg, canon))
                t.ok(not verify(head, txt)[0],
                     "%s %s: changed Subject fails" % (alg, canon))
                if canon.endswith("/simple"):
                    ws = r.stdout.replace(b"Hi Bob,  ", b"Hi Bob, \t")
                    t.ok(not verify(ws, txt)[0],
                         "%s %s: simple body: whitespace counts" %
                         (alg, canon))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
