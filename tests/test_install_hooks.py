"""`mlv install`: git hooks run mlv checkout after a branch checkout, mlv push before a
git push (a failed push stops it), and keep the user's own hooks."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, add_remote, commit_all, git, make_tree, remote_oids, xxh

Mlv = Callable[..., Result]
HOOKS = ("post-checkout", "post-merge", "pre-push", "pre-commit")


def _hooks(repo: Path) -> Path:
    return repo / ".git" / "hooks"


def test_install_is_idempotent_keeps_your_hook_and_uninstall_restores_it(
        mlv_repo: Path, mlv: Mlv) -> None:
    mine = _hooks(mlv_repo) / "post-checkout"
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("#!/bin/sh\necho mine >> \"$(git rev-parse --show-toplevel)/ran.txt\"\n")
    mine.chmod(0o755)
    res = mlv("install", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "kept as post-checkout.pre-mlv" in res.stdout
    first = {h: (_hooks(mlv_repo) / h).read_text() for h in HOOKS}
    assert mlv("install", cwd=mlv_repo).exit_code == 0  # again: nothing new kept
    assert {h: (_hooks(mlv_repo) / h).read_text() for h in HOOKS} == first
    assert (_hooks(mlv_repo) / "post-checkout.pre-mlv").read_text().startswith("#!/bin/sh\necho")
    git(mlv_repo, "checkout", "-q", "-b", "other")
    assert (mlv_repo / "ran.txt").read_text() == "mine\n"  # your hook still runs
    res = mlv("install", "--uninstall", cwd=mlv_repo)
    assert "your own post-checkout hook is back in place" in res.stdout
    assert mine.read_text().startswith("#!/bin/sh\necho mine")
    assert not any((_hooks(mlv_repo) / h).exists() for h in HOOKS if h != "post-checkout")


@pytest.mark.slow
def test_branch_checkout_brings_the_data_and_a_failed_push_stops_git_push(
        mlv_repo: Path, mlv: Mlv, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    make_tree(mlv_repo, {"data.txt": "v1"})
    assert mlv("add", "data.txt", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v1")
    assert mlv("install", cwd=mlv_repo).exit_code == 0
    git(mlv_repo, "checkout", "-q", "-b", "v2")
    (mlv_repo / "data.txt").write_text("v2")
    assert mlv("add", "data.txt", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v2")
    git(mlv_repo, "checkout", "-q", "main")  # post-checkout runs mlv checkout
    assert (mlv_repo / "data.txt").read_text() == "v1"
    git(mlv_repo, "checkout", "-q", "v2")
    assert (mlv_repo / "data.txt").read_text() == "v2"

    # pre-push: mlv push to a remote folder that does not exist fails, so git push stops
    url = add_remote(mlv_repo, "local", request, tmp_path)
    Path(url).rmdir()
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(mlv_repo, "remote", "add", "origin", str(bare))
    proc = subprocess.run(["git", "push", "-q", "origin", "v2"], cwd=mlv_repo,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "mlv: the data of these commits could not be pushed" in proc.stderr
    assert "v2" not in git(bare, "branch")
    Path(url).mkdir()
    proc = subprocess.run(["git", "push", "-q", "origin", "v2"], cwd=mlv_repo,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # the checked-out commit's data, as `mlv push` sends it
    assert remote_oids(mlv_repo) == {xxh(b"v2")}


def test_pre_commit_warns_when_data_differs_but_does_not_block(mlv_repo: Path,
                                                               mlv: Mlv) -> None:
    make_tree(mlv_repo, {"data.txt": "v1"})
    assert mlv("add", "data.txt", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v1")
    assert mlv("install", cwd=mlv_repo).exit_code == 0
    (mlv_repo / "data.txt").write_text("changed")
    (mlv_repo / "code.py").write_text("x = 1\n")
    git(mlv_repo, "add", "code.py")
    proc = subprocess.run(["git", "commit", "-qm", "code"], cwd=mlv_repo,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "tracked data differs from its pointers" in proc.stderr


def test_a_failed_checkout_in_the_hook_leaves_git_done_and_says_what_to_run(
        mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"data.txt": "v1"})
    assert mlv("add", "data.txt", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v1")
    git(mlv_repo, "checkout", "-q", "-b", "v2")
    (mlv_repo / "data.txt").write_text("v2")
    assert mlv("add", "data.txt", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v2")
    assert mlv("install", cwd=mlv_repo).exit_code == 0
    for obj in (mlv_repo / ".mlv" / "cache").rglob("*"):  # v1's bytes are gone
        if obj.is_file() and obj.read_bytes() == b"v1":
            obj.unlink()
    proc = subprocess.run(["git", "checkout", "main"], cwd=mlv_repo, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert git(mlv_repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert "git is done, but the data of this commit was not checked out" in proc.stderr
    assert "run `mlv pull`" in proc.stderr
