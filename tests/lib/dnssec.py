"""dnssec.py - DNSSEC-signed test zones behind a validating resolver, on
loopback, with Debian's own tools.

- the zones are signed with ldnsutils (ldns-keygen, ldns-signzone: a KSK
  and a ZSK per zone, ECDSA P-256, RFC 6605);
- Debian's nsd serves them authoritatively on 127.0.0.1;
- Debian's unbound validates, on another loopback port, with the signed
  zones' DS records as its only trust anchors (trust-anchor-file) and a
  `stub-zone:` clause (unbound.conf(5)) per test zone naming nsd; every other name is refused,
  so nothing is ever asked outside the machine.

Answers for a signed zone come with the AD bit (RFC 4035 3.2.3); an
unsigned zone's are insecure (no trust anchor covers them), and a
record whose signature was spoilt (bogus=[...]) is SERVFAIL (RFC 4035
5.5).

    zones = {
        "dnssec.test": (True, ["good MX 10 mx-good",
                               "mx-good A 127.0.0.3",
                               "_25._tcp.mx-good TLSA 3 1 1 ab12..."]),
        "plain.test": (False, ["@ MX 10 mx", "mx A 127.0.0.3"]),
    }
    with SignedDns(zones, bogus=["_25._tcp.mx-bad.dnssec.test"]) as dns:
        cfg = "[dns]\\nresolver = %s\\n" % dns.resolver

Record lines are zone-file lines relative to their zone (RFC 1035 5.1).
SignedDns.query() asks unbound with dig and tells whether the answer had
AD, for a test to check that the fixture validates at all.
"""

import os
import re
import socket
import subprocess
import tempfile
import time

import procs
from tap import skip

NSD = "/usr/sbin/nsd"
UNBOUND = "/usr/sbin/unbound"
KEYGEN = "/usr/bin/ldns-keygen"
SIGNZONE = "/usr/bin/ldns-signzone"
DIG = "/usr/bin/dig"


def _free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free UDP+TCP port")


def _wait_tcp(port, proc, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), 0.3):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("%s does not answer on %d" % (what, port))
            time.sleep(0.05)


def spoil_rrsig(signed_text, owner):
    """The signed zone text with every signature of owner's RRsets
    changed in one character, so that none verifies."""
    out, done = [], False
    pat = re.compile(r"^(%s\.?)\s+\d+\s+IN\s+RRSIG\s" % re.escape(owner),
                     re.I)
    for line in signed_text.splitlines():
        if pat.match(line):
            head, sig = line.rsplit(None, 1)
            # Flip a character in the middle of the base64 signature.
            i = len(sig) // 2
            c = "A" if sig[i] != "A" else "B"
            line = "%s %s" % (head, sig[:i] + c + sig[i + 1:])
            done = True
        out.append(line)
    if not done:
        raise RuntimeError("no RRSIG for %s" % owner)
    return "\n".join(out) + "\n"


def generic_short_tlsa(signed_text):
    """ldns-signzone writes a TLSA record without association data (3
    octets of RDATA, which a test may want to serve) as "TLSA 3 1 1",
    which nsd cannot read; it goes back into the RFC 3597 5 form."""
    out = []
    pat = re.compile(r"^(\S+\s+\d+\s+IN\s+)TLSA\s+(\d+)\s+(\d+)\s+(\d+)\s*$")
    for line in signed_text.splitlines():
        m = pat.match(line)
        if m:
            line = "%sTYPE52 \\# 3 %02x%02x%02x" % (
                m.group(1), int(m.group(2)), int(m.group(3)),
                int(m.group(4)))
        out.append(line)
    return "\n".join(out) + "\n"


