"""The `mlv://` fsspec filesystem (mlv.filesystem.MlvFileSystem): listing and reading a
repository at a revision through fsspec, pandas and pyarrow's dataset API; read-only."""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import fsspec
import pandas
import pyarrow.dataset
import pytest
from conftest import add_remote, commit_all, git, make_tree, mlv_ok
from fsspec.registry import known_implementations
from pyarrow.fs import FSSpecHandler, PyFileSystem

from mlv import errors
from mlv.filesystem import MlvFileSystem
from mlv.remote.packed import PackedRemote

ROOT = Path(__file__).parent.parent
TRAIN_V1 = "x,y\n1,2\n3,4\n"
TRAIN_V2 = "x,y\n8,9\n"


@pytest.fixture(autouse=True)
def registered() -> None:
    """The protocol comes from the `fsspec.specs` entry point once mlv is installed
    (test_entry_point checks the declaration); an older install of the package may lack
    it, so it is registered the same way here."""
    if "mlv" not in known_implementations:
        fsspec.register_implementation("mlv", "mlv.filesystem.MlvFileSystem")


def build_source(repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
                 extra: dict[str, bytes | str | dict] | None = None) -> str:
    """data/ (train.csv, parts/p1.csv, parts/p2.csv) tracked, README in git, tag v1;
    main changes train.csv and adds parts/p3.csv. Pushed to a folder remote; returns the
    URL of a bare origin."""
    make_tree(repo, {"README": "hello\n",
                     "data": {"train.csv": TRAIN_V1,
                              "parts": {"p1.csv": "a,b\n1,2\n", "p2.csv": "a,b\n3,4\n"}},
                     **(extra or {})})
    add_remote(repo, "local", request, tmp_path)
    mlv_ok(repo, "add", "data", *(extra or {}))
    commit_all(repo, "v1")
    git(repo, "tag", "v1")
    make_tree(repo, {"data": {"train.csv": TRAIN_V2, "parts": {"p3.csv": "a,b\n5,6\n"}}})
    mlv_ok(repo, "add", "data")
    commit_all(repo, "v2")
    mlv_ok(repo, "push", "--all-tags", "--all-branches")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    return f"file://{origin}"


def test_fsspec_open_ls_find_info_cat(mlv_repo: Path, request: pytest.FixtureRequest,
                                      tmp_path: Path, cache_home: Path) -> None:
    url = build_source(mlv_repo, request, tmp_path)
    with fsspec.open("mlv://data/train.csv", repo=url, rev="v1") as f:
        assert f.read() == TRAIN_V1.encode()
    with fsspec.open("mlv://data/train.csv", "rt", repo=url) as t:
        assert t.read() == TRAIN_V2
    fs = fsspec.filesystem("mlv", repo=url, rev="v1")
    assert isinstance(fs, MlvFileSystem)
    assert fs.ls("", detail=False) == [".gitignore", ".mlv", "README", "data", "data.mlv"]
    listed = {e["name"]: e for e in fs.ls("mlv://data")}
    assert listed["data/train.csv"]["type"] == "file" and listed["data/train.csv"]["size"] == 12
    assert listed["data/parts"]["type"] == "directory"
    assert fs.find("data") == ["data/parts/p1.csv", "data/parts/p2.csv", "data/train.csv"]
    assert fs.glob("data/parts/*.csv") == ["data/parts/p1.csv", "data/parts/p2.csv"]
    assert fs.info("README") == {"name": "README", "size": 6, "type": "file", "kind": "git",
                                 "oid": fs.info("README")["oid"], "exec": False,
                                 "tracked_by": None}
    assert fs.info("data")["kind"] == "mlv" and fs.isdir("data") and fs.isfile("README")
    assert fs.cat("data/parts/p2.csv") == b"a,b\n3,4\n"
    assert fs.cat("README") == b"hello\n"
    assert fs.cat_file("data/train.csv", 4, 7) == b"1,2"
    assert fs.cat_file("data/train.csv", -4) == b"3,4\n"
    assert fs.cat_file("data/train.csv", 10, 100) == b"4\n"
    with fs.open("data/train.csv") as fb:
        fb.seek(8)
        assert fb.read(3) == b"3,4" and fb.size == 12
    head = fsspec.filesystem("mlv", repo=url)
    assert head.find("data/parts") == ["data/parts/p1.csv", "data/parts/p2.csv",
                                       "data/parts/p3.csv"]
    assert not fs.exists("data/parts/p3.csv")
    with pytest.raises(FileNotFoundError):
        fs.cat("data/parts/p3.csv")
    with pytest.raises(errors.NotAFile):
        fs.open("data")


