"""Defect 6: a remote that lost objects can be repaired by push, and `gc --cloud` does not
delete what a concurrent push from another clone just uploaded.

- A folder's manifest on the remote vouches for its files, so a plain `mlv push` does not
  ask about them (one request per folder). When files are gone behind mlv's back,
  `mlv status --cloud` notices, records the manifest, and the next `mlv push` checks its
  files and uploads what is missing; `mlv push --verify` does so without being told.
- `gc --cloud` keeps unreferenced objects newer than a grace period (a day by default;
  `--grace`, config `gc.grace`), and the files that such a young manifest lists.
- `gc --cloud` deletes manifests before files: an interrupted gc never leaves a manifest
  that vouches for deleted files.

Every test runs against a local-folder remote and the S3 endpoint on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from mlv.remote import FsspecRemote, LocalRemote
from tests.conftest import git, make_tree, run_mlv, xxh
from tests.test_remote_safety import RemoteStore, clone, commit_all, pointer_oid

FILES = {f"f{i}.txt": f"file {i} of the first version\n" for i in range(6)}


def ok(res) -> str:  # noqa: ANN001 - the conftest Result
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res.stdout


def error_line(res) -> str:  # noqa: ANN001
    assert "Traceback" not in res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    return errors[0]


def manifest_files(remote: RemoteStore, dir_oid: str) -> set[str]:
    return {e["xxh128"] for e in json.loads(remote.read(dir_oid))}


def vouching_for_missing(remote: RemoteStore) -> dict[str, set[str]]:
    """Manifests on the remote that list files the remote does not have."""
    there = remote.oids()
    found = {}
    for oid in sorted(o for o in there if o.endswith(".dir")):
        lost = manifest_files(remote, oid) - there
        if lost:
            found[oid] = lost
    return found


def setup_pushed(mlv, repo: Path, kind: str, request: pytest.FixtureRequest,
                 tmp_path: Path) -> RemoteStore:
    remote = RemoteStore.setup(repo, kind, request, tmp_path, fmt=1)  # objects one by one
    make_tree(repo, {"data": FILES})
    ok(mlv("add", "data", cwd=repo))
    ok(mlv("push", cwd=repo))
    commit_all(repo, "data")
    return remote


# ---- push repairs a remote that lost files -----------------------------------------------

def test_push_uploads_files_a_remote_manifest_lists_but_the_remote_lost(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo = mlv_repo
    remote = setup_pushed(mlv, repo, remote_kind, request, tmp_path)
    dir_oid = pointer_oid(repo / "data.mlv")
    lost = {xxh(FILES["f1.txt"].encode()), xxh(FILES["f4.txt"].encode())}
    for oid in lost:
        remote.delete(oid)  # another clone's gc, or the storage, lost them
    assert vouching_for_missing(remote) == {dir_oid: lost}

    # The manifest vouches for its files: a plain push does not ask about them.
    assert "everything is up to date" in ok(mlv("push", cwd=repo))
    assert vouching_for_missing(remote) == {dir_oid: lost}

    out = ok(mlv("status", "--cloud", cwd=repo))
    assert "data (data.mlv): 2 objects not pushed" in out, out
    assert "1 folder manifest on 'store' lists files the remote does not have; the next " \
           "`mlv push` checks those files and uploads what is missing" in out, out
    record = json.loads((repo / ".mlv" / "tmp" / "remote-gaps.json").read_text())
    assert list(record.values()) == [[dir_oid]]

    # Now push checks that manifest's files by itself, uploads the two, and nothing else.
    before = {oid: remote.read(oid) for oid in remote.oids()}
    out = ok(mlv("push", cwd=repo))
    assert "checked every file of 1 folder on 'store'" in out, out
    assert "pushed 2 files" in out, out
    assert vouching_for_missing(remote) == {}
    assert {oid: remote.read(oid) for oid in before} == before
    assert remote.oids() == set(before) | lost
    assert not (repo / ".mlv" / "tmp" / "remote-gaps.json").exists(), "record not cleared"
    assert "are in sync" in ok(mlv("status", "--cloud", cwd=repo))
    assert "everything is up to date" in ok(mlv("push", cwd=repo))

    # `mlv push --verify` repairs without `status --cloud` first (here as a subprocess).
    for oid in lost:
        remote.delete(oid)
    res = run_mlv(repo, "push", "--verify")
    assert "pushed 2 files" in ok(res), res.output
    assert vouching_for_missing(remote) == {}
    assert "are in sync" in ok(mlv("status", "--cloud", cwd=repo))


def test_a_pull_that_misses_files_makes_the_next_push_check_them(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A fetch that finds files missing whose manifest is on the remote is evidence the
    remote disagrees (it costs no extra request): the next push checks that folder."""
    repo = mlv_repo
    remote = setup_pushed(mlv, repo, remote_kind, request, tmp_path)
    lost = xxh(FILES["f2.txt"].encode())
    remote.delete(lost)
    cache_copy = repo / ".mlv" / "cache" / "xxh128" / lost[:2] / lost[2:]
    kept = cache_copy.read_bytes()
    cache_copy.unlink()
    res = mlv("pull", cwd=repo)
    assert res.exit_code == 1 and "missing from 'store'" in error_line(res)
    cache_copy.write_bytes(kept)  # the file turns up again here (e.g. a backup)
    out = ok(mlv("push", cwd=repo))
    assert "pushed 1 file" in out, out
    assert vouching_for_missing(remote) == {}


