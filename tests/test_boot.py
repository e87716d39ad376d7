"""End-to-end tests of the ecs-bootstrap binary against moto, the IMDS double and fake systemd.

Skipped (with the reason) only while the binary file does not exist; scripts/test builds it
first, so in CI they always run.
"""

from __future__ import annotations

import json
import os
import re
import stat
import uuid

import pytest

from harness.aws import EXAMPLES, example_template, wait_signals
from harness.instance import bootstrap_bin

# Cause phrases a FAILURE's stderr line must contain (regexes, case-insensitive, all of them on
# ONE stderr line). `{...}` fields are filled per test. `ecs`/`docker` must not just be the
# "ecs-bootstrap" prefix, hence the look-arounds.
REASONS: dict[str, list[str]] = {
    "join_timeout": [r"timed out", r"regist"],
    # the agent's real exit code and its own line, not a fixed text
    "ecs_unit_failed": [r"(?<![\w-])ecs(\.service)?(?![\w-])", r"exit code 5",
                        r"Agent will terminally exit"],
    "docker_unit_failed": [r"(?<![\w-])docker(\.service)?(?![\w-])", r"fail"],
    "init_command_failed": [r"{command_key}", r"(?<!\d)3(?!\d)"],
    "bad_settings_key": [r"Clustr"],
    "wrong_cluster": [r"cluster", r"{joined_cluster}"],
}

BIN = bootstrap_bin()
pytestmark = pytest.mark.skipif(
    not BIN.exists(),
    reason=f"ecs-bootstrap binary not found at {BIN} (build it: cargo build; "
    "or set ECS_BOOTSTRAP_BIN)",
)

LC = "ApplicationAutoscalingLaunchConfiguration"
ASG = "ApplicationAutoscaling"
ECS_CONFIG = "/etc/ecs/ecs.config"
CW_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/ecs-bootstrap.json"
MOTD = "/etc/ecs-bootstrap/motd"
DEFAULT_LOG_FILES = [
    "/var/log/dmesg",
    "/var/log/messages",
    "/var/log/docker",
    "/var/log/ecs/ecs-init.log*",
    "/var/log/ecs/ecs-agent.log*",
    "/var/log/ecs/audit.log*",
]
UNITS = ("docker", "ecs", "amazon-cloudwatch-agent")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def unit_name(u: str) -> str:
    return u[: -len(".service")] if u.endswith(".service") else u


def split_call(argv: list[str]) -> tuple[str, set[str], list[str]]:
    opts = {a for a in argv if a.startswith("-")}
    args = [a for a in argv if not a.startswith("-")]
    return (args[0] if args else ""), opts, [unit_name(u) for u in args[1:]]


def started_no_block(calls: list[list[str]], unit: str) -> bool:
    for argv in calls:
        verb, opts, units = split_call(argv)
        if unit in units and "--no-block" in opts and (
            verb == "start" or (verb == "enable" and "--now" in opts)
        ):
            return True
    return False


def enabled(calls: list[list[str]], unit: str) -> bool:
    return any(split_call(a)[0] == "enable" and unit in split_call(a)[2] for a in calls)


def blocking_starts(calls: list[list[str]]) -> list[list[str]]:
    out = []
    for argv in calls:
        verb, opts, _units = split_call(argv)
        starts = verb in ("start", "restart", "reload-or-restart", "try-restart") or (
            verb == "enable" and "--now" in opts
        )
        if starts and "--no-block" not in opts:
            out.append(argv)
    return out


def assert_failed_with(moto, instance, stack, res, case: str, **ctx) -> None:
    assert not res.timed_out, f"ecs-bootstrap hung\n{res}"
    assert res.returncode not in (0, None), f"expected a non-zero exit\n{res}"
    sigs = wait_signals(moto, stack.name, 1, timeout=2)
    assert [(s["Status"], s["LogicalResourceId"], s["UniqueId"]) for s in sigs] == [
        ("FAILURE", stack.signal_resource, stack.instance_id)
    ], f"expected exactly one FAILURE signal, got {sigs}\n{res}"
    patterns = [p.format(**{k: re.escape(v) for k, v in ctx.items()}) for p in REASONS[case]]
    lines = res.stderr.splitlines()
    assert any(all(re.search(p, line, re.I) for p in patterns) for line in lines), (
        f"no stderr line matches all of {patterns}\n{res}"
    )


def read_ecs_config(instance) -> str:
    return instance.path(ECS_CONFIG).read_text()


def stack_variant(old: str, new: str, base: str = "stack.yml") -> str:
    body = example_template(base)
    assert old in body, f"{old!r} not in {base}: the variant would test nothing"
    return body.replace(old, new, 1)


