"""A small HTTP server on 127.0.0.1 for the e2e tests: serves fixed bodies by path, can require
basic auth per path prefix, accepts PUTs (a WaitConditionHandle stand-in), and logs requests
with the status answered. A client using it as its HTTP proxy sends absolute URIs
(`GET http://github.com/o/r/tarball/main`): those are looked up by the whole URL, so a test can
stand in for any http:// host without traffic leaving 127.0.0.1."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.auth: dict[str, tuple[str, str]] = {}  # path prefix -> (user, password)
        self.log: list[Seen] = []
        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._srv.server_address[1]}"

    def start(self) -> "FileServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def _handler(self):
        server = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _seen(self) -> Seen:
                n = int(self.headers.get("Content-Length") or 0)
                s = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                         self.rfile.read(n) if n else b"")
                server.log.append(s)
                self.entry = s
                return s

            def _send(self, status: int, body: bytes = b"") -> None:
                entry = getattr(self, "entry", None)
                if entry is not None:
                    entry.status = status
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                for prefix, (user, pw) in server.auth.items():
                    if self.path.startswith(prefix):
                        want = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
                        return self.headers.get("Authorization") == want
                return True

            def do_GET(self):  # noqa: N802
                self._seen()
                if not self._authorised():
                    return self._send(401)
                body = server.files.get(self.path)
                self._send(200, body) if body is not None else self._send(404)

            def do_PUT(self):  # noqa: N802
                self._seen()
                self._send(200)

        return H
