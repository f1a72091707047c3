#!/usr/bin/env python3
"""dnsserver.py - an authoritative DNS server for tests, on loopback.

Serves a zone given as data on 127.0.0.1 (UDP and TCP, one port), so
tests can point ``[dns] resolver`` at it.  It answers like a recursive
resolver would: CNAMEs in the zone are followed within the answer.

Zone format (the "zonedata" of the openspf test suite, which is plain
JSON/YAML): a dict from owner name to a list of entries, each either a
one-key dict ``{TYPE: VALUE}`` or a bare word::

    zone = {
        "example.com": [
            {"A": "192.0.2.1"},
            {"AAAA": "2001:db8::1"},
            {"MX": [10, "mx.example.com"]},      # [pref, host]; "" = "."
            {"TXT": "v=spf1 -all"},              # one character-string
            {"TXT": ["v=spf1 ", "-all"]},        # several (RFC 1035 3.3.14)
            {"SPF": "v=spf1 -all"},              # type 99 (RFC 4408)
            {"PTR": "host.example.com"},
            {"CNAME": "other.example.com"},
            {"RAW": [65280, "c0ffee"]},          # any type, rdata as hex
            {"TXT": "NONE"},                     # no record (openspf)
            "TIMEOUT",      # no answer at all, unless a record of the
                            # type asked for came earlier in the list
            "SERVFAIL",     # RCODE 2, with the same rule
            "REFUSED",      # RCODE 5, with the same rule
        ],
    }

A name without entries is NXDOMAIN; a name with entries of other types
only is an empty NOERROR answer (NODATA).  Names compare without regard
to case (RFC 4343).  Strings are sent as Latin-1 when they fit (so the
"\\xEF" escapes of the openspf suite become those octets), else UTF-8.

From Python (what tests do)::

    from dnsserver import DNSServer
    with DNSServer(zone) as dns:           # starts a child process
        cfg = "[dns]\\nresolver = 127.0.0.1:%d\\n" % dns.port
        ...
    # or: dns = DNSServer(zone); dns.start(); ...; dns.stop()

``stop()`` ends the process by its PID.  ``openspf_zone(zonedata)``
turns the suite's zonedata into this format, copying SPF records to TXT
as the suite asks of its drivers.

From the shell::

    dnsserver.py --zone zone.json [--port N] [--port-file F] [--log F]

prints ``PORT N`` on stdout once it serves; ``--log`` appends one line
``NAME TYPE`` per query.
"""

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import procs  # noqa: E402


# ---------------------------------------------------------------------
# Zone helpers (no dnslib needed)

def openspf_zone(zonedata):
    """The openspf suite's zonedata with SPF records also served as TXT
    at names that list no TXT entry (the suite's convention)."""
    out = {}
    for name, entries in (zonedata or {}).items():
        entries = list(entries or [])
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        extra = []
        if not has_txt:
            extra = [{"TXT": e["SPF"]} for e in entries
                     if isinstance(e, dict) and "SPF" in e]
        out[str(name)] = entries + extra
    return out


class DNSServer:
    """A dnsserver.py child process serving zone on a loopback port."""

    def __init__(self, zone, port=0, log=None):
        self.zone = zone
        self.port = port
        self.log = log
        self.proc = None
        self._dir = None

    def start(self, timeout=10):
        self._dir = tempfile.mkdtemp(prefix="dnsserver-")
        zpath = os.path.join(self._dir, "zone.json")
        ppath = os.path.join(self._dir, "port")
        with open(zpath, "w") as f:
            json.dump(self.zone, f)
        args = [sys.executable, os.path.join(HERE, "dnsserver.py"),
                "--zone", zpath, "--port", str(self.port),
                "--port-file", ppath]
        if self.log:
            args += ["--log", self.log]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(ppath):
                with open(ppath) as f:
                    data = f.read().strip()
                if data:
                    self.port = int(data)
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError("dnsserver.py exited with %d"
                                   % self.proc.returncode)
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("dnsserver.py did not start")

    def stop(self):
        if self.proc is not None:
            procs.stop_popen(self.proc, 5)
        self.proc = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------
# The server

def _octets(s):
    if isinstance(s, bytes):
        return s
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def _key(labels):
    return tuple(bytes(l).lower() for l in labels)


def _name_labels(name):
    name = _octets(name)
    if name.endswith(b"."):
        name = name[:-1]
    return tuple(name.split(b".")) if name else ()


class Zone:
    def __init__(self, data):
        self.names = {}
        for name, entries in data.items():
            self.names[_key(_name_labels(name))] = list(entries or [])

    def answer(self, qlabels, qtype, depth=0):
        """(rcode, [(owner_labels, type, rdata_obj)]) or None for no
        reply at all."""
        from dnslib import QTYPE
        entries = self.names.get(_key(qlabels))
        if entries is None:
            return 3, []
        rrs = []
        for e in entries:
            if isinstance(e, str):
                if rrs:
                    continue
                if e == "TIMEOUT":
                    return None
                if e == "SERVFAIL":
                    return 2, []
                if e == "REFUSED":
                    return 5, []
                continue
            (t, v), = e.items()
            if v == "NONE":
                continue
            if t == "CNAME" and qtype != QTYPE.CNAME and depth < 8:
                rrs.append((qlabels, "CNAME", v))
                sub = self.answer(_name_labels(v), qtype, depth + 1)
                if sub is None:
                    return None
                return sub[0], rrs + sub[1]
            if t == "RAW":
                if int(v[0]) == qtype:
                    rrs.append((qlabels, "RAW", v))
                continue
            if getattr(QTYPE, t, None) == qtype:
                rrs.append((qlabels, t, v))
        return 0, rrs


