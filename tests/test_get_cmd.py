"""`mlv get URL PATH [-o OUT] [--rev REV] [-j N] [-r NAME] [--force]`, end to end: a source
repository with a bare origin cloned by file:// URL, its data on a folder remote (and
on S3)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    Result,
    add_remote,
    commit_all,
    git,
    make_tree,
    one_error,
    read_tree,
    run_mlv,
    xxh,
)

from mlv import fsio

Mlv = Callable[..., Result]
DATA = {"a.txt": "a\n", "sub": {"b.txt": "bb\n"}}


def build(repo: Path, mlv: Mlv, request: pytest.FixtureRequest, tmp_path: Path,
          kind: str = "local", fmt: int | None = None) -> None:
    """data/ (tracked; tag v1: a.txt, sub/b.txt, run.sh executable; main adds c.txt),
    model.bin (tracked), README (git), all pushed to a remote of `kind`."""
    make_tree(repo, {"README": "hello\n", "model.bin": b"\0" * 2048,
                     "data": {**DATA, "run.sh": "#!/bin/sh\n"}})
    os.chmod(repo / "data" / "run.sh", 0o755)
    add_remote(repo, kind, request, tmp_path, fmt=fmt)
    assert mlv("add", "data", "model.bin", cwd=repo).exit_code == 0
    commit_all(repo, "v1")
    git(repo, "tag", "v1")
    make_tree(repo, {"data": {"c.txt": "ccc\n"}})
    assert mlv("add", "data", cwd=repo).exit_code == 0
    commit_all(repo, "v2")
    res = mlv("push", "--all-tags", "--all-branches", cwd=repo)
    assert res.exit_code == 0, res.output


def origin_of(repo: Path, tmp_path: Path, name: str = "origin.git") -> str:
    origin = tmp_path / name
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    return f"file://{origin}"


@pytest.fixture
def url(mlv_repo: Path, mlv: Mlv, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path) -> str:
    build(mlv_repo, mlv, request, tmp_path)
    return origin_of(mlv_repo, tmp_path)


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """A plain folder, not a repository: get needs none."""
    folder = tmp_path / "here"
    folder.mkdir()
    return folder


def ok(res: Result) -> str:
    assert res.exit_code == 0, res.output
    return res.stdout


def modes(root: Path) -> dict[str, bool]:
    """Each file's path under `root` -> executable."""
    return {p.relative_to(root).as_posix(): bool(p.stat().st_mode & stat.S_IXUSR)
            for p in root.rglob("*") if p.is_file()}


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_get_a_tracked_file(url: str, mlv: Mlv, here: Path) -> None:
    assert ok(mlv("get", url, "model.bin", cwd=here)) == "got 1 file, 2.0 KiB into model.bin\n"
    assert (here / "model.bin").read_bytes() == b"\0" * 2048
    assert listing(here) == ["model.bin"]  # no pointer, no .gitignore, no cache


def test_get_a_folder_keeps_bytes_and_exec_bits(url: str, mlv: Mlv, here: Path,
                                                mlv_repo: Path) -> None:
    out = ok(mlv("get", url, "data", "-j", "4", cwd=here))
    assert out == "got 4 files, 19 B into data\n"
    assert read_tree(here / "data") == read_tree(mlv_repo / "data")
    assert modes(here / "data") == {"a.txt": False, "c.txt": False, "run.sh": True,
                                    "sub/b.txt": False}
    assert listing(here) == ["data", "data/a.txt", "data/c.txt", "data/run.sh", "data/sub",
                             "data/sub/b.txt"]


def test_get_a_file_inside_a_tracked_folder_and_a_git_file(url: str, mlv: Mlv,
                                                           here: Path) -> None:
    ok(mlv("get", url, "data/sub/b.txt", cwd=here))
    assert (here / "b.txt").read_text() == "bb\n"
    ok(mlv("get", url, "README", cwd=here))
    assert (here / "README").read_text() == "hello\n"


def test_get_at_a_tag_into_a_new_path(url: str, mlv: Mlv, here: Path) -> None:
    out = ok(mlv("get", url, "data", "--rev", "v1", "-o", "old/versions/data-v1", cwd=here))
    assert out == f"got 3 files, 15 B into {os.path.join('old', 'versions', 'data-v1')}\n"
    assert sorted(read_tree(here / "old/versions/data-v1")) == ["a.txt", "run.sh",
                                                                "sub/b.txt"]


def test_get_the_whole_repository_leaves_out_pointers(url: str, mlv: Mlv,
                                                      here: Path) -> None:
    """As `dvc get` copies the data and not the .dvc files: a folder holding pointers
    comes with the data they track, git's files, but neither pointer nor .mlv/."""
    ok(mlv("get", url, ".", "-o", "copy", cwd=here))
    assert sorted(read_tree(here / "copy")) == [
        ".gitignore", "README", "data/a.txt", "data/c.txt", "data/run.sh", "data/sub/b.txt",
        "model.bin"]
    ok(mlv("get", url, "", cwd=here))  # the repository's own name
    assert (here / "origin" / "model.bin").is_file()


