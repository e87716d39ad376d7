"""End-to-end with IAM enforced (issue 20): the instance has only its instance profile's role.

A classic CloudFormation ECS stack's instance role grants no ``cloudformation:*`` action:
cfn-init / cfn-signal sign their CloudFormation calls with the instance identity instead
(``Authorization: CFN_V1 <base64 identity document>:<identity signature>``), which
CloudFormation accepts for the stack the instance belongs to. ecs-bootstrap does the same for
DescribeStackResource(s) and SignalResource, and keeps SigV4 with the instance role (IMDS
credentials) for ECS and Auto Scaling, where a denied read call degrades to one warning.

Set-up (conftest.py): ``iam_moto`` is a moto server with IAM enforced; ``make_role_stack(kind)``
creates the example stack with a classic instance role allowing exactly ``ROLE_POLICIES[kind]``
(harness/aws.py; "Resource": "*" because moto matches no resource ARN):

* ``managed``: the actions of AWS's ``AmazonEC2ContainerServiceforEC2Role``;
* ``agent_only``: the ECS/ECR/CloudWatch Logs actions the agent needs, no ``ecs:Describe*``;
* ``none``: nothing.

``iam_instance`` answers as the stack's instance, serves the role's STS credentials from IMDS and
has no keys in its (or its fake agent's) environment. The moto request log says which auth each
request used (``"auth": "cfn_v1" | "sigv4" | "none"``).
"""

from __future__ import annotations

import json
import re

import pytest

from harness.aws import ROLE_POLICIES, wait_signals
from harness.instance import bootstrap_bin

BIN = bootstrap_bin()
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"ecs-bootstrap binary not found at {BIN}")

ECS_CONFIG = "/etc/ecs/ecs.config"
MOTD = "/etc/ecs-bootstrap/motd"
DESCRIBE_CI = "ecs:DescribeContainerInstances"
CFN_ACTIONS = ("DescribeStackResource", "DescribeStackResources", "SignalResource")


def run(instance, stack, deadline: int = 60, *extra: str):
    return instance.run_bootstrap(*stack.run_args("--deadline", str(deadline), *extra),
                                  timeout=deadline + 60)


def cfn_requests(moto, stack) -> list[dict]:
    """CloudFormation requests about `stack` (by name, or by its group's physical id), not
    counting the harness's own (signed with the admin's key)."""
    out = []
    for r in moto.requests():
        if r["action"] not in CFN_ACTIONS:
            continue
        if r.get("access_key") == moto.creds["aws_access_key_id"]:
            continue
        text = json.dumps(r["params"])
        if stack.name in text or stack.asg_name in text:
            out.append(r)
    return out


def assert_identity_signed(moto, stack, *actions: str) -> list[dict]:
    reqs = cfn_requests(moto, stack)
    assert reqs, "no CloudFormation request for the stack"
    for action in actions:
        assert any(r["action"] == action for r in reqs), f"no {action}: {reqs}"
    wrong = [(r["action"], r["auth"]) for r in reqs if r["auth"] != "cfn_v1"]
    assert not wrong, f"CloudFormation requests not signed with the instance identity: {wrong}"
    assert all(r["instance_id"] == stack.instance_id for r in reqs if "instance_id" in r)
    return reqs


def warning_lines(stderr: str, word: str) -> list[str]:
    return [ln for ln in stderr.splitlines()
            if word in ln and re.search(r"\bwarn(ing)?\b", ln, re.I)]


def one_signal(moto, stack, res) -> dict:
    sigs = wait_signals(moto, stack.name, 1, timeout=3)
    assert len(sigs) == 1, f"expected exactly one signal, got {sigs}\n{res}"
    assert (sigs[0]["LogicalResourceId"], sigs[0]["UniqueId"]) == (
        stack.signal_resource, stack.instance_id), sigs
    return sigs[0]


