"""The fault matrix (issue 4): every fault ends in the right signal, fast, with nothing torn.

Faults are injected through the doubles: the moto fault layer (throttling, 500s, connection
resets, slow answers, AccessDenied), the IMDS double's knobs (down for N seconds, 401 mid-run,
no IMDSv2), fake systemd and the fake agent, and Init commands. Each test records a row
(fault, expected signal, observed signal, time to signal) in tests/.artifacts/fault-matrix.md.

Time limits in the assertions are bounds (the run's --deadline plus slack for a loaded CI
machine), never performance targets.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from harness.aws import REPO_ROOT, example_template, wait_signals
from harness.instance import bootstrap_bin

BIN = bootstrap_bin()
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"ecs-bootstrap binary not found at {BIN}")

ECS_CONFIG = "/etc/ecs/ecs.config"
STATE = "/var/lib/ecs-bootstrap/state.json"
MOTD = "/etc/ecs-bootstrap/motd"
MATRIX = REPO_ROOT / "tests" / ".artifacts" / "fault-matrix.md"
# Slack on top of a run's --deadline before a run counts as hung (process start, a loaded CI).
SLACK = 20.0

ROWS: list[tuple[str, str, str, str, str]] = []


@pytest.fixture(scope="module", autouse=True)
def fault_matrix():
    yield
    MATRIX.parent.mkdir(exist_ok=True)
    lines = [
        "| fault | expected | observed | time to signal / exit | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {' | '.join(r)} |" for r in ROWS]
    MATRIX.write_text("\n".join(lines) + "\n")


def observed(moto, stack, res) -> str:
    sigs = [s["Status"] for s in moto.signals(stack.name)] if stack is not None else []
    return f"{'+'.join(sigs) or 'no signal'}, exit {res.returncode}"


def record(fault: str, expected: str, obs: str, res, notes: str = "") -> None:
    ROWS.append((fault, expected, obs, f"{res.duration:.1f}s", notes.replace("|", "/")))


def stack_variant(old: str, new: str) -> str:
    body = example_template("stack.yml")
    assert old in body, f"{old!r} not in stack.yml: the variant would test nothing"
    return body.replace(old, new, 1)


def events(res) -> list[dict]:
    out = []
    for line in res.stderr.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def failure_line(res) -> str:
    lines = [l for l in res.stderr.splitlines() if l.startswith("ecs-bootstrap: FAILURE")]
    assert lines, f"no FAILURE line\n{res}"
    return lines[-1]


def assert_success(moto, stack, res, deadline: float) -> None:
    assert not res.timed_out, f"hung\n{res}"
    assert res.returncode == 0, str(res)
    sigs = wait_signals(moto, stack.name, 1, timeout=2)
    assert [s["Status"] for s in sigs] == ["SUCCESS"], f"{sigs}\n{res}"
    assert res.duration < deadline + SLACK, f"took {res.duration:.1f}s\n{res}"


def assert_failure(moto, stack, res, deadline: float, *patterns: str) -> str:
    assert not res.timed_out, f"hung\n{res}"
    assert res.returncode not in (0, None), str(res)
    sigs = wait_signals(moto, stack.name, 1, timeout=2)
    assert [(s["Status"], s["UniqueId"]) for s in sigs] == [("FAILURE", stack.instance_id)], (
        f"expected exactly one FAILURE\n{sigs}\n{res}")
    line = failure_line(res)
    for p in patterns:
        assert re.search(p, line, re.I), f"{p!r} not in {line!r}\n{res}"
    assert res.duration < deadline + SLACK, f"took {res.duration:.1f}s\n{res}"
    return line


def run(instance, stack, deadline: int, *extra: str, timeout: float | None = None):
    return instance.run_bootstrap(*stack.run_args("--deadline", str(deadline), *extra),
                                  timeout=timeout or deadline + 60)


def api_calls(moto, action: str, stack) -> list[dict]:
    return [r for r in moto.requests(action) if stack.name in json.dumps(r["params"])]


@pytest.fixture(autouse=True)
def clean_faults(moto):
    moto.set_faults([])
    yield
    moto.set_faults([])


# ------------------------------------------------------------------------------------------
# IMDS
# ------------------------------------------------------------------------------------------


def test_imds_absent_at_boot(moto, instance, example_stack):
    instance.imds.down_for(3.0)
    res = run(instance, example_stack, 40)
    assert_success(moto, example_stack, res, 40)
    assert res.duration >= 3.0, "IMDS was down for 3 s: the run cannot have been faster"
    record("IMDS absent for the first 3 s", "SUCCESS", observed(moto, example_stack, res), res,
           "retried with backoff until IMDS answered")


def test_imds_never_up(moto, instance, example_stack):
    instance.imds.down_for(3600)
    res = run(instance, example_stack, 8)
    assert not res.timed_out and res.returncode == 9, str(res)
    line = failure_line(res)
    assert "IMDS" in line and "deadline" in line, line
    assert moto.signals(example_stack.name) == []
    assert res.duration < 8 + SLACK
    record("IMDS never answers", "no signal possible (instance id unknown): exit 9 + message",
           observed(moto, example_stack, res), res, line.split(": ", 1)[1][:90])


def test_imds_401_mid_run(moto, instance, example_stack):
    instance.imds.unauthorized_gets = 2
    res = run(instance, example_stack, 40)
    assert_success(moto, example_stack, res, 40)
    mine = instance.imds.client_requests()
    # aws-config retries with its cached (now revoked) token first; a new round fetches a new one.
    assert len([r for r in mine if r.status == 401]) >= 2, mine
    assert len([r for r in mine if r.method == "PUT"]) >= 2, "the token was not refreshed"
    assert mine[-1].status == 200 and mine[-1].method == "GET", mine
    assert all(r.token_sent for r in mine if r.method == "GET"), "fell back to IMDSv1"
    record("IMDS 401 (token revoked) on the first 2 GETs", "SUCCESS",
           observed(moto, example_stack, res), res, "new token fetched")


def test_no_imdsv1_unless_asked(moto, instance, example_stack):
    instance.imds.token_status = 403
    instance.imds.allow_v1 = True
    res = run(instance, example_stack, 8)
    assert not res.timed_out and res.returncode in (7, 9), str(res)
    assert not [r for r in instance.imds.client_requests() if r.method == "GET" and not r.token_sent]
    assert moto.signals(example_stack.name) == []
    record("IMDSv2 token refused (403), no --imds-v1-fallback", "no signal: exit 7/9, no IMDSv1 GET",
           observed(moto, example_stack, res), res)

    res = run(instance, example_stack, 40, "--imds-v1-fallback")
    assert_success(moto, example_stack, res, 40)
    assert [r for r in instance.imds.client_requests() if r.method == "GET" and not r.token_sent]
    record("IMDSv2 token refused (403), --imds-v1-fallback", "SUCCESS",
           observed(moto, example_stack, res), res, "read with IMDSv1")


# The IMDS client gives an attempt 2 s to answer (src/aws/imds.rs read timeout).
IMDS_ATTEMPT_TIMEOUT = 2.0


def test_imds_slower_than_the_attempt_timeout_then_recovers(moto, instance, example_stack):
    # Every answer 3 s late (beyond the 2 s per attempt) for the first 5 s: attempts are
    # abandoned and retried with fresh tokens until IMDS answers in time.
    instance.imds.slow_for(5.0, IMDS_ATTEMPT_TIMEOUT + 1.0)
    res = run(instance, example_stack, 40)
    assert_success(moto, example_stack, res, 40)
    assert res.duration >= IMDS_ATTEMPT_TIMEOUT, "no attempt can have timed out"
    puts = [r for r in instance.imds.client_requests() if r.method == "PUT"]
    assert len(puts) >= 2, f"no retry after the slow answer: {puts}"
    record("IMDS answers 3 s late (attempt timeout 2 s) for the first 5 s", "SUCCESS",
           observed(moto, example_stack, res), res, f"{len(puts)} token PUTs: attempts retried")


def test_imds_always_slower_than_the_attempt_timeout(moto, instance, example_stack):
    instance.imds.delay = IMDS_ATTEMPT_TIMEOUT + 1.0
    res = run(instance, example_stack, 8)
    assert not res.timed_out, f"hung\n{res}"
    assert res.returncode == 9, str(res)
    line = failure_line(res)
    assert "IMDS" in line and "deadline" in line, line
    assert len([r for r in instance.imds.client_requests() if r.method == "PUT"]) >= 2, \
        "gave up without retrying"
    assert moto.signals(example_stack.name) == []
    assert res.duration < 8 + SLACK
    record("IMDS always answers 3 s late (attempt timeout 2 s)",
           "no signal possible (instance id unknown): exit 9 + message naming IMDS",
           observed(moto, example_stack, res), res, line.split(": ", 1)[1][:90])


# ------------------------------------------------------------------------------------------
# CloudFormation / ECS APIs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault,rule", [
    ("DescribeStackResource throttled (Throttling, 4 calls)",
     {"status": 400, "code": "Throttling", "message": "Rate exceeded", "times": 4}),
    ("DescribeStackResource HTTP 500 (3 calls)",
     {"status": 500, "code": "InternalFailure", "times": 3}),
    ("DescribeStackResource HTTP 503 (2 calls)",
     {"status": 503, "code": "ServiceUnavailable", "times": 2}),
    ("DescribeStackResource connection reset (3 calls)", {"reset": True, "times": 3}),
    ("DescribeStackResource slower than the attempt timeout (2 calls)",
     {"delay": 5.0, "times": 2}),
], ids=["throttling", "500", "503", "reset", "slow"])
def test_transient_api_faults_are_retried(moto, instance, example_stack, fault, rule):
    moto.set_faults([{"action": "DescribeStackResource", **rule}])
    # --deadline 40: a 2 s attempt timeout (deadline/20), so a 5 s answer is abandoned.
    res = run(instance, example_stack, 40)
    assert_success(moto, example_stack, res, 40)
    calls = api_calls(moto, "DescribeStackResource", example_stack)
    assert len(calls) == rule["times"] + 1, [c["status"] for c in calls]
    record(fault, "SUCCESS", observed(moto, example_stack, res), res,
           f"{len(calls)} DescribeStackResource calls")


def test_throttled_until_the_deadline(moto, instance, example_stack):
    moto.set_faults([{"action": "DescribeStackResource", "status": 400, "code": "Throttling",
                      "message": "Rate exceeded"}])
    res = run(instance, example_stack, 12)
    line = assert_failure(moto, example_stack, res, 12, "stack metadata", "DescribeStackResource",
                          "deadline")
    assert res.duration >= 8, "gave up long before the deadline"
    assert len(api_calls(moto, "DescribeStackResource", example_stack)) >= 3
    record("DescribeStackResource throttled forever", "FAILURE (deadline, metadata)",
           observed(moto, example_stack, res), res, line.split(" at ", 1)[1][:90])


@pytest.mark.parametrize("signing,patterns", [
    # `run --role NAME` signs SigV4 with the role's credentials: an IAM denial.
    ("role", ["AccessDenied", "lacks cloudformation:DescribeStackResource"]),
    # `run` signs with the instance identity (CFN_V1): CloudFormation refused the identity.
    ("identity", ["AccessDenied", "instance identity"]),
])
def test_access_denied_is_not_retried(moto, instance, example_stack, signing, patterns):
    msg = ("User: arn:aws:sts::123456789012:assumed-role/app/i-1 is not authorized to perform: "
           "cloudformation:DescribeStackResource on resource: stack")
    moto.set_faults([{"action": "DescribeStackResource", "status": 403, "code": "AccessDenied",
                      "message": msg}])
    extra: list[str] = []
    if signing == "role":
        instance.imds.identity.iam_role = "app"
        extra = ["--role", "app"]
    res = run(instance, example_stack, 40, *extra)
    assert_failure(moto, example_stack, res, 40, *patterns)
    calls = api_calls(moto, "DescribeStackResource", example_stack)
    assert len(calls) == 1, "retried"
    assert calls[0]["auth"] == ("sigv4" if signing == "role" else "cfn_v1"), calls
    assert res.duration < 15, f"AccessDenied took {res.duration:.1f}s"
    record(f"DescribeStackResource AccessDenied ({signing} signing)",
           "FAILURE (fast, names the IAM action or the identity refusal)",
           observed(moto, example_stack, res), res, "1 call, not retried")


@pytest.mark.parametrize("fault,metadata,patterns", [
    ("Metadata is not JSON (truncated)", '{"AWS::CloudFormation::Init": {"config": [',
     [r"\.Metadata", "not valid JSON", r"line 1 column \d+"]),
    ("Metadata JSON with a lone surrogate escape (not UTF-8 text)",
     '{"ecs-bootstrap": {"Cluster": "a\\udc80b"}}',
     [r"\.Metadata", "not valid JSON", "surrogate", r"line 1 column \d+"]),
    ("Metadata with a raw invalid UTF-8 byte (0xFF) in the answer",
     '{"ecs-bootstrap": {"Cluster": "a\udcffb"}}',
     ["DescribeStackResource", "invalid utf-8", r"index \d+", "ApplicationAutoscalingLaunchConfiguration's Metadata"]),
], ids=["truncated", "surrogate", "raw-0xff"])
def test_malformed_metadata(moto, instance, example_stack, fault, metadata, patterns):
    moto.set_faults([{"action": "DescribeStackResource", "metadata": metadata}])
    res = run(instance, example_stack, 40)
    line = assert_failure(moto, example_stack, res, 40, "stack metadata", *patterns)
    assert res.returncode in (3, 7), str(res)
    assert res.duration < 15, f"bad metadata took {res.duration:.1f}s: retried?"
    # Nothing applied.
    assert not instance.path(ECS_CONFIG).exists()
    assert instance.calls() == []
    record(fault, "FAILURE naming Metadata and the position, nothing applied",
           observed(moto, example_stack, res), res, line.split(" at ", 1)[1][:100])


def test_stack_not_found(moto, instance, example_stack):
    args = example_stack.run_args("--deadline", "20")
    args[args.index("--stack") + 1] = "no-such-stack"
    res = instance.run_bootstrap(*args, timeout=80)
    assert not res.timed_out and res.returncode == 7, str(res)
    line = failure_line(res)
    assert "no-such-stack" in line and "does not exist" in line, line
    assert moto.signals(example_stack.name) == []
    record("stack not found", "no signal possible: exit 7 + message", f"no signal, exit {res.returncode}",
           res, "ValidationError named")


def test_resource_not_found(moto, instance, example_stack):
    args = example_stack.run_args("--deadline", "20")
    args[args.index("--resource") + 1] = "NoSuchLaunchConfig"
    res = instance.run_bootstrap(*args, timeout=80)
    line = assert_failure(moto, example_stack, res, 20, "NoSuchLaunchConfig", "does not exist")
    record("resource not found", "FAILURE", observed(moto, example_stack, res), res,
           line.split(" at ", 1)[1][:80])


def test_signal_throttled(moto, instance, example_stack):
    moto.set_faults([{"action": "SignalResource", "status": 400, "code": "Throttling",
                      "message": "Rate exceeded", "times": 3}])
    res = run(instance, example_stack, 40)
    assert_success(moto, example_stack, res, 40)
    assert len(api_calls(moto, "SignalResource", example_stack)) == 4
    record("SignalResource throttled (3 calls)", "SUCCESS, delivered once",
           observed(moto, example_stack, res), res, "4 SignalResource calls, 1 accepted")


def test_signal_after_the_stack_completed(moto, instance, example_stack):
    # Another instance completed the CreationPolicy (Count 1) first.
    moto.client("cloudformation").signal_resource(
        StackName=example_stack.name, LogicalResourceId=example_stack.signal_resource,
        UniqueId="i-other", Status="SUCCESS")
    res = run(instance, example_stack, 40)
    assert not res.timed_out and res.returncode == 0, str(res)
    assert "not waiting for a signal" in res.stderr, res.stderr
    assert [s["UniqueId"] for s in moto.signals(example_stack.name)] == ["i-other"]
    record("signal after the stack completed", "warning, exit 0",
           f"refused by CFN (not waiting), exit {res.returncode}", res)


# ------------------------------------------------------------------------------------------
# services and the join
# ------------------------------------------------------------------------------------------


def test_agent_never_registers_deadline(moto, instance, example_stack):
    instance.configure(agent={"mode": "never"})
    res = run(instance, example_stack, 12)
    line = assert_failure(moto, example_stack, res, 12, "cluster join", "register", "deadline")
    record("agent never registers (Timeout 600 > --deadline 12)", "FAILURE (deadline, join)",
           observed(moto, example_stack, res), res, line.split(" at ", 1)[1][:90])


def test_agent_never_registers_timeout(moto, instance, example_stack):
    instance.configure(agent={"mode": "never"})
    res = run(instance, example_stack, 60, "--timeout", "3")
    assert_failure(moto, example_stack, res, 20, "timed out", "regist")
    record("agent never registers (--timeout 3)", "FAILURE (join timeout)",
           observed(moto, example_stack, res), res)


def test_agent_wrong_cluster(moto, instance, example_stack):
    other = moto.client("ecs").create_cluster(
        clusterName=f"other-{os.urandom(4).hex()}")["cluster"]["clusterName"]
    instance.configure(agent={"mode": "wrong_cluster", "cluster": other})
    res = run(instance, example_stack, 40)
    assert_failure(moto, example_stack, res, 40, other)
    record("agent registers into another cluster", "FAILURE",
           observed(moto, example_stack, res), res)


def test_ecs_unit_failed(moto, instance, example_stack):
    """The agent's terminal exit 5 (InvalidParameterException and the like, agent.go:502-507,
    876-905@8dfceca6): ecs-init exits 5 too (ecs-init/ecs-init.go:71-73) and systemd does not
    restart it (RestartPreventExitStatus=5): the only agent failure that reaches the unit
    (reference.md §4). The fake agent's `exit5` mode logs the agent's lines and exits 5. The
    reason carries the real exit code and the agent's own line, not a fixed text."""
    instance.configure(agent={"mode": "exit5"})
    res = run(instance, example_stack, 60)
    line = assert_failure(moto, example_stack, res, 20, r"exit code 5",
                          r"Agent will terminally exit")
    assert "exit code 5 is a terminal registration error" not in line
    record("ecs unit failed (agent exit 5)", "FAILURE (fast), exit code and agent's line",
           observed(moto, example_stack, res), res)


