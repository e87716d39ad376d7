"""ecs.config against its two real readers, implemented here independently of the binary.

The file is read twice on an ECS-optimized AMI (../shared/reference.md, section 4):

* ecs-init (``ecs-init/docker/docker.go:438-456@8dfceca6``, ``getEnvVars``) builds the agent
  container's environment from it: trim the file, split on ``\\n``, ``strings.TrimSpace`` each line
  (every Unicode blank), split once on ``=``; no quotes, comments or escapes. What the agent sees.
* systemd (``EnvironmentFile=-/etc/ecs/ecs.config`` of ``ecs.service``), into ecs-init's own
  environment, read by ecs-init with ``os.Getenv`` for the settings listed in
  ``../shared/conformance/ecs-agent-settings.tsv`` as read by ``ecs-init`` (not only its file map).
  ``src/basic/env-file.c`` ``parse_env_file_internal()`` as in systemd 252 (Amazon Linux 2023).

For a corpus of awkward values the binary must either write a value that every reader that
matters reads exactly as the template gave it, or refuse it naming the key (exit 3).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.aws import REPO_ROOT, EXAMPLES
from harness.instance import bootstrap_bin

TSV = REPO_ROOT.parent / "shared" / "conformance" / "ecs-agent-settings.tsv"


def ecs_init_read(text: str) -> dict[str, str]:
    """Go: strings.TrimSpace(file), Split "\\n", TrimSpace(line), SplitN "=" 2; last wins."""
    out: dict[str, str] = {}
    for line in text.strip().split("\n"):
        line = line.strip()  # Python's str.strip() blanks = Go's unicode.IsSpace (both White_Space)
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k] = v
    return out


def systemd_read(text: str) -> dict[str, str]:
    """systemd 252 parse_env_file_internal(), char by char."""
    WS, NL, NEED = " \t\n\r", "\n\r", '"\\`$'
    out: dict[str, str] = {}
    state, key, val = "PRE_KEY", "", ""
    key_ws = val_ws = None

    def push(strip_value: bool) -> None:
        nonlocal key, val
        k = key[:key_ws] if key_ws is not None else key
        v = val[:val_ws] if (strip_value and val_ws is not None) else val
        out[k] = v
        key, val = "", ""

    for c in text:
        if state == "PRE_KEY":
            if c in "#;":
                state = "COMMENT"
            elif c not in WS:
                state, key_ws, key = "KEY", None, c
        elif state == "KEY":
            if c in NL:
                state, key = "PRE_KEY", ""
            elif c == "=":
                state, val_ws = "PRE_VALUE", None
            else:
                if c not in WS:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key += c
        elif state == "PRE_VALUE":
            if c in NL:
                state = "PRE_KEY"
                push(False)
            elif c == "'":
                state = "SQ"
            elif c == '"':
                state = "DQ"
            elif c == "\\":
                state = "ESC"
            elif c not in WS:
                state, val = "VALUE", val + c
        elif state == "VALUE":
            if c in NL:
                state = "PRE_KEY"
                push(True)
            elif c == "\\":
                state, val_ws = "ESC", None
            else:
                if c not in WS:
                    val_ws = None
                elif val_ws is None:
                    val_ws = len(val)
                val += c
        elif state == "ESC":
            state = "VALUE"
            if c not in NL:
                val += c
        elif state == "SQ":
            if c == "'":
                state = "PRE_VALUE"
            else:
                val += c
        elif state == "DQ":
            if c == '"':
                state = "PRE_VALUE"
            elif c == "\\":
                state = "DQ_ESC"
            else:
                val += c
        elif state == "DQ_ESC":
            state = "DQ"
            if c in NEED:
                val += c
            elif c != "\n":
                val += "\\" + c
        elif state == "COMMENT":
            if c == "\\":
                state = "COMMENT_ESC"
            elif c in NL:
                state = "PRE_KEY"
        elif state == "COMMENT_ESC":
            state = "COMMENT"  # before v254 an escaped newline continues the comment
    if state == "VALUE":
        push(True)
    elif state in ("PRE_VALUE", "ESC", "SQ", "DQ", "DQ_ESC"):
        push(False)
    return out


def ecs_init_env_keys() -> set[str]:
    keys = set()
    for line in TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        cols = line.split("\t")
        if cols[2] == "linux" and "ecs-init" in cols[1].split(","):
            keys.add(cols[0])
    return keys


def test_the_parsers_here_read_as_the_sources_say():
    assert ecs_init_read(' A=1\n#B=2\nC = 3 \nD="q"\nA=4\n') == {
        "A": "4", "#B": "2", "C ": " 3", 'D': '"q"'}
    assert systemd_read("# c\nA=1\n B = x y \nC=\"a\"'b'c\nD=a\\\nb\n; c \\\nG=hidden\nH=\n") == {
        "A": "1", "B": "x y", "C": "abc", "D": "ab", "H": ""}


CORPUS = [
    # (key, value as the template gives it)
    ("ECS_INSTANCE_ATTRIBUTES", {"team": "a \"quoted\" name", "path": "C:\\dir", "hash": "#1 $x"}),
    ("ECS_INSTANCE_ATTRIBUTES", {"unicode": "日本 café"}),
    ("ECS_CONTAINER_INSTANCE_TAGS", {"Name": "x y", "empty": ""}),
    ("ECS_AVAILABLE_LOGGING_DRIVERS", ["json-file", "awslogs"]),
    ("ECS_RESERVED_MEMORY", 32),
    ("ECS_RESERVED_MEMORY", "32 "),
    ("ECS_RESERVED_MEMORY", " 32"),
    ("ECS_RESERVED_MEMORY", "32\u00a0"),
    ("ECS_LOGLEVEL", "debug"),
    ("ECS_LOGLEVEL", "'debug'"),
    ("ECS_LOGLEVEL", "\"debug\""),
    ("ECS_LOGLEVEL", " debug"),
    ("ECS_LOGLEVEL", ""),
    ("ECS_LOG_OPTS", {"max-size": "10m", "max-file": "3"}),
    ("ECS_LOG_OPTS", {"labels": "a \"b\""}),
    ("ECS_LOG_OPTS", {"path": "c:\\x"}),
    ("ECS_CONTAINER_INSTANCE_TAGS", "trailing\\"),
    ("ECS_CONTAINER_INSTANCE_TAGS", "\"unclosed"),
    ("ECS_IMAGE_PULL_BEHAVIOR", "default # comment"),
    ("ECS_ENGINE_AUTH_TYPE", "dockercfg"),
]


def plan(tmp_path: Path, key: str, value) -> subprocess.CompletedProcess:
    metadata = {"ecs-bootstrap": {"Cluster": "prod", "AgentConfig": {key: value}}}
    template = {"Resources": {"LC": {"Type": "AWS::AutoScaling::LaunchConfiguration",
                                     "Metadata": metadata, "Properties": {}}}}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    return subprocess.run([str(bootstrap_bin()), "--dry-run", "--template", str(path),
                           "--resource", "LC", "--signal-resource", "LC", "--output", "json"],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("key,value", CORPUS, ids=[f"{k}={json.dumps(v)}" for k, v in CORPUS])
def test_every_value_reaches_its_readers_or_is_refused(tmp_path, key, value):
    want = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                           ensure_ascii=False)
    if isinstance(value, bool):
        want = "true" if value else "false"
    res = plan(tmp_path, key, value)
    if res.returncode != 0:
        assert res.returncode == 3, res.stderr
        assert f"ecs-bootstrap.AgentConfig.{key}" in res.stderr, res.stderr
        return
    entries = json.loads(res.stdout)["agent_config"]["config"]["entries"]
    # The file is KEY=VALUE lines in this order (src/config/ecs_config/mod.rs render); a line after it
    # shows whether systemd would swallow what follows.
    text = "".join(f"{k}={v}\n" for k, v in entries) + "NEXT_LINE=1\n"
    assert ecs_init_read(text)[key] == want, "the agent would read another value"
    by_systemd = systemd_read(text)
    assert by_systemd.get("NEXT_LINE") == "1", "systemd swallows the next line"
    if key in ecs_init_env_keys():
        assert by_systemd[key] == want, "ecs-init's own environment would differ"


@pytest.mark.parametrize("key,value", [
    ("ECS_RESERVED_MEMORY", "32 "),
    ("ECS_LOG_OPTS", {"labels": "a \"b\""}),
    ("ECS_CONTAINER_INSTANCE_TAGS", "trailing\\"),
    ("ECS_LOGLEVEL", "'debug'"),
])
def test_values_that_would_change_are_refused(tmp_path, key, value):
    res = plan(tmp_path, key, value)
    assert res.returncode == 3 and f"ecs-bootstrap.AgentConfig.{key}" in res.stderr, res.stderr


@pytest.mark.parametrize("key,value", [
    ("ECS_INSTANCE_ATTRIBUTES", {"team": "a \"quoted\" name", "path": "C:\\dir"}),
    ("ECS_IMAGE_PULL_BEHAVIOR", "default # comment"),
    ("ECS_RESERVED_MEMORY", " 32"),
])
def test_values_that_work_on_an_ami_are_not_refused(tmp_path, key, value):
    res = plan(tmp_path, key, value)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("example", ["stack.yml", "stack-launch-template.yml"])
def test_shipped_examples_read_the_same_by_both(example):
    res = subprocess.run([str(bootstrap_bin()), "--dry-run", "--template", str(EXAMPLES / example),
                          "--output", "json"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    entries = json.loads(res.stdout)["agent_config"]["config"]["entries"]
    text = "".join(f"{k}={v}\n" for k, v in entries)
    assert ecs_init_read(text) == dict(entries)
    by_systemd = systemd_read(text)
    assert set(by_systemd) == {k for k, _ in entries}
    for k, v in entries:
        if k in ecs_init_env_keys():
            assert by_systemd[k] == v
