"""`mlv params show` and `mlv metrics show` at git revisions (--rev, -a, -T), read
through the index without checking anything out; --precision and --md."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result, git, make_tree, one_error

Mlv = Callable[..., Result]

SCRIPT = """\
import json, os, re
lr = float(re.search(r"lr: (\\S+)", open("params.yaml").read()).group(1))
os.makedirs("eval", exist_ok=True)
json.dump({"acc": lr, "loss": {"test": 0.123456789}}, open("eval/scores.json", "w"))
json.dump({"runs": round(lr * 10)}, open("summary.json", "w"))
open("model.pkl", "w").write("m")
"""

PIPELINE = f"""\
stages:
  train:
    cmd: {sys.executable} train.py
    deps: [train.py]
    params: [train.lr]
    outs: [eval, model.pkl]
    metrics: [{{summary.json: {{cache: false}}}}]
"""


def _commit_version(repo: Path, mlv: Mlv, lr: str, tag: str) -> None:
    (repo / "params.yaml").write_text(f"train:\n    lr: {lr}\n")
    (repo / "train.py").write_text(SCRIPT)
    res = mlv("repro", cwd=repo)
    assert res.exit_code == 0, res.output
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", tag)
    git(repo, "tag", tag)


def _project(repo: Path, mlv: Mlv) -> None:
    make_tree(repo, {"mlv.yaml": PIPELINE})
    _commit_version(repo, mlv, "0.1", "v1")
    _commit_version(repo, mlv, "0.2", "v2")
    (repo / "params.yaml").write_text("train:\n    lr: 0.3\n")  # the workspace differs


def test_params_show_at_revisions(mlv_repo: Path, mlv: Mlv) -> None:
    _project(mlv_repo, mlv)
    res = mlv("params", "show", "--rev", "v1", "--rev", "v2", "--json", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {
        "workspace": {"params.yaml": {"train": {"lr": 0.3}}},
        "v1": {"params.yaml": {"train": {"lr": 0.1}}},
        "v2": {"params.yaml": {"train": {"lr": 0.2}}},
    }
    rows = [line.split() for line in mlv("params", "show", "-T", cwd=mlv_repo).stdout
            .splitlines()]
    assert rows[0] == ["file", "key", "workspace", "v1", "v2"]
    assert rows[1] == ["params.yaml", "train.lr", "0.3", "0.1", "0.2"]
    assert (mlv_repo / "params.yaml").read_text() == "train:\n    lr: 0.3\n"


def test_metrics_show_reads_a_revision_s_cached_metrics_from_the_cache(mlv_repo: Path,
                                                                         mlv: Mlv) -> None:
    # eval/scores.json lies inside the cached output folder `eval`, declared top-level
    text = (PIPELINE + "metrics:\n- eval/scores.json\n")
    make_tree(mlv_repo, {"mlv.yaml": text})
    _commit_version(mlv_repo, mlv, "0.1", "v1")
    _commit_version(mlv_repo, mlv, "0.2", "v2")
    data = json.loads(mlv("metrics", "show", "-T", "--json", cwd=mlv_repo).stdout)
    assert data["v1"]["eval/scores.json"]["acc"] == 0.1
    assert data["v2"]["eval/scores.json"]["acc"] == 0.2
    assert data["v1"]["summary.json"] == {"runs": 1}


def test_metrics_show_all_branches_and_precision(mlv_repo: Path, mlv: Mlv) -> None:
    _project(mlv_repo, mlv)
    git(mlv_repo, "branch", "old", "v1")
    res = mlv("metrics", "show", "-a", "--precision", "3", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows[0] == ["file", "key", "workspace", "main", "old"]
    assert ["summary.json", "runs", "2", "2", "1"] in rows
    res = mlv("metrics", "show", "--md", "--rev", "v1", cwd=mlv_repo)
    assert res.stdout.splitlines()[0] == "| file | key | workspace | v1 |"


def test_a_metric_missing_from_the_cache_is_a_note_not_a_failure(mlv_repo: Path,
                                                                  mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": PIPELINE.replace(
        "metrics: [{summary.json: {cache: false}}]", "metrics: [summary.json]")})
    (mlv_repo / ".gitignore").write_text("")
    _commit_version(mlv_repo, mlv, "0.1", "v1")
    _commit_version(mlv_repo, mlv, "0.2", "v2")
    import shutil

    shutil.rmtree(mlv_repo / ".mlv" / "cache")
    res = mlv("metrics", "show", "--rev", "v1", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "summary.json at v1: not in the cache" in res.stderr
    assert "summary.json" in res.stdout  # the workspace's copy is shown


def test_an_unknown_revision_is_one_error(mlv_repo: Path, mlv: Mlv) -> None:
    _project(mlv_repo, mlv)
    one_error(mlv("params", "show", "--rev", "nope", cwd=mlv_repo), "unknown git revision",
              "nope")
    one_error(mlv("metrics", "show", "--rev", "--upload-pack=x", cwd=mlv_repo),
              "not a git revision")


# ---- params diff / metrics diff (issue 10's first piece) -----------------------------------

def test_params_diff_head_against_the_workspace_and_two_revisions(mlv_repo: Path,
                                                                   mlv: Mlv) -> None:
    _project(mlv_repo, mlv)  # v1: lr 0.1, v2 (HEAD): 0.2, workspace: 0.3
    rows = [line.split() for line in mlv("params", "diff", cwd=mlv_repo).stdout.splitlines()]
    assert rows == [["file", "key", "HEAD", "workspace", "change"],
                    ["params.yaml", "train.lr", "0.2", "0.3", "0.1"]]
    data = json.loads(mlv("params", "diff", "v1", "v2", "--json", cwd=mlv_repo).stdout)
    assert data == {"params.yaml": {"train.lr": {"old": 0.1, "new": 0.2, "diff": 0.1}}}
    (mlv_repo / "params.yaml").write_text("train:\n    lr: 0.2\n")
    res = mlv("params", "diff", cwd=mlv_repo)
    assert res.stdout.strip() == "no params changed between HEAD and workspace"
    assert "train.lr" in mlv("params", "diff", "--all", cwd=mlv_repo).stdout


def test_metrics_diff_shows_changes_added_and_deleted_keys(mlv_repo: Path, mlv: Mlv) -> None:
    _project(mlv_repo, mlv)
    (mlv_repo / "summary.json").write_text(json.dumps({"runs": 2, "new_key": 1}))
    res = mlv("metrics", "diff", "v1", "--md", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "| file | key | v1 | workspace | change |"
    assert "| summary.json | runs | 1 | 2 | 1 |" in lines
    assert "| summary.json | new_key | - | 1 | added |" in lines
    data = json.loads(mlv("metrics", "diff", "v1", "v2", "--json", cwd=mlv_repo).stdout)
    assert data["summary.json"]["runs"] == {"old": 1, "new": 2, "diff": 1}
    one_error(mlv("metrics", "diff", "nope", cwd=mlv_repo), "unknown git revision")