CLUSTER_LINE = "        Cluster: !Ref ApplicationCluster\n"


def missing_cluster_stack(make_stack) -> tuple:
    name = f"no-such-cluster-{os.urandom(4).hex()}"
    stack = make_stack(stack_variant(CLUSTER_LINE, f"        Cluster: {name}\n"))
    return stack, name


def test_cluster_missing(moto, instance, make_stack):
    """ecs:DescribeClusters before the services start: MISSING is a FAILURE in seconds naming
    the cluster, the region and the fix; ecs is never started."""
    stack, name = missing_cluster_stack(make_stack)
    res = run(instance, stack, 60)
    assert_failure(moto, stack, res, 15, "ECS cluster check", f"'{name}'", "does not exist",
                   stack.region, "create the cluster")
    assert res.returncode == 6
    assert not [a for a in instance.calls()
                if a[:1] == ["start"] and any(u.startswith("ecs") for u in a[1:])]
    record("cluster does not exist (DescribeClusters allowed)", "FAILURE before the services",
           observed(moto, stack, res), res)


def test_cluster_deleted(moto, instance, example_stack):
    """A deleted cluster is INACTIVE in ECS (moto keeps it so too)."""
    moto.client("ecs").delete_cluster(cluster=example_stack.cluster)
    res = run(instance, example_stack, 60)
    assert_failure(moto, example_stack, res, 15, example_stack.cluster, "INACTIVE")
    record("cluster deleted (INACTIVE)", "FAILURE before the services",
           observed(moto, example_stack, res), res)