class SignedDns:
    """nsd with the zones, unbound validating in front of it."""

    def __init__(self, zones, bogus=()):
        for tool in (NSD, UNBOUND, KEYGEN, SIGNZONE, DIG):
            if not os.path.exists(tool):
                skip("%s is not installed (tests/install-deps.sh)" % tool)
        self.tmp = tempfile.mkdtemp(prefix="postroom-dnssec-")
        self.nsd = self.unbound = None
        self._logs = []
        try:
            self._start(zones, bogus)
        except BaseException:
            self.close()
            raise

    def _run(self, *args):
        return subprocess.run(list(args), cwd=self.tmp, check=True,
                              capture_output=True, text=True, timeout=60)

    def _sign(self, zone, lines, bogus):
        path = self._plain(zone, lines)
        ksk = self._run(KEYGEN, "-a", "ECDSAP256SHA256", "-k",
                        zone).stdout.strip()
        zsk = self._run(KEYGEN, "-a", "ECDSAP256SHA256", zone).stdout.strip()
        self._run(SIGNZONE, "-f", path + ".signed", path, zsk, ksk)
        with open(path + ".signed") as f:
            text = f.read()
        text = generic_short_tlsa(text)
        for name in bogus:
            if name.lower().endswith("." + zone):
                text = spoil_rrsig(text, name)
        with open(path + ".signed", "w") as f:
            f.write(text)
        with open(os.path.join(self.tmp, ksk + ".ds")) as f:
            return path + ".signed", f.read()

    def _plain(self, zone, lines):
        """The zone file (RFC 1035 5): SOA, NS, then lines."""
        path = os.path.join(self.tmp, zone + ".zone")
        with open(path, "w") as f:
            f.write("$ORIGIN %s.\n$TTL 300\n" % zone)
            f.write("@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n"
                    % (zone, zone))
            f.write("@ NS ns.%s.\nns A 127.0.0.1\n" % zone)
            for line in lines:
                f.write(line + "\n")
        return path

    def _start(self, zones, bogus):
        self.nsd_port = _free_port()
        self.port = _free_port()
        anchors = []
        nsd_conf = [
            "server:",
            "  ip-address: 127.0.0.1@%d" % self.nsd_port,
            "  do-ip6: no",
            "  server-count: 1",
            "  username: \"\"",
            "  chroot: \"\"",
            "  zonesdir: \"%s\"" % self.tmp,
            "  database: \"\"",
            "  zonelistfile: \"%s/zone.list\"" % self.tmp,
            "  xfrdfile: \"%s/xfrd.state\"" % self.tmp,
            "  xfrdir: \"%s\"" % self.tmp,
            "  pidfile: \"%s/nsd.pid\"" % self.tmp,
            "  logfile: \"%s/nsd.log\"" % self.tmp,
            "  verbosity: 1",
            "remote-control:",
            "  control-enable: no",
        ]
        ub_conf = [
            "server:",
            "  interface: 127.0.0.1@%d" % self.port,
            "  port: %d" % self.port,
            "  do-ip6: no",
            "  do-daemonize: no",
            "  chroot: \"\"",
            "  username: \"\"",
            "  directory: \"%s\"" % self.tmp,
            "  pidfile: \"%s/unbound.pid\"" % self.tmp,
            "  logfile: \"%s/unbound.log\"" % self.tmp,
            "  use-syslog: no",
            "  verbosity: 1",
            "  val-log-level: 2",
            "  num-threads: 1",
            "  so-reuseport: no",
            "  access-control: 127.0.0.0/8 allow",
            # nsd listens on loopback, which unbound skips by default.
            "  do-not-query-localhost: no",
            "  qname-minimisation: no",
            "  module-config: \"validator iterator\"",
            # Nothing but the test zones: no root, no outside query.
            "  local-zone: \".\" refuse",
        ]
        for zone, (signed, lines) in zones.items():
            if signed:
                path, ds = self._sign(zone, lines, bogus)
                anchors.append(ds)
            else:
                path = self._plain(zone, lines)
            nsd_conf += ["zone:", "  name: %s" % zone,
                         "  zonefile: \"%s\"" % path]
            ub_conf += ["  local-zone: \"%s.\" transparent" % zone,
                        "  domain-insecure: \"%s\"" % zone
                        if not signed else ""]
        anchor_file = os.path.join(self.tmp, "anchors.ds")
        with open(anchor_file, "w") as f:
            f.write("".join(anchors))
        ub_conf.append("  trust-anchor-file: \"%s\"" % anchor_file)
        ub_conf += ["remote-control:", "  control-enable: no"]
        for zone in zones:
            ub_conf += ["stub-zone:", "  name: \"%s\"" % zone,
                        "  stub-addr: 127.0.0.1@%d" % self.nsd_port]
        nsd_path = os.path.join(self.tmp, "nsd.conf")
        ub_path = os.path.join(self.tmp, "unbound.conf")
        with open(nsd_path, "w") as f:
            f.write("\n".join(nsd_conf) + "\n")
        with open(ub_path, "w") as f:
            f.write("\n".join(l for l in ub_conf if l) + "\n")
        self.nsd = self._spawn("nsd", [NSD, "-d", "-c", nsd_path])
        _wait_tcp(self.nsd_port, self.nsd, "nsd")
        self.unbound = self._spawn("unbound", [UNBOUND, "-d", "-c", ub_path])
        _wait_tcp(self.port, self.unbound, "unbound")

    def _spawn(self, name, args):
        log = open(os.path.join(self.tmp, name + ".out"), "wb")
        self._logs.append(log)
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    @property
    def resolver(self):
        """For [dns] resolver: unbound, the validating resolver."""
        return "127.0.0.1:%d" % self.port

    def query(self, name, rtype):
        """(rcode, AD bit set, answer lines) of unbound's answer."""
        r = subprocess.run([DIG, "+adflag", "+tries=1", "+time=10",
                            "-p", str(self.port), "@127.0.0.1", name, rtype],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"status: (\w+)", r.stdout)
        flags = re.search(r";; flags: ([a-z ]*);", r.stdout)
        ans = [l for l in r.stdout.splitlines()
               if l and not l.startswith(";") and "\t%s\t" % rtype in l]
        return (m.group(1) if m else "NOANSWER",
                bool(flags and " ad" in " " + flags.group(1)), ans)

    def log(self):
        out = []
        for name in ("nsd.log", "unbound.log", "nsd.out", "unbound.out"):
            p = os.path.join(self.tmp, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append("--- %s\n%s" % (
                        name, f.read().decode("utf-8", "replace")))
        return "\n".join(out)

    def close(self):
        for p in (self.unbound, self.nsd):
            if p is not None:
                procs.stop_popen(p, 10)
        self.unbound = self.nsd = None
        for log in self._logs:
            log.close()
        self._logs = []
        procs.remove_tmp(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
