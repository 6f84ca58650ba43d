"""examples/ci works: ci-flow.sh runs the CI/CD loop of the GitHub workflow locally (a
bare git repository as origin, a folder as the remote, two days of data), with the `mlv`
of this test environment; and the workflow is valid YAML with the three jobs the docs
describe."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import git, run_mlv

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ci"
WORKFLOW = EXAMPLE / ".github" / "workflows" / "mlv.yml"


def run_flow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """ci-flow.sh as the README runs it: `mlv` (this environment's) and python3 first on
    PATH, no $MLV."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "mlv"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m mlv "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "MLV"}
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                   os.environ["PATH"]])
    return subprocess.run(["bash", str(EXAMPLE / "ci-flow.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def report(work: Path, name: str) -> str:
    """A report of the run, with the commit ids (which change with the clock) as X."""
    text = (work / "reports" / f"{name}.md").read_text()
    return re.sub(r"`[0-9a-f]{7}`", "`X`", text)


def steps(workflow: dict) -> dict[str, list[str]]:
    """Each job's `run:` lines."""
    return {name: [line.strip() for step in job["steps"] for line in
                   str(step.get("run", "")).splitlines() if line.strip()]
            for name, job in workflow["jobs"].items()}


def test_workflow_has_the_three_jobs() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert {"pull_request", "push", "schedule"} <= set(triggers)
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["schedule"][0]["cron"]
    runs = steps(workflow)
    assert set(runs) == {"check", "publish", "nightly"}
    conditions = {name: job["if"] for name, job in workflow["jobs"].items()}
    assert "pull_request" in conditions["check"]
    assert "push" in conditions["publish"]
    assert "schedule" in conditions["nightly"]

    check = workflow["jobs"]["check"]["steps"]
    assert check[0]["with"]["fetch-depth"] == 0
    assert any(line.startswith("mlv ci ") and "--report report.md" in line
               for line in runs["check"])
    assert "gh pr comment \"$PR\" --body-file report.md" in runs["check"]
    assert "pip install mlv" in " ".join(runs["check"])

    publish = runs["publish"]
    push_at = next(i for i, line in enumerate(publish) if line.startswith("mlv push"))
    pull_at = publish.index("mlv pull models/model.json")
    assert publish.index("mlv ci --base HEAD~1") < push_at < pull_at


    nightly = " ".join(runs["nightly"])
    for command in ("mlv add data/raw", "mlv ci --base origin/main",
                    "mlv push", "gh pr create"):
        assert command in nightly
    assert nightly.index("mlv ci ") < nightly.index("gh pr create")
    for job in workflow["jobs"].values():
        env = {**workflow["env"], **job.get("env", {})}
        assert env["AWS_ACCESS_KEY_ID"] == "${{ secrets.AWS_ACCESS_KEY_ID }}"


def test_ci_flow_needs_a_work_folder(tmp_path: Path) -> None:
    proc = run_flow(tmp_path)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


@pytest.mark.slow  # about 10 s: fourteen mlv commands and five clones
def test_ci_flow_runs_the_loop(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = run_flow(tmp_path, str(work))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out

    # The pull request before its data was pushed: mlv ci exited 1 and named what is
    # missing; the script checked the exit code and went on.
    assert "mlv ci exited 1: the new model is not on the remote" in out
    not_pushed = report(work, "not-pushed")
    assert not_pushed.startswith("# mlv ci: failed\n")
    assert "| data pushed to storage | ❌ 2 objects missing" in not_pushed
    assert "| models/model.json | mlv.lock | 1 |" in not_pushed

    # Pushed, the same pull request passes: the whole report, as the comment shows it.
    assert report(work, "pr") == PR_REPORT
    # Beside it, the plot with main's and the branch's curves, and a page that shows it.
    svg = (work / "reports" / "pr_plots" / "plots_accuracy.csv.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert (work / "reports" / "pr_plots" / "index.html").is_file()

    # The change that makes the model worse than main by more than 0.01 fails its gate.
    assert "mlv ci exited 1: the gate stops this pull request" in out
    worse = report(work, "worse")
    assert worse.startswith("# mlv ci: failed\n")
    assert "| `metrics.json:accuracy >= 0.85` | 0.94 | 0.97 | ✅ passed |" in worse
    assert ("| `metrics.json:accuracy >= base - 0.01` | 0.94 | 0.97 | ❌ failed: accuracy "
            "is 0.94, not >= 0.96 |") in worse

    # The nightly: mlv ci ran both stages on the new data and the gates held.
    nightly = report(work, "nightly")
    assert nightly.startswith("# mlv ci: passed\n")
    assert "| prepare | ran | dep data/raw modified |" in nightly
    assert "| train | ran | upstream stage prepare will run |" in nightly
    assert "| data/raw/2026-12-02.csv | added | 3.9 KiB |" in nightly
    assert "| metrics.json | n\\_train | 400 | 900 | +500 |" in nightly
    assert "| gates | ✅ 2 passed, 0 failed |" in nightly

    # Its branch reached origin, and so did the pull requests'.
    branches = git(work / "origin.git", "branch", "--format=%(refname:short)").split()
    assert sorted(branches) == ["main", "nightly/2026-12-02", "tune-offset", "worse-offset"]

    # A fresh clone of main, and one of the nightly branch, get their data back.
    for branch, days in (("main", 1), ("nightly/2026-12-02", 2)):
        clone = tmp_path / branch.replace("/", "-")
        git(tmp_path, "clone", "-q", "-b", branch, str(work / "origin.git"), str(clone))
        res = run_mlv(clone, "pull")
        assert res.exit_code == 0, res.output
        assert len(list((clone / "data" / "raw").iterdir())) == days
        assert json.loads((clone / "models" / "model.json").read_text())["threshold"] > 0
        assert "everything is up to date" in run_mlv(clone, "status").stdout


PR_REPORT = """\
# mlv ci: passed

Head `X` compared with base `X` (origin/main).

| check | result |
|---|---|
| data pushed to storage | ✅ all 4 tracked paths |
| pipeline | ✅ up to date |
| gates | ✅ 2 passed, 0 failed |
| data added to the remote | 314 B |

## Gates

| gate | value | base | result |
|---|---|---|---|
| `metrics.json:accuracy >= 0.85` | 0.97 | 0.93 | ✅ passed |
| `metrics.json:accuracy >= base - 0.01` | 0.97 | 0.93 | ✅ passed |

## Metrics

| file | key | base | head | change |
|---|---|---|---|---|
| metrics.json | accuracy | 0.93 | 0.97 | +0.04 |

## Params

| file | key | base | head | change |
|---|---|---|---|---|
| params.json | train.offset | 0 | 3 | +3 |

## Stages

Every stage is up to date: nothing ran.

## Data

2 modified; the change adds 314 B to the remote.

| path | change | size |
|---|---|---|
| models/model.json | modified | 23 B |
| plots/accuracy.csv | modified | 291 B |

## Plots

![plots/accuracy.csv](pr_plots/plots_accuracy.csv.svg)
"""