DENY_DESCRIBE_CLUSTERS = {
    "action": "DescribeClusters", "service": "ecs", "status": 400,
    "code": "AccessDeniedException",
    "message": "User: arn:aws:sts::123456789012:assumed-role/r/i is not authorized to perform: "
               "ecs:DescribeClusters on resource: *"}


def test_cluster_missing_describe_denied(moto, instance, make_stack):
    """Without ecs:DescribeClusters the agent's own log tells: the real agent logs
    `Received terminal error from RegisterContainerInstance call, exiting` with the
    ClusterNotFoundException and exits 1 (ecs-agent/api/ecs/client/ecs_client.go:262-270,
    agent/app/agent.go:509-510@8dfceca6); ecs-init logs `Agent exited with code 1` and restarts
    it forever (ecs-init/engine/engine.go:293-340), so ecs.service stays active. The run fails
    fast on that line, with the real exit code, not at the Timeout (600 s here)."""
    moto.set_faults([DENY_DESCRIBE_CLUSTERS])
    stack, name = missing_cluster_stack(make_stack)
    res = run(instance, stack, 120)
    line = assert_failure(moto, stack, res, 25, "cluster join", "exit code 1",
                          "Received terminal error from RegisterContainerInstance call",
                          "ClusterNotFoundException: Cluster not found", f"'{name}'")
    assert res.returncode == 6
    warnings = [ln for ln in res.stderr.splitlines() if "ecs:DescribeClusters" in ln
                and re.search(r"\bwarn(ing)?\b", ln, re.I)]
    assert len(warnings) == 1, res.stderr
    assert instance.unit_states()["ecs"]["state"] == "active", "the unit should not have failed"
    record("cluster does not exist, ecs:DescribeClusters denied",
           "FAILURE fast from the agent's log (exit 1, unit active)",
           observed(moto, stack, res), res, line.split(": ", 2)[-1][:90])