# ------------------------------------------------------------------------------------------
# run: roles that let the agent register
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["managed", "agent_only"])
def test_run_succeeds_with_the_instance_role_alone(iam_moto, iam_instance, make_role_stack, kind):
    stack = make_role_stack(kind)
    assert not any(a.startswith(("cloudformation:", "ecs:Describe"))
                   for a in ROLE_POLICIES[kind])
    res = run(iam_instance, stack)
    assert not res.timed_out and res.returncode == 0, str(res)
    assert one_signal(iam_moto, stack, res)["Status"] == "SUCCESS"
    assert_identity_signed(iam_moto, stack, "DescribeStackResource", "SignalResource")
    assert iam_instance.agent_config()["ECS_CLUSTER"] == stack.cluster
    # Neither role grants ecs:DescribeContainerInstances (AmazonEC2ContainerServiceforEC2Role
    # does not either): the confirmation degrades to one warning naming the action.
    denied = [r for r in iam_moto.requests("DescribeContainerInstances")
              if r["status"] == 400 and stack.cluster in json.dumps(r["params"])]
    assert denied and all(r["auth"] == "sigv4" for r in denied), denied
    assert len(warning_lines(res.stderr, DESCRIBE_CI)) == 1, res.stderr
    assert "FAILURE" not in res.stderr, res.stderr
    # The ECS calls were signed with the role's credentials, read from IMDS.
    role = iam_instance.imds.identity.iam_role
    reads = iam_instance.imds.requests(
        "GET", f"/latest/meta-data/iam/security-credentials/{role}")
    # ... once: the credentials checks before the optional calls and the SDK share one read
    ours = [r for r in reads if r.status == 200 and not r.user_agent.startswith("fake-ecs-agent")]
    assert len(ours) == 1, reads
    # ... through the run's one IMDS client: one IMDSv2 token for the identity document, its
    # signature and the role's credentials (the SDK's own provider would take a second).
    tokens = iam_instance.imds.token_requests(exclude_agent=True)
    assert len(tokens) == 1, tokens


@pytest.mark.parametrize("kind", ["managed", "agent_only"])
def test_classic_dropin_pair_with_the_instance_role(iam_moto, iam_instance, make_role_stack, kind):
    """The classic UserData: cfn-init -v ... then cfn-signal -e $? ..., no credentials."""
    stack = make_role_stack(kind)
    init = iam_instance.run_bootstrap(
        "init", "-v", "--stack", stack.name, "--resource", stack.launch_resource,
        "--region", stack.region, "--root", str(iam_instance.root), defaults=False)
    assert not init.timed_out and init.returncode == 0, str(init)
    motd = iam_instance.path(MOTD).read_text()
    assert motd.startswith(f"{stack.name}: ECS container instance of cluster {stack.cluster}")
    sig = iam_instance.run_bootstrap(
        "signal", "-e", str(init.returncode), "--stack", stack.name,
        "--resource", stack.signal_resource, "--region", stack.region, defaults=False)
    assert not sig.timed_out and sig.returncode == 0, str(sig)
    assert one_signal(iam_moto, stack, sig)["Status"] == "SUCCESS"
    meta = iam_instance.run_bootstrap(
        "get-metadata", "--stack", stack.name, "--resource", stack.launch_resource,
        "--region", stack.region, defaults=False)
    assert meta.returncode == 0, str(meta)
    assert "AWS::CloudFormation::Init" in json.loads(meta.stdout)
    assert_identity_signed(iam_moto, stack, "DescribeStackResource", "SignalResource")


def test_run_role_flag_signs_with_that_roles_credentials(iam_moto, iam_instance,
                                                         make_role_stack):
    """`run --role NAME`: SigV4 with that role's IMDS credentials, so the role needs
    cloudformation:* (granted here on "*")."""
    stack = make_role_stack(ROLE_POLICIES["managed"] + [
        "cloudformation:DescribeStackResource", "cloudformation:DescribeStackResources",
        "cloudformation:SignalResource"])
    role = iam_instance.imds.identity.iam_role
    key = iam_instance.imds.identity.role_credentials[role]["AccessKeyId"]
    res = run(iam_instance, stack, 60, "--role", role)
    assert not res.timed_out and res.returncode == 0, str(res)
    assert one_signal(iam_moto, stack, res)["Status"] == "SUCCESS"
    reqs = cfn_requests(iam_moto, stack)
    assert {r["action"] for r in reqs} >= {"DescribeStackResource", "SignalResource"}
    assert all(r["auth"] == "sigv4" and r["access_key"] == key for r in reqs), reqs
    assert iam_instance.imds.requests("GET", f"/latest/meta-data/iam/security-credentials/{role}")
    assert key.startswith("ASIA")


# ------------------------------------------------------------------------------------------
# run: failures that must still reach CloudFormation (or be clear when they cannot)
# ------------------------------------------------------------------------------------------


def test_run_role_without_permissions_signals_failure(iam_moto, iam_instance, make_role_stack):
    """Nothing granted: the agent's RegisterContainerInstance is denied. The instance is still
    configured and the FAILURE (identity-signed) reaches CloudFormation."""
    stack = make_role_stack("none")
    res = run(iam_instance, stack, 60)
    assert not res.timed_out and res.returncode not in (0, None), str(res)
    assert f"ECS_CLUSTER={stack.cluster}" in iam_instance.path(ECS_CONFIG).read_text()
    assert one_signal(iam_moto, stack, res)["Status"] == "FAILURE"
    assert_identity_signed(iam_moto, stack, "DescribeStackResource", "SignalResource")
    failure = [ln for ln in res.stderr.splitlines() if "FAILURE" in ln]
    assert failure and re.search(r"regist", failure[-1], re.I), res.stderr
    agent_log = iam_instance.agent_log()
    assert "AccessDeniedException" in agent_log and "ecs:RegisterContainerInstance" in agent_log


