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
    # What the ECS agent reads besides the identity document (reference.md §4,
    # ecs-agent/ec2/ec2_metadata_client.go:44-47@8dfceca6)
    mac = get("/latest/meta-data/mac")[2]
    base = f"/latest/meta-data/network/interfaces/macs/{mac}"
    assert get(f"{base}/vpc-id")[2].startswith("vpc-")
    assert get(f"{base}/subnet-id")[2].startswith("subnet-")
    imds.identity.subnet_id = None
    assert get(f"{base}/subnet-id")[0] == 404
    imds.identity.mac = None
    assert get("/latest/meta-data/mac")[0] == 404

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
    """A quoted value stays quoted for ecs-init: cluster '"name"' does not exist. As the real
    agent does (reference.md §4, ecs-agent/api/ecs/client/ecs_client.go:262-270@8dfceca6), the
    fake logs ClusterNotFoundException in `Received terminal error from
    RegisterContainerInstance call, exiting` and exits 1; the ecs-init-like supervisor logs
    `Agent exited with code 1` and restarts it (ecs-init/engine/engine.go:293-340): the unit
    stays active."""
    _write_ecs_config(instance, f'ECS_CLUSTER="{example_stack.cluster}"\n')
    instance.systemctl("start", "docker")
    instance.systemctl("start", "--no-block", "ecs")
    init_log = instance.path("/var/log/ecs/ecs-init.log")
    procs.wait_until(lambda: init_log.exists()
                     and init_log.read_text().count("Agent exited with code 1") >= 2, 30,
                     what="two exits, the second after a restart")
    assert instance.agent_config()["ECS_CLUSTER"] == f'"{example_stack.cluster}"'
    agent_log = instance.path("/var/log/ecs/ecs-agent.log").read_text()
    terminal = [ln for ln in agent_log.splitlines()
                if "Received terminal error from RegisterContainerInstance call" in ln]
    assert terminal and "ClusterNotFoundException: Cluster not found." in terminal[0], agent_log
    assert "retrying in" in init_log.read_text()
    assert instance.systemctl("is-active", "ecs").stdout.strip() == "active"
    assert instance.systemctl("is-failed", "ecs").returncode == 1
    shown = instance.systemctl("show", "-p", "ExecMainStatus", "--value", "ecs").stdout.strip()
    assert shown == "0"
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
    # ecs-init exits 5 after the agent's exit 5 (ecs-init/ecs-init.go:71-73@8dfceca6)
    shown = instance.systemctl("show", "-p", "ExecMainStatus", "--value", "ecs").stdout.strip()
    assert shown == "5"
    assert "Agent exited with code 5" in instance.path("/var/log/ecs/ecs-init.log").read_text()
    assert "Agent will terminally exit" in instance.path("/var/log/ecs/ecs-agent.log").read_text()


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


# ------------------------------------------------------------------------------------------
# instance identity signature (IMDS double) and CFN_V1 (moto server)
# ------------------------------------------------------------------------------------------


def _imds_get(imds, path):
    token, _ = _token(imds)
    return _req(imds.url + path.lstrip("/"), headers={"x-aws-ec2-metadata-token": token})


def test_imds_signature_is_over_the_served_document(imds):
    import base64

    from harness import identity

    doc = _imds_get(imds, "/latest/dynamic/instance-identity/document")[2]
    status, _, sig = _imds_get(imds, "/latest/dynamic/instance-identity/signature")
    assert status == 200
    lines = sig.split("\n")
    assert all(len(line) == 64 for line in lines[:-1]) and 0 < len(lines[-1]) <= 64, sig
    assert identity.verify(doc.encode(), sig)
    assert identity.verify(doc.rstrip().encode(), sig.replace("\n", ""))
    # Another instance (what use_stack does): a new document, signed too.
    imds.identity.instance_id = "i-0fedcba9876543210"
    doc2 = _imds_get(imds, "/latest/dynamic/instance-identity/document")[2]
    sig2 = _imds_get(imds, "/latest/dynamic/instance-identity/signature")[2]
    assert json.loads(doc2)["instanceId"] == "i-0fedcba9876543210"
    assert identity.verify(doc2.encode(), sig2) and not identity.verify(doc.encode(), sig2)
    # PKCS#7 signed-data (DER, base64) holding the document
    status, _, p7 = _imds_get(imds, "/latest/dynamic/instance-identity/pkcs7")
    assert status == 200 and doc2.encode() in base64.b64decode(p7.replace("\n", ""))
    # bad_signature: well-formed, but not over the document
    imds.bad_signature = True
    bad = _imds_get(imds, "/latest/dynamic/instance-identity/signature")[2]
    base64.b64decode(bad.replace("\n", ""), validate=True)
    assert not identity.verify(doc2.encode(), bad)


