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
    """moto (with the harness patches, see moto_server.py) in its own session on a free port.

    ``enable_iam()`` turns moto's IAM check on for this server (every later request must be
    signed by a known key whose policies allow the action); the harness's own calls
    (``client()``, ``create_stack``) then use an admin user's keys, ``self.creds``.
    """

    def __init__(self, log_path: Path, env: dict[str, str] | None = None):
        self.extra_env = env or {}
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc = None
        self.creds: dict[str, str] = dict(CREDS)
        self.iam_enforced = False

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

    def client(self, service: str, **creds: str):
        """A boto3 client with the harness's keys (the admin's under IAM), or `creds`."""
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            **(creds or self.creds))

    def cfn_v1_client(self, document_text: str, signature: str):
        """A boto3 CloudFormation client that signs as cfn-bootstrap's CFNSigner does
        (``Authorization: CFN_V1 <base64 document>:<signature>``, no SigV4), e.g. with what an
        IMDS double serves: ``cfn_v1_client(ident.document_text(), signature)``."""
        from botocore import UNSIGNED
        from botocore.config import Config

        from .identity import cfn_v1_header

        header = cfn_v1_header(document_text, signature)
        client = boto3.client("cloudformation", endpoint_url=self.url, region_name=REGION,
                              config=Config(signature_version=UNSIGNED,
                                            retries={"max_attempts": 1}))

        def add_header(request, **_kw):
            request.headers["Authorization"] = header

        client.meta.events.register("before-send.cloudformation.*", add_header)
        return client

    def enable_iam(self) -> "MotoServer":
        """Create the admin user ``harness-admin`` (Allow * on *) and its access key while the
        IAM check is still off, switch the check on (``POST /moto-api/reset-auth`` 0: moto's
        INITIAL_NO_AUTH_ACTION_COUNT, counted from now) and use the admin's keys from then on."""
        from .moto_server import HARNESS_ADMIN_USER

        iam = self.client("iam")
        iam.create_user(UserName=HARNESS_ADMIN_USER)
        iam.put_user_policy(UserName=HARNESS_ADMIN_USER, PolicyName="admin",
                            PolicyDocument=json.dumps(policy_document(
                                [{"Effect": "Allow", "Action": "*", "Resource": "*"}])))
        key = iam.create_access_key(UserName=HARNESS_ADMIN_USER)["AccessKey"]
        req = urllib.request.Request(self.url + "/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=10):
            pass
        self.creds = {"aws_access_key_id": key["AccessKeyId"],
                      "aws_secret_access_key": key["SecretAccessKey"]}
        self.iam_enforced = True
        return self

    def assume_role(self, role_name: str, session_name: str) -> dict[str, str]:
        """STS AssumeRole of `role_name` by the admin (standing in for EC2's instance profile
        credential vending): IMDS-shaped credentials carrying the role's policies."""
        arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}"
        c = self.client("sts").assume_role(RoleArn=arn, RoleSessionName=session_name,
                                           DurationSeconds=3600)["Credentials"]
        return {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                "Token": c["SessionToken"],
                "Expiration": c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}


@dataclass
class Network:
    vpc_id: str
    subnet_ids: list[str]


def create_network(moto: MotoServer, prefix_len: int = 24) -> Network:
    """A VPC and two subnets of /`prefix_len` (a fleet of more than ~500 needs /22: moto gives
    every instance an address)."""
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    step = 2 ** (24 - prefix_len)
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{(i + 1) * step}.0/{prefix_len}",
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


def policy_document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def managed_policy_actions(name: str) -> list[str]:
    """Every action of the AWS managed policy `name`, from the copy moto ships
    (moto/iam/aws_managed_policies.py), in document order."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    doc = json.loads(aws_managed_policies_data)[name]["Document"]
    actions: list[str] = []
    for st in doc["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        actions += [a for a in acts if a not in actions]
    return actions


# The instance roles the IAM tests use. moto matches a statement's Resource only against "*"
# (it passes "*" as the resource of most actions) and treats an unmet Condition as a deny, so
# each role is one statement, "Resource": "*", no Condition. Real roles should scope resources.
ROLE_POLICIES: dict[str, list[str]] = {
    # (a) the actions of AmazonEC2ContainerServiceforEC2Role (ecs:TagResource is conditional
    # on CreateCluster/RegisterContainerInstance and ecs:ListTagsForResource scoped to task and
    # container-instance ARNs there; both granted on "*" here). No ecs:Describe*, no
    # autoscaling:*, no cloudformation:*.
    "managed": managed_policy_actions("AmazonEC2ContainerServiceforEC2Role"),
    # (b) only what the agent itself needs: ECS registration and its control-plane calls,
    # ECR pulls, CloudWatch Logs -- no ecs:Describe*, no ec2:DescribeTags, no ecs:CreateCluster.
    "agent_only": [
        "ecs:RegisterContainerInstance", "ecs:DeregisterContainerInstance",
        "ecs:DiscoverPollEndpoint", "ecs:Poll", "ecs:StartTelemetrySession",
        "ecs:UpdateContainerInstancesState", "ecs:Submit*",
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage",
        "logs:CreateLogStream", "logs:PutLogEvents",
    ],
    # (c) nothing at all.
    "none": [],
}

ROLE_ANCHOR_START = "  ApplicationAutoscalingInstanceRole:\n"
ROLE_ANCHOR_END = "  ApplicationAutoscalingInstanceProfile:\n"


def role_template(actions: list[str], base: str = "stack.yml",
                  body: str | None = None) -> str:
    """The example stack (or `body`) with its instance role replaced by a classic one whose only
    policy allows `actions` on "*" (no managed policy ARNs: moto does not attach them)."""
    body = body if body is not None else example_template(base)
    start, end = body.index(ROLE_ANCHOR_START), body.index(ROLE_ANCHOR_END)
    role = [
        ROLE_ANCHOR_START,
        "    Type: AWS::IAM::Role\n",
        "    Properties:\n",
        "      AssumeRolePolicyDocument:\n",
        "        Version: \"2012-10-17\"\n",
        "        Statement:\n",
        "          - Effect: Allow\n",
        "            Principal:\n",
        "              Service: [ec2.amazonaws.com]\n",
        "            Action: [\"sts:AssumeRole\"]\n",
    ]
    if actions:
        role += [
            "      Policies:\n",
            "        - PolicyName: instance\n",
            "          PolicyDocument:\n",
            "            Version: \"2012-10-17\"\n",
            "            Statement:\n",
            "              - Effect: Allow\n",
            "                Resource: \"*\"\n",
            "                Action:\n",
            *[f"                  - {a}\n" for a in actions],
        ]
    role.append("\n")
    return body[:start] + "".join(role) + body[end:]


def stack_role_name(moto: MotoServer, stack_name: str) -> str:
    """Physical name of the stack's (only) AWS::IAM::Role."""
    resources = moto.client("cloudformation").describe_stack_resources(
        StackName=stack_name)["StackResources"]
    (name,) = [r["PhysicalResourceId"] for r in resources
               if r["ResourceType"] == "AWS::IAM::Role"]
    return name


def example_template(variant: str = "stack.yml") -> str:
    return (EXAMPLES / variant).read_text()


def wait_signals(moto: MotoServer, stack_name: str, n: int = 1, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = moto.signals(stack_name)
        if len(got) >= n or time.monotonic() >= deadline:
            return got
        time.sleep(0.05)