CLUSTER_LINE = "        Cluster: !Ref ApplicationCluster\n"


def missing_cluster_body(name: str) -> str:
    from harness.aws import example_template
    body = example_template("stack.yml")
    assert CLUSTER_LINE in body
    return body.replace(CLUSTER_LINE, f"        Cluster: {name}\n", 1)


def test_missing_cluster_without_describe_clusters(iam_moto, iam_instance, make_role_stack):
    """The classic role (AmazonEC2ContainerServiceforEC2Role) may not call ecs:DescribeClusters:
    one warning naming it, then the services start. The agent's RegisterContainerInstance gets
    ClusterNotFoundException: it logs `Received terminal error from RegisterContainerInstance
    call, exiting` and exits 1; ecs-init logs `Agent exited with code 1` and restarts it
    (reference.md §4; ecs_client.go:262-270, engine.go:293-340@8dfceca6). The run fails in
    seconds on that line with exit code 1, not at the Timeout."""
    name = f"no-such-cluster-{iam_moto.port}"
    stack = make_role_stack("managed", body=missing_cluster_body(name))
    res = run(iam_instance, stack, 120)
    assert not res.timed_out and res.returncode == 6, str(res)
    assert res.duration < 40, f"took {res.duration:.1f}s: not from the agent's log?"
    assert one_signal(iam_moto, stack, res)["Status"] == "FAILURE"
    failure = [ln for ln in res.stderr.splitlines() if "FAILURE at" in ln][-1]
    for want in ("cluster join", "exit code 1", "ClusterNotFoundException", f"'{name}'"):
        assert want in failure, f"{want!r} not in {failure!r}"
    assert len(warning_lines(res.stderr, "ecs:DescribeClusters")) == 1, res.stderr
    denied = [r for r in iam_moto.requests("DescribeClusters") if name in json.dumps(r["params"])]
    assert denied and all(r["status"] == 400 for r in denied), denied


def test_missing_cluster_with_describe_clusters(iam_moto, iam_instance, make_role_stack):
    """With ecs:DescribeClusters granted, the missing cluster is found before the services
    start: FAILURE naming the cluster, the region and the fix; the agent is never started."""
    name = f"no-such-cluster-{iam_moto.port}-x"
    stack = make_role_stack(ROLE_POLICIES["managed"] + ["ecs:DescribeClusters"],
                            body=missing_cluster_body(name))
    res = run(iam_instance, stack, 60)
    assert not res.timed_out and res.returncode == 6, str(res)
    assert res.duration < 20
    assert one_signal(iam_moto, stack, res)["Status"] == "FAILURE"
    failure = [ln for ln in res.stderr.splitlines() if "FAILURE at" in ln][-1]
    for want in ("ECS cluster check", f"'{name}'", "does not exist", stack.region,
                 "create the cluster"):
        assert want in failure, f"{want!r} not in {failure!r}"
    assert not warning_lines(res.stderr, "ecs:DescribeClusters"), res.stderr
    assert iam_instance.agent_config() is None, "the agent was started"


def test_run_with_a_wrong_identity_signature(iam_moto, iam_instance, make_role_stack):
    """CloudFormation refuses the identity: nothing can be signalled; exit 7, named."""
    stack = make_role_stack("managed")
    iam_instance.imds.bad_signature = True
    res = run(iam_instance, stack, 60)
    assert not res.timed_out and res.returncode == 7, str(res)
    assert re.search(r"SignatureDoesNotMatch|instance identity signature", res.stderr), res.stderr
    assert iam_moto.signals(stack.name) == []
    refused = [r for r in cfn_requests(iam_moto, stack) if r.get("refused")]
    assert refused and all(r["auth"] == "cfn_v1" and r["refused"] == "SignatureDoesNotMatch"
                           for r in refused), refused
    assert not iam_instance.path(ECS_CONFIG).exists()


def test_run_with_slow_role_credentials(iam_moto, iam_instance, make_role_stack):
    """IMDS answers the role's credentials 3 s late (the SDK's provider waits 1 s)."""
    stack = make_role_stack("managed")
    iam_instance.imds.credentials_delay = 3.0
    res = run(iam_instance, stack, 90)
    assert not res.timed_out, str(res)
    sig = one_signal(iam_moto, stack, res)
    assert sig["Status"] == ("SUCCESS" if res.returncode == 0 else "FAILURE"), f"{sig}\n{res}"
    assert_identity_signed(iam_moto, stack, "DescribeStackResource", "SignalResource")


