"""Self-tests of the harness (no ecs-bootstrap binary needed).

If one of these fails, the e2e tests in test_boot.py prove nothing.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions
import pytest

from harness import procs
from harness.aws import create_stack, example_template
from harness.fake_agent import parse_ecs_config
from harness.imds import ImdsServer, InstanceIdentity

# ------------------------------------------------------------------------------------------
# IMDS double
# ------------------------------------------------------------------------------------------


def _req(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


@pytest.fixture
def imds():
    with ImdsServer(InstanceIdentity(instance_id="i-0abc", region="eu-west-1",
                                     availability_zone="eu-west-1b",
                                     tags={"Name": "web", "team": "core"})) as srv:
        yield srv


def _token(imds, ttl="60"):
    status, headers, body = _req(imds.url + "latest/api/token", "PUT",
                                 {"x-aws-ec2-metadata-token-ttl-seconds": ttl})
    assert status == 200, (status, body)
    return body, headers


def test_imds_token_requires_ttl_header(imds):
    status, _, _ = _req(imds.url + "latest/api/token", "PUT")
    assert status == 400
    for bad in ("0", "21601", "abc", "-5"):
        status, _, _ = _req(imds.url + "latest/api/token", "PUT",
                            {"x-aws-ec2-metadata-token-ttl-seconds": bad})
        assert status == 400, bad


def test_imds_token_echoes_ttl_and_is_random(imds):
    t1, headers = _token(imds, "21600")
    assert headers.get("x-aws-ec2-metadata-token-ttl-seconds") == "21600"
    t2, _ = _token(imds, "1")
    assert t1 and t2 and t1 != t2


def test_imds_rejects_forwarded_token_request(imds):
    status, _, _ = _req(imds.url + "latest/api/token", "PUT",
                        {"x-aws-ec2-metadata-token-ttl-seconds": "60",
                         "X-Forwarded-For": "10.1.2.3"})
    assert status == 403


def test_imds_get_needs_valid_token(imds):
    assert _req(imds.url + "latest/meta-data/instance-id")[0] == 401
    assert _req(imds.url + "latest/meta-data/instance-id",
                headers={"x-aws-ec2-metadata-token": "forged"})[0] == 401
    token, _ = _token(imds)
    status, _, body = _req(imds.url + "latest/meta-data/instance-id",
                           headers={"x-aws-ec2-metadata-token": token})
    assert (status, body) == (200, "i-0abc")


def test_imds_token_expires(imds):
    token, _ = _token(imds, "1")
    h = {"x-aws-ec2-metadata-token": token}
    assert _req(imds.url + "latest/meta-data/instance-id", headers=h)[0] == 200
    time.sleep(1.2)
    assert _req(imds.url + "latest/meta-data/instance-id", headers=h)[0] == 401


def test_imds_paths_and_log(imds):
    token, _ = _token(imds)
    h = {"x-aws-ec2-metadata-token": token}

    def get(p):
        return _req(imds.url + p.lstrip("/"), headers=h)

    assert get("/latest/meta-data/placement/region")[2] == "eu-west-1"
    assert get("/latest/meta-data/placement/availability-zone")[2] == "eu-west-1b"
    assert get("/latest/meta-data/instance-type")[2] == "t3.small"
    doc = json.loads(get("/latest/dynamic/instance-identity/document")[2])
    assert doc["instanceId"] == "i-0abc" and doc["region"] == "eu-west-1"
    assert doc["accountId"] == "123456789012" and doc["availabilityZone"] == "eu-west-1b"
    assert get("/latest/dynamic/instance-identity/signature")[0] == 200
    assert get("/latest/meta-data/tags/instance")[2].split("\n") == ["Name", "team"]
    assert get("/latest/meta-data/tags/instance/team")[2] == "core"
    assert get("/latest/meta-data/tags/instance/nope")[0] == 404
    assert get("/latest/meta-data/nope")[0] == 404
    imds.identity.tags = None
    assert get("/latest/meta-data/tags/instance")[0] == 404
    assert get("/latest/meta-data/tags/instance/team")[0] == 404

    puts = imds.token_requests()
    assert len(puts) == 1
    gets = imds.requests("GET")
    assert gets and all(r.token_sent for r in gets)


# ------------------------------------------------------------------------------------------
# moto with the harness patches
# ------------------------------------------------------------------------------------------


def test_example_stacks_create_in_moto(moto, network):
    for variant, launch in (("stack.yml", "ApplicationAutoscalingLaunchConfiguration"),
                            ("stack-launch-template.yml", "ApplicationAutoscalingLaunchTemplate")):
        stack = create_stack(moto, network, example_template(variant))
        assert stack.launch_resource == launch
        assert stack.cluster and stack.instance_id.startswith("i-")
        assert stack.metadata_tags_enabled == (variant != "stack.yml")
        assert stack.outputs["ClusterName"] == stack.cluster


def test_describe_stack_resource_metadata_resolved(moto, example_stack):
    cfn = moto.client("cloudformation")
    detail = cfn.describe_stack_resource(
        StackName=example_stack.name,
        LogicalResourceId=example_stack.launch_resource)["StackResourceDetail"]
    assert isinstance(detail["Metadata"], str), "Metadata must be a JSON string, as in AWS"
    meta = json.loads(detail["Metadata"])
    block = meta["ecs-bootstrap"]
    assert block["Cluster"] == example_stack.cluster  # !Ref ApplicationCluster -> name
    assert block["Logs"]["GroupPrefix"] == f"{example_stack.name}/ec2/ApplicationAutoscaling"
    assert block["AgentConfig"]["ECS_ENABLE_CONTAINER_METADATA"] is True
    assert block["AgentConfig"]["ECS_AVAILABLE_LOGGING_DRIVERS"] == ["json-file", "awslogs"]
    init = meta["AWS::CloudFormation::Init"]["config"]
    assert sorted(init["commands"]) == ["05_public_volume", "06_public_volume_permissions"]
    (content,) = [f["content"] for f in init["files"].values()]
    assert example_stack.cluster in content and "${" not in content

    # a resource without Metadata: the member is absent, as in AWS
    detail = cfn.describe_stack_resource(
        StackName=example_stack.name, LogicalResourceId="ApplicationCluster")["StackResourceDetail"]
    assert "Metadata" not in detail


def test_describe_stack_resource_metadata_launch_template(moto, make_stack):
    stack = make_stack(example_template("stack-launch-template.yml"))
    detail = moto.client("cloudformation").describe_stack_resource(
        StackName=stack.name, LogicalResourceId="ApplicationAutoscalingLaunchTemplate")
    meta = json.loads(detail["StackResourceDetail"]["Metadata"])
    assert meta["ecs-bootstrap"]["Cluster"] == stack.cluster


def _client_error(fn, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    return e.value.response["Error"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_signal_resource_recorded(moto, example_stack):
    cfn = moto.client("cloudformation")
    cfn.signal_resource(StackName=example_stack.name, LogicalResourceId="ApplicationAutoscaling",
                        UniqueId=example_stack.instance_id, Status="SUCCESS")
    (sig,) = moto.signals(example_stack.name)
    assert sig["LogicalResourceId"] == "ApplicationAutoscaling"
    assert sig["UniqueId"] == example_stack.instance_id
    assert sig["Status"] == "SUCCESS"
    assert sig["StackId"] == example_stack.stack_id
    assert abs(sig["time"] - time.time()) < 60
    # Count (= ApplicationDesiredCount = 1) reached: the resource is complete now
    err, status = _client_error(cfn.signal_resource, StackName=example_stack.name,
                                LogicalResourceId="ApplicationAutoscaling",
                                UniqueId=example_stack.instance_id, Status="SUCCESS")
    assert status == 400 and err["Code"] == "ValidationError"
    assert "is in CREATE_COMPLETE state and cannot be signaled" in err["Message"]
    assert len(moto.signals(example_stack.name)) == 1


def test_signal_resource_by_stack_id_and_failure(moto, example_stack):
    cfn = moto.client("cloudformation")
    cfn.signal_resource(StackName=example_stack.stack_id, LogicalResourceId="ApplicationAutoscaling",
                        UniqueId="i-x", Status="FAILURE")
    (sig,) = moto.signals(example_stack.name)
    assert sig["Status"] == "FAILURE"
    err, _ = _client_error(cfn.signal_resource, StackName=example_stack.name,
                           LogicalResourceId="ApplicationAutoscaling", UniqueId="i-x",
                           Status="SUCCESS")
    assert "CREATE_FAILED" in err["Message"]


def test_signal_resource_validation(moto, example_stack):
    cfn = moto.client("cloudformation")
    err, status = _client_error(cfn.signal_resource, StackName="no-such-stack",
                                LogicalResourceId="ApplicationAutoscaling", UniqueId="i-1",
                                Status="SUCCESS")
    assert (status, err["Code"]) == (400, "ValidationError")
    assert err["Message"] == "Stack with id no-such-stack does not exist"
    err, status = _client_error(cfn.signal_resource, StackName=example_stack.name,
                                LogicalResourceId="NoSuchResource", UniqueId="i-1",
                                Status="SUCCESS")
    assert (status, err["Code"]) == (400, "ValidationError")
    assert err["Message"] == f"Resource NoSuchResource does not exist for stack {example_stack.name}"
    # a resource without CreationPolicy cannot be signalled
    err, _ = _client_error(cfn.signal_resource, StackName=example_stack.name,
                           LogicalResourceId="ApplicationCluster", UniqueId="i-1", Status="SUCCESS")
    assert "cannot be signaled" in err["Message"]
    assert moto.signals(example_stack.name) == []


def test_signal_resource_status_enum(moto, example_stack):
    # boto3 validates the enum client-side; send the raw query request like a broken client
    import urllib.parse

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = urllib.parse.urlencode({
        "Action": "SignalResource", "Version": "2010-05-15", "StackName": example_stack.name,
        "LogicalResourceId": "ApplicationAutoscaling", "UniqueId": "i-1", "Status": "MAYBE"})
    req = AWSRequest("POST", moto.url + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials("testing", "testing"), "cloudformation", "us-east-1").add_auth(req)
    status, _, text = _req_raw(req)
    assert status == 400 and "ValidationError" in text and "SUCCESS, FAILURE" in text
    assert moto.signals(example_stack.name) == []


def _req_raw(aws_req):
    req = urllib.request.Request(aws_req.url, data=aws_req.body.encode()
                                 if isinstance(aws_req.body, str) else aws_req.body,
                                 method=aws_req.method, headers=dict(aws_req.headers))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_fault_injection_and_request_log(moto, example_stack):
    cfn = moto.client("cloudformation")
    moto.set_faults([{"action": "DescribeStackResource", "status": 400, "code": "Throttling",
                      "message": "Rate exceeded", "times": 1}])
    try:
        cfn_noretry = boto3.client(
            "cloudformation", endpoint_url=moto.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}))
        err, status = _client_error(cfn_noretry.describe_stack_resource,
                                    StackName=example_stack.name,
                                    LogicalResourceId=example_stack.launch_resource)
        assert (status, err["Code"], err["Message"]) == (400, "Throttling", "Rate exceeded")
        # times=1: used up, the next call goes through
        cfn.describe_stack_resource(StackName=example_stack.name,
                                    LogicalResourceId=example_stack.launch_resource)
    finally:
        moto.set_faults([])
    log = [r for r in moto.requests("DescribeStackResource")
           if r["params"].get("StackName") == example_stack.name]
    assert [(r["status"], r["fault"]) for r in log[-2:]] == [(400, True), (200, False)]
    assert log[-1]["service"] == "cloudformation"


def test_rate_rule_is_a_token_bucket():
    from harness.moto_server import HarnessState

    st = HarnessState()
    st.faults[:] = [{"action": "*", "service": "cloudformation", "rate": 5, "burst": 2,
                     "status": 400, "code": "Throttling"}]
    # The burst passes, the next is throttled; other services are not limited.
    assert [st.take_fault("cloudformation", "X") is None for _ in range(3)] == [True, True, False]
    assert st.take_fault("ecs", "X") is None
    time.sleep(0.25)  # 5/s refills one token in 0.2 s
    assert st.take_fault("cloudformation", "X") is None
    assert st.take_fault("cloudformation", "X") is not None


# ------------------------------------------------------------------------------------------
# fake systemctl + fake ECS agent
# ------------------------------------------------------------------------------------------


def test_ecs_config_parser_is_ecs_init_like():
    cfg = parse_ecs_config('ECS_CLUSTER="quoted"\n  ECS_LOGLEVEL=debug  \nKEY = v\n# comment\n'
                           'ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","awslogs"]\nnoequals\n')
    assert cfg == {"ECS_CLUSTER": '"quoted"', "ECS_LOGLEVEL": "debug", "KEY ": " v",
                   "ECS_AVAILABLE_LOGGING_DRIVERS": '["json-file","awslogs"]'}


def test_systemctl_unknown_unit_and_verbs(instance):
    r = instance.systemctl("start", "nginx")
    assert r.returncode == 5
    assert r.stderr.strip() == "Failed to start nginx.service: Unit nginx.service not found."
    r = instance.systemctl("is-active", "docker")
    assert (r.returncode, r.stdout.strip()) == (3, "inactive")
    r = instance.systemctl("is-failed", "docker.service")
    assert (r.returncode, r.stdout.strip()) == (1, "inactive")
    assert instance.systemctl("is-enabled", "ecs").returncode == 1
    assert instance.systemctl("enable", "ecs.service").returncode == 0
    r = instance.systemctl("is-enabled", "ecs")
    assert (r.returncode, r.stdout.strip()) == (0, "enabled")
    assert instance.systemctl("daemon-reload").returncode == 0
    assert instance.calls()[0] == ["start", "nginx"]


def _register_and_metadata(instance, timeout=30):
    def metadata():
        try:
            with urllib.request.urlopen(instance.introspection_url + "/v1/metadata",
                                        timeout=1) as r:
                return json.loads(r.read())
        except OSError:
            return None

    return procs.wait_until(metadata, timeout=timeout, interval=0.1, what="agent introspection")


def _write_ecs_config(instance, text):
    p = instance.path("/etc/ecs/ecs.config")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_agent_registers_after_docker_and_no_block_start(moto, instance, example_stack):
    _write_ecs_config(instance, f"ECS_CLUSTER={example_stack.cluster}\n")
    assert not procs.port_open(instance.agent_port)
    r = instance.systemctl("start", "docker")
    assert r.returncode == 0
    assert instance.systemctl("is-active", "docker").stdout.strip() == "active"
    r = instance.systemctl("start", "--no-block", "ecs.service")
    assert r.returncode == 0 and not r.timed_out
    meta = _register_and_metadata(instance)
    assert meta["Cluster"] == example_stack.cluster
    assert meta["Version"].startswith("Amazon ECS Agent")
    ecs = moto.client("ecs")
    arns = ecs.list_container_instances(cluster=example_stack.cluster)["containerInstanceArns"]
    assert arns == [meta["ContainerInstanceArn"]]
    (ci,) = ecs.describe_container_instances(cluster=example_stack.cluster,
                                             containerInstances=arns)["containerInstances"]
    assert ci["ec2InstanceId"] == example_stack.instance_id
    r = instance.systemctl("is-active", "ecs")
    assert (r.returncode, r.stdout.strip()) == (0, "active")
    assert instance.systemctl("is-failed", "ecs").returncode == 1
    # the agent fetched its identity over IMDSv2
    assert instance.imds.token_requests()
    # start of an active unit is a no-op (no second registration)
    assert instance.systemctl("start", "--no-block", "ecs").returncode == 0
    time.sleep(0.5)
    assert len(ecs.list_container_instances(cluster=example_stack.cluster)
               ["containerInstanceArns"]) == 1
    # stop closes the port again
    assert instance.systemctl("stop", "ecs").returncode == 0
    procs.wait_until(lambda: not procs.port_open(instance.agent_port), 5, what="port closed")
    assert instance.systemctl("is-active", "ecs").stdout.strip() == "inactive"


def test_agent_reads_quoted_cluster_literally(moto, instance, example_stack):
    # A quoted value stays quoted for ecs-init: cluster '"name"' does not exist -> exit 5.
    _write_ecs_config(instance, f'ECS_CLUSTER="{example_stack.cluster}"\n')
    instance.systemctl("start", "docker")
    instance.systemctl("start", "--no-block", "ecs")
    procs.wait_until(lambda: instance.systemctl("is-failed", "ecs").returncode == 0, 30,
                     what="ecs failed")
    assert instance.agent_config()["ECS_CLUSTER"] == f'"{example_stack.cluster}"'
    assert "ClusterNotFoundException" in instance.agent_log()
    assert not procs.port_open(instance.agent_port)


def test_agent_exit5_mode_fails_unit(instance, example_stack):
    _write_ecs_config(instance, f"ECS_CLUSTER={example_stack.cluster}\n")
    instance.configure(agent={"mode": "exit5"})
    instance.systemctl("start", "docker")
    instance.systemctl("start", "--no-block", "ecs")
    procs.wait_until(lambda: instance.systemctl("is-failed", "ecs").stdout.strip() == "failed",
                     15, what="ecs failed")
    r = instance.systemctl("is-failed", "ecs")
    assert r.returncode == 0
    assert instance.systemctl("is-active", "ecs").returncode == 3


def test_ecs_fails_without_docker_and_docker_fail_knob(instance):
    instance.configure(docker={"fail": True})
    r = instance.systemctl("start", "docker")
    assert r.returncode == 1 and "docker.service failed" in r.stderr
    assert instance.systemctl("is-failed", "docker").stdout.strip() == "failed"
    assert instance.systemctl("start", "--no-block", "ecs").returncode == 0
    assert instance.systemctl("is-failed", "ecs").returncode == 0


def test_docker_delay_then_active(instance):
    instance.configure(docker={"delay": 1.0})
    assert instance.systemctl("start", "--no-block", "docker").returncode == 0
    r = instance.systemctl("is-active", "docker")
    assert (r.returncode, r.stdout.strip()) == (3, "activating")
    procs.wait_until(lambda: instance.systemctl("is-active", "docker").returncode == 0, 5,
                     what="docker active")


def test_blocking_start_of_ecs_hangs(instance, example_stack):
    _write_ecs_config(instance, f"ECS_CLUSTER={example_stack.cluster}\n")
    instance.systemctl("start", "docker")
    r = instance.systemctl("start", "ecs", timeout=2)
    assert r.timed_out, "a blocking `systemctl start ecs` must deadlock like under cloud-final"
    r = instance.systemctl("enable", "--now", "ecs", timeout=2)
    assert r.timed_out
    assert not procs.port_open(instance.agent_port)


def test_agent_never_mode_keeps_port_closed(instance, example_stack):
    _write_ecs_config(instance, f"ECS_CLUSTER={example_stack.cluster}\n")
    instance.configure(agent={"mode": "never"})
    instance.systemctl("start", "docker")
    instance.systemctl("start", "--no-block", "ecs")
    time.sleep(1.5)
    assert instance.systemctl("is-active", "ecs").stdout.strip() == "active"
    assert not procs.port_open(instance.agent_port)


def test_agent_wrong_cluster_mode(moto, instance, example_stack):
    other = moto.client("ecs").create_cluster(clusterName=f"other-{example_stack.name}")
    other = other["cluster"]["clusterName"]
    _write_ecs_config(instance, f"ECS_CLUSTER={example_stack.cluster}\n")
    instance.configure(agent={"mode": "wrong_cluster", "cluster": other})
    instance.systemctl("start", "docker")
    instance.systemctl("start", "--no-block", "ecs")
    meta = _register_and_metadata(instance)
    assert meta["Cluster"] == other
    ecs = moto.client("ecs")
    assert ecs.list_container_instances(cluster=other)["containerInstanceArns"]
    assert ecs.list_container_instances(cluster=example_stack.cluster)["containerInstanceArns"] == []
    # DescribeContainerInstances in the expected cluster: MISSING (moto would 500 here)
    resp = ecs.describe_container_instances(cluster=example_stack.cluster,
                                            containerInstances=[meta["ContainerInstanceArn"]])
    assert resp["containerInstances"] == [] and resp["failures"][0]["reason"] == "MISSING"


def test_teardown_kills_agent_group(moto, network, tmp_path):
    from harness.instance import Instance

    stack = create_stack(moto, network, example_template("stack.yml"))
    inst = Instance(moto, tmp_path / "x").use_stack(stack)
    try:
        _write_ecs_config(inst, f"ECS_CLUSTER={stack.cluster}\n")
        inst.systemctl("start", "docker")
        inst.systemctl("start", "--no-block", "ecs")
        _register_and_metadata(inst)
        pgids = [int(x) for x in (inst.systemd_dir / "ecs.pgid").read_text().split()]
        assert pgids and all(procs.group_alive(p) for p in pgids)
    finally:
        inst.close()
    assert not any(procs.group_alive(p) for p in pgids)
    assert not procs.port_open(inst.agent_port)
