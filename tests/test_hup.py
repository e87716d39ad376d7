"""End to end: `ecs-bootstrap hup` (cfn-hup) against moto, with a classic cfn-hup.conf and
hooks.conf written under the test root. The stack's Metadata is changed with UpdateStack, as a
stack update does; actions append their CFN_* environment to a log file in the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from harness import procs
from harness.aws import example_template
from harness.instance import bootstrap_bin

BIN = bootstrap_bin()
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"ecs-bootstrap binary not found at {BIN}")

LC = "ApplicationAutoscalingLaunchConfiguration"
STATE = "/var/lib/ecs-bootstrap/hup/state.json"


def template(app: str | None = "1", extra: bool = True) -> str:
    """The example stack with App/Other/Extra keys in the launch configuration's Metadata."""
    keys = ""
    if app is not None:
        keys += f"      App:\n        version: '{app}'\n"
    keys += "      Other:\n        x: 1\n"
    if extra:
        keys += "      Extra:\n        y: 1\n"
    body = example_template("stack.yml")
    anchor = f"  {LC}:\n    Type: AWS::AutoScaling::LaunchConfiguration\n    Metadata:\n"
    assert anchor in body
    return body.replace(anchor, anchor + keys, 1)


def update(moto, stack, app: str | None = "1", extra: bool = True) -> None:
    """The stack's launch configuration Metadata as a stack update would leave it. moto's
    UpdateStack cannot update this stack (it replaces the launch configuration, then looks the
    group up by a wrong name), so the double's DescribeStackResource answers are patched
    instead (harness/moto_server.py, the `metadata` rule)."""
    cfn = moto.client("cloudformation")
    detail = cfn.describe_stack_resource(StackName=stack.name, LogicalResourceId=LC)
    meta = json.loads(detail["StackResourceDetail"]["Metadata"])
    meta.pop("App", None)
    meta.pop("Extra", None)
    if app is not None:
        meta["App"] = {"version": app}
    if extra:
        meta["Extra"] = {"y": 1}
    moto.set_faults([{"action": "DescribeStackResource", "metadata": json.dumps(meta)}])


class Hup:
    """cfn-hup.conf + hooks.conf under the instance's root; runs and observes `hup`."""

    def __init__(self, instance, stack, tmp_path):
        self.instance = instance
        self.log = tmp_path / "actions.log"
        self.conf = instance.path("/etc/cfn")
        (self.conf / "hooks.d").mkdir(parents=True)
        (self.conf / "cfn-hup.conf").write_text(
            f"[main]\nstack={stack.stack_id}\nregion={stack.region}\ninterval=1\n")

    def hooks(self, text: str) -> None:
        (self.conf / "hooks.conf").write_text(text)

    def hook(self, name: str, triggers: str, key: str, action: str | None = None) -> str:
        action = action or f'echo "{name}|$CFN_OLD_METADATA|$CFN_NEW_METADATA" >> {self.log}'
        return (f"[{name}]\ntriggers={triggers}\npath=Resources.{LC}.Metadata.{key}\n"
                f"action={action}\nrunas=\n")

    def once(self, *extra: str):
        res = self.instance._run([str(BIN), "hup", "--once", "--root", str(self.instance.root),
                                  *extra], 60)
        assert res.returncode == 0, str(res)
        return res

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def state(self) -> dict:
        return json.loads(self.instance.path(STATE).read_text())


@pytest.fixture
def hup(moto, instance, make_stack, tmp_path):
    stack = make_stack(template())
    yield stack, Hup(instance, stack, tmp_path)
    moto.set_faults([])