def test_imds_credentials_knobs(imds):
    imds.identity.iam_role = "ecsInstanceRole"
    imds.identity.role_credentials = {"ecsInstanceRole": {
        "AccessKeyId": "ASIAX", "SecretAccessKey": "s", "Token": "t",
        "Expiration": "2030-01-01T00:00:00Z"}}
    path = "/latest/meta-data/iam/security-credentials/"
    assert _imds_get(imds, path)[2] == "ecsInstanceRole"
    creds = json.loads(_imds_get(imds, path + "ecsInstanceRole")[2])
    assert (creds["Code"], creds["AccessKeyId"], creds["Token"], creds["Expiration"]) == (
        "Success", "ASIAX", "t", "2030-01-01T00:00:00Z")
    imds.credentials_delay = 0.6
    t0 = time.monotonic()
    assert _imds_get(imds, path + "ecsInstanceRole")[0] == 200
    assert time.monotonic() - t0 >= 0.6
    t0 = time.monotonic()
    assert _imds_get(imds, "/latest/meta-data/instance-id")[0] == 200  # other paths: no delay
    assert time.monotonic() - t0 < 0.5
    imds.credentials_delay = 0
    for status in (500, 404):
        imds.credentials_status = status
        assert _imds_get(imds, path + "ecsInstanceRole")[0] == status
        assert _imds_get(imds, path)[0] == status
    assert _imds_get(imds, "/latest/meta-data/instance-id")[0] == 200


def _cfn_v1(moto, ident, signature=None):
    from harness import identity

    doc = ident.document_text()
    return moto.cfn_v1_client(doc, signature or identity.sign(doc.encode()))


def test_cfn_v1_valid_signature_reaches_cloudformation(moto, instance, example_stack):
    moto.reset()
    ident = instance.imds.identity  # use_stack: the stack's ASG instance
    cfn = _cfn_v1(moto, ident)
    detail = cfn.describe_stack_resource(
        StackName=example_stack.name,
        LogicalResourceId=example_stack.launch_resource)["StackResourceDetail"]
    assert json.loads(detail["Metadata"])["ecs-bootstrap"]["Cluster"] == example_stack.cluster
    by_physical = cfn.describe_stack_resources(PhysicalResourceId=example_stack.asg_name)
    assert {r["StackName"] for r in by_physical["StackResources"]} == {example_stack.name}
    cfn.signal_resource(StackName=example_stack.name, LogicalResourceId="ApplicationAutoscaling",
                        UniqueId=ident.instance_id, Status="SUCCESS")
    assert [s["Status"] for s in moto.signals(example_stack.name)] == ["SUCCESS"]
    # a stack that does not exist: CloudFormation's own ValidationError, as when signed
    with pytest.raises(botocore.exceptions.ClientError) as e:
        cfn.describe_stack_resource(StackName="no-such-stack", LogicalResourceId="X")
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert "does not exist" in e.value.response["Error"]["Message"]
    logged = [r for r in moto.requests() if r["auth"] == "cfn_v1"]
    assert [r["action"] for r in logged] == ["DescribeStackResource", "DescribeStackResources",
                                            "SignalResource", "DescribeStackResource"]
    assert all(r["service"] == "cloudformation" and r["instance_id"] == ident.instance_id
               for r in logged)
    # the harness's own boto3 calls are SigV4
    assert {r["auth"] for r in moto.requests() if r not in logged} <= {"sigv4"}