def test_describe_clusters_denied_does_not_fail_a_good_boot(moto, instance, example_stack):
    moto.set_faults([DENY_DESCRIBE_CLUSTERS])
    res = run(instance, example_stack, 40)
    assert_success(moto, example_stack, res, 40)
    warnings = [ln for ln in res.stderr.splitlines() if "ecs:DescribeClusters" in ln
                and re.search(r"\bwarn(ing)?\b", ln, re.I)]
    assert len(warnings) == 1, res.stderr
    record("ecs:DescribeClusters AccessDenied, cluster exists", "SUCCESS, one warning",
           observed(moto, example_stack, res), res)


def test_agent_dies_right_after_registering(moto, instance, example_stack):
    """An agent that registers and dies 0.3 s later (SIGKILL: docker's 137), every time:
    ecs-init restarts it (engine.go:293-340) and it registers again, but a registration counts
    only once it held for the settle window (1 s, src/boot/join.rs SETTLE). The run fails at the
    Timeout saying how the agent exited."""
    instance.configure(agent={"mode": "die_after_register", "up": 0.3, "exit_code": 137})
    res = run(instance, example_stack, 60, "--timeout", "8")
    line = assert_failure(moto, example_stack, res, 25, "timed out", "registered, then",
                          "last with code 137")
    record("agent dies 0.3 s after every registration", "FAILURE at the Timeout, exit code named",
           observed(moto, example_stack, res), res, line.split(": ", 2)[-1][:90])


