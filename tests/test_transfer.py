"""push / fetch / pull / status --cloud against both remote kinds: a local folder and S3,
in the default storage format (2: packs) and, where a test reads or changes objects
behind mlv's back, in format 1 (one object per file)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import xxhash
import yaml

from tests.conftest import Result, add_remote, cache_objects, git, make_tree, read_tree, run_mlv

Mlv = Callable[..., Result]

KEY = re.compile(r"xxh128/([0-9a-f]{2})/([0-9a-f]{30}(?:\.dir)?)")

TREE: dict = {
    "data": {
        "a.txt": "alpha\n",
        "empty": b"",
        "ünïcødé 名前.bin": b"\x00\x01\xff unicode",
        "nested": {"deeper": {"leaf.csv": "x,y\n1,2\n"}, "b.txt": "beta\n"},
        "run.sh": "#!/bin/sh\necho hi\n",
    },
    "model.bin": bytes(range(256)) * 8,
}
DATA_OBJECTS = 7  # six distinct files + the manifest


def ok(res: Result) -> None:
    assert res.exit_code == 0, res.output


def xxh(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def pointer_oid(pointer: Path) -> str:
    return str(yaml.safe_load(pointer.read_text(encoding="utf-8"))["outs"][0]["xxh128"])


def expected_oids(repo: Path, *paths: str) -> set[str]:
    """Object ids of tracked paths, computed from the bytes in the workspace."""
    oids: set[str] = set()
    for path in paths:
        oid = pointer_oid(repo / f"{path}.mlv")
        oids.add(oid)
        target = repo / path
        if oid.endswith(".dir"):
            oids.update(xxh(data) for data in read_tree(target).values())
        else:
            assert oid == xxh(target.read_bytes())
    return oids


def executables(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.stat().st_mode & stat.S_IXUSR}


def workspace(repo: Path) -> tuple[dict[str, bytes], set[str]]:
    """Bytes and exec bits of everything outside .git and .mlv."""
    files = {k: v for k, v in read_tree(repo).items()
             if not k.startswith((".git/", ".mlv/"))}
    return files, executables(repo / "data") if (repo / "data").exists() else set()


def error_lines(res: Result) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("error:")]


@dataclass
class Store:
    """A remote as the tests see it: object ids and bytes, read around mlv."""

    kind: str
    url: str
    endpoint: str | None = None
    fmt: int = 2  # the storage format: 1 (loose objects) or 2 (packs; mlv's default)

    def _split(self) -> tuple[str, str]:
        bucket, _, prefix = self.url.split("://", 1)[1].partition("/")
        return bucket, prefix.strip("/")

    def _client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def _keys(self) -> list[str]:
        """Every key below the remote's root, relative to it."""
        if self.kind == "local":
            root = Path(self.url)
            return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        bucket, prefix = self._split()
        keys = []
        pages = self._client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix + "/")
        for page in pages:
            keys += [obj["Key"][len(prefix) + 1:] for obj in page.get("Contents", [])]
        return keys

    def _remote(self):  # type: ignore[no-untyped-def]
        """The remote as mlv opens it (format 2 when its marker says so)."""
        from mlv.remote import open_remote
        from mlv.remote.packed import open_format

        options = {"url": self.url, **({"endpoint_url": self.endpoint} if self.endpoint
                                       else {})}
        return open_format(open_remote("store", options, default_jobs=4))

    def oids(self) -> set[str]:
        """Object ids on the remote. In format 1 every key must follow `xxh128/ab/cdef…`;
        in format 2 they are what its index, recipes and loose objects list."""
        if self.fmt == 2:
            from mlv.remote.packs import MARKER_KEY

            assert MARKER_KEY in self._keys()
            return set(self._remote().list_oids())
        found = set()
        for key in self._keys():
            match = KEY.fullmatch(key)
            assert match, f"unexpected key on the remote: {key}"
            found.add(match.group(1) + match.group(2))
        return found

    def _where(self, oid: str) -> tuple[str, str]:
        bucket, prefix = self._split()
        return bucket, f"{prefix}/xxh128/{oid[:2]}/{oid[2:]}"

    def read(self, oid: str) -> bytes:
        if self.fmt == 2:
            with self._remote().open(oid) as f:
                return bytes(f.read())
        if self.kind == "local":
            return (Path(self.url) / "xxh128" / oid[:2] / oid[2:]).read_bytes()
        bucket, key = self._where(oid)
        return bytes(self._client().get_object(Bucket=bucket, Key=key)["Body"].read())

    def write(self, oid: str, data: bytes) -> None:
        """Replace an object's bytes behind mlv's back (format 1)."""
        assert self.fmt == 1
        if self.kind == "local":
            path = Path(self.url) / "xxh128" / oid[:2] / oid[2:]
            path.chmod(0o644)
            path.write_bytes(data)
            path.chmod(0o444)
            return
        bucket, key = self._where(oid)
        self._client().put_object(Bucket=bucket, Key=key, Body=data)

    def delete(self, oid: str) -> None:
        assert self.fmt == 1
        if self.kind == "local":
            (Path(self.url) / "xxh128" / oid[:2] / oid[2:]).unlink()
            return
        bucket, key = self._where(oid)
        self._client().delete_object(Bucket=bucket, Key=key)

    def sibling(self, name: str, tmp_path: Path) -> Store:
        """Another, empty remote of the same kind."""
        if self.kind == "local":
            folder = tmp_path / f"remote-{name}"
            folder.mkdir()
            return Store(self.kind, str(folder), fmt=self.fmt)
        return Store(self.kind, f"{self.url}-{name}", self.endpoint, self.fmt)

    def configure(self, repo: Path, name: str, mlv: Mlv, default: bool = False) -> None:
        fmt = ["--format", "1"] if self.fmt == 1 else []  # else mlv's default
        ok(mlv("remote", "add", *(["-d"] if default else []), name, self.url, *fmt, cwd=repo))
        if self.endpoint:
            ok(mlv("remote", "modify", name, "endpoint_url", self.endpoint, cwd=repo))


