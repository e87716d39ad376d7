"""Run from UserData (inside cloud-final.service): the instance is configured in the foreground,
then starting the services, the join and the signal are handed to a transient systemd unit,
because ecs.service is ordered after cloud-final and cannot start until UserData returns.

ecs.config must be complete when UserData returns (the real ecs.service starts right then: an
agent started on a default config registers into the `default` cluster for good); the hand-off
must not wait for the agent, must not leak credentials into the unit's (world readable)
environment, and the unit must finish the job: one SUCCESS signal."""

from __future__ import annotations

import json
import os
import signal

import pytest

from harness.aws import CREDS, example_template, wait_signals
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
    # Sensitive variables the SDK or a proxy-only VPC may need: never on the command line.
    sensitive = {"AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-token-secret",
                 "AWS_SECURITY_TOKEN": "legacy-token-secret",
                 "HTTPS_PROXY": "http://user:proxy-pw-secret@127.0.0.1:9/",
                 "NO_PROXY": "127.0.0.1,localhost"}
    res = instance.run_bootstrap(*example_stack.run_args(), timeout=30,
                                 extra_env={"ECS_BOOTSTRAP_CGROUP_FILE": cgroup, **sensitive})
    runs = _runs(instance)
    try:
        assert res.returncode == 0, str(res)
        assert "handed off" in res.stderr, res.stderr
        assert res.duration < 10, f"the hand-off itself must not wait ({res.duration:.1f}s)"
        # The race this ordering exists for: when UserData returns, cloud-final ends and the
        # real ecs.service starts. Its config must already be there, and nothing started yet.
        assert instance.path("/etc/ecs/ecs.config").read_text().startswith(
            f"ECS_CLUSTER={example_stack.cluster}\n"), "UserData returned before ecs.config"
        assert len(runs) == 1, runs
        # Every systemctl call is the unit's: the UserData process started nothing itself.
        calls_file = instance.systemd_dir / "calls.jsonl"
        early = [row for row in map(json.loads, calls_file.read_text().splitlines())
                 if row["t"] < runs[0]["t"]] if calls_file.exists() else []
        assert early == [], early
        argv = runs[0]["argv"]
        assert "--no-block" in argv
        command = argv[argv.index("--") + 1:]
        assert command[-2:] == ["--foreground", "--after-handoff"], command
        assert example_stack.name in command
        setenv = [a for a in argv if a.startswith("--setenv=")]
        assert any(a.startswith("--setenv=AWS_ENDPOINT_URL=") for a in setenv), setenv
        assert not [a for a in setenv if "SECRET" in a or "ACCESS_KEY" in a], setenv
        assert not [a for a in argv if "secret" in a], argv

        sigs = wait_signals(moto, example_stack.name, 1, timeout=60)
        assert [(s["Status"], s["UniqueId"]) for s in sigs] == [
            ("SUCCESS", example_stack.instance_id)], sigs
        exit_file = instance.systemd_dir / "ecs-bootstrap-boot.exit"
        wait_until(exit_file.exists, timeout=30, what="the transient unit to finish")
        unit_log = (instance.systemd_dir / "ecs-bootstrap-boot.log").read_text()
        assert exit_file.read_text() == "0", unit_log
        assert "resuming the boot sequence handed off" in unit_log, unit_log
        # The unit resumed from the hand-off file instead of reading the stack again ...
        reads = [r for r in moto.requests("DescribeStackResource")
                 if r["params"].get("StackName") == example_stack.name]
        assert len(reads) == 1, reads
        # ... and consumed it.
        assert not instance.path("/var/lib/ecs-bootstrap/handoff.json").exists()
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


def test_userdata_configuration_failure_signals_from_userdata(moto, instance, make_stack):
    # A broken Init fails before anything is handed off: UserData itself says FAILURE.
    body = example_template("stack.yml").replace(
        "          commands:\n", "          commands:\n            00_broken:\n"
        "              command: echo no >&2; exit 4\n", 1)
    stack = make_stack(body)
    cgroup = _cgroup_file(instance, "cloud-final.service")
    res = instance.run_bootstrap(*stack.run_args(), timeout=30,
                                 extra_env={"ECS_BOOTSTRAP_CGROUP_FILE": cgroup})
    assert res.returncode == 4, str(res)
    assert _runs(instance) == [], "a failed configuration must not be handed off"
    sigs = wait_signals(moto, stack.name, 1, timeout=5)
    assert [s["Status"] for s in sigs] == ["FAILURE"], sigs
    assert "FAILURE" in res.stderr and "00_broken" in res.stderr, res.stderr
    assert not instance.path("/var/lib/ecs-bootstrap/handoff.json").exists()


def test_failed_hand_off_signals_failure_naming_systemd_run(moto, instance, example_stack):
    cgroup = _cgroup_file(instance, "cloud-final.service")
    res = instance.run_bootstrap(*example_stack.run_args(), timeout=30,
                                 extra_env={"ECS_BOOTSTRAP_CGROUP_FILE": cgroup,
                                            "FAKE_SYSTEMD_RUN_FAIL": "1"})
    assert res.returncode == 5, str(res)
    sigs = wait_signals(moto, example_stack.name, 1, timeout=5)
    assert [s["Status"] for s in sigs] == ["FAILURE"], sigs
    line = [x for x in res.stderr.splitlines() if x.startswith("ecs-bootstrap: FAILURE")]
    assert line and "systemd-run" in line[0] and "already loaded" in line[0], res.stderr
    assert not instance.path("/var/lib/ecs-bootstrap/handoff.json").exists()


def test_resume_without_a_hand_off_is_a_clear_error(moto, instance, example_stack):
    res = instance.run_bootstrap(*example_stack.run_args(), "--foreground", "--after-handoff",
                                 timeout=30)
    assert res.returncode == 2, str(res)
    assert "nothing was handed off" in res.stderr and "handoff.json" in res.stderr, res.stderr
    # Every way out of a run, this one too, ends with its one structured run event.
    runs = [json.loads(line) for line in res.stderr.splitlines()
            if line.startswith('{"event":"ecs-bootstrap.run"')]
    assert [(r["status"], r["failed_phase"]) for r in runs] == [("FAILURE", "hand-off")], runs
    assert wait_signals(moto, example_stack.name, 1, timeout=0.5) == []
