"""moto 5.2.5 in server mode, with the two CloudFormation gaps ecs-bootstrap depends on filled.

Run it as ``python -m harness.moto_server --port N`` (``tests/`` on ``PYTHONPATH``).

What is patched (inside this process only, by monkeypatching moto's own classes; moto's
CloudFormation implementation is otherwise used as is):

* ``DescribeStackResource``: moto's ``StackResourceDTO`` gains a ``metadata`` attribute, so the
  ``StackResourceDetail`` carries ``Metadata``: the resource's template ``Metadata`` with its
  intrinsics resolved by moto's own resolver (``moto.cloudformation.parsing.clean_json`` against
  the stack's ``ResourceMap``), JSON-encoded as a string, as AWS does. Absent when the resource
  has no ``Metadata`` (AWS omits the member too).
* ``SignalResource`` (not implemented by moto: HTTP 500) is added to ``CloudFormationResponse``.
  It validates like AWS: unknown stack -> ``ValidationError`` "Stack with id X does not exist";
  unknown logical id -> "Resource X does not exist for stack Y"; ``Status`` must be SUCCESS or
  FAILURE; ``UniqueId`` is required. moto completes stacks at once and ignores ``CreationPolicy``,
  so the resource's signal state is modelled here: a resource with
  ``CreationPolicy.ResourceSignal`` accepts signals until it has ``Count`` SUCCESS signals (then it
  is "CREATE_COMPLETE") or one FAILURE (then "CREATE_FAILED"); after that, and for a resource
  without a CreationPolicy, AWS's "Resource X is in <STATE> state and cannot be signaled" is
  answered. Accepted signals are recorded (see ``GET /_harness/signals``).
* ECS ``RegisterContainerInstance`` on a cluster that does not exist (or was deleted: INACTIVE)
  raises moto's ``ClusterNotFoundException`` (moto raises a bare Exception -> HTTP 500, and
  registers into an INACTIVE cluster); it keeps and echoes the ``attributes`` it was sent (stock
  moto answers only its four ``ecs.*`` defaults, and the real agent, which checks that every
  attribute it sent comes back, then exits 5 "Attribute validation failed": reference.md §4,
  ``ecs-agent/api/ecs/client/ecs_client.go:438-452,550-562@8dfceca6``); and
  ``DescribeContainerInstances`` on a cluster without any instance answers ``failures`` MISSING
  instead of a KeyError (HTTP 500), as AWS does.

Harness routes (served by a WSGI layer in front of moto, never forwarded to it):

* ``GET  /_harness/signals``  -> JSON list of accepted signals
  ``{"StackName", "StackId", "LogicalResourceId", "UniqueId", "Status", "time"}``
* ``GET  /_harness/requests`` -> JSON list of AWS requests seen
  ``{"service", "action", "params", "status", "time", "fault", "auth"}``; ``auth`` is
  ``"sigv4"`` (then ``access_key`` is the signing key id), ``"cfn_v1"`` (then ``instance_id``
  is the signed document's, or ``refused`` the error code the request was refused with),
  ``"none"`` or ``"other"``
* ``GET  /_harness/faults`` / ``POST /_harness/faults`` (JSON list of rules, replaces the table)
* ``POST /_harness/reset``    -> clears signals, request log and faults (not moto's state; moto's
  own ``POST /moto-api/reset`` does that)

A fault rule: ``{"action": "SignalResource", "service": "cloudformation" (optional),
"status": 400, "code": "Throttling", "message": "Rate exceeded", "times": 2, "delay": 0.5}``.
The first rule whose action (and service, if given) matches and whose ``times`` is not used up
(``times`` absent/null = unlimited) applies: it sleeps ``delay`` seconds, then answers the error
in the service's protocol (query XML or JSON) if ``status`` is given, else passes the request on
(latency only). ``"reset": true`` instead closes the connection without an answer (TCP RST,
a "connection reset by peer" for the client). ``"rate": R`` (``"burst": B``, default R) makes
the rule a token bucket: requests within R per second pass, the others get the rule's answer,
like an account's API rate limit (``tests/bench/bench_fleet.py``). Every request that a fault
answered is logged with ``"fault": true``. ``"metadata": "..."`` (DescribeStackResource only)
lets moto answer and then replaces the ``Metadata`` element's text with the given string,
XML-escaped and encoded as UTF-8 with ``surrogateescape``: ``"\udcff"`` puts the raw byte 0xFF
(invalid UTF-8) in the body, ``"{\"a\": ["`` a Metadata that is not JSON (answers rewritten
this way are logged with ``"fault": true`` too).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

# --------------------------------------------------------------------------------------------
# Harness state (one moto server process = one state)
# --------------------------------------------------------------------------------------------


class HarnessState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.signals: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        # (stack_id, logical_id) -> {"success": n, "failed": bool}
        self.signal_state: dict[tuple[str, str], dict[str, Any]] = {}

    def reset(self) -> None:
        with self.lock:
            self.signals.clear()
            self.requests.clear()
            self.faults.clear()
            # signal_state belongs to the stacks (moto state): kept.

    def take_fault(self, service: str, action: str) -> dict[str, Any] | None:
        with self.lock:
            for rule in self.faults:
                if rule.get("action") not in (action, "*"):
                    continue
                if rule.get("service") and rule["service"] != service:
                    continue
                rate = rule.get("rate")
                if rate is not None:
                    # A token bucket, like an account's API rate limit: within the rate the
                    # request passes (this rule does not apply); beyond it, the rule answers.
                    now = time.monotonic()
                    burst = float(rule.get("burst", rate))
                    tokens = min(burst, rule.get("_tokens", burst)
                                 + (now - rule.get("_t", now)) * float(rate))
                    rule["_t"] = now
                    if tokens >= 1:
                        rule["_tokens"] = tokens - 1
                        continue
                    rule["_tokens"] = tokens
                    return dict(rule)
                times = rule.get("times")
                if times is not None:
                    if times <= 0:
                        continue
                    rule["times"] = times - 1
                return dict(rule)
        return None


STATE = HarnessState()

# --------------------------------------------------------------------------------------------
# moto patches
# --------------------------------------------------------------------------------------------

VALID_SIGNAL_STATUSES = ("SUCCESS", "FAILURE")


def resolved_metadata(stack: Any, logical_id: str) -> str | None:
    """The resource's template Metadata, intrinsics resolved by moto, as a JSON string."""
    from moto.cloudformation.parsing import clean_json

    resource_map = stack.resource_map
    resource_json = resource_map._resource_json_map.get(logical_id) or {}
    if "Metadata" not in resource_json:
        return None
    resolved = clean_json(copy.deepcopy(resource_json["Metadata"]), resource_map)
    return json.dumps(resolved)