@pytest.fixture
def fmt() -> int | None:
    """The storage format of the `store` fixture: mlv's default, unless a test
    parametrizes it (`@pytest.mark.parametrize("fmt", [1])`)."""
    return None


@pytest.fixture
def store(mlv_repo: Path, remote_kind: str, request: pytest.FixtureRequest,
          tmp_path: Path, fmt: int | None) -> Store:
    """The default remote `store` of mlv_repo, of each kind."""
    url = add_remote(mlv_repo, remote_kind, request, tmp_path, fmt=fmt)
    endpoint = request.getfixturevalue("s3_endpoint") if remote_kind == "s3" else None
    return Store(remote_kind, url, endpoint, fmt or 2)


@pytest.fixture
def tracked(mlv_repo: Path, mlv: Mlv) -> Path:
    """data/ (nested, unicode, empty, executable) and model.bin, added."""
    make_tree(mlv_repo, TREE)
    (mlv_repo / "data" / "run.sh").chmod(0o755)
    ok(mlv("add", "data", "model.bin", cwd=mlv_repo))
    return mlv_repo


def summary(res: Result) -> str:
    return res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""


# ---- push ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [1, 2])
def test_push_uploads_every_object_once(tracked: Path, store: Store, mlv: Mlv) -> None:
    expected = expected_oids(tracked, "data", "model.bin")
    assert len(expected) == DATA_OBJECTS + 1
    res = mlv("push", cwd=tracked)
    ok(res)
    assert summary(res).startswith(f"pushed {len(expected)} files, ")
    assert store.oids() == expected
    for oid in expected:  # each object holds exactly the bytes its name says
        data = store.read(oid)
        assert (xxh(data) + ".dir" if oid.endswith(".dir") else xxh(data)) == oid
    assert store.read(pointer_oid(tracked / "model.bin.mlv")) == TREE["model.bin"]

    # a second push uploads nothing
    before, keys = store.oids(), store._keys()
    if store.fmt == 1:  # mark every remote object: an upload would put the real bytes back
        for oid in before:
            store.write(oid, b"marker " + oid.encode())
    res = mlv("push", cwd=tracked)
    ok(res)
    assert "everything is up to date" in res.stdout
    assert "pushed" not in res.stdout
    assert store.oids() == before
    assert sorted(store._keys()) == sorted(keys)  # in format 2: no new pack, no new index
    if store.fmt == 1:
        assert all(store.read(oid) == b"marker " + oid.encode() for oid in before)


