"""mlv.api.source: a repository at a revision (current, local path, or a clone cached per
URL), its tree as one listing, and the typed errors of reading."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from pathlib import Path

import pytest
from conftest import add_remote, commit_all, git, make_tree, mlv_ok

from mlv import errors, fsio
from mlv.api.source import clone_folder, open_source


def build_source(repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
                 kind: str = "local") -> None:
    """data/ (a tracked folder), model.bin (a tracked file) and README (git), pushed to
    a remote; tag v1 has 2 files in data/, HEAD (main) has 3."""
    make_tree(repo, {"README": "hello\n", "model.bin": b"\0" * 10,
                     "data": {"a.txt": "a\n", "sub": {"b.txt": "bb\n"}}})
    add_remote(repo, kind, request, tmp_path)
    mlv_ok(repo, "add", "data", "model.bin")
    commit_all(repo, "v1")
    git(repo, "tag", "v1")
    make_tree(repo, {"data": {"c.txt": "ccc\n"}})
    mlv_ok(repo, "add", "data")
    commit_all(repo, "v2")
    mlv_ok(repo, "push", "--all-tags", "--all-branches")


def bare_origin(repo: Path, tmp_path: Path) -> str:
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    return f"file://{origin}"


def drop_cache(repo: Path) -> None:
    for folder, _, files in os.walk(repo / ".mlv" / "cache"):
        for name in files:
            os.chmod(folder, 0o755)
            os.remove(os.path.join(folder, name))


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def test_current_repository_at_head(mlv_repo: Path, request: pytest.FixtureRequest,
                                    tmp_path: Path) -> None:
    build_source(mlv_repo, request, tmp_path)
    (mlv_repo / "README").write_text("changed, not committed\n")
    src = open_source(cwd=str(mlv_repo))
    assert src.commit == head(mlv_repo) and not src.cloned and src.url is None
    top = {e.path: e for e in src.walk()}
    assert top["README"].kind == "git" and top["README"].size == 6  # HEAD, not the workspace
    assert top["data"][1:] == ("directory", 9, "mlv", top["data"].oid, False, "data.mlv")
    assert top["data"].oid.endswith(".dir")
    assert top["model.bin"].kind == "mlv" and top["model.bin"].tracked_by == "model.bin.mlv"
    assert top["data.mlv"].kind == "git"
    assert "data/a.txt" not in top  # not recursive
    everything = [e.path for e in src.walk(recursive=True, dirs=False)]
    assert "data/sub/b.txt" in everything and "data/c.txt" in everything
    member = src.stat("data/sub/b.txt")
    assert member.kind == "mlv-dir-member" and member.size == 3 and member.mlv
    assert member.oid is not None and len(member.oid) == 32  # xxh128, not a git blob id
    assert src.stat("data/sub").type == "directory"
    assert [e.path for e in src.walk("data/sub/b.txt")] == ["data/sub/b.txt"]


def test_revision_and_local_path(mlv_repo: Path, request: pytest.FixtureRequest,
                                 tmp_path: Path) -> None:
    build_source(mlv_repo, request, tmp_path)
    src = open_source(str(mlv_repo), "v1", cwd=str(tmp_path))
    assert src.commit == git(mlv_repo, "rev-parse", "v1^{commit}").strip()
    assert [e.path for e in src.walk("data", recursive=True, dirs=False)] == \
        ["data/a.txt", "data/sub/b.txt"]
    assert src.stat("data").size == 5


def test_clone_by_url_reads_the_manifest_from_the_remote(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path) -> None:
    build_source(mlv_repo, request, tmp_path)
    url = bare_origin(mlv_repo, tmp_path)
    src = open_source(url, cwd=str(tmp_path))
    folder = cache_home / "mlv" / "repos" / hashlib.sha256(url.encode()).hexdigest()[:16]
    assert clone_folder(url) == str(folder)
    assert src.cloned and src.repo.root == str(folder / "git")
    assert src.repo.cache_dir == str(folder / "cache")
    assert src.commit == head(mlv_repo)
    assert not (folder / "cache").exists()  # nothing read yet
    names = [e.path for e in src.walk("data", recursive=True, dirs=False)]
    assert names == ["data/a.txt", "data/c.txt", "data/sub/b.txt"]
    manifest_oid = src.stat("data").oid
    assert (folder / "cache" / "xxh128" / manifest_oid[:2] / manifest_oid[2:]).is_file()


def test_current_repository_reads_a_missing_manifest_without_keeping_it(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    build_source(mlv_repo, request, tmp_path)
    drop_cache(mlv_repo)
    src = open_source(cwd=str(mlv_repo))
    assert src.stat("data/c.txt").size == 4
    left = [f for _, _, files in os.walk(mlv_repo / ".mlv" / "cache") for f in files
            if not f.endswith(".json")]
    assert [f for f in left if f.endswith(".dir")] == []  # the project cache is not written


@pytest.mark.slow
def test_manifest_from_an_s3_remote(mlv_repo: Path, request: pytest.FixtureRequest,
                                    tmp_path: Path, cache_home: Path) -> None:
    build_source(mlv_repo, request, tmp_path, kind="s3")
    # the remote's url and endpoint_url come from the committed .mlv/config
    src = open_source(bare_origin(mlv_repo, tmp_path), "v1", cwd=str(tmp_path))
    assert src.remote().url.startswith("s3://")
    assert [e.path for e in src.walk("data", recursive=True, dirs=False)] == \
        ["data/a.txt", "data/sub/b.txt"]


def test_clone_is_reused_and_fetched_only_when_needed(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path) -> None:
    build_source(mlv_repo, request, tmp_path)
    url = bare_origin(mlv_repo, tmp_path)
    first = open_source(url, cwd=str(tmp_path))
    fetch_head = Path(first.repo.root) / "FETCH_HEAD"
    assert not fetch_head.exists()  # a fresh clone is not fetched again
    open_source(url, "main", cwd=str(tmp_path))  # a branch: fetched
    assert fetch_head.exists()
    os.utime(fetch_head, (1_000_000, 1_000_000))
    again = open_source(url, first.commit, cwd=str(tmp_path))  # a full id it holds
    assert fetch_head.stat().st_mtime == 1_000_000 and again.commit == first.commit
    # a new commit on the origin: a branch follows it, the old id stays readable
    make_tree(mlv_repo, {"NEW": "x"})
    commit_all(mlv_repo, "v3")
    git(mlv_repo, "push", "-q", str(tmp_path / "origin.git"), "main")
    newer = open_source(url, cwd=str(tmp_path))
    assert newer.commit == head(mlv_repo) != first.commit
    assert newer.stat("NEW").kind == "git"
    assert len(os.listdir(cache_home / "mlv" / "repos")) == 2  # one clone and its lock


def test_full_id_not_yet_in_the_clone_is_fetched(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path) -> None:
    build_source(mlv_repo, request, tmp_path)
    url = bare_origin(mlv_repo, tmp_path)
    open_source(url, cwd=str(tmp_path))
    make_tree(mlv_repo, {"NEW": "x"})
    commit_all(mlv_repo, "v3")
    git(mlv_repo, "push", "-q", str(tmp_path / "origin.git"), "main")
    assert open_source(url, head(mlv_repo), cwd=str(tmp_path)).commit == head(mlv_repo)


def test_failed_clone_leaves_nothing(tmp_path: Path, cache_home: Path) -> None:
    with pytest.raises(errors.RepoNotFound, match="cannot clone") as info:
        open_source(f"file://{tmp_path}/nowhere.git", cwd=str(tmp_path))
    assert "\n" not in info.value.message and "does not appear" in info.value.message
    assert isinstance(info.value, errors.ReadError)
    left = os.listdir(cache_home / "mlv" / "repos")
    assert [n for n in left if not n.endswith(".lock")] == []


def test_typed_errors(mlv_repo: Path, request: pytest.FixtureRequest,
                      tmp_path: Path) -> None:
    build_source(mlv_repo, request, tmp_path)
    with pytest.raises(errors.RevisionNotFound, match="unknown revision 'nope'"):
        open_source(rev="nope", cwd=str(mlv_repo))
    with pytest.raises(errors.RevisionNotFound):
        open_source(rev="--output=x", cwd=str(mlv_repo))
    src = open_source(cwd=str(mlv_repo))
    with pytest.raises(errors.PathNotFound, match=f"missing.txt is not in .*{src.commit[:8]}"):
        src.stat("missing.txt")
    with pytest.raises(FileNotFoundError):  # fsspec and open() callers expect this
        src.walk("data/nope")
    with pytest.raises(errors.PathNotFound):
        src.walk("../outside")
    with pytest.raises(errors.RepoNotFound, match="not a git repository"):
        open_source(str(tmp_path / "remote-store"), cwd=str(tmp_path))
    with pytest.raises(errors.RepoNotFound, match="no such folder"):
        open_source("missing-folder", cwd=str(tmp_path))
    with pytest.raises(errors.RepoNotFound, match="not inside an mlv repository"):
        open_source(cwd=str(tmp_path))


def test_not_pushed_and_no_remote(mlv_repo: Path, tmp_path: Path,
                                  cache_home: Path) -> None:
    make_tree(mlv_repo, {"data": {"a.txt": "a"}})
    mlv_ok(mlv_repo, "add", "data")
    commit_all(mlv_repo, "no remote")
    url = bare_origin(mlv_repo, tmp_path)
    src = open_source(url, cwd=str(tmp_path))
    assert src.stat("data").kind == "mlv"  # from the pointer: no manifest needed
    with pytest.raises(errors.NoRemote, match="no default remote") as info:
        src.walk("data")
    assert isinstance(info.value, errors.ConfigError)
    folder = tmp_path / "empty-remote"
    folder.mkdir()
    mlv_ok(mlv_repo, "remote", "add", "-d", "store", str(folder))
    commit_all(mlv_repo, "a remote, never pushed to")
    git(mlv_repo, "push", "-q", str(tmp_path / "origin.git"), "main")
    src = open_source(url, cwd=str(tmp_path))
    with pytest.raises(errors.NotPushed, match="run `mlv push`|in neither") as missing:
        src.walk("data")
    assert missing.value.missing == [src.stat("data").oid]
    assert isinstance(missing.value, errors.ObjectMissingError)


def test_clone_config_is_not_trusted(mlv_repo: Path, tmp_path: Path,
                                     cache_home: Path) -> None:
    make_tree(mlv_repo, {"data": {"a.txt": "a"}})
    mlv_ok(mlv_repo, "add", "data")
    (mlv_repo / ".mlv" / "config").write_text(
        "core:\n  remote: evil\nremote:\n  evil:\n    url: filecache::file:///tmp/x\n")
    commit_all(mlv_repo, "evil remote")
    src = open_source(bare_origin(mlv_repo, tmp_path), cwd=str(tmp_path))
    with pytest.raises(errors.ConfigError, match="filecache"):
        src.walk("data")
    (mlv_repo / ".mlv" / "config").write_text(
        "core:\n  remote: rel\nremote:\n  rel:\n    url: ../store\n")
    commit_all(mlv_repo, "relative remote")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--bare", str(mlv_repo), str(other))
    src = open_source(str(other), cwd=str(tmp_path))
    with pytest.raises(errors.NoRemote, match="relative url"):
        src.remote()


def test_corrupted_manifest_on_the_remote(mlv_repo: Path, request: pytest.FixtureRequest,
                                          tmp_path: Path, cache_home: Path) -> None:
    make_tree(mlv_repo, {"data": {"a.txt": "a"}})
    add_remote(mlv_repo, "local", request, tmp_path, fmt=1)
    mlv_ok(mlv_repo, "add", "data")
    mlv_ok(mlv_repo, "push")
    commit_all(mlv_repo, "data")
    src = open_source(bare_origin(mlv_repo, tmp_path), cwd=str(tmp_path))
    oid = src.stat("data").oid
    stored = tmp_path / "remote-store" / "xxh128" / oid[:2] / oid[2:]
    os.chmod(stored, 0o644)
    stored.write_bytes(b'[{"path":"evil","xxh128":"' + b"0" * 32 + b'","size":1}]')
    with pytest.raises(errors.ObjectCorrupted, match="damaged"):
        src.walk("data")
    assert not os.path.exists(os.path.join(src.repo.cache_dir, "xxh128", oid[:2], oid[2:]))


def test_a_second_process_waits_for_the_clone(mlv_repo: Path, tmp_path: Path,
                                              cache_home: Path) -> None:
    url = bare_origin(mlv_repo, tmp_path)
    folder = clone_folder(url)
    stale = re.sub(r"mlvtmp-\d+-", "mlvtmp-999999999-", fsio.tmp_name(folder))
    os.makedirs(stale + "/git")  # what a clone killed halfway left (no such process now)
    found: list[str] = []
    with fsio.RepoLock(folder + ".lock"):  # another process is cloning
        reader = threading.Thread(
            target=lambda: found.append(open_source(url, cwd=str(tmp_path)).commit))
        reader.start()
        time.sleep(0.5)
        assert found == [] and not os.path.exists(folder)
    reader.join(30)
    assert found == [head(mlv_repo)]
    assert sorted(os.listdir(os.path.dirname(folder))) == \
        sorted([os.path.basename(folder), os.path.basename(folder) + ".lock"])
