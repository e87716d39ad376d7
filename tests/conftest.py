"""pytest fixtures for the ecs-bootstrap harness.

Session: `moto` (patched moto server on a free 127.0.0.1 port, own process group), `network`
(a VPC with two subnets in moto).
Per test: `instance` (root dir + IMDS double + fake systemd + agent port; see
harness/instance.py), `example_stack` (examples/todobackend/stack.yml created in moto, and
`instance` made to look like the EC2 instance its ASG launched), `make_stack` (create any
template body), `run_bootstrap` (shortcut for instance.run_bootstrap).

IAM enforced (a second moto server, session-scoped): `iam_moto` (moto's IAM check on; harness
calls use an admin user's keys), `iam_network`, and per test `iam_instance` (an Instance of
`iam_moto`) and `make_role_stack(actions_or_kind, ...)`: the example stack with a classic
instance role allowing exactly those actions (a ROLE_POLICIES key: "managed", "agent_only",
"none"; or a list of actions), `iam_instance` answering as its instance and using that role's
STS credentials from IMDS (no keys in its environment).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.aws import (  # noqa: E402
    REPO_ROOT,
    ROLE_POLICIES,
    MotoServer,
    StackInfo,
    create_network,
    create_stack,
    example_template,
    role_template,
)
from harness.instance import Instance  # noqa: E402

ARTIFACTS = REPO_ROOT / "tests" / ".artifacts"


@pytest.fixture(scope="session")
def moto():
    ARTIFACTS.mkdir(exist_ok=True)
    server = MotoServer(ARTIFACTS / "moto.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def network(moto):
    return create_network(moto)


@pytest.fixture
def instance(moto, tmp_path):
    inst = Instance(moto, tmp_path)
    try:
        yield inst
    finally:
        inst.close()


@pytest.fixture
def make_stack(moto, network, instance):
    """make_stack(template_body, **kw) -> StackInfo; the instance serves its EC2 identity."""

    def make(template_body: str, **kw) -> StackInfo:
        stack = create_stack(moto, network, template_body, **kw)
        instance.use_stack(stack)
        return stack

    return make


@pytest.fixture
def example_stack(make_stack) -> StackInfo:
    return make_stack(example_template("stack.yml"))


@pytest.fixture
def run_bootstrap(instance):
    return instance.run_bootstrap


@pytest.fixture(scope="session")
def iam_moto():
    """A moto server with IAM enforced (see MotoServer.enable_iam); CFN_V1 requests verified."""
    ARTIFACTS.mkdir(exist_ok=True)
    server = MotoServer(ARTIFACTS / "moto-iam.log").start()
    try:
        server.enable_iam()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def iam_network(iam_moto):
    return create_network(iam_moto)


@pytest.fixture
def iam_instance(iam_moto, tmp_path):
    inst = Instance(iam_moto, tmp_path / "iam-instance")  # apart from `instance`'s files
    try:
        yield inst
    finally:
        inst.close()


@pytest.fixture
def make_role_stack(iam_moto, iam_network, iam_instance):
    """make_role_stack(actions_or_kind, base="stack.yml", body=None, **create_stack kw) ->
    StackInfo. The stack's instance role allows exactly those actions on "*";
    `iam_instance` serves the stack's instance identity and the role's credentials."""

    def make(role: str | list[str], base: str = "stack.yml", body: str | None = None,
             **kw) -> StackInfo:
        actions = ROLE_POLICIES[role] if isinstance(role, str) else list(role)
        stack = create_stack(iam_moto, iam_network, role_template(actions, base, body), **kw)
        iam_instance.use_stack(stack)
        iam_instance.use_role(stack)
        return stack

    return make


def pytest_runtest_makereport(item, call):
    """Attach the fake systemd/agent diagnostics to failing tests."""
    if call.when == "call" and call.excinfo is not None:
        funcargs = getattr(item, "funcargs", {})
        inst = funcargs.get("instance") or funcargs.get("iam_instance")
        if inst is not None:
            try:
                item.add_report_section("call", "instance", inst.diagnostics())
            except Exception:  # noqa: BLE001
                pass
