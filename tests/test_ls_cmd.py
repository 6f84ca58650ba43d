"""`mlv ls [URL] [PATH] [--rev REV] [-R] [--json]`, end to end."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, add_remote, commit_all, git, make_tree, one_error, run_mlv

Mlv = Callable[..., Result]


@pytest.fixture
def source(mlv_repo: Path, mlv: Mlv, request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose data is on a folder remote: tag v1 has data/{a.txt,sub/b.txt},
    main adds data/c.txt; README is git's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    make_tree(mlv_repo, {"README": "hello\n", "model.bin": b"\0" * 2048,
                         "data": {"a.txt": "a\n", "sub": {"b.txt": "bb\n"}}})
    add_remote(mlv_repo, "local", request, tmp_path)
    assert mlv("add", "data", "model.bin", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v1")
    git(mlv_repo, "tag", "v1")
    make_tree(mlv_repo, {"data": {"c.txt": "ccc\n"}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v2")
    assert mlv("push", "--all-tags", "--all-branches", cwd=mlv_repo).exit_code == 0
    return mlv_repo


def lines(res: Result) -> list[str]:
    assert res.exit_code == 0, res.output
    return res.stdout.splitlines()


def row(mark: str, size: str, name: str) -> str:
    return f"{mark:<3} {size:>10}  {name}"


def test_ls_marks_what_mlv_tracks(source: Path, mlv: Mlv) -> None:
    shown = lines(mlv("ls", cwd=source))
    pointer = os.path.getsize(source / "data.mlv")
    ignore = os.path.getsize(source / ".gitignore")
    assert shown == [
        row("", f"{ignore} B", ".gitignore"),
        row("", "", ".mlv/"),
        row("", "6 B", "README"),
        row("mlv", "9 B", "data/"),
        row("", f"{pointer} B", "data.mlv"),
        row("mlv", "2.0 KiB", "model.bin"),
        row("", f"{os.path.getsize(source / 'model.bin.mlv')} B", "model.bin.mlv"),
    ]
    assert lines(mlv("ls", ".", cwd=source)) == shown
    assert lines(mlv("ls", str(source), cwd=source.parent)) == shown


def test_ls_a_tracked_folder_and_a_file_inside_it(source: Path, mlv: Mlv) -> None:
    shown = lines(mlv("ls", "data", cwd=source))
    assert [line.split()[-1] for line in shown] == ["a.txt", "c.txt", "sub/"]
    assert all(line.startswith("mlv") for line in shown)
    (line,) = lines(mlv("ls", "data/sub/b.txt", cwd=source / "data"))
    assert line.startswith("mlv") and line.endswith("  b.txt") and "3 B" in line


def test_ls_recursive_at_a_tag(source: Path, mlv: Mlv) -> None:
    names = [line.split()[-1] for line in lines(mlv("ls", "-R", "--rev", "v1", cwd=source))]
    assert names == [".gitignore", ".mlv/.gitignore", ".mlv/config", "README", "data.mlv",
                     "data/a.txt", "data/sub/b.txt", "model.bin", "model.bin.mlv"]
    names = [line.split()[-1] for line in lines(mlv("ls", "data", "-R", cwd=source))]
    assert names == ["a.txt", "c.txt", "sub/b.txt"]


def test_ls_json(source: Path, mlv: Mlv) -> None:
    res = mlv("ls", "data", "--json", "--rev", "v1", cwd=source)
    assert res.exit_code == 0, res.output
    found = json.loads(res.stdout)
    assert [(e["path"], e["type"], e["size"], e["mlv"]) for e in found] == \
        [("a.txt", "file", 2, True), ("sub", "directory", None, True)]
    assert found[0]["kind"] == "mlv-dir-member" and found[0]["tracked_by"] == "data.mlv"
    assert len(found[0]["oid"]) == 32
    top = json.loads(mlv("ls", "--json", cwd=source).stdout)
    readme = next(e for e in top if e["path"] == "README")
    assert readme == {"path": "README", "type": "file", "size": 6, "mlv": False,
                      "kind": "git", "oid": git(source, "rev-parse", "HEAD:README").strip(),
                      "exec": False, "tracked_by": None}


def test_ls_another_repository_by_url(source: Path, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(origin))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_mlv(elsewhere, "ls", f"file://{origin}", "data", "-R")
    assert [line.split()[-1] for line in lines(res)] == ["a.txt", "c.txt", "sub/b.txt"]
    res = run_mlv(elsewhere, "ls", str(origin), "data", "--rev", "v1", "--json")
    assert [e["path"] for e in json.loads(res.stdout)] == ["a.txt", "sub"]
    res = run_mlv(elsewhere, "ls", str(source), "--rev", "v1")  # a work tree by path
    assert "data/" in res.stdout


def test_ls_errors(source: Path, mlv: Mlv, tmp_path: Path) -> None:
    one_error(mlv("ls", "--rev", "nope", cwd=source), "unknown revision", "nope")
    one_error(mlv("ls", "data/missing.txt", cwd=source), "data/missing.txt", "is not in")
    one_error(mlv("ls", "data/c.txt", "--rev", "v1", cwd=source), "data/c.txt", "v1")
    one_error(mlv("ls", f"file://{tmp_path}/nowhere.git", cwd=source), "cannot clone",
              "nowhere.git")
    res = mlv("ls", "https://user:s3cret@127.0.0.1:1/x.git", cwd=source)
    one_error(res, "cannot clone", "user:***@127.0.0.1")
    assert "s3cret" not in res.output
    outside = tmp_path / "outside"
    outside.mkdir()
    one_error(mlv("ls", cwd=outside), "not inside an mlv repository")
    res = run_mlv(source, "ls", "--rev", "nope")
    one_error(res, "unknown revision")


def test_ls_stage_output_recorded_in_mlv_lock(mlv_repo: Path, mlv: Mlv) -> None:
    res = mlv("stage", "add", "-n", "gen", "-o", "out", "mkdir -p out && echo hi > out/x",
              cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert mlv("repro", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "stage")
    res = mlv("ls", "out", "--json", cwd=mlv_repo)
    assert [(e["path"], e["size"], e["kind"], e["tracked_by"])
            for e in json.loads(res.stdout)] == [("x", 3, "mlv-dir-member", "mlv.lock")]
    (line,) = [x for x in lines(mlv("ls", cwd=mlv_repo)) if x.endswith("out/")]
    assert line.startswith("mlv") and "3 B" in line