def test_an_existing_destination(url: str, mlv: Mlv, here: Path) -> None:
    (here / "model.bin").write_text("mine\n")
    res = mlv("get", url, "model.bin", cwd=here)
    one_error(res, "model.bin already exists", "remove it or choose another -o")
    assert "--force replaces it" in res.stderr
    assert (here / "model.bin").read_text() == "mine\n"
    make_tree(here, {"data": {"mine.txt": "keep\n"}})
    one_error(mlv("get", url, "data", cwd=here), "data already exists (a folder)")
    assert listing(here / "data") == ["mine.txt"]
    # --force replaces a file and a non-empty folder
    ok(mlv("get", url, "model.bin", "--force", cwd=here))
    assert (here / "model.bin").read_bytes() == b"\0" * 2048
    ok(mlv("get", url, "data", "-f", cwd=here))
    assert "mine.txt" not in listing(here / "data") and (here / "data/c.txt").is_file()
    # an existing folder given as -o receives it inside, as `dvc get` and `cp` do
    (here / "models").mkdir()
    ok(mlv("get", url, "model.bin", "-o", "models", cwd=here))
    assert listing(here / "models") == ["model.bin"]
    one_error(mlv("get", url, "model.bin", "-o", "models", cwd=here),
              os.path.join("models", "model.bin"), "already exists")
    # an empty folder where the result lands is filled
    (here / "fresh" / "sub").mkdir(parents=True)
    ok(mlv("get", url, "data/sub", "-o", "fresh", cwd=here))
    assert listing(here / "fresh") == ["sub", "sub/b.txt"]
    assert not [n for n in os.listdir(here) if fsio.is_tmp_name(n)]


def test_get_from_the_current_repository_never_writes_its_cache(
        mlv_repo: Path, mlv: Mlv, request: pytest.FixtureRequest, tmp_path: Path,
        here: Path, cache_home: Path) -> None:
    build(mlv_repo, mlv, request, tmp_path)
    cache = mlv_repo / ".mlv" / "cache"
    for path in sorted(cache.rglob("*")):  # drop the file objects, keep the manifests
        if path.is_file() and not path.name.endswith(".dir"):
            os.chmod(path.parent, 0o755)
            path.unlink()
    (mlv_repo / "data" / "a.txt").chmod(0o644)
    (mlv_repo / "data" / "a.txt").write_text("changed in the workspace\n")
    before = listing(cache)
    status = git(mlv_repo, "status", "--porcelain")
    ok(mlv("get", ".", "data", "-o", str(here / "data"), cwd=mlv_repo))
    assert (here / "data" / "a.txt").read_text() == "a\n"  # HEAD, not the workspace
    assert sorted(read_tree(here / "data")) == ["a.txt", "c.txt", "run.sh", "sub/b.txt"]
    ok(mlv("get", ".", "README", "-o", str(here), "--rev", "v1", cwd=mlv_repo / "data"))
    assert listing(cache) == before
    assert git(mlv_repo, "status", "--porcelain") == status
    assert not [n for n in os.listdir(here) if fsio.is_tmp_name(n)]


def nothing_left(here: Path) -> None:
    assert listing(here) == []


def test_errors_leave_nothing(url: str, mlv: Mlv, here: Path, tmp_path: Path) -> None:
    one_error(mlv("get", url, "nope.txt", cwd=here), "nope.txt", "is not in")
    one_error(mlv("get", url, "data/c.txt", "--rev", "v1", cwd=here), "data/c.txt", "v1")
    one_error(mlv("get", url, "data", "--rev", "nope", cwd=here), "unknown revision", "nope")
    one_error(mlv("get", f"file://{tmp_path}/nowhere.git", "data", cwd=here),
              "cannot clone", "nowhere.git")
    one_error(mlv("get", url, "data", "-r", "other", cwd=here), "other")
    nothing_left(here)