def test_agent_dies_once_right_after_registering(moto, instance, example_stack):
    """The first registration dies at once; ecs-init restarts the agent and the second holds."""
    instance.configure(agent={"mode": "die_after_register", "up": 0.8, "exit_code": 1,
                              "times": 1})
    res = run(instance, example_stack, 60)
    assert_success(moto, example_stack, res, 60)
    assert re.search(r"registered, then (stopped answering|exited)", res.stderr), res.stderr
    init_log = instance.path("/var/log/ecs/ecs-init.log").read_text()
    assert init_log.count("Agent exited with code 1") == 1, init_log
    record("agent dies once right after registering, then holds", "SUCCESS after the restart",
           observed(moto, example_stack, res), res)


def test_docker_unit_failed(moto, instance, example_stack):
    instance.configure(docker={"fail": True})
    res = run(instance, example_stack, 60)
    assert_failure(moto, example_stack, res, 20, r"docker\.service failed")
    record("docker unit failed", "FAILURE (fast)", observed(moto, example_stack, res), res)


# ------------------------------------------------------------------------------------------
# Init commands
# ------------------------------------------------------------------------------------------

ANCHOR = ("            06_public_volume_permissions:\n"
          "              command: chown -R 1000:1000 /data/public\n")


def test_command_fails(moto, instance, make_stack):
    stack = make_stack(stack_variant(ANCHOR, ANCHOR + "            99_fail:\n"
                                     "              command: echo broken >&2; exit 3\n"))
    res = run(instance, stack, 40)
    assert_failure(moto, stack, res, 40, "99_fail", "exit code 3", "broken")
    assert not instance.path(ECS_CONFIG).exists(), "went on after a failed command"
    record("an Init command fails", "FAILURE", observed(moto, stack, res), res)


def test_command_hangs(moto, instance, make_stack):
    marker = f"hang-{os.urandom(4).hex()}"
    stack = make_stack(stack_variant(ANCHOR, ANCHOR + "            99_hang:\n"
                                     f"              command: sleep 600; echo {marker}\n"))
    res = run(instance, stack, 12)
    line = assert_failure(moto, stack, res, 12, "Init", "deadline")
    # The command's process group is gone: nothing left sleeping.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert marker not in ps, f"the hung command survived the run:\n{ps}"
    record("an Init command hangs", "FAILURE (deadline, Init), command killed",
           observed(moto, stack, res), res, line.split(" at ", 1)[1][:90])


# ------------------------------------------------------------------------------------------
# durability and re-runs
# ------------------------------------------------------------------------------------------

BIG_MODE = 0o600


def big_stack(make_stack, size: int):
    # One long line: cheap for YAML, big enough that the write takes a while.
    content = "x" * size
    files = ("          files:\n"
             "            /etc/ecs-bootstrap/big.secret:\n"
             f"              content: {content}\n"
             "              mode: \"000600\"\n")
    return make_stack(stack_variant("          files:\n", files))


