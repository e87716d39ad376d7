"""Fake ECS container agent, started by the fake systemctl's ecs-init-like supervisor.

Behaves like the agent (amazon-ecs-agent v1.105.1; citations: /work/shared/reference.md §4,
``path:line@8dfceca6``) as far as ecs-bootstrap can observe:

1. reads ``$ECS_BOOTSTRAP_ROOT/var/lib/ecs/ecs.config`` then ``$ECS_BOOTSTRAP_ROOT/etc/ecs/ecs.config``
   (the latter overrides) exactly as ecs-init does: per line ``SplitN(TrimSpace(line), "=", 2)``,
   no quote stripping, no comments, lines without ``=`` ignored. Cluster = ``ECS_CLUSTER`` or
   ``default``. What it parsed is written to ``$FAKE_SYSTEMD_DIR/agent-config.json``.
2. logs in the agent's logfmt (``level=... time=... msg="..." [error="..."] module=...``,
   ``ecs-agent/logger/log.go:100-124``) to stdout (the unit's journal) and, as the agent does
   through ecs-init's /log mount, to ``$ECS_BOOTSTRAP_ROOT/var/log/ecs/ecs-agent.log``.
3. fetches the instance identity document + signature over IMDSv2 from
   ``$AWS_EC2_METADATA_SERVICE_ENDPOINT``, then ``meta-data/mac`` and
   ``network/interfaces/macs/<mac>/vpc-id`` and ``.../subnet-id`` (``agent/app/agent.go:1279-1302``):
   a failure on ``mac`` or ``subnet-id`` exits 1; a 404 on ``vpc-id`` is "not in a VPC".
4. calls ECS ``RegisterContainerInstance`` (boto3, endpoint ``$AWS_ENDPOINT_URL_ECS`` or
   ``$AWS_ENDPOINT_URL``) with the ``ECS_INSTANCE_ATTRIBUTES`` and a capability attribute, and
   checks that every attribute comes back (``validateRegisteredAttributes``,
   ``ecs_client.go:438-452``). Errors as ``ecs_client.go:262-280`` / ``agent.go:495-510,876-905``:
   ThrottlingException/ServerException/LimitExceededException are retried; any other error
   logs ``Received terminal error from RegisterContainerInstance call, exiting`` and
   ``Error registering container instance``, then exits **1** (a missing cluster, AccessDenied:
   ecs-init restarts the agent) -- except InvalidParameterException, ClientException and a
   failed attribute validation, which log ``Agent will terminally exit, unable to register
   container instance:`` and exit **5**. Credentials: ``$AWS_ACCESS_KEY_ID``/``$AWS_SECRET_ACCESS_KEY``
   when set, else the instance role's from IMDS (``meta-data/iam/security-credentials/<role>``).
5. only then opens ``127.0.0.1:<port>`` and serves ``GET /v1/metadata``
   (``{"Cluster", "ContainerInstanceArn", "Version"}``) until killed. Before that the port is
   closed (connection refused).

Modes (``agent.mode`` in ``$FAKE_SYSTEMD_DIR/config.json``): ``ok``; ``slow`` (sleep
``agent.delay`` s before registering); ``exit5`` (a terminal error at start: logs the agent's
``Agent will terminally exit`` line, exits 5); ``wrong_cluster`` (registers into and reports
``agent.cluster``, another existing cluster); ``never`` (stays alive, never registers, port stays
closed); ``die_after_register`` (registers, answers for ``agent.up`` s (0.3), then exits with
``agent.exit_code`` (137: docker's code for a SIGKILLed container), for the first
``agent.times`` starts (every start when absent); the count is kept in
``$FAKE_SYSTEMD_DIR/agent-deaths``).

Where it is not the agent: no docker, no ACS/TCS sessions, no re-registration from a checkpoint,
no task handling; registration is retried a few times with a short backoff, not for minutes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "Amazon ECS Agent - v1.99.0 (fake)"
UA = "fake-ecs-agent/1.99.0"  # lets the IMDS double's log tell the agent's requests apart


def log(msg: str) -> None:
    """The fake's own narration: stdout (the journal) only."""
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} fake-ecs-agent: {msg}\n")
    sys.stdout.flush()


