"""Zero-config: `run` without --stack/--resource/--signal-resource discovers them.

Launch template stack (instance metadata tags enabled): from IMDS tags, no Auto Scaling call.
Launch configuration stack (no IMDS tags): autoscaling:DescribeAutoScalingInstances, then
cloudformation:DescribeStackResources by PhysicalResourceId. Failures name the flags to pass.
"""

from __future__ import annotations

import json

import pytest

from harness.instance import bootstrap_bin

BIN = bootstrap_bin()
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"ecs-bootstrap binary not found at {BIN}")

ASG = "ApplicationAutoscaling"
FLAGS = ("--stack", "--resource", "--signal-resource")


def asg_calls(moto, instance_id: str) -> list[dict]:
    return [r for r in moto.requests("DescribeAutoScalingInstances")
            if instance_id in json.dumps(r["params"])]


def discovered_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "discovered" in ln]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("variant,launch_type,how", [
    ("stack.yml", "LaunchConfiguration", "DescribeAutoScalingInstances"),
    ("stack-launch-template.yml", "LaunchTemplate", "instance metadata tags"),
])
def test_run_without_flags_discovers_the_stack(moto, instance, make_stack, variant,
                                               launch_type, how):
    from harness.aws import example_template

    stack = make_stack(example_template(variant))
    assert launch_type in stack.launch_resource
    assert stack.metadata_tags_enabled == (launch_type == "LaunchTemplate")

    res = instance.run_bootstrap("run", "--region", stack.region, timeout=120)
    assert res.returncode == 0 and not res.timed_out, str(res)

    sigs = moto.signals(stack.name)
    assert [(s["Status"], s["LogicalResourceId"], s["UniqueId"]) for s in sigs] == [
        ("SUCCESS", ASG, stack.instance_id)], f"{sigs}\n{res}"
    assert instance.agent_config()["ECS_CLUSTER"] == stack.cluster

    line = discovered_line(res.stderr)
    for word in (stack.name, stack.launch_resource, ASG, how):
        assert word in line, f"{word!r} not in the discovery log line: {line}"
    # The tags path makes no Auto Scaling call; the other one exactly one.
    assert len(asg_calls(moto, stack.instance_id)) == (0 if launch_type == "LaunchTemplate" else 1)


def test_given_stack_only_discovers_the_rest(moto, instance, example_stack):
    stack = example_stack
    res = instance.run_bootstrap("run", "--stack", stack.name, "--region", stack.region,
                                 timeout=120)
    assert res.returncode == 0, str(res)
    assert [s["LogicalResourceId"] for s in moto.signals(stack.name)] == [ASG]
    assert stack.launch_resource in discovered_line(res.stderr)


def test_no_permission_names_the_flags(moto, instance, example_stack):
    """No IMDS tags (launch configuration) and the role may not call Auto Scaling."""
    moto.set_faults([{"service": "autoscaling", "action": "DescribeAutoScalingInstances",
                      "status": 403, "code": "AccessDenied",
                      "message": "not authorized to perform: autoscaling:DescribeAutoScalingInstances"}])
    try:
        res = instance.run_bootstrap("run", "--region", example_stack.region, timeout=60)
    finally:
        moto.set_faults([])
    assert res.returncode == 2, str(res)
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ecs-bootstrap: FAILURE at stack discovery"), last
    for part in ("AccessDenied", "tags/instance", *FLAGS):
        assert part in last, f"{part!r} not in: {last}"
    # Nothing was done, and no one could be signalled.
    assert moto.signals(example_stack.name) == []
    assert instance.calls() == []
    assert not instance.path("/etc/ecs/ecs.config").exists()


def test_instance_without_tags_or_group(moto, instance):
    """An instance no Auto Scaling group launched (the IMDS double's default identity)."""
    res = instance.run_bootstrap("run", "--region", "us-east-1", timeout=60)
    assert res.returncode == 2, str(res)
    last = res.stderr.strip().splitlines()[-1]
    assert "not in an Auto Scaling group" in last, last
    for flag in FLAGS:
        assert flag in last, last


def test_error_names_only_the_missing_flags(moto, instance):
    res = instance.run_bootstrap("run", "--resource", "MyLaunchTemplate", "--region", "us-east-1",
                                 timeout=60)
    assert res.returncode == 2, str(res)
    last = res.stderr.strip().splitlines()[-1]
    assert "pass --stack NAME --signal-resource LOGICAL_ID instead" in last, last
    assert "--resource" not in last, last
