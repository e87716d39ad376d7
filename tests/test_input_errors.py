"""Bad input in a local template's Metadata is named by its key path and by the file:line it is
written at (src/input.rs, issue #11): the dry run of a template, without AWS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.instance import bootstrap_bin

pytestmark = pytest.mark.skipif(not bootstrap_bin().exists(), reason="binary not built")

TEMPLATE = """\
Resources:
  LT:
    Type: AWS::EC2::LaunchTemplate
    Metadata:
      ecs-bootstrap:
        Cluster: c
        Timeout: {timeout}
      AWS::CloudFormation::Init:
        config:
          files:
            /etc/x.conf:
              content: x
              {mode_key}: '000644'
  ASG:
    Type: AWS::AutoScaling::AutoScalingGroup
"""


def dry_run(tmp_path: Path, *args: str, timeout="600", mode_key="mode"):
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE.format(timeout=timeout, mode_key=mode_key))
    return subprocess.run(
        [str(bootstrap_bin()), "--dry-run", "--template", str(path), "--resource", "LT",
         "--signal-resource", "ASG", "--root", str(tmp_path / "root"), *args],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true"})


def test_a_bad_settings_value_is_named_at_its_line(tmp_path):
    res = dry_run(tmp_path, timeout="ten")
    assert res.returncode == 3, res
    assert f"{tmp_path / 'template.yaml'}:7: ecs-bootstrap.Timeout: must be a whole number" \
        in res.stderr, res.stderr


def test_an_unknown_init_key_under_strict_is_named_at_its_line(tmp_path):
    res = dry_run(tmp_path, "--strict", mode_key="mod")
    assert res.returncode == 3, res
    assert (f"{tmp_path / 'template.yaml'}:13: AWS::CloudFormation::Init.config.files."
            "/etc/x.conf.mod: unknown key 'mod' (did you mean 'mode'?)") in res.stderr, res.stderr
    # Without --strict it is a warning, as cfn-init ignores it.
    assert dry_run(tmp_path, mode_key="mod").returncode == 0