def _refusal(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    err = e.value.response["Error"]
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], err["Code"], err["Message"]


def test_cfn_v1_refusals(moto, instance, example_stack):
    from harness import identity
    from harness.imds import InstanceIdentity

    moto.reset()
    ident = instance.imds.identity
    args = dict(StackName=example_stack.name, LogicalResourceId=example_stack.launch_resource)
    # bad signature
    doc = ident.document_text()
    cfn = _cfn_v1(moto, ident, identity.sign(doc.encode() + b" "))
    status, code, msg = _refusal(lambda: cfn.describe_stack_resource(**args))
    assert (status, code) == (403, "SignatureDoesNotMatch")
    assert "instance identity signature" in msg
    # not base64 / no signature
    cfn = _cfn_v1(moto, ident, "!!!not base64!!!")
    assert _refusal(lambda: cfn.describe_stack_resource(**args))[:2] == (
        403, "SignatureDoesNotMatch")
    # a validly signed instance of another stack (or of none)
    other = InstanceIdentity(instance_id="i-0aaaaaaaaaaaaaaaa")
    status, code, msg = _refusal(lambda: _cfn_v1(moto, other).describe_stack_resource(**args))
    assert (status, code) == (403, "AccessDenied")
    assert "i-0aaaaaaaaaaaaaaaa" in msg and example_stack.name in msg
    status, code, _ = _refusal(lambda: _cfn_v1(moto, other).signal_resource(
        StackName=example_stack.name, LogicalResourceId="ApplicationAutoscaling",
        UniqueId="i-0aaaaaaaaaaaaaaaa", Status="SUCCESS"))
    assert (status, code) == (403, "AccessDenied")
    # an action the instance identity does not authorize
    status, code, msg = _refusal(
        lambda: _cfn_v1(moto, ident).describe_stacks(StackName=example_stack.name))
    assert (status, code) == (403, "AccessDenied") and "cloudformation:DescribeStacks" in msg
    assert moto.signals(example_stack.name) == []
    refused = [r for r in moto.requests() if r.get("refused")]
    assert len(refused) == 5 and all(r["auth"] == "cfn_v1" for r in refused)


def test_cfn_v1_from_the_imds_double(moto, instance, example_stack):
    """What a client reads from the IMDS double signs a CFN_V1 request moto accepts."""
    doc = _imds_get(instance.imds, "/latest/dynamic/instance-identity/document")[2]
    sig = _imds_get(instance.imds, "/latest/dynamic/instance-identity/signature")[2]
    cfn = moto.cfn_v1_client(doc, sig)
    cfn.describe_stack_resource(StackName=example_stack.name,
                                LogicalResourceId=example_stack.launch_resource)
    instance.imds.bad_signature = True
    bad = _imds_get(instance.imds, "/latest/dynamic/instance-identity/signature")[2]
    assert _refusal(lambda: moto.cfn_v1_client(doc, bad).describe_stack_resource(
        StackName=example_stack.name, LogicalResourceId=example_stack.launch_resource))[1] == (
        "SignatureDoesNotMatch")


# ------------------------------------------------------------------------------------------
# IAM enforced (iam_moto): instance role credentials, denials in each service's format
# ------------------------------------------------------------------------------------------


def _role_clients(moto, instance):
    role = instance.imds.identity.iam_role
    path = "/latest/meta-data/iam/security-credentials/"
    assert _imds_get(instance.imds, path)[2] == role
    c = json.loads(_imds_get(instance.imds, path + role)[2])
    kw = dict(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
              aws_session_token=c["Token"])
    return lambda service: moto.client(service, **kw)


