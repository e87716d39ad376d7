"""pytest fixtures for the ecs-bootstrap harness.

Session: `moto` (patched moto server on a free 127.0.0.1 port, own process group), `network`
(a VPC with two subnets in moto).
Per test: `instance` (root dir + IMDS double + fake systemd + agent port; see
harness/instance.py), `example_stack` (examples/todobackend/stack.yml created in moto, and
`instance` made to look like the EC2 instance its ASG launched), `make_stack` (create any
template body), `run_bootstrap` (shortcut for instance.run_bootstrap).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.aws import (  # noqa: E402
    REPO_ROOT,
    MotoServer,
    StackInfo,
    create_network,
    create_stack,
    example_template,
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


def pytest_runtest_makereport(item, call):
    """Attach the fake systemd/agent diagnostics to failing tests."""
    if call.when == "call" and call.excinfo is not None:
        inst = item.funcargs.get("instance") if hasattr(item, "funcargs") else None
        if inst is not None:
            try:
                item.add_report_section("call", "instance", inst.diagnostics())
            except Exception:  # noqa: BLE001
                pass
