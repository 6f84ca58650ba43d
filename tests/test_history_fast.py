"""`mlv diff A B` and `mlv metrics diff A B` read two revisions from git and the cache:
no workspace file is read, and a folder both revisions record alike is not looked into."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, commit_all, git, run_mlv

Mlv = Callable[..., Result]
FILES = 300


@pytest.fixture
def two_commits(mlv_repo: Path, mlv: Mlv) -> Path:
    """Tag A: data/ (300 files), ref/ (3 files) and metrics.json, a top-level metric.
    Tag B: in data/, 3 files changed, 2 deleted, 2 added; ref/ as it was; new metrics."""
    data = mlv_repo / "data"
    for i in range(FILES):
        (data / f"d{i // 100}").mkdir(parents=True, exist_ok=True)
        (data / f"d{i // 100}" / f"f{i:03d}.txt").write_text(f"file {i}\n")
    (mlv_repo / "ref").mkdir()
    for name in ("x", "y", "z"):
        (mlv_repo / "ref" / name).write_text(f"reference {name}\n")
    (mlv_repo / "mlv.yaml").write_text("metrics:\n  - metrics.json\n")
    (mlv_repo / "metrics.json").write_text('{"acc": 0.5, "loss": 1.25, "n": 3}\n')
    assert mlv("add", "data", "ref", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "A")
    git(mlv_repo, "tag", "A")
    for i in (7, 107, 207):
        (data / f"d{i // 100}" / f"f{i:03d}.txt").write_text(f"file {i}, changed\n")
    for i in (53, 153):
        (data / f"d{i // 100}" / f"f{i:03d}.txt").unlink()
    (data / "new").mkdir()
    (data / "new" / "g1.txt").write_text("new 1\n")
    (data / "new" / "g2.txt").write_text("new 2\n")
    (mlv_repo / "metrics.json").write_text('{"acc": 0.75, "loss": 1.25, "n": 4}\n')
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "B")
    git(mlv_repo, "tag", "B")
    return mlv_repo


COMMANDS = [("diff", "A", "B"), ("diff", "A", "B", "--json"), ("diff", "A", "B", "--md"),
            ("metrics", "diff", "A", "B"), ("metrics", "diff", "A", "B", "--json"),
            ("metrics", "diff", "A", "B", "--all")]


def outputs(repo: Path, mlv: Mlv) -> dict[tuple[str, ...], str]:
    found = {}
    for args in COMMANDS:
        res = mlv(*args, cwd=repo)
        assert res.exit_code == 0, res.output
        found[args] = res.output
    return found


def spoil_workspace(repo: Path) -> None:
    """Every tracked file's bytes changed or gone, and the workspace's pointers, mlv.yaml
    and metrics say something else (a garbled pointer fails any command that reads it)."""
    for path in (repo / "data").rglob("*.txt"):
        path.write_text("other bytes\n")
    shutil.rmtree(repo / "ref")
    (repo / "metrics.json").write_text('{"acc": 0.0, "other": 9}\n')
    (repo / "mlv.yaml").write_text("metrics:\n  - nowhere.json\n")
    for pointer in ("data.mlv", "ref.mlv"):
        (repo / pointer).write_text("outs: [garbled\n")


def test_diff_and_metrics_diff_of_two_revisions_read_no_workspace_file(
        two_commits: Path, mlv: Mlv) -> None:
    before = outputs(two_commits, mlv)
    assert "2 added, 3 modified, 2 deleted, 0 renamed" in before[("diff", "A", "B")]
    changed = json.loads(before[("metrics", "diff", "A", "B", "--json")])
    assert changed == {"metrics.json": {"acc": {"old": 0.5, "new": 0.75, "diff": 0.25},
                                        "n": {"old": 3, "new": 4, "diff": 1}}}
    spoil_workspace(two_commits)
    assert outputs(two_commits, mlv) == before
    # and the same through the installed command, in a process of its own
    res = run_mlv(two_commits, "diff", "A", "B")
    assert res.exit_code == 0, res.output
    assert res.stdout == before[("diff", "A", "B")]


def test_a_folder_both_revisions_record_alike_is_not_looked_into(
        two_commits: Path, mlv: Mlv) -> None:
    before = mlv("diff", "A", "B", "--json", cwd=two_commits)
    ref_oid = next(line.split()[-1] for line in (two_commits / "ref.mlv").read_text()
                   .splitlines() if "xxh128:" in line)
    # ref/'s file list leaves the cache, and there is no remote to fetch it from
    (two_commits / ".mlv" / "cache" / "xxh128" / ref_oid[:2] / ref_oid[2:]).unlink()
    after = mlv("diff", "A", "B", "--json", cwd=two_commits)
    assert after.exit_code == 0, after.output
    assert "unknown" not in json.loads(after.stdout)  # nothing compared as a whole
    assert after.output == before.output


def test_repo_rel_cuts_plain_paths_as_relpath_would(mlv_repo: Path) -> None:
    """Repo.rel's fast path (used for every file a checkout writes) must give exactly
    what os.path.relpath gives, for plain paths and for every awkward one."""
    import os

    from mlv.repo import Repo

    repo = Repo.find(str(mlv_repo))
    root = repo.root
    for path in [f"{root}/data/a.csv", f"{root}/d/.hidden", f"{root}/d/../x", f"{root}/d//e",
                 f"{root}/d/", root, f"{root}-other/f", f"{root}/./f", f"{root}/a b/ü.txt"]:
        assert repo.rel(path) == os.path.relpath(path, root), path
