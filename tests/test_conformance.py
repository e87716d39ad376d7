"""cfn-init conformance suite: `ecs-bootstrap init --root R metadata.json`, one case per directory.

tests/conformance/cases/<name>/
  metadata.json   the resource's Metadata (with `AWS::CloudFormation::Init`). `{root}`, `{bin}`
                  and `{tmp}` are replaced by the test root, the fakes' directory and the case's
                  scratch directory.
  world.json      optional: what the fakes report as installed/existing (see
                  conformance/fake_tool.py), `files` already under the root before the run
                  ({"/etc/x": {"content": "...", "mode": "0640"}}), and `missing_tools` (fakes
                  not put on PATH).
  expect.json     {"args": [...extra init args...], "stdin": false,
                   "exit_code": 0, "stderr_contains": ["..."], "stderr_excludes": ["..."],
                   "files": {"/path": {"content": "..." | "content_json": {...} |
                             "content_base64": "...", "mode": "0644", "owner": "root",
                             "group": "root", "symlink": "target", "absent": true}},
                   "calls": [["argv", ...] | {"argv": [...], "env": {...}, "env_absent": [...],
                             "cwd": "..."}],       # every fake call, in order, exactly
                   "world": {...},                  # subset of the fakes' state afterwards
                   "record": {...}}                 # subset of /var/lib/ecs-bootstrap/init.json
Every tool the engine runs (package managers, getent/groupadd/useradd/usermod, systemctl,
chkconfig/service) is the recording fake, first on PATH; Init commands call `record` to log
their argv, cwd and environment.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest

from harness.aws import REPO_ROOT
from harness.instance import bootstrap_bin

CASES = REPO_ROOT / "tests" / "conformance" / "cases"
FAKE = REPO_ROOT / "tests" / "conformance" / "fake_tool.py"
TOOLS = ["yum", "dnf", "zypper", "rpm", "apt-get", "dpkg-query", "pip3", "gem", "getent",
         "groupadd", "useradd", "usermod", "systemctl", "chkconfig", "service", "record"]


def binary() -> str:
    return str(bootstrap_bin())


def substitute(value, subs: dict[str, str]):
    if isinstance(value, str):
        for k, v in subs.items():
            value = value.replace(k, v)
        return value
    if isinstance(value, list):
        return [substitute(v, subs) for v in value]
    if isinstance(value, dict):
        return {substitute(k, subs): substitute(v, subs) for k, v in value.items()}
    return value


def subset(want, got, where="world") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        errs = []
        for k, v in want.items():
            if k not in got:
                errs.append(f"{where}.{k}: missing (have {sorted(got)})")
            else:
                errs.extend(subset(v, got[k], f"{where}.{k}"))
        return errs
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [e for i, (w, g) in enumerate(zip(want, got)) for e in subset(w, g, f"{where}[{i}]")]
    return [] if want == got else [f"{where}: expected {want!r}, got {got!r}"]


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "expect.json").exists())


class Case:
    def __init__(self, name: str, tmp: Path):
        self.dir = CASES / name
        self.tmp = tmp
        self.root = tmp / "root"
        self.bin = tmp / "bin"
        self.root.mkdir()
        self.bin.mkdir()
        # `~` in a command's cwd: the home of the user running ecs-bootstrap, kept under the root.
        self.home = self.root / "root"
        self.home.mkdir()
        self.subs = {"{root}": str(self.root), "{bin}": str(self.bin), "{tmp}": str(tmp)}
        self.expect = substitute(json.loads((self.dir / "expect.json").read_text()), self.subs)
        world_file = self.dir / "world.json"
        world = json.loads(world_file.read_text()) if world_file.exists() else {}
        world = substitute(world, self.subs)
        missing = world.pop("missing_tools", [])
        for t in TOOLS:
            if t not in missing:
                (self.bin / t).symlink_to(FAKE)
        for path, spec in world.pop("files", {}).items():
            p = self.host(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(spec.get("content", ""))
            os.chmod(p, int(spec.get("mode", "0644"), 8))
        self.world = tmp / "world.json"
        self.world.write_text(json.dumps(world))
        self.log = tmp / "calls.jsonl"
        self.metadata = tmp / "metadata.json"
        self.metadata.write_text(substitute((self.dir / "metadata.json").read_text(), self.subs))

    def host(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def run(self) -> subprocess.CompletedProcess:
        env = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "HOME": str(self.home),
            "FAKE_WORLD": str(self.world),
            "FAKE_LOG": str(self.log),
            "AWS_EC2_METADATA_DISABLED": "true",
            "ECS_BOOTSTRAP_LOG": "info",
        }
        stdin = self.expect.get("stdin", False)
        args = [binary(), "init", "--root", str(self.root), *self.expect.get("args", [])]
        args.append("-" if stdin else str(self.metadata))
        return subprocess.run(
            args,
            input=self.metadata.read_text() if stdin else None,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.tmp,
            timeout=120,
        )

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.mark.parametrize("name", case_names())
def test_case(name, tmp_path):
    case = Case(name, tmp_path)
    r = case.run()
    e = case.expect
    calls = case.calls()
    report = (
        f"\n--- exit {r.returncode}\n--- stderr:\n{r.stderr}\n--- calls:\n"
        + "\n".join(" ".join(c["argv"]) for c in calls)
    )
    errors: list[str] = []

    if r.returncode != e.get("exit_code", 0):
        errors.append(f"exit code {r.returncode}, expected {e.get('exit_code', 0)}")
    for s in e.get("stderr_contains", []):
        if s not in r.stderr:
            errors.append(f"stderr lacks {s!r}")
    for s in e.get("stderr_excludes", []):
        if s in r.stderr:
            errors.append(f"stderr contains {s!r}")

    for path, want in e.get("files", {}).items():
        p = case.host(path)
        if want.get("absent"):
            if os.path.lexists(p):
                errors.append(f"{path}: exists, expected absent")
            continue
        if not os.path.lexists(p):
            errors.append(f"{path}: missing")
            continue
        st = os.lstat(p)
        if "symlink" in want:
            if not stat.S_ISLNK(st.st_mode):
                errors.append(f"{path}: not a symlink")
            elif os.readlink(p) != want["symlink"]:
                errors.append(f"{path}: links to {os.readlink(p)!r}, expected {want['symlink']!r}")
            continue
        data = p.read_bytes()
        if "content" in want and data.decode(errors="replace") != want["content"]:
            errors.append(f"{path}: content {data!r}, expected {want['content']!r}")
        if "content_json" in want and json.loads(data) != want["content_json"]:
            errors.append(f"{path}: JSON {data!r}, expected {want['content_json']!r}")
        if "content_base64" in want and data != base64.b64decode(want["content_base64"]):
            errors.append(f"{path}: bytes {data!r} differ from content_base64")
        if "mode" in want and f"{stat.S_IMODE(st.st_mode):04o}" != want["mode"]:
            errors.append(f"{path}: mode {stat.S_IMODE(st.st_mode):04o}, expected {want['mode']}")
        if "owner" in want and pwd.getpwuid(st.st_uid).pw_name != want["owner"]:
            errors.append(f"{path}: owner {pwd.getpwuid(st.st_uid).pw_name}, expected {want['owner']}")
        if "group" in want and grp.getgrgid(st.st_gid).gr_name != want["group"]:
            errors.append(f"{path}: group {grp.getgrgid(st.st_gid).gr_name}, expected {want['group']}")

    if "calls" in e:
        want_calls = [c if isinstance(c, dict) else {"argv": c} for c in e["calls"]]
        got_argv = [c["argv"] for c in calls]
        if got_argv != [c["argv"] for c in want_calls]:
            errors.append(
                "calls differ:\n  expected: "
                + "\n            ".join(" ".join(c["argv"]) for c in want_calls)
                + "\n  got:      "
                + "\n            ".join(" ".join(a) for a in got_argv)
            )
        else:
            for want, got in zip(want_calls, calls):
                line = " ".join(want["argv"])
                for k, v in want.get("env", {}).items():
                    if got["env"].get(k) != v:
                        errors.append(f"`{line}`: env {k}={got['env'].get(k)!r}, expected {v!r}")
                for k in want.get("env_absent", []):
                    if k in got["env"]:
                        errors.append(f"`{line}`: env has {k}={got['env'][k]!r}, expected absent")
                if "cwd" in want and got["cwd"] != want["cwd"]:
                    errors.append(f"`{line}`: cwd {got['cwd']!r}, expected {want['cwd']!r}")

    if "world" in e:
        errors.extend(subset(e["world"], json.loads(case.world.read_text())))

    if "record" in e:
        rec = case.host("/var/lib/ecs-bootstrap/init.json")
        if not rec.exists():
            errors.append("no /var/lib/ecs-bootstrap/init.json")
        else:
            if stat.S_IMODE(rec.stat().st_mode) != 0o600:
                errors.append(f"init.json mode {stat.S_IMODE(rec.stat().st_mode):04o}, expected 0600")
            if stat.S_IMODE(rec.parent.stat().st_mode) != 0o700:
                errors.append(f"{rec.parent} mode {stat.S_IMODE(rec.parent.stat().st_mode):04o}, expected 0700")
            errors.extend(subset(e["record"], json.loads(rec.read_text()), "record"))

    assert not errors, "\n".join(errors) + report


def test_every_case_is_complete():
    """A case without an expectation of its outcome would pass whatever the binary did."""
    for name in case_names():
        e = json.loads((CASES / name / "expect.json").read_text())
        assert "calls" in e or "files" in e or "stderr_contains" in e or "world" in e or "record" in e, name
        assert (CASES / name / "metadata.json").exists(), name
