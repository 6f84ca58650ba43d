"""`mlv add` refuses what it cannot track with an `error:` and a `hint:`, changing nothing.

Also: using mlv outside an mlv repository, and `mlv init` outside a git work tree.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import cache_objects, git, make_tree, read_tree, run_mlv


def snapshot(root: Path) -> dict[str, object]:
    """Files (bytes), folders and symlinks below root, without `.mlv/tmp` (machine state)."""
    snap: dict[str, object] = {
        rel: data for rel, data in read_tree(root).items() if not rel.startswith(".mlv/tmp/")
    }
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if not rel.startswith(os.path.join(".mlv", "tmp")):
                snap[rel + " (meta)"] = (os.path.islink(path), os.path.isdir(path))
    return snap


def pointers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mlv"))


def assert_refused(res, error: list[str], hint: list[str], code: int = 1) -> None:
    """One `error:` line and one `hint:` line holding the needles; exit `code`, no traceback."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("hint: ")]
    assert len(errors) == 1, res.stderr
    assert len(hints) == 1, f"no hint that says what to do:\n{res.stderr}"
    assert len(lines) == 2, res.stderr
    for needle in error:
        assert needle in errors[0], res.stderr
    for needle in hint:
        assert needle in hints[0], res.stderr


@pytest.fixture
def repo(mlv_repo: Path) -> Path:
    make_tree(mlv_repo, {"data": {"a.txt": "alpha", "sub": {"b.txt": "beta"}},
                         "models": {"m.bin": b"\0" * 10}})
    return mlv_repo


def add_refused(mlv, repo: Path, args: list[str], error: list[str], hint: list[str],
                cwd: Path | None = None) -> None:
    before = snapshot(repo)
    before_pointers = pointers(repo)
    before_objects = set(cache_objects(repo))
    res = mlv("add", *args, cwd=cwd or repo)
    assert_refused(res, error, hint)
    assert res.stdout == ""
    assert pointers(repo) == before_pointers
    assert set(cache_objects(repo)) == before_objects
    assert snapshot(repo) == before  # .gitignore files included


def test_add_path_tracked_by_git_is_refused(mlv, repo: Path) -> None:
    git(repo, "add", "data/sub/b.txt")
    git(repo, "commit", "-qm", "data in git")
    add_refused(mlv, repo, ["data"], ["data", "tracked by git", "data/sub/b.txt"],
                ["git rm -r --cached data", "mlv add data"])
    add_refused(mlv, repo, ["data/sub/b.txt"], ["data/sub/b.txt", "tracked by git"],
                ["git rm -r --cached data/sub/b.txt"])


def test_add_path_staged_in_git_is_refused(mlv, repo: Path) -> None:
    git(repo, "add", "models")  # staged, not committed: git still tracks it
    add_refused(mlv, repo, ["models"], ["models", "tracked by git"],
                ["git rm -r --cached models"])


def test_add_path_outside_the_repository_is_refused(mlv, repo: Path, tmp_path: Path) -> None:
    make_tree(tmp_path, {"elsewhere": {"x": "1"}})
    outside = tmp_path / "elsewhere"
    before = snapshot(outside)
    add_refused(mlv, repo, [str(outside)], [str(outside), "outside the repository"], ["move"])
    add_refused(mlv, repo, ["../elsewhere"], ["../elsewhere", "outside the repository"],
                ["move"])
    add_refused(mlv, repo, ["../elsewhere/x"], ["outside the repository"], ["move"],
                cwd=repo)
    add_refused(mlv, repo, ["../../elsewhere"], ["outside the repository"], ["move"],
                cwd=repo / "data")
    assert snapshot(outside) == before
    assert not (tmp_path / "elsewhere.mlv").exists()


def test_add_through_a_symlinked_folder_to_outside_is_refused(mlv, repo: Path,
                                                             tmp_path: Path) -> None:
    make_tree(tmp_path, {"elsewhere": {"x": "1"}})
    os.symlink(tmp_path / "elsewhere", repo / "link")
    add_refused(mlv, repo, ["link/x"], ["outside the repository"], ["move"])
    assert not (tmp_path / "elsewhere" / "x.mlv").exists()


def test_add_symlink_is_refused(mlv, repo: Path) -> None:
    os.symlink("data", repo / "alias")
    add_refused(mlv, repo, ["alias"], ["alias", "symlink"], ["add the folder or file"])


@pytest.mark.parametrize("target", [".git", ".git/", ".git/config", ".mlv", ".mlv/config",
                                    ".mlv/.gitignore"])
def test_add_git_or_mlv_own_folder_is_refused(mlv, repo: Path, target: str) -> None:
    add_refused(mlv, repo, [target], [target.rstrip("/"), "cannot be tracked"], [])


def test_add_path_inside_a_tracked_folder_is_refused(mlv, repo: Path) -> None:
    assert mlv("add", "data", cwd=repo).exit_code == 0
    add_refused(mlv, repo, ["data/sub"], ["data/sub", "inside data", "data.mlv"],
                ["mlv add data"])
    add_refused(mlv, repo, ["data/sub/b.txt"], ["inside data", "data.mlv"], ["mlv add data"])
    add_refused(mlv, repo, ["sub"], ["inside data", "data.mlv"], ["mlv add data"],
                cwd=repo / "data")