def test_a_noop_push_asks_one_request_per_folder(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = mlv_repo
    setup_pushed(mlv, repo, remote_kind, request, tmp_path)
    asked: list[list[str]] = []
    for cls in (LocalRemote, FsspecRemote):
        original = cls._exist_each

        def counting(self, oids, _original=original):  # noqa: ANN001, ANN202
            asked.append(list(oids))
            return _original(self, oids)

        monkeypatch.setattr(cls, "_exist_each", counting)
    assert "everything is up to date" in ok(mlv("push", cwd=repo))
    assert [len(a) for a in asked if a] == [1], asked
    asked.clear()
    assert "everything is up to date" in ok(mlv("push", "--verify", cwd=repo))
    assert sum(len(a) for a in asked) == 1 + len(FILES), asked


# ---- gc --cloud keeps what a concurrent push just uploaded -------------------------------

def age(remote: RemoteStore, oids: set[str], seconds: float) -> None:
    """Make objects on a folder remote look `seconds` old."""
    when = time.time() - seconds
    for oid in oids:
        os.utime(remote.path(oid), (when, when))


def test_gc_cloud_keeps_objects_newer_than_the_grace_period(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    a = mlv_repo
    remote = setup_pushed(mlv, a, remote_kind, request, tmp_path)
    a_objects = remote.oids()
    # clone B pushes a folder that A's history does not know (a branch not fetched yet)
    b = clone(a, tmp_path / "b")
    git(b, "checkout", "-qb", "feature")
    make_tree(b, {"more": {"new.txt": "B's new data\n", "f0.txt": FILES["f0.txt"]}})
    ok(mlv("add", "more", cwd=b))
    ok(mlv("push", cwd=b))
    b_objects = remote.oids() - a_objects
    assert len(b_objects) == 2  # the manifest and new.txt; f0.txt was already there

    out = ok(mlv("gc", "--cloud", "--workspace", cwd=a))
    assert "deleted 0 objects on remote 'store'" in out, out
    assert "kept 2 unreferenced objects newer than 1 day (another clone may be pushing " \
           "them; `--grace 0` deletes them)" in out, out
    assert remote.oids() == a_objects | b_objects

    if remote_kind == "local":
        # Two days later they are old: a gc with a longer grace (flag or config) keeps
        # them, the default deletes them.
        age(remote, b_objects, 2 * 86400)
        out = ok(mlv("gc", "--cloud", "--workspace", "--grace", "3d", "--dry", cwd=a))
        assert "would delete 0 objects" in out, out
        ok(mlv("config", "gc.grace", "3d", cwd=a))
        assert "deleted 0 objects" in ok(mlv("gc", "--cloud", "--workspace", cwd=a))
        assert remote.oids() == a_objects | b_objects
        ok(mlv("config", "--unset", "gc.grace", cwd=a))
        out = ok(mlv("gc", "--cloud", "--workspace", cwd=a))
    else:
        out = ok(mlv("gc", "--cloud", "--workspace", "--grace", "0", cwd=a))
    assert "deleted 2 objects on remote 'store'" in out, out
    assert remote.oids() == a_objects
    assert "are in sync" in ok(mlv("status", "--cloud", cwd=a))


def test_a_young_manifest_keeps_the_old_files_it_lists(
    mlv, mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """B's push found an old file already on the remote and did not upload it again, so
    the file stays old: gc keeps it because B's new manifest lists it."""
    a = mlv_repo
    remote = setup_pushed(mlv, a, "local", request, tmp_path)
    old = xxh(FILES["f3.txt"].encode())
    b = clone(a, tmp_path / "b")
    (a / "data" / "f3.txt").unlink()  # A's workspace no longer uses f3.txt
    ok(mlv("add", "data", cwd=a))
    ok(mlv("push", cwd=a))
    age(remote, remote.oids(), 3 * 86400)
    make_tree(b, {"more": {"g.txt": FILES["f3.txt"], "h.txt": "h\n"}})
    ok(mlv("add", "more", cwd=b))
    ok(mlv("push", cwd=b))
    b_dir = pointer_oid(b / "more.mlv")

    out = ok(mlv("gc", "--cloud", "--workspace", cwd=a))
    assert "deleted 1 object" in out, out  # the first version's manifest, 3 days old
    assert {old, b_dir} <= remote.oids()
    assert vouching_for_missing(remote) == {}


def test_grace_values_are_checked(mlv, mlv_repo: Path, tmp_path: Path) -> None:
    res = mlv("config", "gc.grace", "1", cwd=mlv_repo)
    assert res.exit_code == 1
    assert error_line(res) == ("error: gc.grace: expected a duration like 0, 30m, 12h or "
                               "2d, got '1'"), res.stderr
    for value in ("0", "90s", "30m", "12h", "2d", "1w"):
        ok(mlv("config", "gc.grace", value, cwd=mlv_repo))
    # values under a day went to config.local (a clone may only lengthen the period)
    ok(mlv("config", "--local", "--unset", "gc.grace", cwd=mlv_repo))
    config = mlv_repo / ".mlv" / "config"
    config.write_text(config.read_text().replace("1w", "soon"))
    store = tmp_path / "store"
    store.mkdir()
    ok(mlv("remote", "add", "-d", "store", str(store), cwd=mlv_repo))
    res = mlv("gc", "--cloud", "--workspace", cwd=mlv_repo)
    assert res.exit_code == 1
    assert "gc.grace: expected a duration" in error_line(res)
    res = mlv("gc", "--cloud", "--workspace", "--grace", "a while", cwd=mlv_repo)
    assert res.exit_code == 2
    assert "--grace: expected a duration" in error_line(res)
    res = mlv("gc", "--workspace", "--grace", "0", cwd=mlv_repo)
    assert res.exit_code == 2 and "--grace applies to `gc --cloud` only" in error_line(res)


# ---- gc --cloud deletes what points before what is pointed at ----------------------------

def test_interrupted_gc_cloud_never_leaves_a_manifest_without_its_files(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = mlv_repo
    remote = RemoteStore.setup(repo, remote_kind, request, tmp_path, fmt=1)
    for version in range(4):  # three old versions to collect, each with its own files
        make_tree(repo, {"data": {f"{n}.txt": f"version {version} file {n}\n"
                                  for n in range(4)}})
        ok(mlv("add", "data", cwd=repo))
        ok(mlv("push", cwd=repo))
    doomed = {o for o in remote.oids() if o.endswith(".dir")} - {pointer_oid(repo / "data.mlv")}
    assert len(doomed) == 3

    broken: list[dict[str, set[str]]] = []
    calls = []
    cut = [True]
    for cls in (LocalRemote, FsspecRemote):
        original = cls.delete

        def one_at_a_time(self, oids, _original=original):  # noqa: ANN001, ANN202
            """Delete one object at a time, checking the remote after each; the second
            batch is cut off (the network drops, the user presses Ctrl-C …)."""
            if not cut[0]:
                return _original(self, oids)
            calls.append(list(oids))
            if len(calls) > 1:
                return {oid: OSError("connection reset") for oid in oids}
            for oid in oids:
                _original(self, [oid])
                if found := vouching_for_missing(remote):
                    broken.append(found)
            return {}

        monkeypatch.setattr(cls, "delete", one_at_a_time)
    res = mlv("gc", "--cloud", "--workspace", "--grace", "0", cwd=repo)
    assert broken == [], "a manifest on the remote outlived its files"
    assert res.exit_code == 1, res.output
    assert re.search(r"error: 12 of 15 objects could not be deleted from 'store'",
                     error_line(res)), res.stderr
    assert vouching_for_missing(remote) == {}
    assert not doomed & remote.oids(), "the manifests go first"

    cut[0] = False
    out = ok(mlv("gc", "--cloud", "--workspace", "--grace", "0", cwd=repo))
    assert "deleted 12 objects" in out, out
    assert len(remote.oids()) == 5
    assert "are in sync" in ok(mlv("status", "--cloud", cwd=repo))
