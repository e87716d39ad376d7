"""The CloudWatch agent config we render, validated against the agent's own schema.

``../shared/conformance/cloudwatch-agent-schema.json`` is config-translator's schema
(amazon-cloudwatch-agent ``translator/config/schema.json@ab55b8da``, draft-04): the agent merges
every file of ``amazon-cloudwatch-agent.d/`` and refuses to start when the merged document fails
it. Our fragment must pass on its own, for every shipped example and a corpus of ``Logs``
variants; what CloudWatch Logs itself refuses (group names) must be refused by us (exit 3).
"""

from __future__ import annotations

import json
import subprocess

import jsonschema
import pytest

from harness.aws import EXAMPLES, REPO_ROOT
from harness.instance import bootstrap_bin

SCHEMA = json.loads((REPO_ROOT.parent / "shared" / "conformance"
                     / "cloudwatch-agent-schema.json").read_text())


def rendered(tmp_path, logs=None, template=None):
    if template is None:
        block = {"Cluster": "prod"}
        if logs is not None:
            block["Logs"] = logs
        doc = {"Resources": {"LC": {"Type": "AWS::AutoScaling::LaunchConfiguration",
                                    "Metadata": {"ecs-bootstrap": block}, "Properties": {}}}}
        template = tmp_path / "t.json"
        template.write_text(json.dumps(doc))
        extra = ["--resource", "LC", "--signal-resource", "Group"]
    else:
        extra = []
    res = subprocess.run([str(bootstrap_bin()), "--dry-run", "--template", str(template),
                          "--stack", "todo", "--output", "json", *extra],
                         capture_output=True, text=True, timeout=30)
    return res


def validate(content: str) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(json.loads(content))


@pytest.mark.parametrize("example", ["stack.yml", "stack-launch-template.yml"])
def test_examples_render_a_valid_fragment(tmp_path, example):
    res = rendered(tmp_path, template=EXAMPLES / example)
    assert res.returncode == 0, res.stderr
    validate(json.loads(res.stdout)["logs_config"]["content"])


GOOD = [
    None,
    {"RetentionInDays": 14},
    {"GroupPrefix": "/ecs/prod"},
    {"GroupPrefix": "a" * 400},
    {"Files": [{"Path": "/var/log/app/*.log", "GroupName": "app", "Timezone": "UTC",
                "TimestampFormat": "%Y-%m-%d"}]},
    # restating a default entry exactly: dropped (the schema wants unique items)
    {"Files": [{"Path": "/var/log/dmesg", "Timezone": "Local"}]},
    {"Files": [{"Path": "/var/log/x", "GroupName": "g#1.x_y-z/w"}]},
]


@pytest.mark.parametrize("logs", GOOD, ids=[json.dumps(g)[:60] for g in GOOD])
def test_logs_variants_render_valid_fragments(tmp_path, logs):
    res = rendered(tmp_path, logs)
    assert res.returncode == 0, res.stderr
    validate(json.loads(res.stdout)["logs_config"]["content"])


BAD = [
    ({"GroupPrefix": "p" * 500}, "1-512"),          # every group name over the schema's 512
    ({"GroupPrefix": "aws/ecs"}, "aws/"),            # reserved by CloudWatch Logs
    ({"Files": [{"Path": "/var/log/x", "GroupName": "a:b"}]}, "':'"),
    ({"Files": [{"Path": "/var/log/x", "GroupName": "g" * 513}]}, "1-512"),
]


@pytest.mark.parametrize("logs,why", BAD, ids=[json.dumps(b)[:60] for b, _ in BAD])
def test_names_cloudwatch_refuses_are_refused(tmp_path, logs, why):
    res = rendered(tmp_path, logs)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "ecs-bootstrap.Logs" in res.stderr and why in res.stderr, res.stderr


def test_the_schema_would_have_refused_the_long_prefix():
    """The rule above is the schema's: a 500-character prefix makes names it refuses."""
    doc = {"logs": {"logs_collected": {"files": {"collect_list": [
        {"file_path": "/var/log/dmesg", "log_group_name": "p" * 500 + "/var/log/dmesg"}]}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SCHEMA).validate(doc)


def test_a_running_cloudwatch_agent_is_restarted_only_when_our_fragment_changed(
        moto, instance, example_stack):
    """``start`` on a running agent does nothing (amazon-cloudwatch-agent-ctl ``-a start``,
    ``packaging/dependencies/amazon-cloudwatch-agent-ctl:103-106@ab55b8da``, and systemd's own
    ``start``): a new fragment is read only at its next restart. So a changed fragment gets a
    ``try-restart``; an unchanged one does not."""
    unit = "amazon-cloudwatch-agent.service"
    res = instance.run_bootstrap(*example_stack.run_args(), timeout=60)
    assert res.returncode == 0, res
    first = instance.calls()
    assert ["try-restart", "--no-block", unit] in first, first
    assert first.index(["try-restart", "--no-block", unit]) < first.index(["start", "--no-block", unit])
    res = instance.run_bootstrap(*example_stack.run_args("--force"), timeout=60)
    assert res.returncode == 0, res
    second = instance.calls()[len(first):]
    assert ["start", "--no-block", unit] in second, second
    assert not [c for c in second if c and c[0] == "try-restart"], second
