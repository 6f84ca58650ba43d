"""`mlv remove` and `mlv move`: pointers, data and .gitignore entries stay consistent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import cache_objects, git, make_tree, read_tree

DATA = {"a.txt": b"a", "sub": {"b.bin": b"\x00b"}}
FLAT = {"a.txt": b"a", "sub/b.bin": b"\x00b"}


def ok(res) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output


def pointer_out(file: Path) -> dict:
    return yaml.safe_load(file.read_text(encoding="utf-8"))["outs"][0]


def ignored(repo: Path, path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=repo).returncode == 0


def clean(mlv, repo: Path) -> None:  # type: ignore[no-untyped-def]
    res = mlv("status", cwd=repo)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output


@pytest.fixture
def repo(mlv_repo: Path, mlv) -> Path:  # type: ignore[no-untyped-def]
    make_tree(mlv_repo, {"data": DATA, "model.pkl": b"weights"})
    ok(mlv("add", "data", "model.pkl", cwd=mlv_repo))
    assert (mlv_repo / ".gitignore").read_text() == "/data\n/model.pkl\n"
    return mlv_repo


# ---- remove --------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["data.mlv", "data", "data/"])
def test_remove_keeps_the_data_and_stops_ignoring_it(repo: Path, mlv, target: str) -> None:  # type: ignore[no-untyped-def]
    objs = set(cache_objects(repo))

    res = mlv("remove", target, cwd=repo)

    ok(res)
    assert res.stdout == "removed data.mlv\n"
    assert not (repo / "data.mlv").exists()
    assert read_tree(repo / "data") == FLAT
    assert (repo / ".gitignore").read_text() == "/model.pkl\n"
    assert not ignored(repo, "data/a.txt")
    assert set(cache_objects(repo)) == objs  # the cache is gc's business
    # The other pointer is untouched and still in sync.
    clean(mlv, repo)


def test_remove_keeps_other_gitignore_lines(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (repo / ".gitignore").write_text("# build output\n*.log\n/data\n/model.pkl\n")
    ok(mlv("remove", "data.mlv", cwd=repo))
    assert (repo / ".gitignore").read_text() == "# build output\n*.log\n/model.pkl\n"


def test_remove_of_the_last_entry_deletes_the_gitignore(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    ok(mlv("remove", "data.mlv", "model.pkl.mlv", cwd=repo))
    assert not (repo / ".gitignore").exists()
    assert read_tree(repo / "data") == FLAT
    assert (repo / "model.pkl").read_bytes() == b"weights"
    assert git(repo, "status", "--porcelain", "-uall").splitlines() == [
        "?? data/a.txt", "?? data/sub/b.bin", "?? model.pkl"]


def test_remove_in_a_subfolder(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {"models": {"model.pkl": b"w", "train.py": b"print()"}})
    ok(mlv("add", "models/model.pkl", cwd=repo))
    assert (repo / "models" / ".gitignore").read_text() == "/model.pkl\n"

    ok(mlv("remove", "model.pkl.mlv", cwd=repo / "models"))

    assert not (repo / "models" / "model.pkl.mlv").exists()
    assert not (repo / "models" / ".gitignore").exists()
    assert (repo / "models" / "model.pkl").read_bytes() == b"w"


def test_remove_outs_deletes_the_data(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    res = mlv("remove", "--outs", "data.mlv", "model.pkl", cwd=repo)

    ok(res)
    assert res.stdout.splitlines() == ["removed data.mlv and data",
                                       "removed model.pkl.mlv and model.pkl"]
    assert not (repo / "data").exists()
    assert not (repo / "model.pkl").exists()
    assert not (repo / "data.mlv").exists()
    assert not (repo / ".gitignore").exists()


def test_remove_outs_when_the_data_is_already_gone(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (repo / "model.pkl").unlink()
    res = mlv("remove", "--outs", "model.pkl.mlv", cwd=repo)
    ok(res)
    assert not (repo / "model.pkl.mlv").exists()


@pytest.mark.parametrize("change", ["modify", "add", "modify single file"])
def test_remove_outs_refuses_uncached_changes(repo: Path, mlv, change: str) -> None:  # type: ignore[no-untyped-def]
    if change == "modify":
        (repo / "data" / "a.txt").write_bytes(b"precious")
    elif change == "add":
        (repo / "data" / "new.txt").write_bytes(b"precious")
    else:
        (repo / "model.pkl").write_bytes(b"precious")
    before = read_tree(repo / "data")
    gitignore = (repo / ".gitignore").read_text()

    res = mlv("remove", "--outs", "data", "model.pkl", cwd=repo)

    assert res.exit_code == 1
    assert "not in the cache" in res.stderr
    assert "Traceback" not in res.output
    # Nothing at all changed: not the other target either.
    assert read_tree(repo / "data") == before
    assert (repo / "data.mlv").exists() and (repo / "model.pkl.mlv").exists()
    assert (repo / ".gitignore").read_text() == gitignore


def test_remove_of_an_untracked_path(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    make_tree(repo, {"other": b"x"})
    res = mlv("remove", "other", cwd=repo)
    assert res.exit_code == 1
    assert "other is not tracked by mlv" in res.stderr
    assert (repo / "other").exists()


# ---- move ----------------------------------------------------------------------------

def test_move_rename_in_place(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    res = mlv("move", "data", "data2", cwd=repo)

    ok(res)
    assert res.stdout == "moved data -> data2 (data2.mlv)\n"
    assert not (repo / "data").exists() and not (repo / "data.mlv").exists()
    assert read_tree(repo / "data2") == FLAT
    out = pointer_out(repo / "data2.mlv")
    assert out["path"] == "data2"
    assert (repo / ".gitignore").read_text() == "/model.pkl\n/data2\n"
    assert ignored(repo, "data2/a.txt") and not ignored(repo, "data2.mlv")
    clean(mlv, repo)


def test_move_pointer_into_a_new_folder(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    dir_oid = pointer_out(repo / "data.mlv")["xxh128"]

    res = mlv("move", "data.mlv", "sub/data", cwd=repo)

    ok(res)
    assert res.stdout == "moved data -> sub/data (sub/data.mlv)\n"
    assert read_tree(repo / "sub") == {
        ".gitignore": b"/data\n", "data.mlv": (repo / "sub" / "data.mlv").read_bytes(),
        **{f"data/{k}": v for k, v in FLAT.items()}}
    assert pointer_out(repo / "sub" / "data.mlv") == {
        "path": "data", "xxh128": dir_oid, "size": 3, "nfiles": 2}
    assert (repo / ".gitignore").read_text() == "/model.pkl\n"
    assert ignored(repo, "sub/data/a.txt") and not ignored(repo, "sub/data.mlv")
    clean(mlv, repo)
    # The moved pointer is a working pointer.
    (repo / "sub" / "data" / "a.txt").unlink()
    ok(mlv("checkout", cwd=repo))
    assert read_tree(repo / "sub" / "data") == FLAT


@pytest.mark.parametrize("dst", ["existing", "existing/"])
def test_move_into_an_existing_folder(repo: Path, mlv, dst: str) -> None:  # type: ignore[no-untyped-def]
    make_tree(repo, {"existing": {".gitignore": "*.tmp\n", "keep.txt": "k"}})

    res = mlv("move", "model.pkl", dst, cwd=repo)

    ok(res)
    assert res.stdout == "moved model.pkl -> existing/model.pkl (existing/model.pkl.mlv)\n"
    assert (repo / "existing" / "model.pkl").read_bytes() == b"weights"
    assert (repo / "existing" / "keep.txt").read_bytes() == b"k"
    assert pointer_out(repo / "existing" / "model.pkl.mlv")["path"] == "model.pkl"
    assert (repo / "existing" / ".gitignore").read_text() == "*.tmp\n/model.pkl\n"
    assert (repo / ".gitignore").read_text() == "/data\n"
    assert not (repo / "model.pkl").exists() and not (repo / "model.pkl.mlv").exists()
    clean(mlv, repo)


def test_move_out_of_a_subfolder_from_inside_it(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {"models": {"m.pkl": b"m"}})
    ok(mlv("add", "models/m.pkl", cwd=repo))

    res = mlv("move", "m.pkl", "../top.pkl", cwd=repo / "models")

    ok(res)
    assert (repo / "top.pkl").read_bytes() == b"m"
    assert pointer_out(repo / "top.pkl.mlv")["path"] == "top.pkl"
    assert not (repo / "models" / ".gitignore").exists()
    assert (repo / ".gitignore").read_text() == "/top.pkl\n"
    clean(mlv, repo)


def test_move_when_the_data_is_not_in_the_workspace(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (repo / "model.pkl").unlink()
    ok(mlv("move", "model.pkl.mlv", "renamed.pkl", cwd=repo))
    assert pointer_out(repo / "renamed.pkl.mlv")["path"] == "renamed.pkl"
    ok(mlv("checkout", cwd=repo))
    assert (repo / "renamed.pkl").read_bytes() == b"weights"


def test_move_to_a_pointer_name(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    """`mlv move data.mlv other.mlv` names the new pointer; the data becomes `other`
    (a tracked path ending in .mlv is something `mlv add` itself refuses to create)."""
    ok(mlv("move", "data.mlv", "other.mlv", cwd=repo))
    assert not (repo / "other.mlv.mlv").exists()
    assert pointer_out(repo / "other.mlv")["path"] == "other"
    assert read_tree(repo / "other") == FLAT


@pytest.mark.parametrize("dst", ["model.pkl", "taken", "taken.mlv-owner"])
def test_move_refuses_an_existing_destination(repo: Path, mlv, dst: str) -> None:  # type: ignore[no-untyped-def]
    make_tree(repo, {"taken": b"someone's file"})
    if dst == "taken.mlv-owner":  # only the destination's pointer exists
        (repo / "gone.mlv").write_text((repo / "model.pkl.mlv").read_text())
        dst = "gone"
    before = read_tree(repo)

    res = mlv("move", "data", dst, cwd=repo)

    assert res.exit_code == 1
    assert "already exists" in res.stderr
    assert "Traceback" not in res.output
    assert read_tree(repo) == before


def test_move_refuses_an_untracked_source(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    make_tree(repo, {"loose": b"x"})
    for src in ("loose", "nothing-here"):
        res = mlv("move", src, "elsewhere", cwd=repo)
        assert res.exit_code == 1, src
        assert f"{src} is not tracked by mlv" in res.stderr
    assert not (repo / "elsewhere").exists()
    assert (repo / "loose").read_bytes() == b"x"


def test_move_into_itself_is_refused(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    res = mlv("move", "data", "data/inner/data", cwd=repo)
    assert res.exit_code == 1
    assert "into itself" in res.stderr
    assert read_tree(repo / "data") == FLAT
    assert (repo / "data.mlv").exists()


def test_move_outside_the_repository_is_refused(repo: Path, mlv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = mlv("move", "data", str(tmp_path / "outside"), cwd=repo)
    assert res.exit_code == 1
    assert "outside the repository" in res.stderr
    assert not (tmp_path / "outside").exists()
    assert read_tree(repo / "data") == FLAT


def test_move_into_a_tracked_folder_is_refused(repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    """Like `mlv add data/model.pkl`, which mlv refuses: one path, one owner."""
    res = mlv("move", "model.pkl", "data/model.pkl", cwd=repo)

    assert res.exit_code == 1, res.output
    assert "data" in res.stderr
    assert (repo / "model.pkl").read_bytes() == b"weights"
    assert (repo / "model.pkl.mlv").exists()
    assert read_tree(repo / "data") == FLAT
    clean(mlv, repo)