def test_push_after_a_change_uploads_the_file_and_the_new_manifest(
        tracked: Path, store: Store, mlv: Mlv) -> None:
    ok(mlv("push", cwd=tracked))
    before = store.oids()
    (tracked / "data" / "nested" / "b.txt").write_text("beta, second version\n")
    ok(mlv("add", "data", cwd=tracked))
    res = mlv("push", cwd=tracked)
    ok(res)
    assert summary(res).startswith("pushed 2 files, "), res.stdout
    new_manifest = pointer_oid(tracked / "data.mlv")
    assert store.oids() - before == {xxh(b"beta, second version\n"), new_manifest}
    assert store.oids() >= before


def test_push_target_pushes_only_that_target(tracked: Path, store: Store, mlv: Mlv) -> None:
    data = expected_oids(tracked, "data")
    model = expected_oids(tracked, "model.bin")
    res = mlv("push", "data", cwd=tracked)
    ok(res)
    assert summary(res).startswith(f"pushed {len(data)} files, ")
    assert store.oids() == data
    res = mlv("push", "model.bin.mlv", cwd=tracked)
    ok(res)
    assert summary(res).startswith("pushed 1 file, ")
    assert store.oids() == data | model


def test_push_reports_objects_missing_from_the_cache(tracked: Path, store: Store,
                                                     mlv: Mlv) -> None:
    model = pointer_oid(tracked / "model.bin.mlv")
    cache_objects(tracked)[model].unlink()
    res = mlv("push", cwd=tracked)
    assert res.exit_code == 1, res.output
    assert len(error_lines(res)) == 1 and model in error_lines(res)[0]
    assert "Traceback" not in res.output
    assert store.oids() == expected_oids(tracked, "data")  # the rest still went up


# ---- fetch / pull --------------------------------------------------------------------

def test_fetch_fills_the_cache_and_leaves_the_workspace_alone(tracked: Path, store: Store,
                                                              mlv: Mlv) -> None:
    expected = expected_oids(tracked, "data", "model.bin")
    ok(mlv("push", cwd=tracked))
    shutil.rmtree(tracked / ".mlv" / "cache")
    shutil.rmtree(tracked / "data")
    (tracked / "model.bin").write_bytes(b"edited, not added")
    before = workspace(tracked)
    res = mlv("fetch", cwd=tracked)
    ok(res)
    assert summary(res).startswith(f"fetched {len(expected)} files, ")
    assert set(cache_objects(tracked)) == expected
    assert workspace(tracked) == before
    for oid, path in cache_objects(tracked).items():
        data = path.read_bytes()
        assert (xxh(data) + ".dir" if oid.endswith(".dir") else xxh(data)) == oid
    res = mlv("fetch", cwd=tracked)
    ok(res)
    assert "everything is up to date" in res.stdout


def test_pull_restores_byte_identical_files(tracked: Path, store: Store, mlv: Mlv) -> None:
    original = workspace(tracked)
    assert original[1] == {"run.sh"}
    ok(mlv("push", cwd=tracked))
    shutil.rmtree(tracked / ".mlv" / "cache")
    shutil.rmtree(tracked / "data")
    (tracked / "model.bin").unlink()
    res = mlv("pull", cwd=tracked)
    ok(res)
    assert workspace(tracked) == original
    assert (tracked / "data" / "empty").read_bytes() == b""
    res = mlv("status", cwd=tracked)
    ok(res)
    assert res.stdout == "everything is up to date\n"
    res = mlv("pull", cwd=tracked)
    ok(res)
    assert workspace(tracked) == original


