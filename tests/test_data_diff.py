"""`mlv diff`: tracked data changes between revisions, or a revision and the workspace."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, add_remote, clone, commit_all, make_tree, one_error

Mlv = Callable[..., Result]


@pytest.fixture
def history(mlv_repo: Path, mlv: Mlv) -> Path:
    """v1: a folder of three files and a model; v2: one file changed, one renamed, one
    deleted, one added, the model retrained."""
    make_tree(mlv_repo, {"data": {"a.csv": "1,2\n", "b.png": "PNG-b", "c.txt": "old"},
                         "model.bin": "m1"})
    assert mlv("add", "data", "model.bin", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v1")
    (mlv_repo / "data" / "a.csv").write_text("1,2\n3,4\n")
    (mlv_repo / "data" / "b.png").rename(mlv_repo / "data" / "b2.png")
    (mlv_repo / "data" / "c.txt").unlink()
    (mlv_repo / "data" / "d.txt").write_text("new")
    (mlv_repo / "model.bin").write_text("m2!")
    return mlv_repo


def test_diff_head_against_the_workspace_down_to_files(history: Path, mlv: Mlv) -> None:
    res = mlv("diff", "--json", cwd=history)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["added"] == [{"path": "data/d.txt", "old_size": None, "new_size": 3}]
    assert data["deleted"] == [{"path": "data/c.txt", "old_size": 3, "new_size": None}]
    assert data["renamed"] == [{"path": "data/b2.png", "old_size": 5, "new_size": 5,
                                "old_path": "data/b.png"}]
    assert [c["path"] for c in data["modified"]] == ["data/a.csv", "model.bin"]
    text = mlv("diff", cwd=history).stdout
    assert "renamed:  data/b.png -> data/b2.png" in text
    assert "1 added, 2 modified, 1 deleted, 1 renamed; size +5 B" in text


def test_diff_between_two_revisions_reads_git_not_the_workspace(history: Path,
                                                                mlv: Mlv) -> None:
    assert mlv("add", "data", "model.bin", cwd=history).exit_code == 0
    commit_all(history, "v2")
    shutil.rmtree(history / "data")  # the workspace plays no part
    data = json.loads(mlv("diff", "HEAD~1", "HEAD", "--json", cwd=history).stdout)
    assert [c["path"] for c in data["modified"]] == ["data/a.csv", "model.bin"]
    res = mlv("diff", "HEAD~1", "HEAD", "-t", "model.bin", "--md", cwd=history)
    assert res.stdout.splitlines() == [
        "| status | path | old size | new size | change |", "|---|---|---|---|---|",
        "| modified | model.bin | 2 B | 3 B | +1 B |"]
    assert "no tracked data changed" in mlv("diff", "HEAD", "HEAD", cwd=history).stdout


def test_diff_reads_a_folder_list_from_the_remote_when_the_cache_lacks_it(
        history: Path, mlv: Mlv, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    add_remote(history, "local", request, tmp_path)
    assert mlv("push", cwd=history).exit_code == 0  # v1
    assert mlv("add", "data", "model.bin", cwd=history).exit_code == 0
    assert mlv("push", cwd=history).exit_code == 0
    commit_all(history, "v2")
    other = clone(history, tmp_path, "teammate")  # an empty cache
    res = mlv("diff", "HEAD~1", "HEAD", "--json", cwd=other)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["added"][0]["path"] == "data/d.txt"
    # without a remote, a folder whose list is missing is compared as a whole
    shutil.rmtree(other / ".mlv" / "cache", ignore_errors=True)
    assert mlv("remote", "remove", "store", cwd=other).exit_code == 0
    res = mlv("diff", "HEAD~1", "HEAD", "--json", cwd=other)
    data = json.loads(res.stdout)
    assert data["unknown"] == ["data"]
    assert [c["path"] for c in data["modified"]] == ["data", "model.bin"]


def test_diff_of_an_unknown_revision_is_one_error(history: Path, mlv: Mlv) -> None:
    one_error(mlv("diff", "nope", cwd=history), "unknown git revision")
