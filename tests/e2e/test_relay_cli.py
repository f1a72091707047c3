#!/usr/bin/python3
"""The relay's CLI commands without daemons: `postroom dkim keygen`,
`postroom dns` and `postroom queue`, their output, files and exit codes
(0 success, 1 user error with one line on stderr, 2 usage)."""

import base64
import os
import stat
import subprocess
import sys

from relay_util import Check, Instance, zone_txt


def main():
    t = Check()
    inst = Instance(hostname="mx.a.test")
    try:
        inst.add_domain("a.test")
        cli = lambda *a: inst.cli(*a, check=False)  # noqa: E731

        # dkim keygen
        r = cli("dkim", "keygen", "other.test")
        t.ok(r.returncode == 1 and "not hosted" in r.stderr,
             "keygen for a domain not hosted: exit 1", r.stderr)
        t.eq(len(r.stderr.strip().splitlines()), 1, "one line on stderr")
        t.eq(cli("dkim", "keygen").returncode, 2, "keygen without domain: 2")
        t.eq(cli("dkim").returncode, 2, "dkim without verb: 2")
        t.eq(cli("dkim", "keygen", "a.test", "--bogus").returncode, 2,
             "unknown option: 2")
        r = cli("dkim", "keygen", "a.test", "--selector", "../x")
        t.eq(r.returncode, 1, "selector with a slash refused")
        r = cli("dns", "a.test")
        t.ok(r.returncode == 0 and "postroom dkim keygen a.test" in
             r.stdout, "dns without a key says how to make one", r.stdout)

        r = cli("dkim", "keygen", "A.Test")
        t.eq(r.returncode, 0, "keygen for a hosted domain")
        recs = zone_txt(r.stdout)
        txt = recs.get("postroom._domainkey.a.test", "")
        t.ok(txt.startswith("v=DKIM1; k=rsa; p="),
             "TXT record under the default selector", r.stdout)
        key = os.path.join(inst.data_dir, "dkim", "a.test", "postroom.key")
        st = os.stat(key) if os.path.exists(key) else None
        t.ok(st is not None and stat.S_IMODE(st.st_mode) == 0o600,
             "key file 0600 under data_dir/dkim/a.test/")
        # The published key is the private key's public half (openssl).
        der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout",
                              "-outform", "DER"], capture_output=True)
        t.eq(base64.b64encode(der.stdout).decode(),
             txt[len("v=DKIM1; k=rsa; p="):],
             "p= is the key's SubjectPublicKeyInfo (openssl agrees)")
        bits = subprocess.run(["openssl", "pkey", "-in", key, "-noout",
                               "-text"], capture_output=True, text=True)
        t.ok("2048 bit" in bits.stdout, "RSA 2048", bits.stdout[:80])
        t.ok(all(len(s) <= 255 for s in
                 r.stdout.split('"')[1::2]),
             "TXT strings of at most 255 octets")
        r = cli("dkim", "keygen", "a.test")
        t.ok(r.returncode == 1 and "exists" in r.stderr,
             "same selector again: exit 1", r.stderr)
        r = cli("dkim", "list")
        t.ok(r.stdout.split()[:4] == ["a.test", "postroom", "rsa-sha256",
                                      "pending"],
             "dkim list: a new key is pending", r.stdout)
        r = cli("dkim", "activate", "a.test", "postroom", "--force")
        t.ok(r.returncode == 0 and "active" in r.stdout,
             "activate --force: no DNS check", r.stderr)
        t.ok("postroom rsa-sha256 active" in cli("dkim", "list",
                                                  "a.test").stdout,
             "dkim list: active")
        r = cli("dkim", "activate", "a.test", "nokey", "--force")
        t.ok(r.returncode == 1 and "nokey" in r.stderr,
             "activate an unknown selector: exit 1", r.stderr)
        t.eq(cli("dkim", "activate", "a.test").returncode, 2,
             "activate without selector: 2")
        t.eq(cli("dkim", "retire", "a.test", "postroom",
                 "--force").returncode, 2, "retire takes no --force: 2")
        t.eq(cli("dkim", "bogus").returncode, 2, "unknown dkim verb: 2")
        r = cli("dkim", "list", "nothere.test")
        t.ok(r.returncode == 1 and "not hosted" in r.stderr,
             "list for a domain not hosted: exit 1", r.stderr)

        r = cli("dkim", "keygen", "a.test", "--ed25519", "--selector",
                "ed2024")
        t.eq(r.returncode, 0, "Ed25519 key under a new selector")
        ed = zone_txt(r.stdout).get("ed2024._domainkey.a.test", "")
        t.ok(ed.startswith("v=DKIM1; k=ed25519; p="), "Ed25519 TXT", ed)
        raw = base64.b64decode(ed.split("p=", 1)[1]) if "p=" in ed else b""
        t.eq(len(raw), 32, "RFC 8463: the raw 32-octet public key")

        # dns: every record, every DKIM key that is not retired (the
        # active RSA key and the pending Ed25519 key).
        r = cli("dns", "a.test")
        t.eq(r.returncode, 0, "dns for a hosted domain")
        out = r.stdout
        t.ok("a.test. IN MX 10 mx.a.test." in out, "MX names the hostname",
             out)
        t.ok('a.test. IN TXT "v=spf1 mx -all"' in out, "SPF")
        t.eq(zone_txt(out).get("ed2024._domainkey.a.test"), ed,
             "DKIM: the pending key, to publish before it signs")
        t.eq(zone_txt(out).get("postroom._domainkey.a.test"), txt,
             "DKIM: the active RSA key stays (RFC 8463 dual signing)")
        r = cli("dkim", "retire", "a.test", "postroom")
        t.ok(r.returncode == 0 and "no active key left" in r.stdout,
             "retire the only active key says mail goes unsigned",
             r.stdout)
        out = cli("dns", "a.test").stdout
        t.ok("postroom._domainkey" not in out,
             "the retired key is not shown", out)
        t.eq(zone_txt(out).get("ed2024._domainkey.a.test"), ed,
             "the pending key still is")
        t.ok("postroom rsa-sha256 retired" in cli("dkim", "list").stdout,
             "dkim list: retired")
        t.ok('_dmarc.a.test. IN TXT "v=DMARC1; p=quarantine"' in out,
             "DMARC")
        r = cli("dns", "nothere.test")
        t.ok(r.returncode == 1 and "not hosted" in r.stderr,
             "dns for a domain not hosted: exit 1", r.stderr)
        t.eq(cli("dns").returncode, 2, "dns without domain: 2")
        t.eq(cli("dns", "bad..name").returncode, 1, "invalid domain: 1")

        # queue
        r = cli("queue", "list")
        t.ok(r.returncode == 0 and "queue is empty" in r.stdout,
             "empty queue says so", r.stdout)
        t.eq(cli("queue", "flush").returncode, 0, "flush of an empty queue")
        r = cli("queue", "del", "42")
        t.ok(r.returncode == 1 and "42" in r.stderr,
             "del of an unknown id: exit 1", r.stderr)
        t.eq(cli("queue").returncode, 2, "queue without verb: 2")
        t.eq(cli("queue", "bogus").returncode, 2, "unknown verb: 2")
        t.eq(cli("queue", "del").returncode, 2, "del without id: 2")
    finally:
        inst.close()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
