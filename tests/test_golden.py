"""Golden files of `--dry-run`: the plan printed for every shipped example and for
tests/golden/full (every Init section and every ecs-bootstrap key), as text and as JSON.

They pin what the dry run says the run will do, so a refactor that changes one argv builder,
one step or one file's content shows up here as a diff. An intended change is recorded with
`GOLDEN_UPDATE=1 scripts/test tests/test_golden.py` and reviewed as part of the commit.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.aws import REPO_ROOT
from harness.instance import bootstrap_bin

GOLDEN = REPO_ROOT / "tests" / "golden"

CASES = {
    "todobackend": REPO_ROOT / "examples" / "todobackend" / "stack.yml",
    "todobackend-launch-template": REPO_ROOT / "examples" / "todobackend" / "stack-launch-template.yml",
    "full": GOLDEN / "full" / "stack.yml",
}


def dry_run(template: Path, output: str) -> str:
    # A bare environment: the plan must not depend on the caller's AWS settings, and the
    # template path is printed as given (relative to the repository).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    proc = subprocess.run(
        [str(bootstrap_bin()), "--dry-run", "--template", str(template.relative_to(REPO_ROOT)),
         "--output", output],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # A dry run from a template talks to nothing and has nothing to warn about: the README's
    # first command prints the plan and only the plan.
    assert proc.stderr == "", proc.stderr
    return proc.stdout


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_dry_run_golden(case, output):
    expected = GOLDEN / f"{case}.{'txt' if output == 'text' else 'json'}"
    actual = dry_run(CASES[case], output)
    if os.environ.get("GOLDEN_UPDATE") == "1":
        expected.write_text(actual)
    assert expected.exists(), f"{expected} missing: record it with GOLDEN_UPDATE=1"
    assert actual == expected.read_text(), (
        f"the dry-run plan of {case} ({output}) changed; if intended, re-record with GOLDEN_UPDATE=1 "
        f"and review the diff of {expected.relative_to(REPO_ROOT)}"
    )


def test_every_shipped_template_has_a_golden_case():
    # A new example template without a golden file would be silently unpinned.
    shipped = {p for p in (REPO_ROOT / "examples").rglob("*.yml")
               if "Resources:" in p.read_text()}
    assert shipped <= set(CASES.values()), sorted(map(str, shipped - set(CASES.values())))
