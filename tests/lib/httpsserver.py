"""httpsserver.py - an HTTPS server for tests, on a loopback address.

Serves fixed documents by Host header and path over TLS with a given
certificate (python3 ssl + http.server, in a thread of the test), so a
test can publish what a domain's web server would: an MTA-STS policy
(RFC 8461 3.3) at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.

    srv = HTTPSServer("127.0.44.43", 443, cert, key)
    srv.put("mta-sts.b.test", "/.well-known/mta-sts.txt", policy_text)
    srv.put("mta-sts.c.test", "/.well-known/mta-sts.txt", "x",
            status=302, headers={"Location": "https://evil.test/"})
    ...
    srv.hits("mta-sts.b.test")   # requests served for that host
    srv.close()

Unknown documents are 404.  Port 443 needs root (tests run as root);
an address of 127.0.0.0/8 other than 127.0.0.1 keeps it apart from
anything else on the machine.
"""

import http.server
import ssl
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "postroom-test"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        self.server.owner._log.append(fmt % args)

    def do_GET(self):
        owner = self.server.owner
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        with owner._lock:
            owner._hits[host] = owner._hits.get(host, 0) + 1
            doc = owner._docs.get((host, self.path))
        if doc is None:
            status, ctype, body, headers = 404, "text/plain", b"not found\n", {}
        else:
            status, ctype, body, headers = doc
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class HTTPSServer:
    def __init__(self, host, port, cert, key):
        self.host = host
        self.port = port
        self._docs = {}
        self._hits = {}
        self._log = []
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def put(self, host, path, body, ctype="text/plain", status=200,
            headers=None):
        if isinstance(body, str):
            body = body.encode()
        with self._lock:
            self._docs[(host.lower(), path)] = (status, ctype, body,
                                                headers or {})

    def hits(self, host):
        with self._lock:
            return self._hits.get(host.lower(), 0)

    def log(self):
        return "\n".join(self._log)

    def close(self):
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
        self.httpd = None
