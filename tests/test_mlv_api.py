"""The public Python API: mlv.api.open, read, get_url, params_show, metrics_show, and
the errors they raise, against real repositories (a bare origin cloned by URL) whose
data is on a folder remote (one test: S3)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import add_remote, commit_all, git, make_tree, mlv_ok

import mlv.api
from mlv.api.source import open_source

TRAIN_V1 = "x,y\n1,2\n3,4\n"
TRAIN_V2 = "x,y\n8,9\n"


def build_source(repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
                 kind: str = "local", fmt: int | None = None) -> None:
    """data/ (a tracked folder: train.csv, parts/p1.csv, parts/p2.csv), model.bin (a
    tracked file) and README (git), pushed; tag v1, then main changes train.csv and
    adds data/new.csv and notes.txt (git)."""
    make_tree(repo, {"README": "héllo\n", "model.bin": b"\0\1\2\3" * 4,
                     "data": {"train.csv": TRAIN_V1,
                              "parts": {"p1.csv": "a,b\n1,2\n", "p2.csv": "a,b\n3,4\n"}}})
    add_remote(repo, kind, request, tmp_path, fmt=fmt)
    mlv_ok(repo, "add", "data", "model.bin")
    commit_all(repo, "v1")
    git(repo, "tag", "v1")
    make_tree(repo, {"data": {"train.csv": TRAIN_V2, "new.csv": "n\n"}, "notes.txt": "n\n"})
    mlv_ok(repo, "add", "data")
    commit_all(repo, "v2")
    mlv_ok(repo, "push", "--all-tags", "--all-branches")


def bare_origin(repo: Path, tmp_path: Path) -> str:
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    return f"file://{origin}"


def cache_files(repo: Path) -> list[Path]:
    return sorted(p for p in (repo / ".mlv" / "cache").rglob("*") if p.is_file())


def drop_cache(repo: Path) -> None:
    for path in cache_files(repo):
        os.chmod(path.parent, 0o755)
        path.unlink()


def snapshot(repo: Path) -> dict[str, int]:
    """Every file of the work tree and .git/index, by path, with its mtime (not the
    remote's index segments, which a format-2 remote keeps in the cache)."""
    found = {}
    for folder, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in (".git", "remote-index")]
        for name in files:
            path = os.path.join(folder, name)
            found[path] = os.lstat(path).st_mtime_ns
    found["index"] = os.stat(repo / ".git" / "index").st_mtime_ns
    return found


def status_of(repo: Path) -> str:
    return git(repo, "--no-optional-locks", "status", "--porcelain")  # no index refresh


# ---- reading --------------------------------------------------------------------------