def test_add_folder_containing_a_tracked_path_is_refused(mlv, repo: Path) -> None:
    assert mlv("add", "data/sub", cwd=repo).exit_code == 0
    add_refused(mlv, repo, ["data"], ["data", "data/sub.mlv", "already tracks"],
                ["data/sub.mlv"])


def test_add_folder_containing_a_pointer_whose_data_is_deleted_is_refused(
    mlv, repo: Path
) -> None:
    # data/sub.mlv still tracks data/sub (a `mlv checkout` would bring it back); taking
    # the pointer into data's manifest would nest one tracked path in another and hide
    # data/sub.mlv from status and checkout.
    assert mlv("add", "data/sub", cwd=repo).exit_code == 0
    for path in (repo / "data" / "sub").iterdir():
        path.unlink()
    (repo / "data" / "sub").rmdir()
    add_refused(mlv, repo, ["data"], ["data", "data/sub.mlv"], ["data/sub.mlv"])


@pytest.mark.parametrize("targets", [["data", "data/sub"], ["data/sub", "data"],
                                     ["data/sub/b.txt", "data"]])
def test_add_overlapping_targets_in_one_command_is_refused(mlv, repo: Path,
                                                           targets: list[str]) -> None:
    add_refused(mlv, repo, targets, ["data/sub"], [])


def test_add_nonexistent_path_is_refused(mlv, repo: Path) -> None:
    add_refused(mlv, repo, ["nope"], ["nope", "does not exist"], ["check the path"])
    add_refused(mlv, repo, ["data/nope"], ["data/nope", "does not exist"], ["check the path"])


def test_add_validates_every_target_before_writing_anything(mlv, repo: Path) -> None:
    add_refused(mlv, repo, ["models", "data", "nope"], ["nope", "does not exist"],
                ["check the path"])
    assert not (repo / "models.mlv").exists() and not (repo / "data.mlv").exists()


def test_add_pointer_file_is_refused(mlv, repo: Path) -> None:
    assert mlv("add", "data", cwd=repo).exit_code == 0
    add_refused(mlv, repo, ["data.mlv"], ["data.mlv", "pointer file"], ["mlv add data"])


@pytest.mark.parametrize("target", [".", "./", "{repo}"])
def test_add_repository_root_is_refused(mlv, repo: Path, target: str) -> None:
    add_refused(mlv, repo, [target.format(repo=repo)], ["repository root"], ["mlv add data"])


def test_add_repository_root_from_a_subfolder_is_refused(mlv, repo: Path) -> None:
    add_refused(mlv, repo, [".."], ["repository root"], ["mlv add"], cwd=repo / "data")


def test_add_without_paths_is_a_usage_error(mlv, repo: Path) -> None:
    before = snapshot(repo)
    res = mlv("add", cwd=repo)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "PATHS" in res.stderr and "mlv add --help" in res.stderr
    assert snapshot(repo) == before


# ---- outside an mlv repository --------------------------------------------------------

@pytest.mark.parametrize("args", [["status"], ["add", "data"], ["checkout"],
                                  ["gc", "--workspace"]])
def test_commands_outside_an_mlv_repository(mlv, git_repo: Path, args: list[str]) -> None:
    make_tree(git_repo, {"data": {"a": "1"}})
    before = snapshot(git_repo)
    res = mlv(*args, cwd=git_repo / "data")
    assert_refused(res, ["not inside an mlv repository"], ["mlv init"])
    assert snapshot(git_repo) == before


def test_init_outside_a_git_work_tree(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    make_tree(plain, {"data": {"a": "1"}})
    res = run_mlv(plain, "init")
    assert_refused(res, [str(plain), "git"], ["git init", "--no-scm"])
    assert not (plain / ".mlv").exists()

    res = run_mlv(plain, "init", "--no-scm")
    assert res.exit_code == 0, res.output
    assert (plain / ".mlv" / "config").is_file()
    res = run_mlv(plain, "add", "data")
    assert res.exit_code == 0, res.output
    assert (plain / "data.mlv").is_file()
    assert not (plain / ".gitignore").exists()  # no git: nothing to ignore
    assert "git add" not in res.output
    res = run_mlv(plain, "status")
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output


def test_init_twice_says_already_initialized(mlv, mlv_repo: Path) -> None:
    (mlv_repo / ".mlv" / "config").write_text("core:\n  jobs: 3\n")
    before = snapshot(mlv_repo)
    res = mlv("init", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "already initialized" in res.stdout
    assert res.stderr == ""
    assert snapshot(mlv_repo) == before  # the user's config is kept


def test_init_in_a_subfolder_of_the_work_tree_is_refused(mlv, git_repo: Path) -> None:
    (git_repo / "sub").mkdir()
    res = mlv("init", cwd=git_repo / "sub")
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    [error] = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert "root of the git work tree" in error and str(git_repo) in error
    assert not (git_repo / "sub" / ".mlv").exists()
    assert not (git_repo / ".mlv").exists()