def test_get_of_data_never_pushed(mlv_repo: Path, mlv: Mlv, request: pytest.FixtureRequest,
                                  tmp_path: Path, here: Path, cache_home: Path) -> None:
    build(mlv_repo, mlv, request, tmp_path)
    make_tree(mlv_repo, {"new.bin": "not pushed\n", "data": {"d.txt": "not pushed\n"}})
    assert mlv("add", "data", "new.bin", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v3")
    url = origin_of(mlv_repo, tmp_path)
    one_error(mlv("get", url, "new.bin", "-o", "deep/down/new.bin", cwd=here), "new.bin",
              "neither the cache nor remote 'store'")
    nothing_left(here)  # the folders made for -o are gone too
    one_error(mlv("get", url, "data", cwd=here), "file list of data",
              "neither the cache nor remote 'store'")
    nothing_left(here)
    ok(mlv("get", url, "data", "--rev", "HEAD~1", cwd=here))  # what was pushed still comes


def test_get_of_a_file_the_remote_lacks(mlv_repo: Path, mlv: Mlv,
                                        request: pytest.FixtureRequest, tmp_path: Path,
                                        here: Path, cache_home: Path) -> None:
    build(mlv_repo, mlv, request, tmp_path, fmt=1)
    obj = tmp_path / "remote-store" / "xxh128" / xxh(b"ccc\n")[:2] / xxh(b"ccc\n")[2:]
    obj.unlink()
    url = origin_of(mlv_repo, tmp_path)
    res = mlv("get", url, "data", "-o", "deep/data", cwd=here)
    one_error(res, "data/c.txt", "neither the cache nor remote 'store'")
    assert "mlv push" in res.stderr
    nothing_left(here)


def test_get_of_a_corrupted_object(mlv_repo: Path, mlv: Mlv, request: pytest.FixtureRequest,
                                   tmp_path: Path, here: Path, cache_home: Path) -> None:
    build(mlv_repo, mlv, request, tmp_path, fmt=1)
    obj = tmp_path / "remote-store" / "xxh128" / xxh(b"ccc\n")[:2] / xxh(b"ccc\n")[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"ddd\n")
    url = origin_of(mlv_repo, tmp_path)
    res = mlv("get", url, "data", cwd=here)
    one_error(res, "data/c.txt", "damaged on remote 'store'")
    assert "mlv fsck --remote store" in res.stderr
    nothing_left(here)


def test_get_without_a_remote(git_repo: Path, mlv: Mlv, tmp_path: Path, here: Path,
                              cache_home: Path) -> None:
    assert mlv("init", cwd=git_repo).exit_code == 0
    make_tree(git_repo, {"data": DATA})
    assert mlv("add", "data", cwd=git_repo).exit_code == 0
    commit_all(git_repo, "v1")
    url = origin_of(git_repo, tmp_path)
    one_error(mlv("get", url, "data", cwd=here), "no default remote")
    nothing_left(here)


def test_ctrl_c_while_copying_leaves_nothing(url: str, mlv: Mlv, here: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from mlv.odb import ObjectStore

    real = ObjectStore.recalled
    calls = []

    def interrupted(self: ObjectStore, oid: str) -> bytes | None:
        calls.append(oid)
        if len(calls) == 3:  # two files are written: now Ctrl-C
            raise KeyboardInterrupt
        return real(self, oid)

    monkeypatch.setattr(ObjectStore, "recalled", interrupted)
    res = mlv("get", url, ".", "-o", "copy", cwd=here)
    assert res.exit_code == 130, res.output
    assert len(calls) == 3
    nothing_left(here)


def test_a_manifest_that_climbs_out_is_refused(mlv_repo: Path, mlv: Mlv,
                                               request: pytest.FixtureRequest,
                                               tmp_path: Path, here: Path,
                                               cache_home: Path) -> None:
    """A source whose pushed manifest lists `../escape` (or an absolute path) and whose
    committed pointer names it: refused, nothing written anywhere."""
    build(mlv_repo, mlv, request, tmp_path)
    remote = tmp_path / "remote-store"
    for i, evil in enumerate(["../escape", str(tmp_path / "abs-escape")]):
        blob = b"pwned\n"
        manifest = json.dumps([{"path": evil, "xxh128": xxh(blob), "size": len(blob)}],
                              separators=(",", ":")).encode()
        oid = xxh(manifest) + ".dir"
        obj = remote / "xxh128" / oid[:2] / oid[2:]
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(manifest)
        (mlv_repo / "evil.mlv").write_text(
            f"outs:\n- path: evil\n  xxh128: {oid}\n  size: {len(blob)}\n  nfiles: 1\n")
        commit_all(mlv_repo, "attack")
        url = origin_of(mlv_repo, tmp_path, f"evil{i}.git")
        inside = here / "inside"
        inside.mkdir()
        for path in ("evil", "."):
            one_error(mlv("get", url, path, "-o", str(inside / "out"), cwd=inside),
                      "is refused", "path")
        assert listing(inside) == []
        inside.rmdir()
    assert not (tmp_path / "escape").exists() and not (here / "escape").exists()
    assert not (tmp_path / "abs-escape").exists()


def test_quiet_and_subprocess(url: str, here: Path) -> None:
    res = run_mlv(here, "get", "-q", url, "data")
    assert res.exit_code == 0 and res.stdout == "" and res.stderr == "", res.output
    assert sorted(read_tree(here / "data")) == ["a.txt", "c.txt", "run.sh", "sub/b.txt"]
    res = run_mlv(here, "get", url, "data/c.txt", "--rev", "v1")
    one_error(res, "data/c.txt")
    res = run_mlv(here, "get", url, "data")
    one_error(res, "already exists")


@pytest.mark.slow
def test_get_from_s3(mlv_repo: Path, mlv: Mlv, request: pytest.FixtureRequest,
                     tmp_path: Path, here: Path, cache_home: Path) -> None:
    build(mlv_repo, mlv, request, tmp_path, kind="s3")
    url = origin_of(mlv_repo, tmp_path)
    res = run_mlv(here, "get", url, "data")
    assert res.exit_code == 0, res.output
    assert res.stdout == "got 4 files, 19 B into data\n"
    assert read_tree(here / "data") == read_tree(mlv_repo / "data")
    assert modes(here / "data")["run.sh"]
