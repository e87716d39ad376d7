"""A plain HTTP forward proxy on 127.0.0.1 that records every request it is asked for.

http:// requests arrive with an absolute URI (`POST http://127.0.0.1:5000/ HTTP/1.1`) and are
forwarded to that address (tests only ever use 127.0.0.1 targets); `CONNECT host:port`
(an https:// target) is recorded and refused with 502, as there is no TLS server to reach.
`seen` holds {"method", "target", "headers", "body"} per request, in order.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse


class RecordingProxy(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.seen: list[dict] = []
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({"method": self.command, "target": self.path,
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "body": body})
        u = urllib.parse.urlsplit(self.path)
        if u.hostname != "127.0.0.1":
            # Never forward off the machine: a request here for another host is a test bug.
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-connection", "proxy-authorization")}
        conn.request(self.command, u.path + (f"?{u.query}" if u.query else "") or "/", body, headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _forward

    def do_CONNECT(self):  # noqa: N802
        # An https endpoint: record the tunnel request, refuse it (no TLS server here).
        self.server.seen.append({"method": "CONNECT", "target": self.path,
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "body": b""})
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()