# ------------------------------------------------------------------------------------------
# happy path
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["stack.yml", "stack-launch-template.yml"])
def test_happy_path(moto, instance, make_stack, variant):
    stack = make_stack(example_template(variant))
    res = instance.run_bootstrap(*stack.run_args(), timeout=120)
    assert res.returncode == 0 and not res.timed_out, str(res)

    # --- exactly one SUCCESS signal, for the ASG, from this instance
    sigs = moto.signals(stack.name)
    assert [(s["Status"], s["LogicalResourceId"], s["UniqueId"]) for s in sigs] == [
        ("SUCCESS", ASG, stack.instance_id)
    ], sigs

    # --- ecs.config: cluster first, unquoted KEY=VALUE, compact JSON, 0644
    text = read_ecs_config(instance)
    lines = text.splitlines()
    assert lines[0] == f"ECS_CLUSTER={stack.cluster}", text
    assert "ECS_ENABLE_CONTAINER_METADATA=true" in lines, text
    assert 'ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","awslogs"]' in lines, text
    for line in lines:
        key, sep, value = line.partition("=")
        assert sep and key == key.strip() and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), line
        assert not (value.startswith(("'", '"')) and value.endswith(("'", '"'))), line
    assert stat.S_IMODE(instance.path(ECS_CONFIG).stat().st_mode) == 0o644
    # the agent (ecs-init's parser) saw exactly the cluster we expect
    assert instance.agent_config()["ECS_CLUSTER"] == stack.cluster

    # --- CloudWatch agent config: the six default files under the stack's group prefix
    cw = json.loads(instance.path(CW_CONFIG).read_text())
    collect = cw["logs"]["logs_collected"]["files"]["collect_list"]
    assert [e["file_path"] for e in collect] == DEFAULT_LOG_FILES
    prefix = f"{stack.name}/ec2/{ASG}"
    for e in collect:
        assert e["log_group_name"] == prefix + e["file_path"].rstrip("*"), e
        assert e["log_stream_name"] == "{instance_id}", e
        assert e["timezone"] in ("UTC", "Local"), e
    assert stat.S_IMODE(instance.path(CW_CONFIG).stat().st_mode) == 0o644

    # --- Init: the file (resolved !Sub, mode 000644, root:root) and the commands, in order
    motd = instance.path(MOTD)
    assert motd.read_text() == (
        f"{stack.name}: ECS container instance of cluster {stack.cluster}\n"
        f"bootstrapped by ecs-bootstrap in {stack.region}\n"
    )
    st = motd.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert instance.sandboxed_commands() == [
        ["mkdir", "-p", "/data/public"],
        ["chown", "-R", "1000:1000", "/data/public"],
    ]
    public = instance.path("/data/public").stat()
    assert (public.st_uid, public.st_gid) == (1000, 1000)

    # --- services: enable + start --no-block, never a blocking start; docker polled
    calls = instance.calls()
    for unit in UNITS:
        assert enabled(calls, unit), f"{unit} not enabled: {calls}"
        assert started_no_block(calls, unit), f"{unit} not started with --no-block: {calls}"
    assert blocking_starts(calls) == [], calls
    assert any(split_call(a)[0] == "is-active" and "docker" in split_call(a)[2] for a in calls)

    # --- registration confirmed with ECS before signalling
    described = [r for r in moto.requests("DescribeContainerInstances")
                 if stack.cluster in json.dumps(r["params"])]
    assert described, "no DescribeContainerInstances for the stack's cluster"
    registered_at = (instance.systemd_dir / "agent-registered.json").stat().st_mtime
    assert described[-1]["time"] >= registered_at - 0.01
    assert sigs[0]["time"] >= described[-1]["time"]

    # --- IMDSv2: one token, reused for every GET
    mine = instance.imds.client_requests()
    assert len([r for r in mine if r.method == "PUT"]) == 1, mine
    assert all(r.token_sent for r in mine if r.method == "GET"), mine
    assert not [r for r in mine if r.status in (400, 401, 403)], mine

    # --- a second (forced: the state says done) run converges to the same ecs.config and
    # signals nothing
    res2 = instance.run_bootstrap(*stack.run_args("--no-signal", "--force"), timeout=120)
    assert res2.returncode == 0, str(res2)
    assert read_ecs_config(instance) == text
    assert len(moto.signals(stack.name)) == 1


# ------------------------------------------------------------------------------------------
# failure paths: one FAILURE signal, non-zero exit, a reason on stderr
# ------------------------------------------------------------------------------------------


def test_agent_never_registers(moto, instance, example_stack):
    instance.configure(agent={"mode": "never"})
    res = instance.run_bootstrap(*example_stack.run_args("--timeout", "3"), timeout=60)
    assert_failed_with(moto, instance, example_stack, res, "join_timeout")
    assert res.duration < 30, f"--timeout 3 took {res.duration:.1f}s"


def test_ecs_unit_failed(moto, instance, example_stack):
    """Exit 5 is the agent's terminal exit (InvalidParameterException, ClientException, failed
    attribute validation: agent/app/agent.go:502-507,876-905@8dfceca6); ecs-init then exits 5
    and systemd does not restart it (ecs-init/ecs-init.go:71-73, RestartPreventExitStatus=5):
    the one agent failure that fails ecs.service (reference.md §4). A missing cluster is exit 1
    instead, with the unit still active: tests/test_faults.py::test_cluster_missing_describe_denied."""
    instance.configure(agent={"mode": "exit5"})
    res = instance.run_bootstrap(*example_stack.run_args("--timeout", "60"), timeout=90)
    assert_failed_with(moto, instance, example_stack, res, "ecs_unit_failed")
    # Noticed at once — from the agent's terminal line in its log or from `systemctl is-failed
    # ecs`, whichever the run sees first (both are watched; under load either may win) — not by
    # waiting out the 60 s timeout.
    assert res.duration < 30, f"took {res.duration:.1f}s: neither the log nor the unit watched?"