def test_current_repository_and_nothing_written(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    build_source(mlv_repo, request, tmp_path)
    status = git(mlv_repo, "--no-optional-locks", "status", "--porcelain")
    index = os.stat(mlv_repo / ".git" / "index").st_mtime_ns
    monkeypatch.chdir(mlv_repo / "data")  # paths stay repo-relative
    fs = fsspec.filesystem("mlv", rev="v1")
    assert fs.cat("data/train.csv") == TRAIN_V1.encode()
    assert git(mlv_repo, "--no-optional-locks", "status", "--porcelain") == status
    assert os.stat(mlv_repo / ".git" / "index").st_mtime_ns == index


def test_writing_is_refused(mlv_repo: Path, request: pytest.FixtureRequest,
                            tmp_path: Path, cache_home: Path) -> None:
    url = build_source(mlv_repo, request, tmp_path)
    fs = fsspec.filesystem("mlv", repo=url, rev="v1")
    attempts = [lambda: fs.pipe_file("data/x.csv", b"1"), lambda: fs.open("x", "wb"),
                lambda: fs.rm("data/train.csv"), lambda: fs.mkdir("new"),
                lambda: fs.touch("t"), lambda: fs.mv("README", "R"),
                lambda: fs.put_file(__file__, "x.py")]
    for attempt in attempts:
        with pytest.raises(PermissionError, match="read-only") as info:
            attempt()
        assert isinstance(info.value, errors.ReadOnly)
        assert f"at v1 ({git(mlv_repo, 'rev-parse', 'v1')[:8]})" in info.value.message
    with pytest.raises(PermissionError):
        with fsspec.open("mlv://data/y.csv", "w", repo=url) as f:
            f.write("no")
    assert fs.cat("data/train.csv") == TRAIN_V1.encode()


def test_pandas_reads_at_a_revision(mlv_repo: Path, request: pytest.FixtureRequest,
                                    tmp_path: Path, cache_home: Path) -> None:
    url = build_source(mlv_repo, request, tmp_path)
    old = pandas.read_csv("mlv://data/train.csv", storage_options={"repo": url, "rev": "v1"})
    assert old.to_dict("list") == {"x": [1, 3], "y": [2, 4]}
    new = pandas.read_csv("mlv://data/train.csv", storage_options={"repo": url})
    assert new.to_dict("list") == {"x": [8], "y": [9]}


def test_pyarrow_dataset_reads_a_tracked_folder(mlv_repo: Path,
                                                request: pytest.FixtureRequest,
                                                tmp_path: Path, cache_home: Path) -> None:
    url = build_source(mlv_repo, request, tmp_path)
    fs = PyFileSystem(FSSpecHandler(MlvFileSystem(repo=url, rev="v1")))
    table = pyarrow.dataset.dataset("data/parts", filesystem=fs, format="csv").to_table()
    assert sorted(table.column("b").to_pylist()) == [2, 4]  # p3.csv came after v1
    head = PyFileSystem(FSSpecHandler(MlvFileSystem(repo=url)))
    table = pyarrow.dataset.dataset("data/parts", filesystem=head, format="csv").to_table()
    assert sorted(table.column("a").to_pylist()) == [1, 3, 5]


def test_pickled_filesystem_reads_the_same_commit(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path) -> None:
    url = build_source(mlv_repo, request, tmp_path)
    fs = MlvFileSystem(repo=url, rev="main")
    make_tree(mlv_repo, {"data": {"train.csv": "moved,on\n"}})
    mlv_ok(mlv_repo, "add", "data")
    commit_all(mlv_repo, "v3")
    mlv_ok(mlv_repo, "push")
    git(mlv_repo, "push", "-q", str(tmp_path / "origin.git"), "main")
    worker = pickle.loads(pickle.dumps(fs))  # as Dask sends it to a worker
    assert worker.source.commit == fs.source.commit
    assert worker.cat("data/train.csv") == TRAIN_V2.encode()
    assert MlvFileSystem(repo=url, rev="main").cat("data/train.csv") == b"moved,on\n"


@pytest.mark.slow
def test_a_ranged_read_of_a_chunked_file_fetches_only_its_chunks(
        mlv_repo: Path, request: pytest.FixtureRequest, tmp_path: Path,
        cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = random.Random(12).randbytes(6 << 20)  # over 4 MiB: stored as chunks
    url = build_source(mlv_repo, request, tmp_path, {"big.bin": big})
    fetched: list[int] = []
    read_blobs = PackedRemote.read_blobs

    def counted(self: PackedRemote, records: list, failures: dict) -> object:
        fetched.extend(r.length for r in records)
        return read_blobs(self, records, failures)

    monkeypatch.setattr(PackedRemote, "read_blobs", counted)
    fs = MlvFileSystem(repo=url, rev="v1")  # a clone: its cache has no data
    start = 3 << 20
    assert fs.cat_file("big.bin", start, start + 1000) == big[start:start + 1000]
    assert 0 < sum(fetched) < 2 << 20, fetched  # a chunk or two, not the file
    fetched.clear()
    with fs.open("big.bin") as f:
        f.seek(5 << 20)
        assert f.read(100) == big[5 << 20:(5 << 20) + 100]
    assert 0 < sum(fetched) < 2 << 20, fetched
    assert fs.cat("big.bin") == big


def test_entry_point_and_lazy_import() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split('[project.entry-points."fsspec.specs"]\n', 1)[1].split("\n[")[0]
    assert section.strip() == 'mlv = "mlv.filesystem:MlvFileSystem"'
    code = ("import sys, mlv.api, mlv.api.public, mlv.api.reading\n"
            "print('fsspec' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False"
    assert fsspec.get_filesystem_class("mlv") is MlvFileSystem