def agent_line(level: str, msg: str, error: str | None = None, module: str = "agent.go") -> None:
    """A line in the real agent's logfmt (ecs-agent/logger/log.go:100-124), to the journal and
    to $ECS_BOOTSTRAP_ROOT/var/log/ecs/ecs-agent.log, as the agent writes it."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = f"level={level} time={stamp} msg={json.dumps(msg)}"
    if error is not None:
        line += f" error={json.dumps(error)}"
    line += f" module={module}\n"
    sys.stdout.write(line)
    sys.stdout.flush()
    root = os.environ.get("ECS_BOOTSTRAP_ROOT", "/")
    path = os.path.join(root, "var/log/ecs/ecs-agent.log")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(line)


def log_error(msg: str, error: str, module: str = "agent.go") -> None:
    agent_line("error", msg, error, module)


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
                mark("agent-first-answer")
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


class ImdsError(Exception):
    def __init__(self, status: int | None, message: str):
        super().__init__(message)
        self.status = status


def imds_path(endpoint: str, path: str) -> str:
    """One GET with a fresh token; an HTTP error is an ImdsError with its status."""
    try:
        return imds_get(endpoint, path, imds_token(endpoint))
    except urllib.error.HTTPError as e:
        raise ImdsError(e.code, f"{path}: HTTP {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise ImdsError(None, f"{path}: {e}") from e


def vpc_subnet(endpoint: str) -> tuple[str, str] | None:
    """agent/app/agent.go:1279-1302 (setVPCSubnet): mac, then vpc-id and subnet-id. Raises
    ImdsError for a fatal failure (mac, subnet-id: exit 1); None when not in a VPC."""
    mac = imds_path(endpoint, "/latest/meta-data/mac").strip()
    base = f"/latest/meta-data/network/interfaces/macs/{mac}"
    try:
        vpc = imds_path(endpoint, f"{base}/vpc-id").strip()
    except ImdsError as e:
        if e.status == 404:  # an EC2MetadataError: "not in a VPC", tolerated (:1286-1290)
            return None
        raise
    subnet = imds_path(endpoint, f"{base}/subnet-id").strip()
    return vpc, subnet


def sdk_error_text(e: Any, op: str = "RegisterContainerInstance") -> str:
    """How the agent's Go SDK prints an API error (the agent logs it in error="...")."""
    err = e.response.get("Error", {})
    meta = e.response.get("ResponseMetadata", {})
    return (f"operation error ECS: {op}, https response error StatusCode: "
            f"{meta.get('HTTPStatusCode', 400)}, RequestID: {meta.get('RequestId', '')}, "
            f"api error {err.get('Code', '')}: {err.get('Message', '')}")


def mark(name: str) -> None:
    """Records when something happened ($FAKE_SYSTEMD_DIR/<name>, epoch seconds), once: the
    benchmarks measure detection latency from it."""
    path = os.path.join(os.environ.get("FAKE_SYSTEMD_DIR", "."), name)
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(repr(time.time()))


def terminal_exit(msg: str, error: str) -> int:
    """agent.go:502-507: on unrecoverable registration errors the agent exits 5."""
    mark("agent-terminal-exit")
    agent_line("critical", msg, error)
    agent_line("critical", "Agent will terminally exit, unable to register container instance:",
               error)
    return 5