def test_docker_unit_failed(moto, instance, example_stack):
    instance.configure(docker={"fail": True})
    res = instance.run_bootstrap(*example_stack.run_args("--timeout", "60"), timeout=90)
    assert_failed_with(moto, instance, example_stack, res, "docker_unit_failed")
    assert res.duration < 30, f"took {res.duration:.1f}s: docker failure not noticed"


def test_init_command_fails(moto, instance, make_stack):
    key = "99_fail_on_purpose"
    body = stack_variant(
        "            06_public_volume_permissions:\n"
        "              command: chown -R 1000:1000 /data/public\n",
        "            06_public_volume_permissions:\n"
        "              command: chown -R 1000:1000 /data/public\n"
        f"            {key}:\n"
        "              command: exit 3\n",
    )
    stack = make_stack(body)
    res = instance.run_bootstrap(*stack.run_args("--timeout", "60"), timeout=90)
    assert_failed_with(moto, instance, stack, res, "init_command_failed", command_key=key)
    # the commands before it ran; the boot stopped there: ecs was never started
    assert [c[0] for c in instance.sandboxed_commands()] == ["mkdir", "chown"]
    assert not started_no_block(instance.calls(), "ecs")


def test_malformed_settings_block(moto, instance, make_stack):
    body = stack_variant("        Cluster: !Ref ApplicationCluster\n",
                         "        Clustr: !Ref ApplicationCluster\n")
    stack = make_stack(body)
    res = instance.run_bootstrap(*stack.run_args("--timeout", "60"), timeout=90)
    assert_failed_with(moto, instance, stack, res, "bad_settings_key")
    # a configuration error is found before anything is changed on the instance
    assert not started_no_block(instance.calls(), "ecs")
    assert not instance.path(ECS_CONFIG).exists()


def test_agent_joined_wrong_cluster(moto, instance, example_stack):
    other = moto.client("ecs").create_cluster(
        clusterName=f"other-{uuid.uuid4().hex[:8]}")["cluster"]["clusterName"]
    instance.configure(agent={"mode": "wrong_cluster", "cluster": other})
    res = instance.run_bootstrap(*example_stack.run_args("--timeout", "60"), timeout=90)
    assert_failed_with(moto, instance, example_stack, res, "wrong_cluster", joined_cluster=other)
    assert res.duration < 30, f"took {res.duration:.1f}s: wrong cluster not noticed early"


# ------------------------------------------------------------------------------------------
# dry run
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["text", "json"])
def test_dry_run_prints_plan_and_does_nothing(moto, instance, output):
    requests_before = len(moto.requests())
    signals_before = len(moto.signals())
    res = instance.run_bootstrap(
        "--dry-run", "--template", str(EXAMPLES / "stack.yml"),
        "--param", "VpcId=vpc-12345678", "--param", "Subnets=subnet-1,subnet-2",
        "--resource", LC, "--signal-resource", ASG, "--output", output,
        "--root", str(instance.root), "--introspection-url", instance.introspection_url,
        timeout=60, defaults=False)
    assert res.returncode == 0 and not res.timed_out, str(res)
    out = res.stdout
    if output == "json":
        json.loads(out)  # the plan is one JSON document
    for needle in ("ECS_CLUSTER", MOTD, "05_public_volume", "06_public_volume_permissions",
                   "docker", "amazon-cloudwatch-agent", "ECS_AVAILABLE_LOGGING_DRIVERS"):
        assert needle in out, f"{needle!r} missing from the plan\n{res}"
    # nothing written, no service touched, no AWS or IMDS traffic, no signal
    assert instance.files() == [], instance.files()
    assert instance.calls() == []
    assert instance.sandboxed_commands() == []
    assert instance.imds.log == []
    assert len(moto.requests()) == requests_before
    assert len(moto.signals()) == signals_before


def test_group_size_spreads_the_first_cloudformation_call(moto, instance, example_stack):
    """--group-size N (issue 18): the first CloudFormation call waits a random share of
    1.1 x 2 x N / --cfn-rate seconds; nothing else changes (one DescribeStackResource, one
    SUCCESS). 4 instances at 8 req/s: a window of 1.1 s."""
    res = instance.run_bootstrap(*example_stack.run_args("--group-size", "4", "--cfn-rate", "8"),
                                 timeout=120)
    assert res.returncode == 0 and not res.timed_out, str(res)
    assert "spreading the group's CloudFormation calls" in res.stderr
    assert "window_ms=1100" in res.stderr, res.stderr
    assert [s["Status"] for s in moto.signals(example_stack.name)] == ["SUCCESS"]
    assert len([r for r in moto.requests("DescribeStackResource")
                if (r["params"] or {}).get("StackName") == example_stack.name]) == 1