def test_add_then_update_of_the_changed_path_then_remove(moto, hup):
    stack, h = hup
    h.hooks(h.hook("app", "post.add, post.update", "App")
            + h.hook("other", "post.update", "Other")
            + h.hook("gone", "post.remove", "Extra"))
    # First poll: post.add fires; post.update and post.remove only record.
    h.once()
    assert h.lines() == ['app||{"version": "1"}']
    state = h.state()["metadata"]
    assert state[f"app|Resources.{LC}.Metadata.App"] == {"version": "1"}
    assert state[f"other|Resources.{LC}.Metadata.Other"] == {"x": 1}
    # No change, new process: the state survived, nothing fires again.
    h.once()
    assert len(h.lines()) == 1
    # App changes: post.update with old and new, and only for App.
    update(moto, stack, app="2")
    h.once()
    assert h.lines()[1:] == ['app|{"version": "1"}|{"version": "2"}']
    # Extra disappears: post.remove with the old value only.
    update(moto, stack, app="2", extra=False)
    h.once()
    assert h.lines()[2:] == ['gone|{"y": 1}|']
    # One DescribeStackResource per resource per poll (four polls, one resource).
    calls = [r for r in moto.requests("DescribeStackResource")
             if r["params"].get("StackName") == stack.stack_id]
    assert len(calls) == 4, calls


def test_a_failing_action_is_retried_with_backoff_and_visible_in_the_state(hup, tmp_path):
    _stack, h = hup
    marker = tmp_path / "may-succeed"
    h.hooks(h.hook("app", "post.add", "App",
                   f'test -f {marker} && echo "ok|$CFN_NEW_METADATA" >> {h.log}'))
    h.once("--interval-seconds", "1")
    failure = h.state()["failures"][f"app|Resources.{LC}.Metadata.App"]
    assert failure["exit_code"] == 1 and failure["attempts"] == 1, failure
    assert failure["next_try_unix"] == failure["last_failure_unix"] + 1, failure
    assert f"app|Resources.{LC}.Metadata.App" not in h.state()["metadata"]
    # Still failing on the next poll: counted, backoff doubled.
    time.sleep(1.1)
    h.once("--interval-seconds", "1")
    failure = h.state()["failures"][f"app|Resources.{LC}.Metadata.App"]
    assert failure["attempts"] == 2, failure
    assert failure["next_try_unix"] == failure["last_failure_unix"] + 2, failure
    # Within the backoff: not run (the log says so), even though it would now succeed.
    marker.touch()
    res = h.once("--interval-seconds", "100")
    assert "backing off" in res.stderr, str(res)
    assert h.lines() == []
    time.sleep(2.1)
    h.once("--interval-seconds", "1")
    assert h.lines() == ['ok|{"version": "1"}']
    state = h.state()
    assert state["failures"] == {}
    assert state["metadata"][f"app|Resources.{LC}.Metadata.App"] == {"version": "1"}


def test_a_throttled_poll_recovers(moto, hup):
    stack, h = hup
    h.hooks(h.hook("app", "post.add", "App"))
    moto.set_faults([{"action": "DescribeStackResource", "status": 400, "code": "Throttling",
                      "message": "Rate exceeded", "times": 2}])
    try:
        h.once()
    finally:
        moto.set_faults([])
    assert h.lines() == ['app||{"version": "1"}']
    faulted = [r for r in moto.requests("DescribeStackResource")
               if r.get("fault") and r["params"].get("StackName") == stack.stack_id]
    assert len(faulted) == 2, faulted


def test_cfn_hup_name_flags_and_config_errors(instance, hup, tmp_path):
    _stack, h = hup
    h.hooks(h.hook("app", "post.add", "App"))
    link = tmp_path / "bin" / "cfn-hup"
    link.parent.mkdir()
    link.symlink_to(BIN.resolve())
    res = instance._run([str(link), "--no-daemon", "-c", "/etc/cfn", "--root",
                         str(instance.root), "-v"], 60)
    assert res.returncode == 0, str(res)
    assert h.lines() == ['app||{"version": "1"}']
    # cfn-hup exits 1 on a configuration it cannot use, naming the problem.
    res = instance._run([str(link), "--no-daemon", "-c", "/etc/nope", "--root",
                         str(instance.root)], 60)
    assert res.returncode == 1 and "Could not find configuration at" in res.stderr, str(res)
    (h.conf / "hooks.conf").write_text("[app]\ntriggers=post.add\n")
    res = instance._run([str(BIN), "hup", "--once", "--root", str(instance.root)], 60)
    assert res.returncode == 1 and "No valid hooks found" in res.stderr, str(res)
    # interval is checked in daemon mode only, as in cfn-hup.
    h.hooks(h.hook("app", "post.add", "App"))
    (h.conf / "cfn-hup.conf").write_text(f"[main]\nstack={_stack.name}\ninterval=0\n")
    h.once()
    res = instance._run([str(BIN), "hup", "--root", str(instance.root)], 60)
    assert res.returncode == 1 and "Invalid interval" in res.stderr, str(res)