def _resource_template(stack: Any, logical_id: str) -> dict[str, Any]:
    return stack.resource_map._resource_json_map.get(logical_id) or {}


def _signal_count(stack: Any, logical_id: str) -> int | None:
    """CreationPolicy.ResourceSignal.Count (resolved), None when no CreationPolicy signal."""
    from moto.cloudformation.parsing import clean_json

    policy = _resource_template(stack, logical_id).get("CreationPolicy") or {}
    rs = policy.get("ResourceSignal")
    if rs is None:
        return None
    count = clean_json(copy.deepcopy(rs.get("Count", 1)), stack.resource_map)
    return int(count)


def record_signal(stack: Any, logical_id: str, unique_id: str, status: str) -> None:
    """Validate the signal against the resource's modelled state and record it."""
    from moto.cloudformation.exceptions import ValidationError

    count = _signal_count(stack, logical_id)
    key = (stack.stack_id, logical_id)
    with STATE.lock:
        st = STATE.signal_state.setdefault(key, {"success": 0, "failed": False})
        if count is None:
            state = "CREATE_COMPLETE"
        elif st["failed"]:
            state = "CREATE_FAILED"
        elif st["success"] >= count:
            state = "CREATE_COMPLETE"
        else:
            state = None
        if state is not None:
            raise ValidationError(
                stack.name,
                f"Resource {logical_id} is in {state} state and cannot be signaled",
            )
        if status == "SUCCESS":
            st["success"] += 1
        else:
            st["failed"] = True
        STATE.signals.append(
            {
                "StackName": stack.name,
                "StackId": stack.stack_id,
                "LogicalResourceId": logical_id,
                "UniqueId": unique_id,
                "Status": status,
                "time": time.time(),
            }
        )