def test_iam_role_denials_in_each_services_format(iam_moto, iam_instance, make_role_stack):
    stack = make_role_stack("agent_only")
    env = iam_instance.env()
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert "AWS_EC2_METADATA_DISABLED" not in env
    client = _role_clients(iam_moto, iam_instance)
    arn_part = f"assumed-role/{iam_instance.imds.identity.iam_role}/{stack.instance_id}"

    # allowed: ecs:RegisterContainerInstance (what the agent does)
    ident = iam_instance.imds.identity
    from harness import identity
    doc = ident.document_text()
    client("ecs").register_container_instance(
        cluster=stack.cluster, instanceIdentityDocument=doc,
        instanceIdentityDocumentSignature=identity.sign(doc.encode()))
    # awsJson: ECS
    status, code, msg = _refusal(lambda: client("ecs").describe_container_instances(
        cluster=stack.cluster, containerInstances=["x"]))
    assert (status, code) == (400, "AccessDeniedException")
    assert arn_part in msg and "ecs:DescribeContainerInstances" in msg
    # query: CloudFormation, Auto Scaling, STS
    status, code, msg = _refusal(lambda: client("cloudformation").describe_stack_resource(
        StackName=stack.name, LogicalResourceId=stack.launch_resource))
    assert (status, code) == (403, "AccessDenied")
    assert "cloudformation:DescribeStackResource" in msg
    status, code, msg = _refusal(
        lambda: client("autoscaling").describe_auto_scaling_instances(
            InstanceIds=[stack.instance_id]))
    assert (status, code) == (403, "AccessDenied")
    assert "autoscaling:DescribeAutoScalingInstances" in msg
    # unknown key / wrong secret
    bad = iam_moto.client("ecs", aws_access_key_id="AKIAUNKNOWNKEY000000",
                          aws_secret_access_key="x")
    assert _refusal(lambda: bad.list_clusters())[1] == "UnrecognizedClientException"
    bad = iam_moto.client("cloudformation", aws_access_key_id="AKIAUNKNOWNKEY000000",
                          aws_secret_access_key="x")
    assert _refusal(lambda: bad.describe_stacks())[1] == "InvalidClientTokenId"
    wrong = iam_moto.client("ecs", aws_access_key_id=iam_moto.creds["aws_access_key_id"],
                            aws_secret_access_key="wrong")
    assert _refusal(lambda: wrong.list_clusters())[1] == "InvalidSignatureException"
    # the harness admin still can
    assert iam_moto.client("ecs").list_clusters()["clusterArns"]
    # CFN_V1 is not subject to IAM: the instance with no cloudformation:* permission reads
    cfn = iam_moto.cfn_v1_client(doc, identity.sign(doc.encode()))
    detail = cfn.describe_stack_resource(StackName=stack.name,
                                         LogicalResourceId=stack.launch_resource)
    assert "Metadata" in detail["StackResourceDetail"]


def test_iam_roles_of_the_test_policies(iam_moto, iam_instance, make_role_stack):
    from harness.aws import ROLE_POLICIES

    assert "ecs:RegisterContainerInstance" in ROLE_POLICIES["managed"]
    assert not any(a.startswith(("ecs:Describe", "cloudformation:", "autoscaling:"))
                   for kind in ROLE_POLICIES for a in ROLE_POLICIES[kind])
    make_role_stack("none")
    client = _role_clients(iam_moto, iam_instance)
    status, code, msg = _refusal(lambda: client("ecs").list_clusters())
    assert (status, code) == (400, "AccessDeniedException") and "ecs:ListClusters" in msg


def _start_agent(instance, cluster):
    _write_ecs_config(instance, f"ECS_CLUSTER={cluster}\n")
    assert instance.systemctl("start", "docker").returncode == 0
    assert instance.systemctl("start", "--no-block", "ecs").returncode == 0


def test_fake_agent_registers_with_the_instance_role(iam_moto, iam_instance, make_role_stack):
    stack = make_role_stack("agent_only")
    _start_agent(iam_instance, stack.cluster)
    meta = _register_and_metadata(iam_instance)
    assert meta["Cluster"] == stack.cluster
    assert "using the credentials of instance role" in iam_instance.agent_log()
    creds_path = f"/latest/meta-data/iam/security-credentials/{iam_instance.imds.identity.iam_role}"
    assert iam_instance.imds.requests("GET", creds_path)