def test_kill_9_never_leaves_a_torn_file(moto, instance, make_stack):
    size = 8 * 1024 * 1024
    stack = big_stack(make_stack, size)
    big = instance.path("/etc/ecs-bootstrap/big.secret")
    new = b"x" * size
    old = b"old contents\n"
    # A first run to learn how long the writes take.
    t0 = time.monotonic()
    res = run(instance, stack, 60, "--no-signal")
    assert res.returncode == 0, str(res)
    full = time.monotonic() - t0
    assert big.read_bytes() == new
    rnd = random.Random(4)
    outcomes = {"old": 0, "new": 0, "absent": 0}
    started = time.monotonic()
    kills = 0
    temps_seen = 0
    while kills < 25 and time.monotonic() - started < 60:
        big.write_bytes(old)
        os.chmod(big, BIG_MODE)
        ecs_before = instance.path(ECS_CONFIG).read_bytes() if instance.path(ECS_CONFIG).exists() else None
        argv = [str(BIN), *stack.run_args("--deadline", "60", "--no-signal"),
                "--root", str(instance.root), "--introspection-url", instance.introspection_url]
        p = subprocess.Popen(argv, env=instance.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        if kills % 2:
            time.sleep(rnd.uniform(0.05, full * 0.8))
        else:
            # Aim at the write itself: wait for its temporary file, then kill within ~20 ms.
            t_end = time.monotonic() + 20
            while not list(big.parent.glob(".ecs-bootstrap.*")) and p.poll() is None \
                    and time.monotonic() < t_end:
                time.sleep(0.001)
            time.sleep(rnd.uniform(0, 0.02))
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            # The run ended (and p.poll() reaped it) before the kill: a whole run, whose file
            # must be the new one; the checks below hold for it too.
            pass
        p.wait()
        kills += 1
        temps_seen += len(list(big.parent.glob(".ecs-bootstrap.*")))
        data = big.read_bytes() if big.exists() else None
        assert data in (old, new), f"torn file after kill -9: {len(data)} bytes"
        outcomes["old" if data == old else "new"] += 1
        assert stat.S_IMODE(big.stat().st_mode) == BIG_MODE
        ecs = instance.path(ECS_CONFIG)
        if ecs.exists() and ecs_before is not None:
            assert ecs.read_bytes() == ecs_before
        for tmp in big.parent.glob(".ecs-bootstrap.*"):
            mode = stat.S_IMODE(tmp.stat().st_mode)
            assert mode & 0o077 == 0, f"temporary file {tmp} is {oct(mode)}"
    assert outcomes["old"] and outcomes["new"], f"kills never hit both sides: {outcomes}"
    assert temps_seen, "no kill landed during a write: the test proved nothing"
    # The next run removes what the killed ones left behind: temporary files named after a
    # process that is gone (src/sys/fs/stale.rs), however recent.
    res = run(instance, stack, 60, "--no-signal")
    assert res.returncode == 0, str(res)
    assert big.read_bytes() == new
    assert list(big.parent.glob(".ecs-bootstrap.*")) == []
    ROWS.append(("kill -9 during a file write (8 MB, mode 0600)", "old or new, never torn",
                 f"{kills} kills: {outcomes['old']} old, {outcomes['new']} new, 0 torn", "-",
                 f"{temps_seen} kills landed mid-write; temp files never group/world-readable, "
                 "removed by the next run"))


# Runs its arguments in a private mount namespace, with a tiny tmpfs over directory $1 that
# holds only the old file $2 (copied in as $1/$3) and is otherwise full; afterwards $1's listing
# and the file are copied to $4 (the namespace, and the tmpfs, end with the run).
DISK_FULL = r"""
set -eu
dir=$1 old=$2 name=$3 report=$4
shift 4
mount -t tmpfs -o size=64k,mode=0755 ecs-bootstrap-disk-full "$dir"
cp -p "$old" "$dir/$name"
head -c 1048576 /dev/zero > "$dir/.filler" 2>/dev/null || true
if head -c 1 /dev/zero >> "$dir/.filler" 2>/dev/null; then
    echo "the tmpfs is not full" >&2; exit 97
fi
set +e
"$@"
rc=$?
ls -A "$dir" > "$report/listing"
cp -p "$dir/$name" "$report/$name"
exit $rc
"""


@pytest.mark.parametrize("fault,target,step", [
    ("disk full (ENOSPC) writing ecs.config", ECS_CONFIG, "ECS agent config"),
    ("disk full (ENOSPC) writing an Init file", MOTD, "AWS::CloudFormation::Init"),
], ids=["ecs-config", "init-file"])
def test_disk_full(moto, instance, example_stack, tmp_path, fault, target, step):
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs -o size=64k t {tmp_path}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace with a tmpfs here (needs root): {probe.stderr!r}")
    path = instance.path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = tmp_path / "old"
    old.write_bytes(b"ECS_CLUSTER=the-old-one\nECS_LOGLEVEL=info\n")
    os.chmod(old, 0o600)
    report = tmp_path / "report"
    report.mkdir()
    res = instance.run_bootstrap(
        *example_stack.run_args("--deadline", "40"), timeout=100,
        wrapper=["unshare", "-m", "--propagation", "private", "sh", "-c", DISK_FULL, "sh",
                 str(path.parent), str(old), path.name, str(report)])
    assert res.returncode != 97, f"could not fill the tmpfs\n{res}"
    line = assert_failure(moto, example_stack, res, 40, re.escape(step),
                          re.escape(target), "No space left on device")
    assert ".ecs-bootstrap." not in line, f"names the temporary file, not the target: {line}"
    assert res.returncode == 4, str(res)
    # The old file is intact (same bytes, same mode) and no temporary file was left behind.
    kept = report / path.name
    assert kept.read_bytes() == old.read_bytes(), kept.read_bytes()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert sorted((report / "listing").read_text().split()) == sorted([".filler", path.name])
    record(fault, "FAILURE naming the path; old file intact, no temp file",
           observed(moto, example_stack, res), res,
           line.split(" at ", 1)[1].replace(str(instance.root), "<root>")[:120])


def test_second_run_after_a_completed_run(moto, instance, example_stack):
    res = run(instance, example_stack, 60)
    assert_success(moto, example_stack, res, 60)
    before = {p: instance.path(p).read_bytes() for p in (ECS_CONFIG, MOTD)}
    # A reboot: the run sees its own delivered SUCCESS and does nothing (src/boot/once.rs).
    res2 = run(instance, example_stack, 60)
    assert res2.returncode == 0 and "SKIPPED" in res2.stderr, str(res2)
    # Forced: everything converges again, but CloudFormation is not told twice.
    res3 = run(instance, example_stack, 60, "--force")
    assert res3.returncode == 0, str(res3)
    assert "already signalled by an earlier run" in res3.stderr, res3.stderr
    assert len(api_calls(moto, "SignalResource", example_stack)) == 1, "signalled again"
    after = {p: instance.path(p).read_bytes() for p in (ECS_CONFIG, MOTD)}
    assert after == before
    lines = after[ECS_CONFIG].decode().splitlines()
    assert len(lines) == len(set(lines)), "duplicated lines in ecs.config"
    record("second run after a completed run (plain, then --force)",
           "skipped; forced: same files, no second signal",
           "SKIPPED exit 0; forced exit 0; 1 SignalResource call in all", res3)


def test_second_run_after_a_crash(moto, instance, make_stack):
    marker = f"crash-{os.urandom(4).hex()}"
    stack = make_stack(stack_variant(ANCHOR, ANCHOR + "            99_slow:\n"
                                     f"              command: sleep 3; echo {marker}\n"))
    argv = [str(BIN), *stack.run_args("--deadline", "60"),
            "--root", str(instance.root), "--introspection-url", instance.introspection_url]
    p = subprocess.Popen(argv, env=instance.env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while marker not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                       text=True).stdout:
        assert time.monotonic() < deadline and p.poll() is None, "the slow command never ran"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert moto.signals(stack.name) == []
    res = run(instance, stack, 60)
    assert_success(moto, stack, res, 60)
    state = json.loads(instance.path(STATE).read_text())
    assert state["signal_delivered"] is True and state["status"] == "SUCCESS"
    record("second run after a crash mid-run (kill -9 in Init)", "SUCCESS, once",
           observed(moto, stack, res), res)


# ------------------------------------------------------------------------------------------
# logs: one JSON event per phase, secrets redacted
# ------------------------------------------------------------------------------------------


def test_phase_events_and_redaction(moto, instance, make_stack):
    secret = f"s3cr3t-{os.urandom(6).hex()}"
    stack = make_stack(stack_variant(
        "        AgentConfig:\n",
        "        AgentConfig:\n"
        "          ECS_ENGINE_AUTH_TYPE: dockercfg\n"
        f"          ECS_ENGINE_AUTH_DATA: '{{\"https://r.example\": {{\"auth\": \"{secret}\"}}}}'\n"))
    stack_fail = stack
    instance.configure(agent={"mode": "never"})
    res = run(instance, stack_fail, 10, "-vv")
    assert res.returncode != 0
    assert secret not in res.stderr and secret not in res.stdout
    assert secret not in instance.path(STATE).read_text()
    evs = events(res)
    phases = [e for e in evs if e.get("event") == "ecs-bootstrap.phase"]
    names = [e["phase"] for e in phases]
    assert names[0] == "identity" and "metadata" in names and names[-1] == "signal", names
    assert all(isinstance(e["duration_ms"], int) for e in phases)
    join = [e for e in phases if e["phase"] == "join"]
    assert join and join[0]["outcome"] == "failed" and "deadline" in join[0]["error"]
    runs = [e for e in evs if e.get("event") == "ecs-bootstrap.run"]
    assert len(runs) == 1 and runs[0]["status"] == "FAILURE" and runs[0]["failed_phase"] == "join"
    ecs_config = instance.path(ECS_CONFIG)
    assert stat.S_IMODE(ecs_config.stat().st_mode) == 0o600, "secret in a world-readable file"
    record("secret in ECS_ENGINE_AUTH_DATA, run fails", "FAILURE, secret in no log/state",
           observed(moto, stack, res), res, "ecs.config 0600")


# ------------------------------------------------------------------------------------------
# ECS API faults during the join
# ------------------------------------------------------------------------------------------


def test_ecs_api_throttled(moto, instance, example_stack):
    moto.set_faults([{"action": "DescribeContainerInstances", "service": "ecs", "status": 400,
                      "code": "ThrottlingException", "message": "Rate exceeded", "times": 3}])
    res = run(instance, example_stack, 40)
    assert_success(moto, example_stack, res, 40)
    faulted = [r for r in moto.requests("DescribeContainerInstances") if r["fault"]]
    assert len(faulted) == 3, faulted
    record("ecs:DescribeContainerInstances throttled (3 calls)", "SUCCESS",
           observed(moto, example_stack, res), res)


def test_ecs_api_access_denied(moto, instance, example_stack):
    moto.set_faults([{"action": "DescribeContainerInstances", "service": "ecs", "status": 400,
                      "code": "AccessDeniedException",
                      "message": "User is not authorized to perform: ecs:DescribeContainerInstances"}])
    res = run(instance, example_stack, 40)
    # The confirmation is a read the instance role may lack (AmazonEC2ContainerServiceforEC2Role
    # does not grant it): one warning naming the action, SUCCESS from the agent's answer.
    assert_success(moto, example_stack, res, 40)
    warnings = [ln for ln in res.stderr.splitlines() if "ecs:DescribeContainerInstances" in ln
                and re.search(r"\bwarn(ing)?\b", ln, re.I)]
    assert len(warnings) == 1, res.stderr
    assert res.duration < 20
    record("ecs:DescribeContainerInstances AccessDenied",
           "SUCCESS, one warning naming the IAM action",
           observed(moto, example_stack, res), res)


# ------------------------------------------------------------------------------------------
# bad input: a clear error naming the key path and value, FAILURE, nothing applied
# ------------------------------------------------------------------------------------------

MODE_LINE = '              mode: "000644"\n'


@pytest.mark.parametrize("fault,old,new,patterns", [
    ("bad octal mode", MODE_LINE, '              mode: "000999"\n',
     [r"/etc/ecs-bootstrap/motd\.mode", "000999"]),
    # cfn-init ignores unknown keys (construction.py:301-309@25fabe91): a warning by default
    # (test_unknown_init_key_is_a_warning below), an error under --strict.
    ("unknown key in an Init file (--strict)", MODE_LINE, MODE_LINE + "              modee: x\n",
     [r"/etc/ecs-bootstrap/motd\.modee"]),
    ("wrong type in the ecs-bootstrap block", "        Timeout: 600\n",
     "        Timeout: [600]\n", [r"ecs-bootstrap\.Timeout"]),
    ("missing owner (user does not exist)", "              owner: root\n",
     "              owner: no-such-user-x\n", [r"no-such-user-x"]),
], ids=["octal", "unknown-key", "wrong-type", "missing-user"])
def test_bad_input(moto, instance, make_stack, fault, old, new, patterns):
    stack = make_stack(stack_variant(old, new))
    res = run(instance, stack, 40, *(["--strict"] if "--strict" in fault else []))
    line = assert_failure(moto, stack, res, 40, *patterns)
    # Found before anything was applied: no file, no command, no service.
    assert not instance.path(ECS_CONFIG).exists()
    assert not instance.path(MOTD).exists()
    assert instance.sandboxed_commands() == []
    assert instance.calls() == []
    record(f"bad input: {fault}", "FAILURE naming key and value, nothing applied",
           observed(moto, stack, res), res, line.split(" at ", 1)[1][:90])


def test_unknown_init_key_is_a_warning(moto, instance, make_stack):
    """cfn-init reads only the keys it knows and ignores the rest (construction.py:301-309
    @25fabe91): a template with a typo works there, so it works here, with a warning that
    names the key (issue 16)."""
    stack = make_stack(stack_variant(MODE_LINE, MODE_LINE + "              modee: x\n"))
    res = run(instance, stack, 40)
    assert res.returncode == 0, str(res)
    assert [ln for ln in res.stderr.splitlines()
            if "WARN" in ln and "motd.modee" in ln], res.stderr
    record("unknown key in an Init file", "warning naming the key, SUCCESS (as cfn-init)",
           observed(moto, stack, res), res)


# ------------------------------------------------------------------------------------------
# the machine itself
# ------------------------------------------------------------------------------------------


def test_no_ca_certificates(moto, instance, example_stack, tmp_path):
    # rustls-native-certs (the SDK's loader) reads SSL_CERT_FILE / SSL_CERT_DIR instead of the
    # system bundles when they are set: pointing both at empty places is a machine without
    # ca-certificates. (The SDK itself would panic here in a debug build, exit 101.)
    empty_file = tmp_path / "no-certs.pem"
    empty_file.write_text("")
    empty_dir = tmp_path / "no-certs.d"
    empty_dir.mkdir()
    res = instance.run_bootstrap(
        *example_stack.run_args("--deadline", "40"), timeout=100,
        extra_env={"SSL_CERT_FILE": str(empty_file), "SSL_CERT_DIR": str(empty_dir)})
    assert not res.timed_out and res.returncode == 7, str(res)
    assert "panicked" not in res.stderr, res.stderr
    line = failure_line(res)
    assert "no usable root CA certificates" in line, line
    assert f"SSL_CERT_FILE={empty_file}" in line and f"SSL_CERT_DIR={empty_dir}" in line, line
    # IMDS is plain HTTP: the identity was read; only the HTTPS APIs are impossible, and it
    # says so at once instead of retrying until the deadline.
    assert [r for r in instance.imds.client_requests() if r.status == 200]
    assert not api_calls(moto, "DescribeStackResource", example_stack)
    assert moto.signals(example_stack.name) == []
    assert res.duration < 10, f"took {res.duration:.1f}s"
    record("no root CA certificates (SSL_CERT_FILE/SSL_CERT_DIR empty)",
           "no signal possible (no TLS): exit 7 + message naming the CA paths",
           observed(moto, example_stack, res), res, line.split(" at ", 1)[1][:90])
