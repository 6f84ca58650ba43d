"""`mlv gc --cloud` deletes exactly what no pointer in the chosen scope references, and
`mlv fsck` finds damaged objects in the cache or on a remote without changing either.

The history (on both a local-folder remote and the S3 endpoint on 127.0.0.1):

    main:  v1 (tag v1) -- v2          workspace: main (v2)
    exp:               \\-- v3

Each version has `data/` (a folder: `.dir` manifest + files; `same.txt` is in every
version, `b.txt` in v1 and v2 only) and `model.bin` (a single file).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import git, make_tree, read_tree, run_mlv
from tests.test_remote_safety import (
    RemoteStore,
    cache_check,
    clone,
    commit_all,
    pointer_oid,
    xxh,
)

VERSIONS = {
    "v1": ({"same.txt": "in every version\n", "b.txt": "b of v1 and v2\n", "c.txt": "c1\n"},
           "model 1\n"),
    "v2": ({"same.txt": "in every version\n", "b.txt": "b of v1 and v2\n", "d.txt": "d2\n",
            "sub": {"e.txt": "e2\n"}}, "model 2\n"),
    "v3": ({"same.txt": "in every version\n", "d.txt": "d3\n", "sub": {"e.txt": "e2\n"}},
           "model 3\n"),
}
REVS = {"v1": "v1", "v2": "main", "v3": "exp"}


@dataclass
class History:
    repo: Path
    remote: RemoteStore
    objects: dict[str, set[str]]  # version -> every object it needs
    trees: dict[str, dict[str, bytes]]  # version -> data/ files

    @property
    def everything(self) -> set[str]:
        return set().union(*self.objects.values())

    def needed(self, *versions: str) -> set[str]:
        return set().union(*(self.objects[v] for v in versions))


def write_version(repo: Path, version: str) -> None:
    files, model = VERSIONS[version]
    shutil.rmtree(repo / "data", ignore_errors=True)
    make_tree(repo, {"data": files, "model.bin": model})


def files_of(tree: dict) -> set[str]:
    found = set()
    for value in tree.values():
        found |= files_of(value) if isinstance(value, dict) else {xxh(value.encode())}
    return found


def build_history(mlv, repo: Path, kind: str, request: pytest.FixtureRequest,
                  tmp_path: Path) -> History:
    # format 1: gc --cloud deletes objects one by one (format 2: test_packgc.py)
    remote = RemoteStore.setup(repo, kind, request, tmp_path, fmt=1)
    commit_all(repo, "remote")
    objects, trees = {}, {}
    for version in ("v1", "v2", "v3"):
        if version == "v3":
            git(repo, "checkout", "-qb", "exp")
        write_version(repo, version)
        res = mlv("add", "data", "model.bin", cwd=repo)
        assert res.exit_code == 0, res.output
        commit_all(repo, version)
        if version == "v1":
            git(repo, "tag", "v1")
        res = mlv("push", cwd=repo)
        assert res.exit_code == 0, res.output
        files, model = VERSIONS[version]
        objects[version] = (files_of(files) | {xxh(model.encode())}
                            | {pointer_oid(repo / "data.mlv")})
        assert pointer_oid(repo / "model.bin.mlv") == xxh(model.encode())
        trees[version] = read_tree(repo / "data")
    git(repo, "checkout", "-q", "main")
    res = mlv("checkout", cwd=repo)
    assert res.exit_code == 0, res.output
    assert read_tree(repo / "data") == trees["v2"]
    history = History(repo, remote, objects, trees)
    assert remote.oids() == history.everything
    assert len(history.everything) == 12  # 3 manifests, 3 models, 6 distinct data files
    return history


def pullable(mlv, history: History, work: Path) -> dict[str, bool]:
    """For each version: can a fresh checkout of it pull all its data from the remote?"""
    found = {}
    for version, rev in REVS.items():
        git(work, "checkout", "-q", rev)
        for name in ("data", "model.bin", ".mlv/cache"):
            path = work / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        res = mlv("pull", cwd=work)
        assert "Traceback" not in res.output
        if res.exit_code == 0:
            assert read_tree(work / "data") == history.trees[version]
            assert (work / "model.bin").read_text() == VERSIONS[version][1]
            found[version] = True
        else:
            assert res.exit_code == 1, res.output
            errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
            assert len(errors) == 1 and "missing from 'store'" in errors[0], res.stderr
            found[version] = False
    return found


# ---- gc --cloud ------------------------------------------------------------------------

SCOPES = {  # scope -> the versions whose data it keeps (the workspace is main's v2)
    "--workspace": ("v2",),
    "--all-branches": ("v2", "v3"),
    "--all-tags": ("v1", "v2"),
    "--all-commits": ("v1", "v2", "v3"),
}


def test_gc_cloud_deletes_exactly_what_the_scope_does_not_reference(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    history = build_history(mlv, mlv_repo, remote_kind, request, tmp_path)
    repo, remote = history.repo, history.remote

    res = mlv("gc", "--cloud", cwd=repo)
    assert res.exit_code == 2, res.output
    assert "--workspace" in res.stderr and "Traceback" not in res.output
    assert remote.oids() == history.everything

    work = clone(repo, tmp_path / "work")
    aside = tmp_path / "cache-aside"
    for n, (scope, versions) in enumerate(SCOPES.items()):
        res = mlv("push", "--all-commits", cwd=repo)  # a full remote again
        assert res.exit_code == 0, res.output
        assert remote.oids() == history.everything
        keep = history.needed(*versions)
        doomed = history.everything - keep
        # Without a local cache every manifest must be read from the remote: the files they
        # list are protected all the same. (One scope runs with the cache, for contrast.)
        cacheless = n != 2
        if cacheless:
            (repo / ".mlv" / "cache").rename(aside)

        res = mlv("gc", "--cloud", scope, "--grace", "0", "--dry", cwd=repo)
        assert res.exit_code == 0, res.output
        listed = set(re.findall(r"^would delete ([0-9a-f]{32}(?:\.dir)?)$", res.stdout, re.M))
        assert listed == doomed, (scope, res.stdout)
        assert f"would delete {len(doomed)} objects on remote 'store'" in res.stdout
        assert remote.oids() == history.everything, "--dry deleted something"

        res = mlv("gc", "--cloud", scope, "--grace", "0", cwd=repo)
        assert res.exit_code == 0, res.output
        assert f"deleted {len(doomed)} objects on remote 'store'; {len(keep)} kept" \
            in res.stdout, res.output
        assert remote.oids() == keep, f"{scope}: wrong objects deleted"
        if cacheless:
            assert cache_check(repo)[0] == {}  # gc --cloud fetched nothing into the cache
            shutil.rmtree(repo / ".mlv" / "cache", ignore_errors=True)
            aside.rename(repo / ".mlv" / "cache")

        assert pullable(mlv, history, work) == {v: v in versions for v in REVS}, scope


def test_gc_cloud_on_a_named_remote_leaves_the_default_alone(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    history = build_history(mlv, mlv_repo, remote_kind, request, tmp_path)
    repo = history.repo
    if remote_kind == "local":
        url = str(tmp_path / "other")
        Path(url).mkdir()
        other = RemoteStore("local", url)
        options = []
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        url = f"s3://{history.remote.bucket}/other"
        other = RemoteStore("s3", url, endpoint)
        options = [("remote", "modify", "other", "endpoint_url", endpoint)]
    for args in [("remote", "add", "other", url, "--format", "1"), *options]:
        res = run_mlv(repo, *args)
        assert res.exit_code == 0, res.output
    res = mlv("push", "-r", "other", "--all-commits", cwd=repo)
    assert res.exit_code == 0, res.output
    assert other.oids() == history.everything

    res = mlv("gc", "--cloud", "-r", "other", "--workspace", "--grace", "0", "--dry",
              cwd=repo)
    assert res.exit_code == 0, res.output
    assert "on remote 'other'" in res.stdout
    assert other.oids() == history.everything
    res = mlv("gc", "--cloud", "-r", "other", "--workspace", "--grace", "0", cwd=repo)
    assert res.exit_code == 0, res.output
    assert "on remote 'other'" in res.stdout
    assert other.oids() == history.needed("v2")
    assert history.remote.oids() == history.everything, "gc -r other touched the default"


def test_gc_cloud_deletes_day_old_temp_files_of_interrupted_pushes_on_a_folder(
    mlv, mlv_repo: Path, tmp_path: Path
) -> None:
    import os
    import time

    store = tmp_path / "store"
    store.mkdir()
    ok = run_mlv(mlv_repo, "remote", "add", "-d", "store", str(store), "--format", "1")
    assert ok.exit_code == 0, ok.output
    make_tree(mlv_repo, {"data": {"a.txt": "alpha\n", "b.txt": "beta\n"}})
    for args in (("add", "data"), ("push",)):
        res = mlv(*args, cwd=mlv_repo)
        assert res.exit_code == 0, res.output
    oid = xxh(b"alpha\n")
    folder = store / "xxh128" / oid[:2]
    # what a killed push leaves: a partial copy under a temp name (pid 999999 is gone)
    old = folder / f".{oid[2:]}.mlvtmp-999999-ab12cd-1"
    new = folder / f".{oid[2:]}.mlvtmp-999999-ab12cd-2"
    old.write_bytes(b"alp")
    new.write_bytes(b"al")
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    objects = sorted(p.name for p in store.rglob("*") if p.is_file() and ".mlvtmp-" not in p.name)

    res = mlv("gc", "--cloud", "--workspace", "--dry", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert old.exists() and new.exists()
    res = mlv("gc", "--cloud", "--workspace", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "deleted 1 temp file left by interrupted pushes" in res.stdout
    assert not old.exists()
    assert new.exists(), "a recent temp file may belong to a push that is still running"
    assert sorted(p.name for p in store.rglob("*")
                  if p.is_file() and ".mlvtmp-" not in p.name) == objects
    new.unlink()
    shutil.rmtree(mlv_repo / ".mlv" / "cache")
    shutil.rmtree(mlv_repo / "data")
    res = mlv("pull", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert (mlv_repo / "data" / "a.txt").read_text() == "alpha\n"


def test_gc_cloud_keeps_the_files_of_a_manifest_it_cannot_read(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """exp's manifest is damaged on the remote and not in the cache: which files it lists
    is unknown, so gc must not delete any of them (nor anything else it cannot vouch for)."""
    history = build_history(mlv, mlv_repo, remote_kind, request, tmp_path)
    repo, remote = history.repo, history.remote
    exp_dir = [o for o in history.objects["v3"] if o.endswith(".dir")][0]
    data = remote.read(exp_dir)
    remote.write(exp_dir, data.replace(b'"d.txt"', b'"x.txt"'))
    shutil.rmtree(repo / ".mlv" / "cache")

    res = mlv("gc", "--cloud", "--all-branches", "--grace", "0", cwd=repo)
    assert "Traceback" not in res.output
    assert remote.oids() == history.everything, "gc deleted files of an unreadable manifest"
    assert res.exit_code == 1, res.output
    assert exp_dir in res.stderr, res.stderr


# ---- fsck ------------------------------------------------------------------------------

def snapshot(repo: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(repo).as_posix(): (p.read_bytes(), p.stat().st_mode)
            for p in sorted((repo / ".mlv" / "cache").rglob("*")) if p.is_file()}


def corrupt_cache_object(repo: Path, oid: str, data: bytes) -> None:
    path = repo / ".mlv" / "cache" / "xxh128" / oid[:2] / oid[2:]
    path.chmod(0o644)
    path.write_bytes(data)
    path.chmod(0o444)


def tracked(mlv, repo: Path) -> dict[str, bytes]:
    make_tree(repo, {"data": {"a.txt": "alpha\n", "sub": {"b.txt": "beta\n"},
                              "c.bin": bytes(range(256)) * 8},
                     "model.bin": b"weights" * 500})
    res = mlv("add", "data", "model.bin", cwd=repo)
    assert res.exit_code == 0, res.output
    return read_tree(repo / "data")


def test_fsck_checks_the_cache(mlv, mlv_repo: Path) -> None:
    repo = mlv_repo
    tree = tracked(mlv, repo)
    nobjects = len(cache_check(repo)[0])
    assert nobjects == 5
    res = mlv("fsck", cwd=repo)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith(f"{nobjects} objects in the cache: all good"), res.output

    a_oid = xxh(tree["a.txt"])
    model_oid = xxh(b"weights" * 500)
    corrupt_cache_object(repo, a_oid, b"ALPHA\n")  # same length, other bytes
    corrupt_cache_object(repo, model_oid, b"weights")  # truncated
    before = snapshot(repo)
    res = mlv("fsck", cwd=repo)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    damaged = dict(re.findall(r"^damaged ([0-9a-f]{32}(?:\.dir)?)(.*)$", res.stdout, re.M))
    assert set(damaged) == {a_oid, model_oid}, res.stdout
    assert "data.mlv" in damaged[a_oid] and "data/a.txt" in damaged[a_oid], res.stdout
    assert "model.bin.mlv" in damaged[model_oid], res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "2 damaged objects in the cache" in errors[0], res.stderr
    assert f"of {nobjects} checked" in errors[0]
    assert snapshot(repo) == before, "fsck changed the cache"


def test_fsck_checks_a_remote(
    mlv, mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo = mlv_repo
    tree = tracked(mlv, repo)
    for i in range(15):  # more objects, so that a sample is a real share
        (repo / "data" / f"n{i:02d}.txt").write_text(f"number {i}\n")
    res = mlv("add", "data", cwd=repo)
    assert res.exit_code == 0, res.output
    remote = RemoteStore.setup(repo, remote_kind, request, tmp_path, fmt=1)  # damaged one by one
    res = mlv("push", cwd=repo)
    assert res.exit_code == 0, res.output
    total = len(remote.oids())
    assert total == 20

    def remote_state() -> dict[str, bytes]:
        return {oid: remote.read(oid) for oid in sorted(remote.oids())}

    res = mlv("fsck", "--remote", "store", cwd=repo)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith(f"{total} objects in the remote 'store': all good")

    counts = set()
    for _ in range(3):
        res = mlv("fsck", "--remote", "store", "--sample", "50%", cwd=repo)
        assert res.exit_code == 0, res.output
        found = re.search(r"^(\d+) objects in the remote 'store': all good$", res.stdout, re.M)
        assert found, res.output
        counts.add(int(found.group(1)))
    assert all(abs(n - total / 2) <= 1 for n in counts), counts

    for bad in ("0", "0%", "150%", "x"):
        res = mlv("fsck", "--remote", "store", "--sample", bad, cwd=repo)
        assert res.exit_code == 2, (bad, res.output)
        assert "--sample" in res.stderr and "Traceback" not in res.output
    res = mlv("fsck", "--sample", "50%", cwd=repo)
    assert res.exit_code == 2, res.output
    assert "--remote" in res.stderr

    a_oid = xxh(tree["a.txt"])
    dir_oid = pointer_oid(repo / "data.mlv")
    remote.write(a_oid, b"ALPHA\n")  # same length, other bytes
    good_manifest = remote.read(dir_oid)
    remote.write(dir_oid, good_manifest[: len(good_manifest) // 2])  # truncated
    before_remote, before_cache = remote_state(), snapshot(repo)
    res = mlv("fsck", "--remote", "store", cwd=repo)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    damaged = dict(re.findall(r"^damaged ([0-9a-f]{32}(?:\.dir)?)(.*)$", res.stdout, re.M))
    assert set(damaged) == {a_oid, dir_oid}, res.stdout
    assert "data/a.txt" in damaged[a_oid] and "data.mlv" in damaged[dir_oid], res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    assert f"2 damaged objects in the remote 'store' (of {total} checked)" in errors[0]
    # fsck only reads: the remote, the cache and the scratch space are as before.
    assert remote_state() == before_remote
    assert snapshot(repo) == before_cache
    assert list((repo / ".mlv" / "tmp").glob("fsck-*")) == []