def test_fake_agent_denied_without_ecs_permissions(iam_moto, iam_instance, make_role_stack):
    """AccessDenied is not a transient error for the agent: `Received terminal error ...`, exit 1,
    restarted by ecs-init (ecs_client.go:262-270, engine.go:293-340@8dfceca6)."""
    stack = make_role_stack("none")
    _start_agent(iam_instance, stack.cluster)
    init_log = iam_instance.path("/var/log/ecs/ecs-init.log")
    procs.wait_until(lambda: init_log.exists()
                     and "Agent exited with code 1" in init_log.read_text(), 30,
                     interval=0.1, what="the agent exited 1")
    assert iam_instance.systemctl("is-active", "ecs").stdout.strip() == "active"
    log = iam_instance.agent_log()
    lines = [ln for ln in log.splitlines()
             if ln.startswith("level=error") and 'msg="Error registering container instance"' in ln]
    assert lines and "AccessDeniedException" in lines[0], log
    assert "ecs:RegisterContainerInstance" in lines[0]
    assert not procs.port_open(iam_instance.agent_port)
    assert iam_moto.client("ecs").list_container_instances(
        cluster=stack.cluster)["containerInstanceArns"] == []


def test_moto_echoes_registered_attributes(moto, instance, example_stack):
    """The real agent checks that every attribute it sent comes back (reference.md §4,
    ecs_client.go:438-452@8dfceca6); the patched moto keeps and echoes them."""
    doc = instance.imds.identity.document_text()
    ecs = moto.client("ecs")
    ci = ecs.register_container_instance(
        cluster=example_stack.cluster, instanceIdentityDocument=doc,
        attributes=[{"name": "team", "value": "core"},
                    {"name": "com.amazonaws.ecs.capability.docker-remote-api.1.17"}],
    )["containerInstance"]
    got = {a["name"]: a.get("value") for a in ci["attributes"]}
    assert got["team"] == "core" and "com.amazonaws.ecs.capability.docker-remote-api.1.17" in got
    # a deleted (INACTIVE) cluster takes no registration, as ECS answers
    other = ecs.create_cluster(clusterName="deleted-" + example_stack.cluster[-8:])
    ecs.delete_cluster(cluster=other["cluster"]["clusterName"])
    with pytest.raises(botocore.exceptions.ClientError, match="ClusterNotFoundException"):
        ecs.register_container_instance(cluster=other["cluster"]["clusterName"],
                                        instanceIdentityDocument=doc)


def test_fake_agent_attribute_validation_and_imds_mac(moto, instance, example_stack):
    """ECS_INSTANCE_ATTRIBUTES are sent and must come back; a 404 on meta-data/mac is fatal,
    exit 1, restarted (agent.go:473-487,1279-1302@8dfceca6)."""
    _write_ecs_config(instance, f"ECS_CLUSTER={example_stack.cluster}\n"
                                'ECS_INSTANCE_ATTRIBUTES={"team": "core"}\n')
    instance.systemctl("start", "docker")
    instance.systemctl("start", "--no-block", "ecs")
    meta = _register_and_metadata(instance)
    ecs = moto.client("ecs")
    (ci,) = ecs.describe_container_instances(
        cluster=example_stack.cluster,
        containerInstances=[meta["ContainerInstanceArn"]])["containerInstances"]
    attrs = {a["name"]: a.get("value") for a in ci["attributes"]}
    assert attrs["team"] == "core" and attrs["ecs.subnet-id"].startswith("subnet-")
    instance.systemctl("stop", "ecs")
    instance.imds.identity.mac = None
    instance.systemctl("start", "--no-block", "ecs")
    init_log = instance.path("/var/log/ecs/ecs-init.log")
    procs.wait_until(lambda: init_log.read_text().count("Agent exited with code 1") >= 2, 30,
                     what="exit 1 twice (restarted after the backoff)")
    assert "Unable to get VPC and subnet ID" in instance.path(
        "/var/log/ecs/ecs-agent.log").read_text()
    assert instance.systemctl("is-active", "ecs").stdout.strip() == "active"
