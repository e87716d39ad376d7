"""Run from UserData (inside cloud-final.service): the boot sequence is handed to a transient
systemd unit, because ecs.service is ordered after cloud-final and cannot start until UserData
returns. The hand-off must return at once, must not leak credentials into the unit's (world
readable) environment, and the unit must finish the job: one SUCCESS signal."""

from __future__ import annotations

import json
import os
import signal

import pytest

from harness.aws import CREDS, wait_signals
from harness.instance import bootstrap_bin
from harness.procs import wait_until

pytestmark = pytest.mark.skipif(not bootstrap_bin().exists(), reason="binary not built")


def _cgroup_file(instance, unit: str):
    p = instance.workdir / "cgroup"
    p.write_text(f"0::/system.slice/{unit}\n")
    return str(p)


def _runs(instance):
    p = instance.systemd_dir / "systemd-run.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def test_userdata_run_hands_off_and_the_unit_signals(moto, instance, example_stack):
    # Credentials reach the unit through the credentials file, never through --setenv.
    (instance.home / "aws-credentials").write_text(
        "[default]\naws_access_key_id = {aws_access_key_id}\n"
        "aws_secret_access_key = {aws_secret_access_key}\n".format(**CREDS))
    cgroup = _cgroup_file(instance, "cloud-final.service")
    res = instance.run_bootstrap(*example_stack.run_args(), timeout=30,
                                 extra_env={"ECS_BOOTSTRAP_CGROUP_FILE": cgroup})
    runs = _runs(instance)
    try:
        assert res.returncode == 0, str(res)
        assert "handed off" in res.stderr, res.stderr
        assert res.duration < 10, f"the hand-off itself must not wait ({res.duration:.1f}s)"
        assert len(runs) == 1, runs
        argv = runs[0]["argv"]
        assert "--no-block" in argv
        command = argv[argv.index("--") + 1:]
        assert command[-1] == "--foreground" and example_stack.name in command
        setenv = [a for a in argv if a.startswith("--setenv=")]
        assert any(a.startswith("--setenv=AWS_ENDPOINT_URL=") for a in setenv), setenv
        assert not [a for a in setenv if "SECRET" in a or "ACCESS_KEY" in a], setenv

        sigs = wait_signals(moto, example_stack.name, 1, timeout=60)
        assert [(s["Status"], s["UniqueId"]) for s in sigs] == [
            ("SUCCESS", example_stack.instance_id)], sigs
        exit_file = instance.systemd_dir / "ecs-bootstrap-boot.exit"
        wait_until(exit_file.exists, timeout=30, what="the transient unit to finish")
        assert exit_file.read_text() == "0", (instance.systemd_dir / "ecs-bootstrap-boot.log").read_text()
        assert instance.path("/etc/ecs/ecs.config").read_text().startswith(
            f"ECS_CLUSTER={example_stack.cluster}\n")
    finally:
        for r in runs:
            try:
                os.killpg(r["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_foreground_and_other_units_do_not_hand_off(moto, instance, example_stack):
    # --foreground stays here even under cloud-final ...
    cgroup = _cgroup_file(instance, "cloud-final.service")
    res = instance.run_bootstrap(*example_stack.run_args("--no-signal", "--foreground"),
                                 timeout=60, extra_env={"ECS_BOOTSTRAP_CGROUP_FILE": cgroup})
    assert res.returncode == 0, str(res)
    # ... and so does a run from any other unit (the systemd unit, a shell).
    cgroup = _cgroup_file(instance, "ecs-bootstrap.service")
    res = instance.run_bootstrap(*example_stack.run_args("--no-signal"), timeout=60,
                                 extra_env={"ECS_BOOTSTRAP_CGROUP_FILE": cgroup})
    assert res.returncode == 0, str(res)
    assert _runs(instance) == []
    assert "handed off" not in res.stderr