def test_pull_does_not_overwrite_modified_files_without_force(tracked: Path, store: Store,
                                                              mlv: Mlv) -> None:
    original = workspace(tracked)
    ok(mlv("push", cwd=tracked))
    shutil.rmtree(tracked / ".mlv" / "cache")
    (tracked / "data" / "a.txt").write_text("my local edit\n")
    (tracked / "model.bin").write_bytes(b"my model")
    res = mlv("pull", cwd=tracked)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    errors = error_lines(res)
    assert len(errors) == 1
    assert "data/a.txt" in errors[0] and "model.bin" in errors[0]
    assert "--force" in res.stderr
    assert (tracked / "data" / "a.txt").read_text() == "my local edit\n"
    assert (tracked / "model.bin").read_bytes() == b"my model"
    res = mlv("pull", "--force", cwd=tracked)
    ok(res)
    assert workspace(tracked) == original


def test_jobs_1_and_16(mlv_repo: Path, store: Store, mlv: Mlv) -> None:
    # more objects than mlv asks about one by one, so the listing path runs too
    make_tree(mlv_repo, {"many": {f"f{i:03}.txt": f"file {i}\n" for i in range(80)}})
    ok(mlv("add", "many", cwd=mlv_repo))
    original = read_tree(mlv_repo / "many")
    expected = expected_oids(mlv_repo, "many")
    res = mlv("push", "-j", "1", cwd=mlv_repo)
    ok(res)
    assert summary(res).startswith("pushed 81 files, ")
    assert store.oids() == expected
    res = mlv("push", "--jobs", "16", cwd=mlv_repo)
    ok(res)
    assert "everything is up to date" in res.stdout
    for command, jobs in (("pull", "16"), ("fetch", "1")):
        shutil.rmtree(mlv_repo / ".mlv" / "cache")
        ok(mlv(command, "-j", jobs, cwd=mlv_repo))
        assert set(cache_objects(mlv_repo)) == expected
    assert read_tree(mlv_repo / "many") == original


@pytest.mark.parametrize("fmt", [1])  # format 2's damaged packs: test_packed_remote.py
def test_fetch_refuses_objects_whose_bytes_do_not_match(tracked: Path, store: Store,
                                                        mlv: Mlv) -> None:
    expected = expected_oids(tracked, "data", "model.bin")
    ok(mlv("push", cwd=tracked))
    bad = xxh(b"alpha\n")
    store.write(bad, b"alpha, tampered\n")
    shutil.rmtree(tracked / ".mlv" / "cache")
    shutil.rmtree(tracked / "data")
    res = mlv("fetch", cwd=tracked)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    errors = error_lines(res)
    assert len(errors) == 1 and "verification" in errors[0] and bad in errors[0]
    assert set(cache_objects(tracked)) == expected - {bad}
    res = mlv("pull", cwd=tracked)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert not (tracked / "data" / "a.txt").exists()
    assert (tracked / "data" / "nested" / "b.txt").read_text() == "beta\n"


# ---- scopes: other branches, tags, older commits ------------------------------------

SCOPES = {"workspace": [], "branches": ["--all-branches"], "tags": ["--all-tags"],
          "commits": ["--all-commits"]}