def test_daemon_applies_a_change_within_an_interval_and_stops_cleanly(moto, instance, hup):
    stack, h = hup
    started = h.log.with_name("started")
    h.hooks(h.hook("app", "post.add, post.update", "App",
                   f'echo "$CFN_NEW_METADATA" > {started}; sleep 2; '
                   f'echo "app|$CFN_OLD_METADATA|$CFN_NEW_METADATA" >> {h.log}'))
    interval = 2
    proc = subprocess.Popen([str(BIN), "hup", "--root", str(instance.root),
                             "--interval-seconds", str(interval)],
                            env=instance.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    instance._pgids.append(proc.pid)
    try:
        # The first poll is within the first interval; the action takes 2 s.
        procs.wait_until(lambda: h.lines(), timeout=interval + 2 + 5, what="post.add")
        assert h.lines() == ['app||{"version": "1"}']
        update(moto, stack, app="2")
        changed = time.monotonic()
        procs.wait_until(lambda: started.exists() and "2" in started.read_text(),
                         timeout=interval * 1.1 + 3, what="post.update started")
        assert time.monotonic() - changed <= interval * 1.1 + 3
        # SIGTERM during the action: it is waited for, the state saved, exit 0.
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert h.lines()[1:] == ['app|{"version": "1"}|{"version": "2"}'], err
        assert h.state()["metadata"][f"app|Resources.{LC}.Metadata.App"] == {"version": "2"}
        assert "stopped" in err, err
    finally:
        if proc.poll() is None:
            procs.kill_group(proc.pid)
            proc.communicate()
    # Idle, a SIGTERM ends it at once (not at the next poll).
    proc = subprocess.Popen([str(BIN), "hup", "--root", str(instance.root),
                             "--interval-seconds", "600"], env=instance.env(),
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    instance._pgids.append(proc.pid)
    time.sleep(1.0)
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and time.monotonic() - t < 3, err
    assert os.path.exists(instance.path(STATE))


# ------------------------------------------------------------------------------------------
# zero-config: no cfn-hup.conf; the launch resource of the boot run, its two blocks
# ------------------------------------------------------------------------------------------

INIT = "AWS::CloudFormation::Init"
MOTD = "/etc/ecs-bootstrap/motd"
ECS_CONFIG = "/etc/ecs/ecs.config"


def patch_metadata(moto, stack, change) -> None:
    """The launch configuration's Metadata as a stack update would leave it, `change(meta)`
    applied (the double's answers are patched: see `update`)."""
    cfn = moto.client("cloudformation")
    detail = cfn.describe_stack_resource(StackName=stack.name, LogicalResourceId=LC)
    meta = json.loads(detail["StackResourceDetail"]["Metadata"])
    change(meta)
    moto.set_faults([{"action": "DescribeStackResource", "metadata": json.dumps(meta)}])


class Zero:
    """A booted instance (the example stack, `run`), then `hup --once` without cfn-hup.conf."""

    def __init__(self, instance, stack):
        self.instance, self.stack = instance, stack
        res = instance.run_bootstrap(*stack.run_args(), timeout=120)
        assert res.returncode == 0, str(res)
        assert not instance.path("/etc/cfn/cfn-hup.conf").exists()
        self.booted_calls = len(instance.calls())

    def once(self):
        res = self.instance._run([str(BIN), "hup", "--once", "--root",
                                  str(self.instance.root)], 120)
        assert res.returncode == 0, str(res)
        return res

    def key(self, block: str) -> str:
        return f"ecs-bootstrap|{block}@{self.stack.name}/{LC}"

    def state(self) -> dict:
        return json.loads(self.instance.path(STATE).read_text())

    def hup_calls(self) -> list[list[str]]:
        """The fake systemctl calls made since the boot run."""
        return self.instance.calls()[self.booted_calls:]


def restarted(calls: list[list[str]], unit: str) -> bool:
    return any(a and a[0] in ("restart", "try-restart") and
               any(x in (unit, f"{unit}.service") for x in a[1:]) for a in calls)


@pytest.fixture
def zero(moto, instance, make_stack):
    stack = make_stack(example_template("stack.yml"))
    yield Zero(instance, stack)
    moto.set_faults([])


def test_zero_config_after_a_boot_records_without_acting(zero):
    motd = zero.instance.path(MOTD).read_text()
    ecs = zero.instance.path(ECS_CONFIG).read_text()
    res = zero.once()
    assert "zero-config" in res.stderr, str(res)
    meta = zero.state()["metadata"]
    for block in (INIT, "ecs-bootstrap"):
        assert meta[zero.key(block)].startswith("sha256:"), meta
    # The boot's own values (launch.json's digests): nothing re-applied, nothing restarted.
    launch = json.loads(zero.instance.path("/var/lib/ecs-bootstrap/launch.json").read_text())
    assert (launch["init"], launch["settings"]) == (
        meta[zero.key(INIT)], meta[zero.key("ecs-bootstrap")]), launch
    assert "applying" not in res.stderr, str(res)
    assert zero.hup_calls() == []
    assert zero.instance.path(MOTD).read_text() == motd
    assert zero.instance.path(ECS_CONFIG).read_text() == ecs
    assert zero.state()["failures"] == {}


def test_zero_config_an_init_change_reruns_init(moto, zero):
    # Changed between the boot and the daemon's first poll: compared with what the boot applied.
    def change(meta):
        meta[INIT]["config"]["files"][MOTD]["content"] = "changed by a stack update\n"
    patch_metadata(moto, zero.stack, change)
    res = zero.once()
    assert zero.instance.path(MOTD).read_text() == "changed by a stack update\n", str(res)
    # Only Init changed: the agent is left alone.
    assert not restarted(zero.hup_calls(), "ecs"), zero.hup_calls()
    # Applied once: the next poll sees no change.
    zero.instance.path(MOTD).write_text("local edit\n")
    zero.once()
    assert zero.instance.path(MOTD).read_text() == "local edit\n"


def test_zero_config_a_settings_change_rewrites_ecs_config_and_restarts_ecs_only(moto, zero):
    zero.once()

    def change(meta):
        meta["ecs-bootstrap"]["AgentConfig"]["ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION"] = "1h"
    patch_metadata(moto, zero.stack, change)
    res = zero.once()
    text = zero.instance.path(ECS_CONFIG).read_text()
    assert "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=1h" in text.splitlines(), text
    assert text.splitlines()[0] == f"ECS_CLUSTER={zero.stack.cluster}", text
    calls = zero.hup_calls()
    assert restarted(calls, "ecs"), f"{calls}\n{res}"
    # Its fragment did not change: the CloudWatch agent is not restarted.
    assert not restarted(calls, "amazon-cloudwatch-agent"), calls
    assert zero.state()["failures"] == {}


def test_zero_config_a_cluster_change_is_refused(moto, zero):
    zero.once()
    ecs = zero.instance.path(ECS_CONFIG).read_text()
    old = zero.stack.cluster

    def change(meta):
        meta["ecs-bootstrap"]["Cluster"] = "another-cluster"
        meta["ecs-bootstrap"]["AgentConfig"]["ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION"] = "1h"
    patch_metadata(moto, zero.stack, change)
    res = zero.once()
    assert any("ERROR" in line and old in line and "another-cluster" in line
               for line in res.stderr.splitlines()), str(res)
    assert zero.instance.path(ECS_CONFIG).read_text() == ecs
    assert zero.hup_calls() == []
    failure = zero.state()["failures"][zero.key("ecs-bootstrap")]
    assert "another-cluster" in failure["reason"] and failure["attempts"] == 1, failure