def attributes(cfg: dict[str, str], subnet: tuple[str, str] | None) -> list[dict[str, str]]:
    """What the agent sends: its capabilities, the VPC/subnet and ECS_INSTANCE_ATTRIBUTES."""
    out = [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.17"}]
    if subnet:
        out += [{"name": "ecs.vpc-id", "value": subnet[0]},
                {"name": "ecs.subnet-id", "value": subnet[1]}]
    raw = cfg.get("ECS_INSTANCE_ATTRIBUTES")
    if raw:
        try:
            out += [{"name": k, "value": v} for k, v in json.loads(raw).items()]
        except (ValueError, AttributeError):
            pass  # the real agent refuses to start (config error); not modelled
    return out


def attributes_echoed(sent: list[dict[str, str]], got: list[dict[str, Any]]) -> bool:
    """ecs_client.go:438-452: every attribute sent must come back with its value."""
    back = {(a.get("name"), a.get("value")) for a in got}
    return all((a["name"], a.get("value")) in back for a in sent)


def count_start(state_dir: str, name: str) -> int:
    p = os.path.join(state_dir, name)
    try:
        n = int(open(p).read().strip() or 0)
    except (FileNotFoundError, ValueError):
        n = 0
    with open(p, "w") as f:
        f.write(str(n + 1))
    return n


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
    agent_line("info", f"Amazon ECS agent Version: {VERSION}", module="agent.go")

    if mode == "exit5":
        log("terminal error at start (simulated)")
        return terminal_exit("Instance registration attempt with an invalid parameter",
                             "InvalidParameterException: (simulated by the fake agent)")
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
    try:
        subnet = vpc_subnet(endpoint)
    except ImdsError as e:
        # agent.go:473-487: the VPC/subnet lookup failing is an error exit (1).
        log_error("Unable to get VPC and subnet ID from EC2 metadata", f"EC2MetadataError: {e}")
        return 1

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
    sent = attributes(cfg, subnet)
    agent_line("info", "Registering Instance with ECS")
    for attempt in range(5):
        try:
            resp = client.register_container_instance(
                cluster=cluster,
                instanceIdentityDocument=doc,
                instanceIdentityDocumentSignature=sig,
                attributes=sent,
                versionInfo={"agentVersion": "1.99.0", "agentHash": "fake",
                             "dockerVersion": "25.0.0"},
            )
            break
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            text = sdk_error_text(e)
            log(f"RegisterContainerInstance failed: {code}")
            log_error("Unable to register as a container instance with ECS", text,
                      module="ecs_client.go")
            if code in ("ThrottlingException", "ServerException", "LimitExceededException"):
                # isTransientError, ecs_client.go:1083-1101: retried with backoff.
                log_error("Received non-terminal error from RegisterContainerInstance call, "
                          "retrying with exponential backoff", text, module="ecs_client.go")
                time.sleep(0.2 * 2 ** attempt)
                continue
            mark("agent-terminal-error")
            log_error("Received terminal error from RegisterContainerInstance call, exiting",
                      text, module="ecs_client.go")
            log_error("Error registering container instance", text)
            if code == "InvalidParameterException":
                return terminal_exit("Instance registration attempt with an invalid parameter",
                                     text)
            if code == "ClientException":
                return terminal_exit(
                    "Instance registration attempt with client performing invalid action", text)
            return 1
    else:
        log_error("Error registering container instance", "retries exhausted")
        return 1
    ci = resp["containerInstance"]
    if not attributes_echoed(sent, ci.get("attributes", [])):
        # ecs_client.go:550-562: AttributeError -> terminal (agent.go:895-903).
        log_error("Error registering container instance", "Attribute validation failed")
        return terminal_exit("Instance registration attempt with invalid attribute(s)", "")
    arn = ci["containerInstanceArn"]
    log(f"registered {arn} in cluster {cluster!r}")
    agent_line("info", "Instance registration completed successfully")
    with open(os.path.join(state_dir, "agent-registered.json"), "w") as f:
        json.dump({"Cluster": cluster, "ContainerInstanceArn": arn}, f)
    body = {"Cluster": cluster, "ContainerInstanceArn": arn, "Version": VERSION}
    if mode == "die_after_register":
        times = knobs.get("times")
        if times is None or count_start(state_dir, "agent-deaths") < int(times):
            up = float(knobs.get("up", 0.3))
            code = int(knobs.get("exit_code", 137))
            threading.Thread(target=serve_metadata, args=(port, body), daemon=True).start()
            time.sleep(up)
            log(f"dying {up}s after registering (simulated), exit code {code}")
            sys.stdout.flush()
            os._exit(code)
    serve_metadata(port, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
