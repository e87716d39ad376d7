"""One simulated container instance: a root dir, an IMDS double, a fake systemd, an agent port.

`Instance.run_bootstrap(*args)` runs the ecs-bootstrap binary against it; `Instance.systemctl()`
runs the fake systemctl with the same environment (for harness self-tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import procs
from .aws import REPO_ROOT, MotoServer, StackInfo, stack_role_name
from .imds import ImdsServer, InstanceIdentity

HARNESS_BIN = Path(__file__).resolve().parent / "bin"
# mkdir/chown/chmod/touch shims that keep Init commands under the test root (see rootify)
SANDBOX_BIN = Path(__file__).resolve().parent / "sandbox-bin"
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "ecs-bootstrap"


def bootstrap_bin() -> Path:
    p = Path(os.environ.get("ECS_BOOTSTRAP_BIN", str(DEFAULT_BIN)))
    return p if p.is_absolute() else REPO_ROOT / p


@dataclass
class Result:
    argv: list[str]
    returncode: int | None  # None when killed on timeout
    stdout: str
    stderr: str
    timed_out: bool
    duration: float

    def __str__(self) -> str:
        return (f"argv={self.argv}\nreturncode={self.returncode} timed_out={self.timed_out} "
                f"duration={self.duration:.1f}s\n--- stdout ---\n{self.stdout}\n"
                f"--- stderr ---\n{self.stderr}")


class Instance:
    def __init__(self, moto: MotoServer, workdir: Path, identity: InstanceIdentity | None = None):
        self.moto = moto
        self.workdir = workdir
        self.root = workdir / "root"
        self.systemd_dir = workdir / "systemd"
        self.home = workdir / "home"
        for d in (self.root, self.systemd_dir, self.home):
            d.mkdir(parents=True, exist_ok=True)
        for f in ("aws-config", "aws-credentials"):
            (self.home / f).touch()
        self.imds = ImdsServer(identity or InstanceIdentity()).start()
        self.agent_port = procs.free_port()
        self.introspection_url = f"http://127.0.0.1:{self.agent_port}"
        self._pgids: list[int] = []
        self.knobs: dict[str, Any] = {}
        # True after use_role(): no keys in the environment, the role's come from IMDS
        self.role_credentials_only = False
        self.configure()

    # ---------------------------------------------------------------- set-up
    def use_stack(self, stack: StackInfo) -> "Instance":
        """Make the IMDS double answer as the instance that `stack`'s ASG launched."""
        ident = self.imds.identity
        ident.instance_id = stack.instance_id
        ident.region = stack.region
        ident.availability_zone = stack.availability_zone
        ident.instance_type = stack.instance_type
        ident.image_id = stack.image_id
        ident.private_ip = stack.private_ip
        ident.tags = dict(stack.instance_tags) if stack.metadata_tags_enabled else None
        return self

    def use_role(self, stack: StackInfo, role_name: str | None = None) -> str:
        """Make the instance use its instance profile's role, as on EC2: IMDS serves the
        stack's role (`role_name`, default its only AWS::IAM::Role) with credentials from a moto
        STS AssumeRole (so, with IAM enforced, requests signed with them carry the role's
        policies), and neither the binary's nor the fake agent's environment has
        AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_EC2_METADATA_DISABLED: both fall back
        to the IMDS credentials. Returns the role name."""
        role = role_name or stack_role_name(self.moto, stack.name)
        ident = self.imds.identity
        ident.iam_role = role
        ident.role_credentials = {role: self.moto.assume_role(role, stack.instance_id)}
        self.role_credentials_only = True
        self.configure()
        return role

    def _credentials_env(self) -> dict[str, str]:
        if self.role_credentials_only:
            return {}
        return {"AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ACCESS_KEY_ID": self.moto.creds["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": self.moto.creds["aws_secret_access_key"]}

    def configure(self, **knobs: Any) -> None:
        """Write $FAKE_SYSTEMD_DIR/config.json; e.g. configure(docker={"fail": True},
        agent={"mode": "exit5"}). Knobs merge per top-level key with earlier calls."""
        for k, v in knobs.items():
            if isinstance(v, dict):
                self.knobs.setdefault(k, {}).update(v)
            else:
                self.knobs[k] = v
        cfg = dict(self.knobs)
        agent = {"mode": "ok", "delay": 2.0}
        agent.update(cfg.get("agent", {}))
        agent["port"] = self.agent_port
        cfg["agent"] = agent
        cfg["python"] = sys.executable
        cfg["agent_env"] = {
            "AWS_ENDPOINT_URL": self.moto.url,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.url,
            **self._credentials_env(),
            "ECS_BOOTSTRAP_ROOT": str(self.root),
            "HOME": str(self.home),
        }
        (self.systemd_dir / "config.json").write_text(json.dumps(cfg, indent=1))

    def env(self) -> dict[str, str]:
        """Environment for the binary: only 127.0.0.1 endpoints, no real AWS config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_"))}
        env.update({
            "AWS_ENDPOINT_URL": self.moto.url,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.url,
            **self._credentials_env(),
            # empty files, so no developer's ~/.aws leaks in (and the SDK has nothing to warn about)
            "AWS_CONFIG_FILE": str(self.home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "aws-credentials"),
            "ECS_BOOTSTRAP_ROOT": str(self.root),
            "FAKE_SYSTEMD_DIR": str(self.systemd_dir),
            "HOME": str(self.home),
            # fake systemctl and the Init command sandbox first; then this interpreter's dir
            # so `python3` (the fakes' shebang) is one with boto3
            "PATH": os.pathsep.join([str(HARNESS_BIN), str(SANDBOX_BIN),
                                     str(Path(sys.executable).parent),
                                     env.get("PATH", "/usr/bin:/bin")]),
        })
        if "ECS_BOOTSTRAP_BIN" in os.environ:
            env["ECS_BOOTSTRAP_BIN"] = os.environ["ECS_BOOTSTRAP_BIN"]
        return env

    # ---------------------------------------------------------------- running
    def _run(self, argv: list[str], timeout: float,
             extra_env: dict[str, str] | None = None) -> Result:
        started = time.monotonic()
        env = self.env()
        env.update(extra_env or {})
        proc = subprocess.Popen(argv, env=env, cwd=str(self.workdir),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._pgids.append(proc.pid)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            procs.kill_group(proc.pid, grace=0.5)
            out, err = proc.communicate()
        return Result(argv=argv, returncode=None if timed_out else proc.returncode,
                      stdout=out, stderr=err, timed_out=timed_out,
                      duration=time.monotonic() - started)

    def run_bootstrap(self, *args: str, timeout: float = 60.0, defaults: bool = True,
                      extra_env: dict[str, str] | None = None,
                      wrapper: list[str] | None = None) -> Result:
        """Run the binary with `args` (+ `--root ROOT --introspection-url URL` unless
        defaults=False, e.g. for --dry-run); `wrapper` is put before the binary's path (e.g. an
        `unshare` command line that ends by running its arguments)."""
        argv = [*(wrapper or []), str(bootstrap_bin()), *args]
        if defaults:
            argv += ["--root", str(self.root), "--introspection-url", self.introspection_url]
        return self._run(argv, timeout, extra_env)

    def systemctl(self, *args: str, timeout: float = 10.0) -> Result:
        return self._run([str(HARNESS_BIN / "systemctl"), *args], timeout)

    # ---------------------------------------------------------------- observation
    def calls(self) -> list[list[str]]:
        """argv of every fake systemctl invocation (excluding its internal helper)."""
        p = self.systemd_dir / "calls.jsonl"
        if not p.exists():
            return []
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        return [r["argv"] for r in rows if r["argv"][:1] != ["__supervise-ecs"]]

    def unit_states(self) -> dict[str, Any]:
        p = self.systemd_dir / "units.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def agent_log(self) -> str:
        p = self.systemd_dir / "ecs-agent.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def sandboxed_commands(self) -> list[list[str]]:
        """argv of Init commands' mkdir/chown/... calls that the sandbox shims rewrote."""
        p = self.systemd_dir / "sandboxed-commands.jsonl"
        if not p.exists():
            return []
        return [json.loads(line)["argv"] for line in p.read_text().splitlines() if line.strip()]

    def agent_config(self) -> dict[str, str] | None:
        """What the fake agent parsed out of ecs.config (None if it never read it)."""
        p = self.systemd_dir / "agent-config.json"
        return json.loads(p.read_text()) if p.exists() else None

    def path(self, abs_path: str) -> Path:
        """Where an absolute instance path lives under the test root."""
        return self.root / abs_path.lstrip("/")

    def files(self) -> list[str]:
        """All regular files and symlinks under the root, as instance paths."""
        out = []
        for dirpath, _dirs, names in os.walk(self.root):
            for n in names:
                out.append("/" + os.path.relpath(os.path.join(dirpath, n), self.root))
        return sorted(out)

    def diagnostics(self) -> str:
        return (f"--- fake systemctl calls ---\n{json.dumps(self.calls())}\n"
                f"--- units ---\n{json.dumps(self.unit_states())}\n"
                f"--- agent log ---\n{self.agent_log()}")

    # ---------------------------------------------------------------- teardown
    def close(self) -> None:
        pgids = list(self._pgids)
        p = self.systemd_dir / "ecs.pgid"
        if p.exists():
            pgids += [int(x) for x in p.read_text().split()]
        for pgid in pgids:
            procs.kill_group(pgid, grace=1.0)
        self.imds.stop()
