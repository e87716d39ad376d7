"""Instant doubles for the overhead benchmark (issue 18, target 2): the answers of the moto-backed
doubles, recorded once, served back at once.

* :class:`Recorder`: a reverse proxy in front of one double (moto, the IMDS double, the fake
  agent's introspection port) that records every 2xx answer under its request's key (method,
  path, SHA-256 of the body). A recording run is the binary under test itself, run once against
  the real doubles through three recorders: what is recorded is exactly what the binary asks,
  answered by moto for the example stack (DescribeStackResource's Metadata, DescribeClusters,
  DescribeContainerInstances, SignalResource), by the IMDS double (token, identity document and
  signature) and by the fake agent (``/v1/metadata`` once registered).
* :class:`CannedServer`: one HTTP/1.1 keep-alive server (TCP_NODELAY, each answer one write) that
  serves the recorded table for all three endpoints; a request without a recorded answer gets
  501 and is counted as a miss. It logs each request's key and the time spent on it.
* :func:`write_bin` : a ``systemctl`` in POSIX sh that answers at once as systemd does for
  units that are already active and never fail (``is-active`` -> active, ``is-failed`` ->
  active + exit 1, ``show -p ... --value`` -> 0/active, other verbs -> exit 0), logging each
  call; and sh versions of the tests' Init-command shims (``mkdir``/``chown``/``chmod``/``touch``
  rewrite absolute paths under ``$ECS_BOOTSTRAP_ROOT``, as harness/sandbox-bin/rootify does, but
  without a Python start).
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Not replayed: the canned server sets its own framing; Date/Server say nothing the binary reads.
_DROP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


def key(method: str, path: str, body: bytes) -> str:
    return f"{method} {path} {hashlib.sha256(body).hexdigest()[:16]}"


def action(method: str, path: str, body: bytes, headers: Any) -> str:
    """What a request is, for counting: the query-protocol Action, the JSON-protocol target,
    or the method and path (IMDS, the agent)."""
    target = headers.get("X-Amz-Target") if headers is not None else None
    if target:
        return target.rsplit(".", 1)[-1]
    if method == "POST" and body:
        got = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action")
        if got:
            return got[0]
    return f"{method} {path}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class Recorder:
    """A reverse proxy to `upstream` (http://host:port) recording 2xx answers by key; the last
    answer for a key wins (e.g. the agent's 200 after its 503s, the last IMDS token)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.table: dict[str, dict[str, Any]] = {}
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "content-length")}
                try:
                    c = http.client.HTTPConnection(rec.upstream.hostname, rec.upstream.port,
                                                   timeout=30)
                    c.request(self.command, self.path, body=body, headers=headers)
                    r = c.getresponse()
                    status, rh, data = r.status, r.getheaders(), r.read()
                    c.close()
                except OSError:
                    # The agent's port before it registers: "not yet" to the binary, too.
                    status, rh, data = 503, [], b""
                if 200 <= status < 300:
                    rec.table[key(self.command, self.path, body)] = {
                        "status": status, "action": action(self.command, self.path, body,
                                                           self.headers),
                        "headers": [(k, v) for k, v in rh if k.lower() not in _DROP],
                        "body": data}
                self.send_response(status)
                for k, v in rh:
                    if k.lower() not in _DROP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _any  # noqa: N815

        self.srv = _Server(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


class CannedServer:
    """Serves `table` (key -> recorded answer) on one port for every endpoint of a run."""

    def __init__(self, table: dict[str, dict[str, Any]]) -> None:
        self.table = table
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        canned = self
        # The whole answer prebuilt: one write per request, nothing computed per request.
        wire = {}
        for k, a in table.items():
            head = [f"HTTP/1.1 {a['status']} OK"] + [f"{h}: {v}" for h, v in a["headers"]]
            head.append(f"Content-Length: {len(a['body'])}")
            wire[k] = ("\r\n".join(head) + "\r\n\r\n").encode() + a["body"]
        miss = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n"

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                t0 = time.monotonic()
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                k = key(self.command, self.path, body)
                self.wfile.write(wire.get(k, miss))
                t1 = time.monotonic()
                with canned._lock:
                    canned.log.append({"key": k, "hit": k in wire, "t0": t0, "t1": t1,
                                       "action": action(self.command, self.path, body,
                                                        self.headers)})

            do_GET = do_PUT = do_POST = _any  # noqa: N815

        self.srv = _Server(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def take_log(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self.log = self.log, []
        return out

    def stop(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


SYSTEMCTL = r"""#!/bin/sh
# Instant systemctl double (tests/bench/instant.py): every unit active, none failed.
printf '%s\n' "$*" >> "$FAKE_SYSTEMD_DIR/calls.txt"
verb=
value=
for a in "$@"; do
  case $a in
    --value) value=1 ;;
    -*) ;;
    *) [ -z "$verb" ] && verb=$a ;;
  esac
done
case $verb in
  is-active) echo active ;;
  is-failed) echo active; exit 1 ;;
  is-enabled) echo enabled ;;
  show)
    for a in "$@"; do
      case $a in
        ActiveState|--property=ActiveState) [ -n "$value" ] && echo active || echo ActiveState=active ;;
        ExecMainStatus|NRestarts|--property=ExecMainStatus|--property=NRestarts)
          [ -n "$value" ] && echo 0 || echo "${a#--property=}=0" ;;
      esac
    done ;;
esac
exit 0
"""

ROOTIFY = r"""#!/bin/sh
# harness/sandbox-bin/rootify without a Python start: absolute paths go under the test root.
name=${0##*/}
case ${ECS_BOOTSTRAP_ROOT:-/} in /) echo "sandbox $name: ECS_BOOTSTRAP_ROOT unset" >&2; exit 97;; esac
for a in "$@"; do
  shift
  case $a in /*) set -- "$@" "$ECS_BOOTSTRAP_ROOT$a" ;; *) set -- "$@" "$a" ;; esac
done
exec "/usr/bin/$name" "$@"
"""


def write_bin(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in (("systemctl", SYSTEMCTL), ("rootify", ROOTIFY)):
        p = d / name
        p.write_text(text)
        p.chmod(0o755)
    for name in ("mkdir", "chown", "chmod", "touch"):
        link = d / name
        if not link.exists():
            link.symlink_to("rootify")
    return d
