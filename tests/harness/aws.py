"""Test-side helpers around the moto server: start/stop, harness routes, stacks."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from . import procs

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TESTS_DIR.parent
EXAMPLES = REPO_ROOT / "examples" / "todobackend"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoServer:
    """moto (with the harness patches, see moto_server.py) in its own session on a free port."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None):
        self.extra_env = env or {}
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc = None

    def start(self) -> "MotoServer":
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["PYTHONPATH"] = str(TESTS_DIR)
        env["MOTO_PORT"] = str(self.port)
        env.update(self.extra_env)
        self.proc = procs.spawn(
            [sys.executable, "-m", "harness.moto_server", "--port", str(self.port)],
            env=env,
            log_path=str(self.log_path),
        )

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited early, see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/_harness/health", timeout=1):
                    return True
            except OSError:
                return False

        procs.wait_until(healthy, timeout=60, interval=0.1, what="moto server")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            procs.kill_group(self.proc.pid)
            self.proc = None

    # -- harness routes --
    def _call(self, method: str, route: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + route, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def signals(self, stack_name: str | None = None) -> list[dict[str, Any]]:
        got = self._call("GET", "/_harness/signals")
        return [s for s in got if stack_name is None or s["StackName"] == stack_name]

    def requests(self, action: str | None = None) -> list[dict[str, Any]]:
        got = self._call("GET", "/_harness/requests")
        return [r for r in got if action is None or r["action"] == action]

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self._call("POST", "/_harness/faults", rules)

    def reset(self) -> None:
        self._call("POST", "/_harness/reset", {})

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **CREDS)


@dataclass
class Network:
    vpc_id: str
    subnet_ids: list[str]


def create_network(moto: MotoServer) -> Network:
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i + 1}.0/24",
                          AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
        for i, az in enumerate("ab")
    ]
    return Network(vpc, subnets)


@dataclass
class StackInfo:
    name: str
    stack_id: str
    template_body: str
    launch_resource: str  # logical id whose Metadata ecs-bootstrap reads (--resource)
    signal_resource: str  # logical id of the ASG (--signal-resource)
    cluster: str  # ECS cluster name (Ref ApplicationCluster), "" if the stack has none
    asg_name: str
    instance_id: str  # the EC2 instance moto's ASG launched
    availability_zone: str
    instance_type: str
    image_id: str
    private_ip: str
    instance_tags: dict[str, str]  # as EC2 would show them (CloudFormation tags added)
    metadata_tags_enabled: bool  # launch template with InstanceMetadataTags: enabled
    region: str = REGION
    outputs: dict[str, str] = field(default_factory=dict)

    def run_args(self, *extra: str) -> list[str]:
        """The `ecs-bootstrap run ...` arguments the example UserData uses."""
        return ["run", "--stack", self.name, "--resource", self.launch_resource,
                "--signal-resource", self.signal_resource, "--region", self.region, *extra]


def unique_stack_name(prefix: str = "todobackend") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_stack(moto: MotoServer, network: Network, template_body: str, *,
                 name: str | None = None, launch_resource: str | None = None,
                 signal_resource: str = "ApplicationAutoscaling",
                 parameters: dict[str, str] | None = None) -> StackInfo:
    """Create a stack from `template_body` in moto and describe what it launched.

    VpcId/Subnets parameters are filled from `network` unless given. `launch_resource` defaults
    to the template's LaunchConfiguration or LaunchTemplate resource.
    """
    name = name or unique_stack_name()
    cfn = moto.client("cloudformation")
    params = {"VpcId": network.vpc_id, "Subnets": ",".join(network.subnet_ids)}
    params.update(parameters or {})
    stack_id = cfn.create_stack(
        StackName=name,
        TemplateBody=template_body,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
    )["StackId"]
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {name}: {stack['StackStatus']} {stack.get('StackStatusReason')}")
    resources = {r["LogicalResourceId"]: r
                 for r in cfn.describe_stack_resources(StackName=name)["StackResources"]}

    if launch_resource is None:
        for lid, r in resources.items():
            if r["ResourceType"] in ("AWS::AutoScaling::LaunchConfiguration",
                                     "AWS::EC2::LaunchTemplate"):
                launch_resource = lid
                break
    if launch_resource is None:
        raise RuntimeError(f"stack {name} has no launch configuration/template")
    metadata_tags = False
    if resources[launch_resource]["ResourceType"] == "AWS::EC2::LaunchTemplate":
        lt = moto.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=resources[launch_resource]["PhysicalResourceId"])
        data = lt["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        metadata_tags = data.get("MetadataOptions", {}).get("InstanceMetadataTags") == "enabled"

    cluster = ""
    for r in resources.values():
        if r["ResourceType"] == "AWS::ECS::Cluster":
            cluster = r["PhysicalResourceId"]
            break

    asg_name = resources[signal_resource]["PhysicalResourceId"]
    group = moto.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg_name])["AutoScalingGroups"][0]
    if not group["Instances"]:
        raise RuntimeError(f"ASG {asg_name} launched no instance")
    instance_id = group["Instances"][0]["InstanceId"]
    inst = moto.client("ec2").describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    # CloudFormation tags every instance of a stack's ASG (moto does not).
    tags.update({
        "aws:cloudformation:stack-name": name,
        "aws:cloudformation:stack-id": stack_id,
        "aws:cloudformation:logical-id": signal_resource,
        "aws:autoscaling:groupName": asg_name,
    })
    return StackInfo(
        name=name,
        stack_id=stack_id,
        template_body=template_body,
        launch_resource=launch_resource,
        signal_resource=signal_resource,
        cluster=cluster,
        asg_name=asg_name,
        instance_id=instance_id,
        availability_zone=inst["Placement"]["AvailabilityZone"],
        instance_type=inst["InstanceType"],
        image_id=inst["ImageId"],
        private_ip=inst.get("PrivateIpAddress", "10.0.1.10"),
        instance_tags=tags,
        metadata_tags_enabled=metadata_tags,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
    )


def example_template(variant: str = "stack.yml") -> str:
    return (EXAMPLES / variant).read_text()


def wait_signals(moto: MotoServer, stack_name: str, n: int = 1, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = moto.signals(stack_name)
        if len(got) >= n or time.monotonic() >= deadline:
            return got
        time.sleep(0.05)