def test_read_at_a_tag_and_at_head(mlv_repo: Path, request: pytest.FixtureRequest,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_source(mlv_repo, request, tmp_path)
    (mlv_repo / "data" / "train.csv").chmod(0o644)
    (mlv_repo / "data" / "train.csv").write_text("uncommitted\n")
    monkeypatch.chdir(mlv_repo)
    assert mlv.api.read("data/train.csv", rev="v1") == TRAIN_V1
    assert mlv.api.read("data/train.csv") == TRAIN_V2  # HEAD, not the workspace
    assert mlv.api.read("data/parts/p2.csv", rev="v1") == "a,b\n3,4\n"  # inside a folder
    assert mlv.api.read("README") == "héllo\n"  # git tracks it
    assert mlv.api.read("README", mode="rb") == "héllo\n".encode()
    assert mlv.api.read("README", encoding="latin-1") == "héllo\n".encode().decode("latin-1")
    assert mlv.api.read("model.bin", mode="rb") == b"\0\1\2\3" * 4
    with mlv.api.open("data/train.csv", rev="v1") as f:
        assert f.readline() == "x,y\n" and list(f) == ["1,2\n", "3,4\n"]
    with mlv.api.open("model.bin", mode="rb") as fb:
        fb.seek(13)
        assert fb.read() == b"\1\2\3"
    assert fb.closed


def test_read_by_url_streams_from_the_remote_and_writes_nothing(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_source(mlv_repo, request, tmp_path)
    url = bare_origin(mlv_repo, tmp_path)
    drop_cache(mlv_repo)
    before, status = snapshot(mlv_repo), status_of(mlv_repo)
    monkeypatch.chdir(tmp_path)
    assert mlv.api.read("data/train.csv", repo=url, rev="v1") == TRAIN_V1
    assert mlv.api.read("data/parts/p1.csv", repo=url) == "a,b\n1,2\n"
    assert mlv.api.read("notes.txt", repo=url) == "n\n"
    # the current repository, by its path, and its cache lacks the data: streamed
    assert mlv.api.read("data/train.csv", repo=str(mlv_repo), rev="v1") == TRAIN_V1
    monkeypatch.chdir(mlv_repo)
    assert mlv.api.read("model.bin", rev="v1", mode="rb") == b"\0\1\2\3" * 4
    assert snapshot(mlv_repo) == before and status_of(mlv_repo) == status
    assert [p for p in cache_files(mlv_repo) if "xxh128" in p.parts] == []
    clone_cache = [p.name for p in (cache_home / "mlv").rglob("*") if p.is_file()
                   and "cache" in p.parts and not p.name.endswith(".dir")]
    assert [n for n in clone_cache if len(n) == 30] == []  # no data object was kept


@pytest.mark.slow
def test_read_by_url_from_an_s3_remote(mlv_repo: Path, request: pytest.FixtureRequest,
                                       tmp_path: Path, cache_home: Path) -> None:
    build_source(mlv_repo, request, tmp_path, kind="s3")
    url = bare_origin(mlv_repo, tmp_path)
    assert mlv.api.read("data/train.csv", repo=url, rev="v1") == TRAIN_V1
    assert mlv.api.read("data/train.csv", repo=url) == TRAIN_V2
    with mlv.api.open("model.bin", repo=url, mode="rb") as f:
        f.seek(2)
        assert f.read(3) == b"\2\3\0"


def test_a_branch_follows_new_commits_in_one_process(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    build_source(mlv_repo, request, tmp_path)
    monkeypatch.chdir(mlv_repo)
    assert mlv.api.read("notes.txt") == "n\n"
    make_tree(mlv_repo, {"notes.txt": "newer\n"})
    commit_all(mlv_repo, "v3")
    assert mlv.api.read("notes.txt") == "newer\n"  # the kept repository is not stale


def test_read_is_fast_in_a_warm_process(mlv_repo: Path, request: pytest.FixtureRequest,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    build_source(mlv_repo, request, tmp_path)
    monkeypatch.chdir(mlv_repo)
    mlv.api.read("data/parts/p1.csv", rev="v1")  # warm: imports, the repository opened
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assert mlv.api.read("data/parts/p1.csv", rev="v1") == "a,b\n1,2\n"
        times.append(time.perf_counter() - start)
    assert sorted(times)[2] < 0.1, times


# ---- errors ---------------------------------------------------------------------------


def test_errors_are_typed_and_say_what_to_do(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_source(mlv_repo, request, tmp_path)
    monkeypatch.chdir(mlv_repo)
    with pytest.raises(mlv.api.PathNotFound, match="data/new.csv is not in .* at v1") as info:
        mlv.api.read("data/new.csv", rev="v1")  # tracked at HEAD only
    assert isinstance(info.value, FileNotFoundError) and "mlv ls" in (info.value.hint or "")
    with pytest.raises(mlv.api.RevisionNotFound, match="unknown revision 'nope'"):
        mlv.api.read("data/train.csv", rev="nope")
    with pytest.raises(mlv.api.RepoNotFound, match="cannot clone"):
        mlv.api.read("data/train.csv", repo=f"file://{tmp_path}/nowhere.git")
    with pytest.raises(mlv.api.NotAFile, match="data is a folder"):
        mlv.api.read("data")
    for mode in ("w", "r+", "a", "wb"):
        with pytest.raises(ValueError, match="read-only"):
            mlv.api.read("README", mode=mode)
        with pytest.raises(ValueError, match="read-only"):
            with mlv.api.open("README", mode=mode):
                pass
    for name in ("ReadError", "RepoNotFound", "RevisionNotFound", "PathNotFound",
                 "NoRemote", "NotPushed", "ObjectCorrupted", "NotAFile", "NoURL"):
        assert issubclass(getattr(mlv.api, name), mlv.api.ReadError)


def test_a_remote_that_lacks_the_object(mlv_repo: Path, tmp_path: Path,
                                        cache_home: Path) -> None:
    make_tree(mlv_repo, {"other.bin": "o", "model.bin": "m"})
    (tmp_path / "store").mkdir()
    mlv_ok(mlv_repo, "remote", "add", "-d", "store", str(tmp_path / "store"))
    mlv_ok(mlv_repo, "add", "other.bin")
    mlv_ok(mlv_repo, "push")  # the remote is in format 2 from here on
    mlv_ok(mlv_repo, "add", "model.bin")
    commit_all(mlv_repo, "model.bin never pushed")
    url = bare_origin(mlv_repo, tmp_path)
    with pytest.raises(mlv.api.NotPushed, match="model.bin .* neither the cache nor remote "
                                                "'store'") as info:
        mlv.api.read("model.bin", repo=url)
    assert "mlv push" in (info.value.hint or "")
    with pytest.raises(mlv.api.NotPushed, match="model.bin .* is not on remote 'store'"):
        mlv.api.get_url("model.bin", repo=url)


def test_no_remote(mlv_repo: Path, tmp_path: Path, cache_home: Path) -> None:
    make_tree(mlv_repo, {"model.bin": "m"})
    mlv_ok(mlv_repo, "add", "model.bin")
    commit_all(mlv_repo, "no remote")
    with pytest.raises(mlv.api.NoRemote, match="no default remote"):
        mlv.api.read("model.bin", repo=bare_origin(mlv_repo, tmp_path))


def test_a_damaged_cache_object_raises(mlv_repo: Path, request: pytest.FixtureRequest,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    build_source(mlv_repo, request, tmp_path)
    monkeypatch.chdir(mlv_repo)
    oid = open_source(rev="v1").stat("data/train.csv").oid
    obj = mlv_repo / ".mlv" / "cache" / "xxh128" / oid[:2] / oid[2:]
    obj.parent.chmod(0o755)
    obj.chmod(0o644)
    obj.write_text(TRAIN_V1.replace("1", "7"))  # same size, other bytes
    with pytest.raises(mlv.api.ObjectCorrupted, match="cache object of data/train.csv"):
        mlv.api.read("data/train.csv", rev="v1")
    with pytest.raises(mlv.api.ObjectCorrupted):
        with mlv.api.open("data/train.csv", rev="v1", mode="rb"):
            pass


@pytest.mark.parametrize("fmt", [1, 2])
def test_a_damaged_remote_object_raises(mlv_repo: Path, request: pytest.FixtureRequest,
                                        tmp_path: Path, cache_home: Path, fmt: int) -> None:
    build_source(mlv_repo, request, tmp_path, fmt=fmt)
    url = bare_origin(mlv_repo, tmp_path)
    store = tmp_path / "remote-store"
    data = TRAIN_V1.encode()
    damaged = 0
    for path in store.rglob("*"):  # flip the file's bytes wherever the remote keeps them
        if path.is_file() and data in path.read_bytes():
            path.chmod(0o644)
            path.write_bytes(path.read_bytes().replace(data, data.replace(b"1", b"7")))
            damaged += 1
    assert damaged == 1
    with pytest.raises(mlv.api.ObjectCorrupted, match="damaged") as info:
        mlv.api.read("data/train.csv", repo=url, rev="v1")
    assert "mlv fsck --remote store" in (info.value.hint or "")
    assert mlv.api.read("data/parts/p1.csv", repo=url, rev="v1") == "a,b\n1,2\n"


# ---- get_url ----------------------------------------------------------------------------


def test_get_url_of_a_loose_object(mlv_repo: Path, request: pytest.FixtureRequest,
                                   tmp_path: Path, cache_home: Path) -> None:
    build_source(mlv_repo, request, tmp_path, fmt=1)
    url = bare_origin(mlv_repo, tmp_path)
    found = mlv.api.get_url("data/train.csv", repo=url, rev="v1")
    assert found.startswith(str(tmp_path / "remote-store"))
    assert Path(found).read_text() == TRAIN_V1  # another engine reads it directly
    assert Path(mlv.api.get_url("model.bin", repo=url)).read_bytes() == b"\0\1\2\3" * 4
    with pytest.raises(mlv.api.NoURL, match="README is tracked by git"):
        mlv.api.get_url("README", repo=url)
    with pytest.raises(mlv.api.NotAFile, match="data is a folder"):
        mlv.api.get_url("data", repo=url)


def test_get_url_of_a_packed_object_says_how_to_read_it(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    build_source(mlv_repo, request, tmp_path)  # format 2: small files go to packs
    monkeypatch.chdir(mlv_repo)
    with pytest.raises(mlv.api.NoURL, match="no single URL holds data/train.csv") as info:
        mlv.api.get_url("data/train.csv")
    assert "mlv.api.open" in (info.value.hint or "") and "mlv://" in (info.value.hint or "")


# ---- params and metrics -----------------------------------------------------------------

SCRIPT = """\
import json, re
lr = float(re.search(r"lr: (\\S+)", open("params.yaml").read()).group(1))
json.dump({"acc": lr * 2}, open("scores.json", "w"))
"""

PIPELINE = f"""\
stages:
  train:
    cmd: {sys.executable} train.py
    deps: [train.py]
    params: [train.lr]
    metrics: [{{scores.json: {{cache: false}}}}]
"""


def test_params_and_metrics_at_a_revision(mlv_repo: Path, tmp_path: Path, cache_home: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(mlv_repo, {"mlv.yaml": PIPELINE, "train.py": SCRIPT})
    for lr, tag in (("0.1", "v1"), ("0.2", "v2")):
        (mlv_repo / "params.yaml").write_text(f"train:\n  lr: {lr}\n  other: 1\n")
        mlv_ok(mlv_repo, "repro")
        commit_all(mlv_repo, tag)
        git(mlv_repo, "tag", tag)
    monkeypatch.chdir(mlv_repo)
    assert mlv.api.params_show(rev="v1") == {"params.yaml": {"train": {"lr": 0.1}}}
    assert mlv.api.params_show() == {"params.yaml": {"train": {"lr": 0.2}}}
    assert mlv.api.metrics_show(rev="v1") == {"scores.json": {"acc": 0.2}}
    url = bare_origin(mlv_repo, tmp_path)
    assert mlv.api.metrics_show(repo=url, rev="v2") == {"scores.json": {"acc": 0.4}}


# ---- importing ----------------------------------------------------------------------------


def test_import_mlv_api_loads_neither_click_nor_fsspec() -> None:
    code = ("import sys, mlv.api\n"
            "assert 'mlv.api.public' not in sys.modules\n"
            "mlv.api.read, mlv.api.ReadError\n"
            "print(sorted(m for m in ('click', 'fsspec', 'git') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__)
                                                                          .parent.parent)})
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mlv.api.nope  # noqa: B018



def test_a_symlink_git_tracks_is_refused_not_followed(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link committed to git (here to /etc/hostname) is never read through."""
    build_source(mlv_repo, request, tmp_path)
    (mlv_repo / "link").symlink_to("/etc/hostname")
    commit_all(mlv_repo, "a link")
    monkeypatch.chdir(mlv_repo)
    with pytest.raises(mlv.api.NotAFile, match="link is a symlink in .*does not follow") as info:
        mlv.api.read("link")
    assert info.value.hint and "file it points to" in info.value.hint