@pytest.mark.parametrize("status", [500, 404])
def test_run_with_failing_role_credentials(iam_moto, iam_instance, make_role_stack, status):
    """IMDS answers the role's credentials with an error: whatever becomes of the ECS side,
    the outcome is signalled (identity signing needs no credentials)."""
    stack = make_role_stack("managed")
    iam_instance.imds.credentials_status = status
    res = run(iam_instance, stack, 60)
    assert not res.timed_out, str(res)
    sig = one_signal(iam_moto, stack, res)
    assert sig["Status"] == ("SUCCESS" if res.returncode == 0 else "FAILURE"), f"{sig}\n{res}"
    assert_identity_signed(iam_moto, stack, "DescribeStackResource", "SignalResource")


# ------------------------------------------------------------------------------------------
# zero-config discovery with the instance role alone
# ------------------------------------------------------------------------------------------


def test_discovery_from_tags_needs_no_permission(iam_moto, iam_instance, make_role_stack):
    """Launch template (instance metadata tags): DescribeStackResources identity-signed."""
    stack = make_role_stack("managed", base="stack-launch-template.yml")
    assert stack.metadata_tags_enabled
    res = iam_instance.run_bootstrap("run", "--region", stack.region, "--deadline", "60",
                                     timeout=120)
    assert not res.timed_out and res.returncode == 0, str(res)
    assert one_signal(iam_moto, stack, res)["Status"] == "SUCCESS"
    assert_identity_signed(iam_moto, stack, "DescribeStackResources", "DescribeStackResource",
                           "SignalResource")


def test_discovery_through_autoscaling_needs_its_permission(iam_moto, iam_instance,
                                                            make_role_stack):
    """Launch configuration: autoscaling:DescribeAutoScalingInstances (SigV4, instance role).
    Denied: exit 2 naming the flags to pass, nothing signalled (the stack is not known)."""
    stack = make_role_stack("managed")
    res = iam_instance.run_bootstrap("run", "--region", stack.region, "--deadline", "60",
                                     timeout=120)
    assert not res.timed_out and res.returncode == 2, str(res)
    for word in ("autoscaling:DescribeAutoScalingInstances", "--stack", "--resource",
                 "--signal-resource"):
        assert word in res.stderr, f"{word!r} not in stderr\n{res}"
    assert iam_moto.signals(stack.name) == []
    denied = [r for r in iam_moto.requests("DescribeAutoScalingInstances")
              if stack.instance_id in json.dumps(r["params"])]
    assert denied and all(r["status"] == 403 and r["auth"] == "sigv4" for r in denied), denied


def test_discovery_through_autoscaling_with_its_permission(iam_moto, iam_instance,
                                                           make_role_stack):
    stack = make_role_stack(ROLE_POLICIES["managed"]
                            + ["autoscaling:DescribeAutoScalingInstances"])
    res = iam_instance.run_bootstrap("run", "--region", stack.region, "--deadline", "60",
                                     timeout=120)
    assert not res.timed_out and res.returncode == 0, str(res)
    assert one_signal(iam_moto, stack, res)["Status"] == "SUCCESS"
    assert_identity_signed(iam_moto, stack, "DescribeStackResources", "SignalResource")
    role = iam_instance.imds.identity.iam_role
    key = iam_instance.imds.identity.role_credentials[role]["AccessKeyId"]
    asg = [r for r in iam_moto.requests("DescribeAutoScalingInstances")
           if stack.instance_id in json.dumps(r["params"])]
    assert asg and all(r["status"] == 200 and r.get("access_key") == key for r in asg), asg


@pytest.mark.parametrize("log", ["trace", "debug"])
def test_the_identity_proof_is_never_logged(moto, instance, example_stack, log):
    """The identity document and signature sign for the stack: at no log level do they (or the
    CFN_V1 header) reach stderr, the console and the journal."""
    res = instance.run_bootstrap(*example_stack.run_args("-vv"), timeout=60,
                                 extra_env={"ECS_BOOTSTRAP_LOG": log})
    assert res.returncode == 0, str(res)
    reqs = [r for r in moto.requests() if r.get("auth") == "cfn_v1"
            and example_stack.name in json.dumps(r["params"])]
    assert reqs, "no identity-signed request"
    import base64
    doc = instance.imds.identity.document_text()
    signature = instance.imds._signature(doc, "rsa")
    out = (res.stdout + res.stderr).replace("\n", "")
    assert not re.search(r"CFN_V1 [A-Za-z0-9+/]{8}", out)
    assert base64.b64encode(doc.encode()).decode()[:40] not in out
    assert signature.replace("\n", "")[:40] not in out
    for line in signature.splitlines():
        assert line not in out, line
