"""Run once: a completed bootstrap is not redone by the next invocation (reboot, UserData), a
concurrent invocation exits 0 at once, and state baked into an image from another instance does
not count."""

from __future__ import annotations

import fcntl
import json
import os
import time

import pytest

from harness.instance import bootstrap_bin

BIN = bootstrap_bin()
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"ecs-bootstrap binary not found at {BIN}")

STATE = "/var/lib/ecs-bootstrap/state.json"
LOCK = "/var/lib/ecs-bootstrap/run.lock"


def last_line(res) -> str:
    return res.stderr.strip().splitlines()[-1]


def test_second_run_is_skipped_until_forced(moto, instance, example_stack):
    stack = example_stack
    first = instance.run_bootstrap(*stack.run_args(), timeout=120)
    assert first.returncode == 0, str(first)
    state = json.loads(instance.path(STATE).read_text())
    assert (state["status"], state["signal_delivered"]) == ("SUCCESS", True), state
    calls_after_first = len(instance.calls())
    signal_calls = len(moto.requests("SignalResource"))
    config = instance.path("/etc/ecs/ecs.config")
    config.write_text("ECS_CLUSTER=changed-by-operator\n")

    second = instance.run_bootstrap(*stack.run_args(), timeout=60)
    assert second.returncode == 0, str(second)
    assert last_line(second).startswith("ecs-bootstrap: SKIPPED:"), str(second)
    assert stack.instance_id in last_line(second) and "--force" in last_line(second)
    assert len(moto.signals(stack.name)) == 1, "a skipped run must not signal"
    assert len(instance.calls()) == calls_after_first, "a skipped run must not touch services"
    assert config.read_text() == "ECS_CLUSTER=changed-by-operator\n"

    forced = instance.run_bootstrap(*stack.run_args("--force"), timeout=120)
    assert forced.returncode == 0, str(forced)
    assert "SKIPPED" not in forced.stderr
    assert config.read_text().splitlines()[0] == f"ECS_CLUSTER={stack.cluster}"
    assert len(instance.calls()) > calls_after_first
    # CloudFormation has its one signal: the state file says it was delivered, so the forced
    # run does not send another (issue 4: signal again only when the first was not delivered).
    assert "already signalled by an earlier run" in last_line(forced), str(forced)
    assert len(moto.requests("SignalResource")) == signal_calls


def test_failed_run_runs_again(moto, instance, example_stack):
    instance.configure(agent={"mode": "never"})
    res = instance.run_bootstrap(*example_stack.run_args("--timeout", "2"), timeout=60)
    assert res.returncode == 6, str(res)
    calls_after_first = len(instance.calls())
    again = instance.run_bootstrap(*example_stack.run_args("--timeout", "2"), timeout=60)
    assert "SKIPPED" not in again.stderr, str(again)
    assert again.returncode == 6, str(again)
    assert len(instance.calls()) > calls_after_first, "the second run did not start services"
    # The stack already failed: the second FAILURE is answered "cannot be signaled".
    assert [s["Status"] for s in moto.signals(example_stack.name)] == ["FAILURE"]


def test_state_of_another_instance_is_ignored(moto, instance, example_stack):
    """An AMI baked from a bootstrapped instance carries its state.json."""
    p = instance.path(STATE)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"instance_id": "i-0baked0000000000", "stack": example_stack.name,
                             "signal_resource": "ApplicationAutoscaling", "status": "SUCCESS",
                             "signal_delivered": True}))
    res = instance.run_bootstrap(*example_stack.run_args(), timeout=120)
    assert res.returncode == 0 and "SKIPPED" not in res.stderr, str(res)
    assert [s["Status"] for s in moto.signals(example_stack.name)] == ["SUCCESS"]
    assert json.loads(p.read_text())["instance_id"] == example_stack.instance_id


def test_concurrent_invocation_exits_at_once(moto, instance, example_stack):
    """UserData calling `run` while the unit's run holds the lock: exit 0 without waiting (the
    unit's run may itself be waiting for ecs.service, which waits for cloud-final)."""
    lock = instance.path(LOCK)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("4242")
        f.flush()
        started = time.monotonic()
        res = instance.run_bootstrap(*example_stack.run_args(), timeout=30)
        elapsed = time.monotonic() - started
    assert res.returncode == 0, str(res)
    assert "SKIPPED" in last_line(res) and "pid 4242" in last_line(res), str(res)
    assert elapsed < 10, f"waited {elapsed:.1f}s for the lock"
    assert instance.imds.client_requests() == [], "a skipped run must not even read IMDS"
    assert moto.signals(example_stack.name) == []
    assert not instance.path("/etc/ecs/ecs.config").exists()
    assert os.stat(lock.parent).st_mode & 0o777 == 0o700