def build_history(repo: Path, mlv: Mlv) -> dict[str, set[str]]:
    """main: two commits of m.bin; branch feat: m.bin + folder d; tag v1 on a commit no
    branch holds. Returns the object ids each scope must move."""

    def commit(content: bytes, extra: tuple[str, ...] = ()) -> None:
        (repo / "m.bin").write_bytes(content)
        ok(mlv("add", "m.bin", *extra, cwd=repo))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", content.decode())

    commit(b"old")
    commit(b"main")
    git(repo, "checkout", "-qb", "feat")
    make_tree(repo, {"d": {"f1": "feature one", "f2": "feature two"}})
    commit(b"feat", ("d",))
    feat_dir = pointer_oid(repo / "d.mlv")
    git(repo, "checkout", "-qb", "tmp", "main")
    commit(b"tagged")
    git(repo, "tag", "-a", "v1", "-m", "release")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-qD", "tmp")
    assert pointer_oid(repo / "m.bin.mlv") == xxh(b"main")

    base = {xxh(b"main")}
    branches = base | {xxh(b"feat"), feat_dir, xxh(b"feature one"), xxh(b"feature two")}
    tags = base | {xxh(b"tagged")}
    return {"workspace": base, "branches": branches, "tags": tags,
            "commits": branches | tags | {xxh(b"old")}}


def test_push_and_fetch_scopes(mlv_repo: Path, store: Store, mlv: Mlv, tmp_path: Path) -> None:
    expected = build_history(mlv_repo, mlv)
    assert set(cache_objects(mlv_repo)) == expected["commits"]

    stores = {}
    for scope, flags in SCOPES.items():
        stores[scope] = store.sibling(scope, tmp_path)
        stores[scope].configure(mlv_repo, scope, mlv)
        ok(mlv("push", "-r", scope, *flags, cwd=mlv_repo))
    assert {scope: s.oids() for scope, s in stores.items()} == expected

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(clone))
    git(clone, "branch", "-q", "feat", "origin/feat")
    stores["commits"].configure(clone, "full", mlv, default=True)
    fetched = {}
    for scope, flags in SCOPES.items():
        shutil.rmtree(clone / ".mlv" / "cache", ignore_errors=True)
        ok(mlv("fetch", *flags, cwd=clone))
        fetched[scope] = set(cache_objects(clone))
    assert fetched == expected
    assert not (clone / "m.bin").exists()  # fetch never touches the workspace


# ---- status --cloud ------------------------------------------------------------------

def cloud_json(mlv: Mlv, repo: Path, *args: str) -> dict:
    res = mlv("status", "--cloud", "--json", *args, cwd=repo)
    ok(res)
    return dict(json.loads(res.stdout))


@pytest.mark.parametrize("fmt", [1, 2])
def test_status_cloud(tracked: Path, store: Store, mlv: Mlv, tmp_path: Path) -> None:
    res = mlv("status", "--cloud", cwd=tracked)
    ok(res)
    assert f"data (data.mlv): {DATA_OBJECTS} objects not pushed" in res.stdout
    assert "model.bin (model.bin.mlv): 1 object not pushed" in res.stdout
    quiet = mlv("status", "--cloud", "-q", cwd=tracked)
    assert (quiet.exit_code, quiet.stdout) == (1, "")
    assert cloud_json(mlv, tracked) == {
        "data": {"pointer": "data.mlv", "not_pushed": DATA_OBJECTS, "not_fetched": 0,
                 "missing": 0},
        "model.bin": {"pointer": "model.bin.mlv", "not_pushed": 1, "not_fetched": 0,
                      "missing": 0}}

    ok(mlv("push", cwd=tracked))
    res = mlv("status", "--cloud", cwd=tracked)
    ok(res)
    assert "in sync" in res.stdout and "not pushed" not in res.stdout
    assert mlv("status", "--cloud", "-q", cwd=tracked).exit_code == 0

    other = store.sibling("other", tmp_path)
    other.configure(tracked, "other", mlv)
    res = mlv("status", "--cloud", "-r", "other", cwd=tracked)
    ok(res)
    assert f"data (data.mlv): {DATA_OBJECTS} objects not pushed" in res.stdout
    assert "other" in res.stdout
    assert mlv("status", "--cloud", "-q", "-r", "other", cwd=tracked).exit_code == 1

    shutil.rmtree(tracked / ".mlv" / "cache")
    res = mlv("status", "--cloud", cwd=tracked)
    ok(res)
    assert f"data (data.mlv): {DATA_OBJECTS} objects not fetched" in res.stdout
    assert "model.bin (model.bin.mlv): 1 object not fetched" in res.stdout
    assert mlv("status", "--cloud", "-q", cwd=tracked).exit_code == 1

    if store.fmt != 1:
        return  # the rest deletes objects behind mlv's back, one by one
    store.delete(pointer_oid(tracked / "model.bin.mlv"))
    store.delete(xxh(b"alpha\n"))
    res = mlv("status", "--cloud", cwd=tracked)
    ok(res)
    assert "model.bin (model.bin.mlv): 1 object missing from both" in res.stdout
    assert (f"data (data.mlv): {DATA_OBJECTS - 1} objects not fetched, "
            "1 object missing from both") in res.stdout
    assert cloud_json(mlv, tracked)["model.bin"] == {
        "pointer": "model.bin.mlv", "not_pushed": 0, "not_fetched": 0, "missing": 1}


