"""Fake ECS container agent, started by the fake systemctl as the ecs unit's process.

Behaves like ecs-init + the agent as far as ecs-bootstrap can observe:

1. reads ``$ECS_BOOTSTRAP_ROOT/var/lib/ecs/ecs.config`` then ``$ECS_BOOTSTRAP_ROOT/etc/ecs/ecs.config``
   (the latter overrides) exactly as ecs-init does: per line ``SplitN(TrimSpace(line), "=", 2)``,
   no quote stripping, no comments, lines without ``=`` ignored. Cluster = ``ECS_CLUSTER`` or
   ``default``. What it parsed is written to ``$FAKE_SYSTEMD_DIR/agent-config.json``.
2. fetches the instance identity document + signature over IMDSv2 from
   ``$AWS_EC2_METADATA_SERVICE_ENDPOINT``;
3. calls ECS ``RegisterContainerInstance`` (boto3, endpoint ``$AWS_ENDPOINT_URL_ECS`` or
   ``$AWS_ENDPOINT_URL``). ``ClusterNotFoundException`` is terminal: log and exit 5, as the real
   agent does. Credentials: ``$AWS_ACCESS_KEY_ID``/``$AWS_SECRET_ACCESS_KEY`` when set, else the
   instance role's from IMDS (``meta-data/iam/security-credentials/<role>``), as the real agent
   gets them on EC2 -- so with IAM enforced a role without ``ecs:RegisterContainerInstance``
   makes the registration fail. Any other registration error is logged the way the real agent
   logs it (``level=error ... msg="Error registering container instance"
   error="AccessDeniedException: User: ... is not authorized to perform:
   ecs:RegisterContainerInstance ..."``, agent/app/agent.go) and exits 1 (not terminal);
4. only then opens ``127.0.0.1:<port>`` and serves ``GET /v1/metadata``
   (``{"Cluster", "ContainerInstanceArn", "Version"}``) until killed. Before that the port is
   closed (connection refused).

Modes (``agent.mode`` in ``$FAKE_SYSTEMD_DIR/config.json``): ``ok``; ``slow`` (sleep
``agent.delay`` s before registering); ``exit5`` (terminal error at start); ``wrong_cluster``
(registers into and reports ``agent.cluster``, another existing cluster); ``never`` (stays alive,
never registers, port stays closed).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "Amazon ECS Agent - v1.99.0 (fake)"
UA = "fake-ecs-agent/1.99.0"  # lets the IMDS double's log tell the agent's requests apart


def log(msg: str) -> None:
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} fake-ecs-agent: {msg}\n")
    sys.stdout.flush()


def log_error(msg: str, error: str) -> None:
    """A line in the real agent's logfmt: level=error time=... msg="..." error="..."."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stdout.write(f"level=error time={stamp} msg={json.dumps(msg)} error={json.dumps(error)}\n")
    sys.stdout.flush()


def parse_ecs_config(text: str) -> dict[str, str]:
    """ecs-init's parser: SplitN(TrimSpace(line), "=", 2); nothing else."""
    out: dict[str, str] = {}
    for line in text.split("\n"):
        parts = line.strip().split("=", 1)
        if len(parts) != 2:
            continue
        out[parts[0]] = parts[1]
    return out


def read_agent_config(root: str) -> dict[str, str]:
    cfg: dict[str, str] = {}
    for rel in ("var/lib/ecs/ecs.config", "etc/ecs/ecs.config"):
        p = os.path.join(root, rel)
        try:
            with open(p, encoding="utf-8") as f:
                cfg.update(parse_ecs_config(f.read()))
        except FileNotFoundError:
            continue
    return cfg