def patch_moto() -> None:
    from moto.cloudformation import responses as cfn_responses
    from moto.cloudformation.exceptions import ValidationError
    from moto.core.responses import ActionResult
    from moto.ecs import models as ecs_models
    from moto.ecs import responses as ecs_responses
    from moto.ecs.exceptions import ClusterNotFoundException

    # --- DescribeStackResource: Metadata -------------------------------------------------
    dto = cfn_responses.StackResourceDTO
    if not getattr(dto, "_harness_patched", False):
        original_init = dto.__init__

        def init(self: Any, stack: Any, resource: Any) -> None:
            original_init(self, stack, resource)
            self._harness_stack = stack

        def metadata(self: Any) -> str | None:
            # Computed lazily: only StackResourceDetail (DescribeStackResource) has the member.
            if not self.logical_resource_id:
                return None
            return resolved_metadata(self._harness_stack, self.logical_resource_id)

        dto.__init__ = init
        dto.metadata = property(metadata)
        dto._harness_patched = True

    # --- SignalResource --------------------------------------------------------------------
    def signal_resource(self: Any) -> ActionResult:
        stack_name = self._get_param("StackName")
        logical_id = self._get_param("LogicalResourceId")
        unique_id = self._get_param("UniqueId")
        status = self._get_param("Status")
        for name, value in (
            ("stackName", stack_name),
            ("logicalResourceId", logical_id),
            ("uniqueId", unique_id),
            ("status", status),
        ):
            if not value:
                raise ValidationError(
                    message=f"1 validation error detected: Value null at '{name}' "
                    "failed to satisfy constraint: Member must not be null"
                )
        if status not in VALID_SIGNAL_STATUSES:
            raise ValidationError(
                message=f"1 validation error detected: Value '{status}' at 'status' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[SUCCESS, FAILURE]"
            )
        # Same lookups (and messages) as DescribeStackResource.
        stack, _resource = self.cloudformation_backend.describe_stack_resource(
            stack_name, logical_id
        )
        record_signal(stack, logical_id, unique_id, status)
        return ActionResult({})

    cfn_responses.CloudFormationResponse.signal_resource = signal_resource

    # --- DescribeStackResources by PhysicalResourceId (moto ignores it) ---------------------
    # AWS: with PhysicalResourceId and no StackName, the resources of the stack that holds
    # that physical resource; ValidationError when no stack does.
    resp_cls = cfn_responses.CloudFormationResponse
    if not getattr(resp_cls, "_harness_physical_patched", False):
        original_dsr = resp_cls.describe_stack_resources

        def describe_stack_resources(self: Any) -> ActionResult:
            physical = self._get_param("PhysicalResourceId")
            if self._get_param("StackName") or not physical:
                return original_dsr(self)
            for stack in self.cloudformation_backend.stacks.values():
                if stack.status == "DELETE_COMPLETE":
                    continue
                resources = list(stack.stack_resources)
                if any(getattr(r, "physical_resource_id", None) == physical for r in resources):
                    return ActionResult({"StackResources": [
                        cfn_responses.StackResourceDTO(stack, r) for r in resources]})
            raise ValidationError(message=f"Stack for {physical} does not exist")

        resp_cls.describe_stack_resources = describe_stack_resources
        resp_cls._harness_physical_patched = True

    # --- ECS fidelity fixes ------------------------------------------------------------------
    backend_cls = ecs_models.EC2ContainerServiceBackend
    if not getattr(backend_cls, "_harness_patched", False):
        original_register = backend_cls.register_container_instance
        original_describe = backend_cls.describe_container_instances

        def register_container_instance(self: Any, cluster_str: str, ec2_instance_id: str):
            cluster = self.clusters.get(cluster_str.split("/")[-1])
            if cluster is None or cluster.status != "ACTIVE":
                raise ClusterNotFoundException()
            return original_register(self, cluster_str, ec2_instance_id)

        def describe_container_instances(self: Any, cluster_str: str, ids: list[str]):
            cluster = self._get_cluster(cluster_str)
            self.container_instances.setdefault(cluster.name, {})
            return original_describe(self, cluster_str, ids)

        backend_cls.register_container_instance = register_container_instance

        def register_response(self: Any) -> ActionResult:
            # moto's EC2ContainerServiceResponse.register_container_instance, plus the sent
            # attributes kept on the instance (so echoed, and listed by ListAttributes).
            cluster_str = self._get_param("cluster", "default")
            document = json.loads(self._get_param("instanceIdentityDocument"))
            ci = self.ecs_backend.register_container_instance(cluster_str, document["instanceId"])
            for attr in self._get_param("attributes", []) or []:
                ci.attributes[attr["name"]] = attr.get("value")
            return ActionResult({"containerInstance": ci})

        ecs_responses.EC2ContainerServiceResponse.register_container_instance = register_response
        backend_cls.describe_container_instances = describe_container_instances
        backend_cls._harness_patched = True

    patch_iam()


