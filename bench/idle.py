"""Idle sessions: opens many TCP connections to one server, waits until
every one has received its greeting, holds them while the caller measures
the server, then closes them.

Connections come from several loopback source addresses (127.0.0.2,
127.0.0.3, ...) so the ephemeral port range is never the limit; with
IP_BIND_ADDRESS_NO_PORT the port is chosen at connect() time per
4-tuple.  At most `window` connections are waiting for their greeting at
any moment, which keeps the server's accept backlog from overflowing.
"""

import errno
import select
import socket
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
PER_SOURCE = 5000


class IdleSessions:
    def __init__(self, host, port, count, greeting=b"", window=256,
                 timeout=120.0):
        self.host, self.port = host, port
        self.count = count
        self.greeting = greeting
        self.window = window
        self.timeout = timeout
        self.socks = []
        self.greeted = 0
        self.failed = 0
        self.seconds = None

    def _source(self, k):
        return "127.0.0.%d" % (2 + k // PER_SOURCE)

    def open(self):
        """Opens all connections; returns the number greeted."""
        ep = select.epoll()
        waiting = {}
        bufs = {}
        started = 0
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        try:
            while (started < self.count or waiting) and \
                    time.monotonic() < deadline:
                while started < self.count and len(waiting) < self.window:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    s.bind((self._source(started), 0))
                    s.setblocking(False)
                    started += 1
                    e = s.connect_ex((self.host, self.port))
                    if e not in (0, errno.EINPROGRESS):
                        self.failed += 1
                        s.close()
                        continue
                    waiting[s.fileno()] = s
                    bufs[s.fileno()] = b""
                    ep.register(s.fileno(), select.EPOLLIN)
                for fd, ev in ep.poll(1.0):
                    s = waiting.get(fd)
                    if s is None:
                        continue
                    try:
                        d = s.recv(4096)
                    except OSError:
                        d = b""
                    if d:
                        bufs[fd] += d
                        if b"\r\n" not in bufs[fd]:
                            continue
                    ep.unregister(fd)
                    del waiting[fd]
                    line = bufs.pop(fd)
                    if d and line.startswith(self.greeting):
                        self.greeted += 1
                        self.socks.append(s)
                    else:
                        self.failed += 1
                        s.close()
            self.failed += len(waiting)
            for s in waiting.values():
                s.close()
        finally:
            ep.close()
        self.seconds = time.monotonic() - t0
        return self.greeted

    def alive(self):
        """How many held connections the server has not closed."""
        n = 0
        for s in self.socks:
            try:
                d = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                if d:
                    n += 1
            except BlockingIOError:
                n += 1
            except OSError:
                pass
        return n

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []
