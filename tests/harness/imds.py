"""An IMDSv2-only instance metadata double (stdlib ThreadingHTTPServer).

Rules (as EC2 with ``HttpTokens: required``):

* ``PUT /latest/api/token`` needs ``x-aws-ec2-metadata-token-ttl-seconds`` in 1..21600 (else
  400) and is refused with 403 when it carries ``X-Forwarded-For``; the answer is a random token
  and echoes the TTL header (aws-config refuses a token response without it).
* Tokens expire after their TTL. Any GET without a valid ``x-aws-ec2-metadata-token`` -> 401.
* Served: the identity document and signatures, instance-id, placement, instance-type, ami-id,
  local-ipv4, the role credentials, tags, and what the ECS agent also reads: ``meta-data/mac``,
  ``network/interfaces/macs/<mac>/vpc-id`` and ``.../subnet-id`` (``identity.mac``/``vpc_id``/
  ``subnet_id``; set one to None for a 404: the agent exits 1 without ``mac`` or ``subnet-id``).
* Unknown paths -> 404; tag paths -> 404 when instance metadata tags are disabled (the default
  for launch configurations; only launch templates can enable them).

Fault knobs (for the fault matrix; all off by default):

* ``down_for(seconds)``: the port is closed (connection refused) now and opens again after
  ``seconds`` -- an IMDS that is not up yet at boot.
* ``unauthorized_gets = N``: the next N GETs that carry a valid token answer 401 and revoke
  every token issued so far -- a token the service stopped accepting mid-run.
* ``delay = S``: every answer is sent after S seconds; ``slow_for(seconds, delay)`` sets it now
  and clears it after ``seconds`` (an IMDS that is slow at boot, then recovers).
* ``token_status = code``: every token PUT answers ``code`` (e.g. 403: IMDSv2 unusable);
  ``allow_v1 = True`` serves GETs without a token (IMDSv1). The fake agent's requests are
  exempt from ``token_status`` (it stands for the software under test's view only).
* ``bad_signature = True``: ``dynamic/instance-identity/signature`` (and ``/pkcs7``) answer a
  well-formed signature of *other* bytes, so a CFN_V1 request built from it is refused.
* Role credentials (``meta-data/iam/security-credentials/<role>``), apart from ``delay``:
  ``credentials_delay = S`` answers them S seconds late (the SDK's IMDS credentials provider
  gives up after 1 s); ``credentials_status = 500`` (or 404, ...) answers that status instead.
  Both also apply to the role list (``security-credentials/``). The fake agent is not exempt: it
  stands for the real agent, which reads the same endpoint.

Instance identity signature: ``/document`` is ``json.dumps(document(), indent=2)`` and
``/signature`` is the harness test key's signature of exactly those bytes (``/pkcs7`` too), see
harness/identity.py -- whatever the identity's fields are when asked (``use_stack`` changes
them), so a CFN_V1 request built from them verifies in harness/moto_server.py.

Role credentials: ``identity.iam_role`` names the instance profile's role. Its credentials are
``identity.role_credentials[role]`` when set (``Instance.use_role`` puts a moto STS AssumeRole
answer there, so requests signed with them carry the role's policies when moto enforces IAM),
else fixed dummy keys (enough when moto does not check signatures).

Run standalone: ``python -m harness.imds --port N --instance-id i-... [--tag K=V]...``; in
tests use :class:`ImdsServer` in-process (``with ImdsServer(...) as imds: imds.url``).
"""

from __future__ import annotations

import argparse
import functools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import identity as identity_sig

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_TTL = 21600
FAKE_AGENT_UA = "fake-ecs-agent"  # User-Agent of harness/fake_agent.py's IMDS calls


@dataclass
class InstanceIdentity:
    instance_id: str = "i-0123456789abcdef0"
    region: str = "us-east-1"
    availability_zone: str = "us-east-1a"
    instance_type: str = "t3.small"
    account_id: str = "123456789012"
    image_id: str = "ami-04681a1dbd79675a5"
    private_ip: str = "10.0.1.10"
    # None = instance metadata tags disabled (all tag paths answer 404)
    tags: dict[str, str] | None = None
    # The instance profile's role: its credentials are served under iam/security-credentials/
    iam_role: str | None = None
    # more roles: name -> {"AccessKeyId", "SecretAccessKey", "Token"}
    role_credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    # The primary interface, as the ECS agent reads it besides the identity document:
    # meta-data/mac, network/interfaces/macs/<mac>/vpc-id and .../subnet-id (reference.md §4,
    # ecs-agent/ec2/ec2_metadata_client.go:44-47@8dfceca6). None: that path answers 404.
    mac: str | None = "0a:1b:2c:3d:4e:5f"
    vpc_id: str | None = "vpc-0123456789abcdef0"
    subnet_id: str | None = "subnet-0123456789abcdef0"

    def document_text(self) -> str:
        """The exact text IMDS serves at dynamic/instance-identity/document (and signs)."""
        return json.dumps(self.document(), indent=2)

    def document(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "architecture": "x86_64",
            "availabilityZone": self.availability_zone,
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": self.image_id,
            "instanceId": self.instance_id,
            "instanceType": self.instance_type,
            "kernelId": None,
            "pendingTime": "2026-01-01T00:00:00Z",
            "privateIp": self.private_ip,
            "ramdiskId": None,
            "region": self.region,
            "version": "2017-09-30",
        }


@functools.lru_cache(maxsize=64)
def _cached_signature(data: bytes, kind: str) -> str:
    return identity_sig.sign(data) if kind == "rsa" else identity_sig.pkcs7_signature(data)


@dataclass
class RequestRecord:
    method: str
    path: str
    token_sent: bool
    status: int
    user_agent: str = ""
    time: float = field(default_factory=time.time)


class ImdsServer:
    """IMDSv2 double on 127.0.0.1:<free port>, serving in a daemon thread."""

    def __init__(self, identity: InstanceIdentity | None = None, host: str = "127.0.0.1", port: int = 0):
        self.identity = identity or InstanceIdentity()
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._lock = threading.Lock()
        self.log: list[RequestRecord] = []
        self.unauthorized_gets = 0
        self.delay = 0.0
        self.token_status: int | None = None
        self.allow_v1 = False
        self.bad_signature = False
        self.credentials_delay = 0.0
        self.credentials_status: int | None = None
        self._host = host
        self._httpd = self._make_server(host, port)
        self._port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self._closed = False
        self._timers: list[threading.Timer] = []

    def _make_server(self, host: str, port: int) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer((host, port), self._handler_class())
        httpd.daemon_threads = True
        return httpd

    # -- lifecycle --
    @property
    def port(self) -> int:
        if self._httpd is None:
            return self._port
        self._port = self._httpd.server_address[1]
        return self._port

    @property
    def url(self) -> str:
        """Endpoint as AWS_EC2_METADATA_SERVICE_ENDPOINT wants it."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> "ImdsServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="imds", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed = True
        for t in self._timers:
            t.cancel()
        with self._lock:
            httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def down_for(self, seconds: float) -> None:
        """Close the port now (connection refused) and serve again on it after `seconds`."""
        port = self.port
        with self._lock:
            httpd, self._httpd = self._httpd, None
        httpd.shutdown()
        httpd.server_close()

        def up() -> None:
            if self._closed:
                return
            new = self._make_server(self._host, port)
            with self._lock:
                self._httpd = new
            threading.Thread(target=new.serve_forever, name="imds", daemon=True).start()

        t = threading.Timer(seconds, up)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def slow_for(self, seconds: float, delay: float) -> None:
        """Answer everything `delay` seconds late for the next `seconds`, then at once again."""
        self.delay = delay

        def fast() -> None:
            self.delay = 0.0

        t = threading.Timer(seconds, fast)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def __enter__(self) -> "ImdsServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- test helpers --
    def requests(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def token_requests(self, exclude_agent: bool = False) -> list[RequestRecord]:
        return [r for r in self.requests("PUT", TOKEN_PATH)
                if not (exclude_agent and r.user_agent.startswith(FAKE_AGENT_UA))]

    def client_requests(self) -> list[RequestRecord]:
        """Requests not made by the fake ECS agent (i.e. by the software under test)."""
        with self._lock:
            return [r for r in self.log if not r.user_agent.startswith(FAKE_AGENT_UA)]

    def _take_unauthorized(self) -> bool:
        with self._lock:
            if self.unauthorized_gets <= 0:
                return False
            self.unauthorized_gets -= 1
            self._tokens.clear()
            return True

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # -- behaviour --
    def _issue_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(40)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def _token_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._tokens.get(token)
            if expiry is None:
                return False
            if time.monotonic() >= expiry:
                del self._tokens[token]
                return False
            return True

    def _signature(self, document: str, kind: str) -> str:
        data = document.encode("utf-8")
        if self.bad_signature:
            data += b" (not the document that was served)"
        return _cached_signature(data, kind)

    def _lookup(self, path: str) -> tuple[int, str]:
        ident = self.identity
        document = ident.document_text()
        simple = {
            "/latest/meta-data/instance-id": ident.instance_id,
            "/latest/meta-data/placement/region": ident.region,
            "/latest/meta-data/placement/availability-zone": ident.availability_zone,
            "/latest/meta-data/instance-type": ident.instance_type,
            "/latest/meta-data/ami-id": ident.image_id,
            "/latest/meta-data/local-ipv4": ident.private_ip,
            "/latest/dynamic/instance-identity/document": document,
        }
        if path == "/latest/dynamic/instance-identity/signature":
            return 200, self._signature(document, "rsa")
        if path == "/latest/dynamic/instance-identity/pkcs7":
            return 200, self._signature(document, "pkcs7")
        if path in simple:
            return 200, simple[path]
        if path == "/latest/meta-data/mac":
            return (200, ident.mac) if ident.mac else (404, "")
        macs = "/latest/meta-data/network/interfaces/macs/"
        if ident.mac and path.startswith(macs + ident.mac + "/"):
            value = {"vpc-id": ident.vpc_id, "subnet-id": ident.subnet_id}.get(
                path[len(macs + ident.mac) + 1:])
            return (200, value) if value else (404, "")
        creds_prefix = "/latest/meta-data/iam/security-credentials/"
        if path.startswith(creds_prefix) or path == creds_prefix.rstrip("/"):
            if self.credentials_delay:
                time.sleep(self.credentials_delay)
            if self.credentials_status is not None:
                return self.credentials_status, ""
            roles = dict(ident.role_credentials)
            if ident.iam_role and ident.iam_role not in roles:
                roles[ident.iam_role] = {"AccessKeyId": "ASIAIMDSROLETEST",
                                         "SecretAccessKey": "imds-role-secret",
                                         "Token": "imds-role-token"}
            role = path[len(creds_prefix):] if path.startswith(creds_prefix) else ""
            if role == "" and roles:
                return 200, "\n".join(sorted(roles))
            if role in roles:
                doc = {"Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z",
                       "Type": "AWS-HMAC", "Expiration": "2099-01-01T00:00:00Z",
                       **roles[role]}
                return 200, json.dumps(doc)
            return 404, ""
        tag_prefix = "/latest/meta-data/tags/instance"
        if path == tag_prefix or path.startswith(tag_prefix + "/"):
            if ident.tags is None:
                return 404, ""
            rest = path[len(tag_prefix):].lstrip("/")
            if rest == "":
                return 200, "\n".join(sorted(ident.tags))
            if rest in ident.tags:
                return 200, ident.tags[rest]
            return 404, ""
        return 404, ""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "EC2ws"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a slow answer (the delay knob)

            def _record(self, status: int) -> None:
                with server._lock:
                    server.log.append(
                        RequestRecord(
                            method=self.command,
                            path=self.path.split("?", 1)[0],
                            token_sent=self.headers.get(TOKEN_HEADER) is not None,
                            status=status,
                            user_agent=self.headers.get("User-Agent", ""),
                        )
                    )

            def _drain(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)

            def do_PUT(self) -> None:  # noqa: N802
                self._drain()
                if server.delay:
                    time.sleep(server.delay)
                path = self.path.split("?", 1)[0]
                if path != TOKEN_PATH:
                    status, body, headers = 404, "", {}
                elif self.headers.get("X-Forwarded-For") is not None:
                    status, body, headers = 403, "", {}
                elif (server.token_status is not None
                      and not self.headers.get("User-Agent", "").startswith(FAKE_AGENT_UA)):
                    status, body, headers = server.token_status, "", {}
                else:
                    raw = self.headers.get(TTL_HEADER)
                    try:
                        ttl = int(raw) if raw is not None else -1
                    except ValueError:
                        ttl = -1
                    if not 1 <= ttl <= MAX_TTL:
                        status, body, headers = 400, "", {}
                    else:
                        status, body = 200, server._issue_token(ttl)
                        headers = {TTL_HEADER: str(ttl)}
                self._record(status)
                self._send(status, body, headers)

            def do_GET(self) -> None:  # noqa: N802
                if server.delay:
                    time.sleep(server.delay)
                path = self.path.split("?", 1)[0]
                token = self.headers.get(TOKEN_HEADER)
                if token is None and server.allow_v1:
                    status, body = server._lookup(path)
                elif not server._token_valid(token):
                    status, body = 401, ""
                elif server._take_unauthorized():
                    status, body = 401, ""
                else:
                    status, body = server._lookup(path)
                self._record(status)
                self._send(status, body)

            def do_POST(self) -> None:  # noqa: N802
                self._drain()
                self._record(405)
                self._send(405)

        return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="IMDSv2 double")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--instance-id", default=InstanceIdentity.instance_id)
    p.add_argument("--region", default=InstanceIdentity.region)
    p.add_argument("--az", default=None)
    p.add_argument("--instance-type", default=InstanceIdentity.instance_type)
    p.add_argument("--account", default=InstanceIdentity.account_id)
    p.add_argument("--tag", action="append", default=None, help="K=V; enables tags")
    a = p.parse_args(argv)
    tags = dict(t.split("=", 1) for t in a.tag) if a.tag is not None else None
    ident = InstanceIdentity(
        instance_id=a.instance_id,
        region=a.region,
        availability_zone=a.az or a.region + "a",
        instance_type=a.instance_type,
        account_id=a.account,
        tags=tags,
    )
    srv = ImdsServer(ident, port=a.port)
    print(f"IMDS double on {srv.url}", flush=True)
    try:
        srv._httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