def test_status_cloud_when_a_manifest_is_nowhere(tracked: Path, store: Store,
                                                 mlv: Mlv) -> None:
    """A folder whose manifest is neither cached nor pushed is reported, not an error."""
    shutil.rmtree(tracked / ".mlv" / "cache")
    res = mlv("status", "--cloud", cwd=tracked)
    ok(res)
    assert "data (data.mlv): 1 object missing from both" in res.stdout
    assert "model.bin (model.bin.mlv): 1 object missing from both" in res.stdout


# ---- end to end: a teammate clones and pulls ----------------------------------------

def test_clone_and_pull_end_to_end(mlv_repo: Path, remote_kind: str, tmp_path: Path,
                                   request: pytest.FixtureRequest) -> None:
    a = mlv_repo
    make_tree(a, TREE)
    (a / "data" / "run.sh").chmod(0o755)
    make_tree(a, {"models": {"model.pkl": os.urandom(100_000)}})
    ok(run_mlv(a, "add", "data", "models/model.pkl"))
    git(a, "add", "-A")
    git(a, "commit", "-qm", "data and model")
    add_remote(a, remote_kind, request, tmp_path)
    git(a, "add", ".mlv/config")
    git(a, "commit", "-qm", "remote")
    res = run_mlv(a, "push")
    ok(res)
    assert res.stdout.startswith(f"pushed {DATA_OBJECTS + 1} files, ")

    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", str(a), str(b))
    assert not (b / "data").exists()
    res = run_mlv(b, "pull")
    ok(res)
    assert read_tree(b / "data") == read_tree(a / "data")
    assert executables(b / "data") == {"run.sh"}
    assert (b / "models" / "model.pkl").read_bytes() == (a / "models" / "model.pkl").read_bytes()
    res = run_mlv(b, "status")
    ok(res)
    assert res.stdout == "everything is up to date\n"
    res = run_mlv(b, "status", "--cloud")
    ok(res)
    assert "in sync" in res.stdout
    assert git(b, "status", "--porcelain") == ""


# ---- how S3 objects move: whole, or in parts --------------------------------------------