# --------------------------------------------------------------------------------------------
# IAM enforcement (moto's INITIAL_NO_AUTH_ACTION_COUNT) and its gaps
# --------------------------------------------------------------------------------------------

# The IAM user the harness creates (while enforcement is still off) for its own set-up calls.
HARNESS_ADMIN_USER = "harness-admin"

# Denial / authentication error codes per protocol: AWS's own names, moto's message texts.
_AUTH_ERRORS = {
    # kind: (query code, query status, json code, json status)
    "denied": ("AccessDenied", 403, "AccessDeniedException", 400),
    "invalid_token": ("InvalidClientTokenId", 403, "UnrecognizedClientException", 400),
    "signature": ("SignatureDoesNotMatch", 403, "InvalidSignatureException", 400),
    "missing": ("MissingAuthenticationToken", 403, "MissingAuthenticationTokenException", 400),
}
_AUTH_KIND = {"AccessDenied": "denied", "InvalidClientTokenId": "invalid_token",
              "SignatureDoesNotMatch": "signature", "AuthFailure": "invalid_token"}


class HarnessAuthError(Exception):
    """An authentication/authorization failure, already rendered in the service's own format.

    Not a werkzeug HTTPException on purpose: moto's ``call_action`` turns those into a bare
    ``(description, status)`` answer; this one carries its headers, and the patched
    ``call_action`` returns it as is.
    """

    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        super().__init__(body)
        self.status, self.headers, self.body = status, headers, body


def render_auth_error(protocol: str, kind: str, message: str) -> HarnessAuthError:
    """`kind` in ``_AUTH_ERRORS`` as the service answers it: query XML (cloudformation,
    autoscaling, sts, iam), awsJson (ecs, logs: ``{"__type", "message"}``), EC2's own XML."""
    from xml.sax.saxutils import escape

    request_id = str(uuid.uuid4())
    qcode, qstatus, jcode, jstatus = _AUTH_ERRORS[kind]
    if protocol == "json":
        body = json.dumps({"__type": jcode, "message": message})
        return HarnessAuthError(jstatus, {"Content-Type": "application/x-amz-json-1.1",
                                          "x-amzn-ErrorType": jcode,
                                          "x-amzn-RequestId": request_id}, body)
    if protocol == "ec2":
        code, status = {"denied": ("UnauthorizedOperation", 403),
                        "missing": ("MissingAuthenticationToken", 401)}.get(
                            kind, ("AuthFailure", 401))
        body = (f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error>"
                f"<Code>{code}</Code>"
                f"<Message>{escape(message)}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>")
        return HarnessAuthError(status, {"Content-Type": "text/xml"}, body)
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{qcode}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")
    return HarnessAuthError(qstatus, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
                            body)


def _protocol_of(response: Any) -> str:
    from moto.core.utils import get_service_model

    try:
        protocol = get_service_model(response.boto3_service_name).metadata.get("protocol", "")
    except Exception:  # noqa: BLE001 - unknown to botocore: guess from the request
        protocol = ""
    if protocol.startswith("json") or (not protocol and response.headers.get("X-Amz-Target")):
        return "json"
    return "ec2" if protocol == "ec2" else "query"