def imds_get(endpoint: str, path: str, token: str) -> str:
    req = urllib.request.Request(
        endpoint.rstrip("/") + path, headers={"x-aws-ec2-metadata-token": token, "User-Agent": UA}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def imds_token(endpoint: str) -> str:
    req = urllib.request.Request(
        endpoint.rstrip("/") + "/latest/api/token",
        method="PUT",
        headers={"x-aws-ec2-metadata-token-ttl-seconds": "21600", "User-Agent": UA},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def imds_role_credentials(endpoint: str) -> dict[str, str]:
    """The instance profile role's credentials, as the agent's SDK reads them from IMDS."""
    last: Exception | None = None
    for _ in range(20):
        try:
            token = imds_token(endpoint)
            prefix = "/latest/meta-data/iam/security-credentials/"
            role = imds_get(endpoint, prefix, token).split("\n")[0].strip()
            creds = json.loads(imds_get(endpoint, prefix + role, token))
            log(f"using the credentials of instance role {role!r} from IMDS")
            return {"aws_access_key_id": creds["AccessKeyId"],
                    "aws_secret_access_key": creds["SecretAccessKey"],
                    "aws_session_token": creds.get("Token")}
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            last = e
            time.sleep(0.25)
    raise RuntimeError(f"no instance role credentials from IMDS: {last}")


def imds_identity(endpoint: str) -> tuple[str, str]:
    last: Exception | None = None
    for _ in range(20):
        try:
            req = urllib.request.Request(
                endpoint.rstrip("/") + "/latest/api/token",
                method="PUT",
                headers={"x-aws-ec2-metadata-token-ttl-seconds": "21600", "User-Agent": UA},
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                token = r.read().decode()
            doc = imds_get(endpoint, "/latest/dynamic/instance-identity/document", token)
            sig = imds_get(endpoint, "/latest/dynamic/instance-identity/signature", token)
            return doc, sig
        except (urllib.error.URLError, OSError) as e:
            last = e
            time.sleep(0.25)
    raise RuntimeError(f"IMDS unreachable: {last}")


def serve_metadata(port: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] == "/v1/metadata":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    log(f"introspection server listening on 127.0.0.1:{port}")
    httpd.serve_forever()


def main() -> int:
    state_dir = os.environ.get("FAKE_SYSTEMD_DIR", ".")
    try:
        with open(os.path.join(state_dir, "config.json")) as f:
            knobs = json.load(f).get("agent", {})
    except FileNotFoundError:
        knobs = {}
    mode = knobs.get("mode", "ok")
    delay = float(knobs.get("delay", 2.0))
    port = int(knobs.get("port", 51678))
    root = os.environ.get("ECS_BOOTSTRAP_ROOT", "/")

    cfg = read_agent_config(root)
    with open(os.path.join(state_dir, "agent-config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    cluster = cfg.get("ECS_CLUSTER") or "default"
    log(f"mode={mode} cluster={cluster!r} (from {root}/etc/ecs/ecs.config)")

    if mode == "exit5":
        log("terminal registration error (simulated); exiting with code 5")
        return 5
    if mode == "never":
        log("never registering (simulated hang)")
        while True:
            time.sleep(3600)
    if mode == "slow":
        log(f"sleeping {delay}s before registering")
        time.sleep(delay)
    if mode == "wrong_cluster":
        cluster = knobs.get("cluster") or "default"
        log(f"joining the wrong cluster {cluster!r}")

    endpoint = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254/")
    doc, sig = imds_identity(endpoint)
    region = json.loads(doc)["region"]

    import boto3
    import botocore.exceptions

    ecs_endpoint = os.environ.get("AWS_ENDPOINT_URL_ECS") or os.environ.get("AWS_ENDPOINT_URL")
    creds: dict[str, Any] = {}
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        try:
            creds = imds_role_credentials(endpoint)
        except RuntimeError as e:
            log_error("Error registering container instance", f"NoCredentialProviders: {e}")
            return 1
    client = boto3.client("ecs", region_name=region, endpoint_url=ecs_endpoint, **creds)
    try:
        resp = client.register_container_instance(
            cluster=cluster,
            instanceIdentityDocument=doc,
            instanceIdentityDocumentSignature=sig,
            versionInfo={"agentVersion": "1.99.0", "agentHash": "fake", "dockerVersion": "25.0.0"},
        )
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        log(f"RegisterContainerInstance failed: {code}: {e}")
        if code in ("ClusterNotFoundException", "ClientException", "InvalidParameterException"):
            log("terminal registration error; exiting with code 5")
            return 5
        message = e.response.get("Error", {}).get("Message", "")
        log_error("Unable to register as a container instance with ECS", f"{code}: {message}")
        log_error("Error registering container instance", f"{code}: {message}")
        return 1
    arn = resp["containerInstance"]["containerInstanceArn"]
    log(f"registered {arn} in cluster {cluster!r}")
    with open(os.path.join(state_dir, "agent-registered.json"), "w") as f:
        json.dump({"Cluster": cluster, "ContainerInstanceArn": arn}, f)
    serve_metadata(port, {"Cluster": cluster, "ContainerInstanceArn": arn, "Version": VERSION})
    return 0


if __name__ == "__main__":
    sys.exit(main())