def _rr(owner, t, v):
    from dnslib import (A, AAAA, CNAME, MX, PTR, QTYPE, RD, RR, TXT,
                        DNSLabel)
    name = DNSLabel(list(owner))
    if t == "A":
        return RR(name, QTYPE.A, rdata=A(v), ttl=60)
    if t == "AAAA":
        return RR(name, QTYPE.AAAA, rdata=AAAA(v), ttl=60)
    if t == "MX":
        pref, host = v
        host = DNSLabel(list(_name_labels(host))) if host else DNSLabel([])
        return RR(name, QTYPE.MX, rdata=MX(host, int(pref)), ttl=60)
    if t == "PTR":
        return RR(name, QTYPE.PTR,
                  rdata=PTR(DNSLabel(list(_name_labels(v)))), ttl=60)
    if t == "CNAME":
        return RR(name, QTYPE.CNAME,
                  rdata=CNAME(DNSLabel(list(_name_labels(v)))), ttl=60)
    if t in ("TXT", "SPF"):
        strings = v if isinstance(v, list) else [v]
        data = [_octets(s) for s in strings]
        # A string longer than 255 octets goes out as several.
        parts = []
        for d in data:
            if not d:
                parts.append(b"")
            while d:
                parts.append(d[:255])
                d = d[255:]
        return RR(name, getattr(QTYPE, t), rdata=TXT(parts), ttl=60)
    if t == "RAW":
        return RR(name, int(v[0]), rdata=RD(bytes.fromhex(v[1])), ttl=60)
    raise ValueError("unknown record type %s" % t)


def _reply(zone, data, udp, logf):
    from dnslib import DNSRecord, QTYPE
    try:
        req = DNSRecord.parse(data)
    except Exception:
        return None
    reply = req.reply()
    reply.header.aa = 1
    q = req.q
    if logf is not None:
        logf.write("%s %s\n" % (b".".join(q.qname.label).decode(
            "latin-1"), QTYPE.get(q.qtype)))
        logf.flush()
    res = zone.answer(tuple(q.qname.label), q.qtype)
    if res is None:
        return None
    rcode, rrs = res
    reply.header.rcode = rcode
    for owner, t, v in rrs:
        reply.add_answer(_rr(owner, t, v))
    # EDNS (RFC 6891 6.2.3): the client's payload size, else 512.
    limit = 512
    for ar in req.ar:
        if ar.rtype == QTYPE.OPT:
            limit = max(512, ar.rclass)
    out = reply.pack()
    if udp and len(out) > limit:
        short = req.reply()
        short.header.aa = 1
        short.header.tc = 1
        short.header.rcode = rcode
        out = short.pack()
    return out


def serve(zone, port, port_file, log):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for _ in range(50):
        try:
            udp.bind(("127.0.0.1", port))
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            break
        except OSError:
            udp.close()
            if port != 0:
                raise
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp.listen(16)
    port = udp.getsockname()[1]
    logf = open(log, "a") if log else None
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, port_file)
    print("PORT %d" % port, flush=True)
    conns = {}
    while True:
        r, _, _ = select.select([udp, tcp] + list(conns), [], [])
        for s in r:
            if s is udp:
                data, addr = udp.recvfrom(65535)
                out = _reply(zone, data, True, logf)
                if out is not None:
                    udp.sendto(out, addr)
            elif s is tcp:
                c, _ = tcp.accept()
                conns[c] = b""
            else:
                try:
                    chunk = s.recv(65535)
                except OSError:
                    chunk = b""
                if not chunk:
                    del conns[s]
                    s.close()
                    continue
                buf = conns[s] + chunk
                while len(buf) >= 2:
                    n = struct.unpack("!H", buf[:2])[0]
                    if len(buf) < 2 + n:
                        break
                    out = _reply(zone, buf[2:2 + n], False, logf)
                    buf = buf[2 + n:]
                    if out is not None:
                        try:
                            s.sendall(struct.pack("!H", len(out)) + out)
                        except OSError:
                            pass
                conns[s] = buf


def main(argv):
    import argparse
    p = argparse.ArgumentParser(description="DNS server for tests")
    p.add_argument("--zone", required=True, help="zone as JSON (or YAML)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log")
    a = p.parse_args(argv)
    with open(a.zone) as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError:
        import yaml
        data = yaml.safe_load(text)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(Zone(data), a.port, a.port_file, a.log)


if __name__ == "__main__":
    main(sys.argv[1:])