def patch_iam() -> None:
    """moto's IAM check (server mode: on once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests were
    served; ``POST /moto-api/reset-auth`` with a number sets it) works, with these gaps filled:

    * Denials and signature/key failures come back in EC2's ``<ErrorResponse><Errors>`` shape
      whatever the service (``moto.core.exceptions._RESTError``): the Rust SDK then reports an
      "unhandled error" without a code. Here each service answers in its own format
      (:func:`render_auth_error`): query XML ``<ErrorResponse><Error><Type>Sender</Type><Code>
      AccessDenied</Code>`` (403) for cloudformation/autoscaling/sts/iam, awsJson
      ``{"__type": "AccessDeniedException"}`` (400) for ecs/logs, EC2's ``UnauthorizedOperation``.
      The denial message is moto's ("User: ARN is not authorized to perform: svc:Action") plus
      AWS's "because no identity-based policy allows the svc:Action action".
    * An unsigned request makes moto fail with a KeyError (HTTP 500); AWS answers
      ``MissingAuthenticationToken`` (query) / ``MissingAuthenticationTokenException`` (JSON).
    * A request with a CFN_V1 Authorization reaches moto only after HarnessMiddleware verified
      it (instance identity signature and stack membership): it is exempt from the IAM check,
      as CloudFormation does not evaluate IAM policies for it.
    * An inline role policy created by a CloudFormation template is stored as a dict, which the
      IAM check cannot read (KeyError, HTTP 500): it is stored as JSON text, as IAM's
      PutRolePolicy does.
    * ``sts:AssumeRole`` by the harness admin user of a role that trusts only the
      ``ec2.amazonaws.com`` service (every instance role) fails in moto's trust check (a
      TypeError on a Service principal). The admin's AssumeRole stands in for EC2 handing the
      instance profile's credentials to the instance, so for that user the trust check passes.

    Not filled: moto matches a statement's ``Resource`` only against ``"*"`` (it passes ``"*"``
    as the resource of most actions): a statement scoped to an ARN never allows anything, so
    test policies use ``"Resource": "*"``. A statement with a ``Condition`` the request does not
    carry counts as an explicit deny in moto: test policies leave conditions out.
    """
    from moto import settings
    from moto.core import authorization
    from moto.core.exceptions import _RESTError
    from moto.core.responses import BaseResponse
    from moto.iam import access_control
    from moto.iam import models as iam_models

    mixin = authorization.ActionAuthenticatorMixin
    if getattr(mixin, "_harness_patched", False):
        return
    original_auth = mixin._authenticate_and_authorize_action

    def authenticate(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        if iam_request_cls is not access_control.IAMRequest:  # S3: moto's own answers
            return original_auth(self, iam_request_cls, resource)
        auth = self.headers.get("Authorization", "")
        if auth.startswith("CFN_V1 "):
            return  # verified by HarnessMiddleware before moto saw it
        enforcing = mixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        if enforcing and not auth:
            raise render_auth_error(_protocol_of(self), "missing",
                                    "Request is missing Authentication Token")
        try:
            return original_auth(self, iam_request_cls, resource)
        except _RESTError as e:
            kind = _AUTH_KIND.get(e.error_type)
            if kind is None:
                raise
            message = e.message
            if kind == "denied":
                action = message.rsplit(" ", 1)[-1]
                message += f" because no identity-based policy allows the {action} action"
            raise render_auth_error(_protocol_of(self), kind, message) from None

    mixin._authenticate_and_authorize_action = authenticate

    original_call_action = BaseResponse.call_action

    def call_action(self: Any):
        try:
            return original_call_action(self)
        except HarnessAuthError as e:
            headers = dict(self.response_headers)
            headers.update(e.headers)
            headers["status"] = str(e.status)
            return e.status, headers, e.body

    BaseResponse.call_action = call_action

    role_cls = iam_models.Role
    original_put_policy = role_cls.put_policy

    def put_policy(self: Any, policy_name: str, policy_json: Any) -> None:
        if not isinstance(policy_json, str):
            policy_json = json.dumps(policy_json)
        original_put_policy(self, policy_name, policy_json)

    role_cls.put_policy = put_policy

    base = access_control.IAMRequestBase
    original_trust = base._check_role_trust_relationship

    def check_trust(self: Any, role_arn: str) -> bool:
        if self._access_key.arn.endswith(f":user/{HARNESS_ADMIN_USER}"):
            return True
        return original_trust(self, role_arn)

    base._check_role_trust_relationship = check_trust
    mixin._harness_patched = True


# --------------------------------------------------------------------------------------------
# CFN_V1: CloudFormation requests signed with the instance identity
# --------------------------------------------------------------------------------------------

# What cfn-init / cfn-signal / cfn-get-metadata / cfn-hup (DescribeStackResource,
# SignalResource) and ecs-bootstrap's discovery (DescribeStackResources) call. cfn-hup's
# command listener (RegisterListener, ElectCommandLeader, GetListenerCredentials) is not modelled.
CFN_V1_ACTIONS = ("DescribeStackResource", "DescribeStackResources", "SignalResource")


class CfnV1Refused(Exception):
    """A CFN_V1 request CloudFormation would refuse. The codes and messages are the harness's
    choice, NOT verified against AWS (which documents only that it "checks for stack membership
    and limits the scope of the call to the stack that the instance belongs to"):

    * malformed header, or a signature that is not the test key's over the decoded document:
      HTTP 403 ``SignatureDoesNotMatch``, message starting "CFN_V1: the instance identity
      signature ..." (or "CFN_V1: malformed Authorization header ...");
    * the document's instance is not in the stack named by the request: HTTP 403
      ``AccessDenied`` "CFN_V1: instance i-... is not a member of stack S";
    * an action other than ``CFN_V1_ACTIONS``: HTTP 403 ``AccessDenied`` "CFN_V1: the instance
      identity does not authorize cloudformation:Action".

    A stack (or physical resource) that does not exist is not refused here: moto answers its
    usual ``ValidationError`` "Stack with id X does not exist", as for a SigV4 request.
    """

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _stack_members(stack: Any, account: str, region: str) -> set[str]:
    """Instance ids of `stack`: its Auto Scaling groups' instances and its AWS::EC2::Instance."""
    from moto.autoscaling.models import autoscaling_backends

    members: set[str] = set()
    asg_backend = autoscaling_backends[account][region]
    for r in stack.stack_resources:
        rtype = type(r).cloudformation_type() if hasattr(type(r), "cloudformation_type") else ""
        physical = getattr(r, "physical_resource_id", None)
        if rtype == "AWS::AutoScaling::AutoScalingGroup":
            group = asg_backend.autoscaling_groups.get(physical)
            if group is not None:
                members.update(st.instance.id for st in group.instance_states)
        elif rtype == "AWS::EC2::Instance" and physical:
            members.add(physical)
    return members


def _find_stack(account: str, region: str, params: dict[str, Any]) -> Any | None:
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[account][region]
    name = params.get("StackName")
    if name:
        for stack in list(backend.stacks.values()):
            if name in (stack.name, stack.stack_id) and stack.status != "DELETE_COMPLETE":
                return stack
        return None
    physical = params.get("PhysicalResourceId")
    if physical:
        for stack in list(backend.stacks.values()):
            if stack.status == "DELETE_COMPLETE":
                continue
            if any(getattr(r, "physical_resource_id", None) == physical
                   for r in stack.stack_resources):
                return stack
    return None


def check_cfn_v1(header: str, action: str, params: dict[str, Any]) -> dict[str, str]:
    """Verify a CFN_V1 request; its identity (accountId, region, instanceId) or CfnV1Refused."""
    from . import identity

    parsed = identity.parse_cfn_v1(header)
    if parsed is None:
        raise CfnV1Refused("SignatureDoesNotMatch", "CFN_V1: malformed Authorization header "
                           "(expected CFN_V1 <base64 identity document>:<identity signature>)")
    document, signature = parsed
    if not identity.verify(document, signature):
        raise CfnV1Refused("SignatureDoesNotMatch", "CFN_V1: the instance identity signature "
                           "does not match the instance identity document")
    try:
        doc = json.loads(document)
        ident = {k: str(doc[k]) for k in ("accountId", "region", "instanceId")}
    except (ValueError, KeyError, TypeError):
        raise CfnV1Refused("SignatureDoesNotMatch", "CFN_V1: the signed instance identity "
                           "document is not an identity document") from None
    if action not in CFN_V1_ACTIONS:
        raise CfnV1Refused("AccessDenied", "CFN_V1: the instance identity does not authorize "
                           f"cloudformation:{action or '(no action)'}")
    stack = _find_stack(ident["accountId"], ident["region"], params)
    if stack is not None and ident["instanceId"] not in _stack_members(
            stack, ident["accountId"], ident["region"]):
        raise CfnV1Refused("AccessDenied", f"CFN_V1: instance {ident['instanceId']} is not a "
                           f"member of stack {stack.name}")
    return ident


def _auth_kind(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if not auth:
        return "none"
    if auth.startswith("CFN_V1 "):
        return "cfn_v1"
    if auth.startswith("AWS4-"):
        return "sigv4"
    return "other"


# --------------------------------------------------------------------------------------------
# WSGI layer: harness routes, request log, fault injection
# --------------------------------------------------------------------------------------------


def _service_of(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    # AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/cloudformation/aws4_request, ...
    marker = "Credential="
    if marker in auth:
        scope = auth.split(marker, 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            return scope[3]
    return ""


def _access_key_of(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" not in auth:
        return ""
    return auth.split("Credential=", 1)[1].split("/", 1)[0]


def _json_response(start_response: Callable, status: int, body: Any) -> Iterable[bytes]:
    data = json.dumps(body, default=str).encode()
    start_response(
        f"{status} {'OK' if status == 200 else 'Error'}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


class HarnessMiddleware:
    def __init__(self, app: Callable, state: HarnessState = STATE) -> None:
        self.app = app
        self.state = state

    # -- harness control routes --
    def control(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        st = self.state
        if path == "/_harness/signals" and method == "GET":
            with st.lock:
                return _json_response(start_response, 200, list(st.signals))
        if path == "/_harness/requests" and method == "GET":
            with st.lock:
                return _json_response(start_response, 200, list(st.requests))
        if path == "/_harness/faults" and method == "GET":
            with st.lock:
                return _json_response(start_response, 200, list(st.faults))
        if path == "/_harness/faults" and method == "POST":
            body = self._read_body(environ)
            try:
                rules = json.loads(body or b"[]")
                if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
                    raise ValueError("expected a JSON list of objects")
                for r in rules:
                    if "action" not in r:
                        raise ValueError("every rule needs an 'action'")
            except ValueError as e:
                return _json_response(start_response, 400, {"error": str(e)})
            with st.lock:
                st.faults[:] = rules
            return _json_response(start_response, 200, rules)
        if path == "/_harness/reset" and method == "POST":
            st.reset()
            return _json_response(start_response, 200, {"reset": True})
        if path == "/_harness/health":
            return _json_response(start_response, 200, {"ok": True})
        return _json_response(start_response, 404, {"error": f"no harness route {method} {path}"})

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_harness/"):
            return self.control(environ, start_response)

        body = self._read_body(environ)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        params: Any
        if target:
            protocol = "json"
            action = target.rsplit(".", 1)[-1]
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                params = None
        else:
            protocol = "query"
            form = parse_qs(body.decode("utf-8", "replace")) if body else {}
            form.update(parse_qs(environ.get("QUERY_STRING", "")))
            params = {k: v[0] if len(v) == 1 else v for k, v in form.items()}
            action = params.get("Action", "") if isinstance(params, dict) else ""
        service = _service_of(environ)
        auth = _auth_kind(environ)
        if auth == "cfn_v1":
            service = "cloudformation"
        entry: dict[str, Any] = {
            "service": service,
            "action": action,
            "params": params,
            "status": None,
            "time": time.time(),
            "fault": False,
            "auth": auth,
        }
        if auth == "sigv4":
            entry["access_key"] = _access_key_of(environ)
        if action or auth == "cfn_v1":
            with self.state.lock:
                self.state.requests.append(entry)

        if auth == "cfn_v1":
            try:
                ident = check_cfn_v1(environ["HTTP_AUTHORIZATION"], action,
                                     params if isinstance(params, dict) else {})
            except CfnV1Refused as e:
                entry["status"] = e.status
                entry["refused"] = e.code
                return self._fault_response(start_response, "query", {
                    "status": e.status, "code": e.code, "message": e.message})
            entry["instance_id"] = ident["instanceId"]
            # Routed to moto's CloudFormation (see HarnessDispatcher), in the document's
            # account and region; exempt from moto's IAM check (patch_iam).
            environ["harness.cfn_v1_region"] = ident["region"]
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = ident["accountId"]
            environ["HTTP_HOST"] = f"cloudformation.{ident['region']}.amazonaws.com"

        rule = self.state.take_fault(service, action) if action else None
        if rule is not None:
            if rule.get("delay"):
                time.sleep(float(rule["delay"]))
            if rule.get("reset"):
                entry["fault"] = True
                entry["status"] = 0
                return self._reset(environ, start_response)
            if rule.get("status"):
                entry["fault"] = True
                entry["status"] = int(rule["status"])
                return self._fault_response(start_response, protocol, rule)
            if rule.get("metadata") is not None:
                entry["fault"] = True
                return self._rewrite_metadata(environ, start_response, entry, rule["metadata"])

        def recording_start_response(status: str, headers: list, exc_info: Any = None):
            try:
                entry["status"] = int(status.split(" ", 1)[0])
            except ValueError:
                pass
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        return self.app(environ, recording_start_response)

    def _rewrite_metadata(self, environ: dict[str, Any], start_response: Callable,
                          entry: dict[str, Any], metadata: str) -> Iterable[bytes]:
        import re
        from xml.sax.saxutils import escape

        got: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None):
            got["status"], got["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.app(environ, capture))
        text = escape(metadata).encode("utf-8", "surrogateescape")
        body, n = re.subn(rb"<Metadata>.*?</Metadata>", lambda _m: b"<Metadata>" + text
                          + b"</Metadata>", body, count=1, flags=re.S)
        if n == 0:
            # The resource has no Metadata member: add one to the detail.
            body = body.replace(b"</StackResourceDetail>",
                                b"<Metadata>" + text + b"</Metadata></StackResourceDetail>", 1)
        entry["status"] = int(got["status"].split(" ", 1)[0])
        headers = [(k, v) for k, v in got["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(got["status"], headers)
        return [body]

    @staticmethod
    def _reset(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        import socket
        import struct

        sock = environ.get("werkzeug.socket")
        if sock is None:
            raise RuntimeError("this werkzeug does not expose the connection (werkzeug.socket)")
        # Linger 0: close() sends RST instead of FIN, as a dropped connection does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        sock.close()
        start_response("500 Reset", [("Content-Length", "0")])
        return [b""]

    @staticmethod
    def _fault_response(start_response: Callable, protocol: str, rule: dict[str, Any]):
        status = int(rule["status"])
        code = rule.get("code") or ("Throttling" if status == 400 else "InternalFailure")
        message = rule.get("message") or ("Rate exceeded" if code.startswith("Throttling") else "")
        request_id = str(uuid.uuid4())
        if protocol == "json":
            data = json.dumps({"__type": code, "message": message}).encode()
            headers = [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-RequestId", request_id),
            ]
        else:
            fault = "Sender" if status < 500 else "Receiver"
            data = (
                '<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
                f"<Error><Type>{fault}</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
        headers.append(("Content-Length", str(len(data))))
        start_response(f"{status} Fault", headers)
        return [data]


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def build_app() -> Callable:
    patch_moto()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class HarnessDispatcher(DomainDispatcherApplication):
        """moto picks the service from the SigV4 credential scope; a CFN_V1 request has none
        and would land in S3 (HTTP 500). HarnessMiddleware marks the ones it verified."""

        def infer_service_region_host(self, environ: dict[str, Any], path: str) -> str | None:
            region = environ.get("harness.cfn_v1_region")
            if region:
                return f"cloudformation.{region}.amazonaws.com"
            return super().infer_service_region_host(environ, path)

    app = HarnessDispatcher(create_backend_app)
    return HarnessMiddleware(app)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    os.environ.setdefault("MOTO_PORT", str(args.port))
    from werkzeug.serving import run_simple
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = build_app()
    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        use_reloader=False,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