@pytest.mark.slow
def test_s3_objects_move_whole_or_in_parts_by_size(mlv_repo: Path, s3_endpoint: str,
                                                   request: pytest.FixtureRequest,
                                                   tmp_path: Path, mlv: Mlv,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    from mlv.remote import s3

    # S3's smallest part is 5 MiB: with the cut-off there, an 11 MiB file goes in 3 parts
    monkeypatch.setattr(s3, "WHOLE_OBJECT_MAX", 5 * 2**20)
    monkeypatch.setattr(s3, "PART_SIZE", 5 * 2**20)
    make_tree(mlv_repo, {"big": {"parts.bin": os.urandom(11 * 2**20),
                                 "whole.bin": os.urandom(5 * 2**20)},
                         "single.bin": os.urandom(12 * 2**20)})
    ok(mlv("add", "big", "single.bin", cwd=mlv_repo))
    url = add_remote(mlv_repo, "s3", request, tmp_path, fmt=1)  # objects as S3 objects
    original = read_tree(mlv_repo / "big")
    single = (mlv_repo / "single.bin").read_bytes()
    ok(mlv("push", cwd=mlv_repo))

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True)
    root = url.removeprefix("s3://")

    def etag(data: bytes) -> str:
        oid = xxh(data)
        return str(fs.info(f"{root}/xxh128/{oid[:2]}/{oid[2:]}")["ETag"]).strip('"')

    assert etag(original["parts.bin"]).endswith("-3")  # a multipart upload of 3 parts
    assert "-" not in etag(original["whole.bin"])  # one PUT
    assert etag(single).endswith("-3")

    shutil.rmtree(mlv_repo / ".mlv" / "cache")
    shutil.rmtree(mlv_repo / "big")
    (mlv_repo / "single.bin").unlink()
    ok(mlv("pull", cwd=mlv_repo))
    assert read_tree(mlv_repo / "big") == original
    assert (mlv_repo / "single.bin").read_bytes() == single


def test_upload_byte_budget_holds_back_what_does_not_fit() -> None:
    import asyncio

    from mlv.remote.s3 import ByteBudget

    budget = ByteBudget(100)
    order: list[str] = []

    async def task(name: str, size: int, delay: float) -> None:
        await asyncio.sleep(delay)
        async with budget.hold(size):
            order.append(f"+{name}")
            assert budget.free >= 0
            await asyncio.sleep(0.05)
            order.append(f"-{name}")

    async def main() -> None:
        # a and b fit together; c (more than the whole budget) waits for both and runs
        # alone; d waits for c
        await asyncio.gather(task("a", 60, 0), task("b", 40, 0.001), task("c", 500, 0.002),
                             task("d", 10, 0.003))

    asyncio.run(main())
    assert order[:2] == ["+a", "+b"]
    assert order.index("+c") > max(order.index("-a"), order.index("-b"))
    assert order.index("+d") > order.index("-c")
    assert budget.free == 100


@pytest.mark.slow
def test_s3_push_lists_until_asking_is_cheaper(mlv_repo: Path, request: pytest.FixtureRequest,
                                               tmp_path: Path, mlv: Mlv,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mlv.remote import FsspecRemote

    make_tree(mlv_repo, {"old": {f"f{i:04}.txt": f"old {i}\n" for i in range(1100)}})
    ok(mlv("add", "old", cwd=mlv_repo))
    add_remote(mlv_repo, "s3", request, tmp_path, fmt=1)  # format 1 asks about each key
    res = mlv("push", cwd=mlv_repo)
    ok(res)
    assert summary(res).startswith("pushed 1101 files, ")

    asked: list[int] = []
    each = FsspecRemote._exist_each

    def spy(self: FsspecRemote, oids: list[str]) -> set[str]:
        asked.append(len(oids))
        return each(self, oids)

    monkeypatch.setattr(FsspecRemote, "_exist_each", spy)
    make_tree(mlv_repo, {"new": {f"g{i:03}.txt": f"new {i}\n" for i in range(80)}})
    ok(mlv("add", "new", cwd=mlv_repo))
    res = mlv("push", cwd=mlv_repo)
    ok(res)
    assert summary(res).startswith("pushed 81 files, ")
    # first the two manifests, one by one; then the 80 new files: one listing page of
    # 1000 of the remote's 1101 keys covers most of them, the few beyond it are asked
    # about one by one
    assert asked[0] == 2
    assert len(asked) == 2 and 0 < asked[1] < 40, asked
    res = mlv("status", "--cloud", cwd=mlv_repo)
    ok(res)
    assert "in sync" in res.stdout
