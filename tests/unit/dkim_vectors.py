#!/usr/bin/python3
"""Writes DKIM test vectors for test_dkim_verify.c, signed by an
independent signer, python3-dkim: RSA keys of 512, 1024 and 2048 bits
made by openssl(1) and an Ed25519 key, in every c= combination, with
l=, with several signatures, and messages changed after signing.

    dkim_vectors.py DIR

DIR/NAME.eml is a message; DIR/zone.txt has one DNS answer a line,
"NAME<TAB>RCODE<TAB>TXT" (RCODE NOERROR or SERVFAIL), for the table
resolver.  The expected results are test_dkim_verify.c's business."""

import base64
import os
import subprocess
import sys

import dkim
import nacl.encoding
import nacl.signing

MSG = (b"Received: from client by mx.a.test\r\n"
       b"From: Alice Example <alice@a.test>\r\n"
       b"To: Bob <bob@b.test>\r\n"
       b"Subject:   Lunch \t plans\r\n"
       b"  folded continuation \r\n"
       b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
       b"Message-ID: <1@a.test>\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\n"
       b"\r\n"
       b"Hi Bob,  \r\n"
       b"\r\n"
       b"  how about \t noon?\r\n"
       b".leading dot\r\n"
       b"caf\xc3\xa9\r\n"
       b"\r\n"
       b"\r\n")


def rsa_key(tmp, bits):
    """A PKCS#1 private key (what python3-dkim reads) and its p=."""
    pem = os.path.join(tmp, "rsa%d.pem" % bits)
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", pem,
                    str(bits)], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", pem, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    with open(pem, "rb") as f:
        return f.read(), base64.b64encode(der).decode()


def ed_key():
    """An Ed25519 key: the base64 seed python3-dkim signs with, and the
    raw public key of RFC 8463 4.2."""
    sk = nacl.signing.SigningKey.generate()
    return (sk.encode(encoder=nacl.encoding.Base64Encoder),
            base64.b64encode(sk.verify_key.encode()).decode())


def sign(msg, sel, dom, key, alg=b"rsa-sha256", canon=b"relaxed/relaxed",
         length=False, identity=None):
    h, b = canon.split(b"/")
    sig = dkim.sign(msg, sel.encode(), dom.encode(), key, identity=identity,
                    canonicalize=(h, b), signature_algorithm=alg,
                    length=length)
    return sig + msg


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    zone = []
    rsa2048, p2048 = rsa_key(out, 2048)
    rsa1024, p1024 = rsa_key(out, 1024)
    rsa512, p512 = rsa_key(out, 512)
    other, pother = rsa_key(out, 1024)
    ed, ped = ed_key()
    zone += [
        ("r2048._domainkey.a.test", "NOERROR", "v=DKIM1; k=rsa; p=" + p2048),
        ("r1024._domainkey.a.test", "NOERROR", "v=DKIM1; p=" + p1024),
        ("r512._domainkey.a.test", "NOERROR", "v=DKIM1; k=rsa; p=" + p512),
        ("ed._domainkey.b.test", "NOERROR", "v=DKIM1; k=ed25519; p=" + ped),
        # The selector says r1024, the record holds another key.
        ("wrong._domainkey.a.test", "NOERROR", "v=DKIM1; p=" + pother),
        ("revoked._domainkey.a.test", "NOERROR", "v=DKIM1; k=rsa; p="),
        # An RSA key where the signature says ed25519-sha256.
        ("edasrsa._domainkey.b.test", "NOERROR",
         "v=DKIM1; k=rsa; p=" + p2048),
        ("down._domainkey.a.test", "SERVFAIL", ""),
        ("testing._domainkey.a.test", "NOERROR",
         "v=DKIM1; t=y; p=" + p2048),
        ("strict._domainkey.a.test", "NOERROR",
         "v=DKIM1; t=s; p=" + p2048),
    ]
    v = {}
    for c in [b"relaxed/relaxed", b"relaxed/simple", b"simple/relaxed",
              b"simple/simple"]:
        tag = c.decode().replace("relaxed", "r").replace("simple", "s")
        tag = tag.replace("/", "")
        v["rsa2048-" + tag] = sign(MSG, "r2048", "a.test", rsa2048,
                                   canon=c)
        v["ed25519-" + tag] = sign(MSG, "ed", "b.test", ed,
                                   alg=b"ed25519-sha256", canon=c)
    v["rsa1024-rr"] = sign(MSG, "r1024", "a.test", rsa1024)
    # l=: content added after signing is outside the signature (RFC 6376
    # 8.2); a body cut shorter than l= fails.
    lmsg = sign(MSG, "r2048", "a.test", rsa2048, length=True)
    v["l-appended"] = lmsg + b"unsigned trailer\r\n"
    v["l-cut"] = lmsg[:-20] + b"\r\n"
    v["l-simple-appended"] = sign(MSG, "r2048", "a.test", rsa2048,
                                  canon=b"simple/simple",
                                  length=True) + b"more\r\n"
    # Two signatures, the newest on top.
    two = sign(MSG, "r2048", "a.test", rsa2048)
    v["two"] = sign(two, "ed", "b.test", ed, alg=b"ed25519-sha256")
    v["two-one-bad"] = sign(two, "wrong", "a.test", rsa1024)
    # Changed after signing.
    good = sign(MSG, "r2048", "a.test", rsa2048)
    v["tampered-body"] = good.replace(b"noon", b"nine")
    v["tampered-header"] = good.replace(b"Lunch", b"lunch")
    v["tampered-relaxed-ws"] = good.replace(b"Hi Bob,  ", b"Hi Bob, \t ")
    simple = sign(MSG, "r2048", "a.test", rsa2048, canon=b"simple/simple")
    v["tampered-simple-ws"] = simple.replace(b"Hi Bob,  ", b"Hi Bob, \t")
    v["added-from"] = b"From: mallory@evil.test\r\n" + good
    # RFC 8301: rsa-sha1 and keys under 1024 bits do not pass.
    v["rsa-sha1"] = sign(MSG, "r2048", "a.test", rsa2048, alg=b"rsa-sha1")
    v["rsa512"] = sign(MSG, "r512", "a.test", rsa512)
    # Key records.
    v["revoked"] = sign(MSG, "revoked", "a.test", rsa2048)
    v["nokey"] = sign(MSG, "missing", "a.test", rsa2048)
    v["keydown"] = sign(MSG, "down", "a.test", rsa2048)
    v["keytype"] = sign(MSG, "edasrsa", "b.test", ed, alg=b"ed25519-sha256")
    v["testing"] = sign(MSG, "testing", "a.test", rsa2048)
    v["strict-sub"] = sign(MSG, "strict", "a.test", rsa2048,
                           identity=b"alice@sub.a.test")
    v["identity"] = sign(MSG, "r2048", "a.test", rsa2048,
                         identity=b"alice@sub.a.test")
    # Network normal form: the same message with LF line ends.
    v["lf-lines"] = good.replace(b"\r\n", b"\n")
    # Six signatures: five are verified, the sixth is past the bound.
    six = MSG
    for _ in range(6):
        six = sign(six, "r2048", "a.test", rsa2048)
    v["six"] = six
    for name, data in v.items():
        with open(os.path.join(out, name + ".eml"), "wb") as f:
            f.write(data)
    with open(os.path.join(out, "zone.txt"), "w") as f:
        for z in zone:
            f.write("\t".join(z) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
