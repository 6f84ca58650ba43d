"""End to end: examples/sklearn-pipeline in a real git repo, run by the real `mlv`.

The stages run `python src/….py`; the venv's bin goes first on PATH so that `python`
is the interpreter running the tests (the one with scikit-learn).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import Result, git, run_mlv

pytestmark = pytest.mark.slow  # trains a model through the real pipeline

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sklearn-pipeline"
ENV = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
STAGES = ["prepare", "train", "evaluate"]


def mlv_ok(repo: Path, *args: str) -> Result:
    res = run_mlv(repo, *args, env=ENV)
    assert res.exit_code == 0, f"mlv {' '.join(args)}:\n{res.output}"
    return res


def ran(res: Result) -> list[str]:
    return re.findall(r"^running stage (\S+)", res.stdout, re.M)


def restored(res: Result) -> list[str]:
    return re.findall(r"^stage (\S+): restored outputs from the run-cache", res.stdout, re.M)


def set_param(repo: Path, key: str, value: object) -> None:
    path = repo / "params.yaml"
    data = yaml.safe_load(path.read_text())
    section, name = key.split(".")
    data[section][name] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_sklearn_pipeline_end_to_end(git_repo: Path) -> None:
    import sklearn  # noqa: F401  (a test dependency: the stages need it; imported here so
    # that collecting the fast loop does not pay for it)
    repo = git_repo
    shutil.copytree(EXAMPLE, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        "__pycache__", "data", "models", "plots", "metrics.json", "mlv.lock", ".mlv"))
    mlv_ok(repo, "init")

    # First run: every stage runs, in dependency order, and is recorded in mlv.lock.
    first = mlv_ok(repo, "repro")
    assert ran(first) == STAGES, first.output
    lock = yaml.safe_load((repo / "mlv.lock").read_text())
    assert list(lock["stages"]) == STAGES
    metrics = json.loads((repo / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8
    assert (repo / "data" / "prepared" / "train.csv").is_file()
    assert (repo / "plots" / "confusion.csv").read_text().startswith("actual,predicted\n")
    model_v1 = (repo / "models" / "model.pkl").read_bytes()
    metrics_v1 = (repo / "metrics.json").read_text()

    # Cached outs are git-ignored; the uncached metrics file is left for git.
    untracked = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert "metrics.json" in untracked
    for cached in ("data/prepared", "models/model.pkl", "plots/confusion.csv"):
        assert cached not in untracked, untracked

    assert "everything is up to date" in mlv_ok(repo, "status").stdout
    assert "everything is up to date" in mlv_ok(repo, "repro").stdout

    # A train param changes: only train is stale; train and evaluate rerun, not prepare.
    old = yaml.safe_load((repo / "params.yaml").read_text())["train"]["n_estimators"]
    set_param(repo, "train.n_estimators", old + 10)
    status = mlv_ok(repo, "status").stdout
    assert f"stage train: param train.n_estimators: {old} -> {old + 10}" in status
    assert "stage prepare" not in status
    second = mlv_ok(repo, "repro")
    assert ran(second) == ["train", "evaluate"], second.output
    assert "everything is up to date" in mlv_ok(repo, "repro").stdout
    assert "everything is up to date" in mlv_ok(repo, "status").stdout
    lock = yaml.safe_load((repo / "mlv.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train.n_estimators"] == old + 10

    shown = json.loads(mlv_ok(repo, "metrics", "show", "--json").stdout)
    accuracy = json.loads((repo / "metrics.json").read_text())["accuracy"]
    assert shown["metrics.json"]["accuracy"] == accuracy
    params = json.loads(mlv_ok(repo, "params", "show", "--json").stdout)
    assert params["params.yaml"]["train"]["n_estimators"] == old + 10

    # Back to the old value: both stages come back from the run-cache, nothing runs.
    set_param(repo, "train.n_estimators", old)
    third = mlv_ok(repo, "repro")
    assert ran(third) == [], third.output
    assert restored(third) == ["train", "evaluate"], third.output
    assert "restored from the run-cache" in third.stdout
    assert (repo / "models" / "model.pkl").read_bytes() == model_v1
    assert (repo / "metrics.json").read_text() == metrics_v1
    assert "everything is up to date" in mlv_ok(repo, "status").stdout
