"""An interrupted add or checkout never leaves a truncated object, a dangling pointer or a
half-written workspace file: the cache and workspace are as before, or complete.

Failures are injected in-process (a full disk at the Nth rename or placement), and real
processes are killed with SIGKILL at several moments.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlv import fsio
from tests.conftest import MLV, file_xxh, git, make_tree, read_tree, run_mlv, xxh

TMP_MARK = ".mlvtmp-"


# ---- checks shared by every test ------------------------------------------------------

def store_objects(repo: Path) -> dict[str, Path]:
    """Every object in the local cache under its final name; checks what the store holds:
    each final name is the hash of its bytes, anything else is a marked temp file."""
    base = repo / ".mlv" / "cache" / "xxh128"
    found: dict[str, Path] = {}
    if not base.exists():
        return found
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            path = Path(folder, name)
            rel = path.relative_to(base).as_posix()
            if TMP_MARK in name:
                assert path.is_file(), f"temp entry that is not a file: {rel}"
                continue
            if path.is_dir():
                assert path.parent == base and len(name) == 2, f"stray folder {rel}"
                continue
            assert path.parent != base, f"stray file in the store: {rel}"
            oid = path.parent.name + name
            digest = oid.removesuffix(".dir")
            assert len(digest) == 32 and all(c in "0123456789abcdef" for c in digest), rel
            assert file_xxh(path) == digest, f"object {oid} does not hold the bytes it names"
            found[oid] = path
    return found


def temp_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(f"*{TMP_MARK}*")
                  if ".git" not in p.relative_to(root).parts)


def check_pointer_complete(repo: Path, objects: dict[str, Path]) -> bool:
    """A data.mlv that exists must reference only stored objects (and, for a folder,
    every file its manifest lists). Returns whether data.mlv exists."""
    file = repo / "data.mlv"
    if not file.exists():
        return False
    ptr = yaml.safe_load(file.read_text())
    [out] = ptr["outs"]
    assert out["path"] == "data"
    oid = out["xxh128"]
    assert oid in objects, f"data.mlv references {oid}, which is not in the cache"
    if oid.endswith(".dir"):
        entries = json.loads(objects[oid].read_bytes())
        missing = [e["path"] for e in entries if e["xxh128"] not in objects]
        assert missing == [], f"the manifest lists files whose objects are missing: {missing}"
        assert out["nfiles"] == len(entries)
        assert out["size"] == sum(e["size"] for e in entries)
    return True


def assert_one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), res.stderr
    for needle in needles:
        assert needle in errors[0], res.stderr


def fail_after(n: int, real: Callable[..., Any], exc: Callable[[Any], BaseException]
               ) -> Callable[..., Any]:
    """`real`, except that every call after the first `n` raises exc(args) (thread-safe)."""
    lock = threading.Lock()
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[0] += 1
            k = calls[0]
        if k > n:
            raise exc(args)
        return real(*args, **kwargs)

    return wrapper


def enospc(_args: Any) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def round_trip(mlv, repo: Path, expected: dict[str, bytes]) -> None:
    """status is clean; after deleting `data`, checkout restores the exact bytes."""
    res = mlv("status", cwd=repo)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output
    shutil.rmtree(repo / "data")
    res = mlv("checkout", cwd=repo)
    assert res.exit_code == 0, res.output
    assert read_tree(repo / "data") == expected
    res = mlv("status", cwd=repo)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output


# ---- add with a full disk at the Nth rename --------------------------------------------

@pytest.fixture
def tree200(mlv_repo: Path) -> dict[str, bytes]:
    """200 files of distinct content in `data` (150 at the top, 50 in a subfolder)."""
    rng = random.Random(200)
    top = {f"f{i:03d}.bin": rng.randbytes(rng.randint(1, 3000)) for i in range(150)}
    sub = {f"g{i:03d}.txt": rng.randbytes(rng.randint(1, 3000)) for i in range(50)}
    make_tree(mlv_repo, {"data": {**top, "sub": sub}})
    tree = read_tree(mlv_repo / "data")
    assert len(tree) == 200 and len(set(tree.values())) == 200
    return tree


# 200 file objects, then the manifest (201st), data.mlv (202nd), .gitignore (203rd).
@pytest.mark.parametrize("n", [0, 1, 50, 199, 200, 201, 202])
def test_add_with_disk_full_at_the_nth_rename(mlv, mlv_repo: Path, tree200: dict[str, bytes],
                                              monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    repo = mlv_repo
    with monkeypatch.context() as mp:
        mp.setattr(fsio, "commit", fail_after(n, fsio.commit, enospc))
        res = mlv("add", "data", cwd=repo)
    assert_one_line_error(res, "no space left on device")
    assert "free some disk space" in res.stderr

    objects = store_objects(repo)
    assert temp_files(repo) == []
    # The pointer is written only once every object is stored (and then whole).
    assert check_pointer_complete(repo, objects) == (n >= 202)
    assert read_tree(repo / "data") == tree200  # add never touches the workspace bytes

    res = mlv("add", "data", cwd=repo)
    assert res.exit_code == 0, res.output
    assert check_pointer_complete(repo, store_objects(repo))
    assert (repo / ".gitignore").read_text() == "/data\n"
    assert temp_files(repo) == []
    round_trip(mlv, repo, tree200)


def test_add_of_a_large_file_with_disk_full_leaves_no_temp_file(
    mlv, mlv_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Files above 4 MiB are copied into the store through a temp file: a full disk
    # midway through the copy must remove it.
    big = os.urandom(5 << 20)
    make_tree(mlv_repo, {"data": {"big.bin": big, "small": "s"}})
    real_copy_file_range = os.copy_file_range
    real_sendfile = os.sendfile
    copied = [0]

    def full_disk(real: Callable[..., int]) -> Callable[..., int]:
        def copy(fin: int, fout: int, count: int, *args: Any) -> int:
            if copied[0] >= (1 << 20):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done = real(fin, fout, min(count, (1 << 20) - copied[0]), *args)
            copied[0] += done
            return done
        return copy

    with monkeypatch.context() as mp:
        mp.setattr(os, "copy_file_range", full_disk(real_copy_file_range))
        mp.setattr(os, "sendfile", full_disk(real_sendfile))
        res = mlv("add", "data", cwd=mlv_repo)
    assert copied[0] == 1 << 20  # the failure did happen midway through the copy
    assert_one_line_error(res, "no space left on device")
    assert temp_files(mlv_repo) == []
    assert xxh(big) not in store_objects(mlv_repo)
    assert not (mlv_repo / "data.mlv").exists()

    res = mlv("add", "data", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert xxh(big) in store_objects(mlv_repo)
    round_trip(mlv, mlv_repo, {"big.bin": big, "small": b"s"})


# ---- add killed with SIGKILL ----------------------------------------------------------

@pytest.mark.slow
def test_add_killed_with_sigkill_never_corrupts_the_cache(mlv_repo: Path) -> None:
    repo = mlv_repo
    rng = random.Random(3000)
    spec: dict[str, Any] = {"000-big.bin": os.urandom(64 << 20)}
    for d in range(30):
        spec[f"d{d:02d}"] = {f"f{i:03d}.bin": os.urandom(rng.randint(4096, 16384))
                             for i in range(100)}
    make_tree(repo, {"data": spec})
    del spec
    expected = {rel: xxh(data) for rel, data in read_tree(repo / "data").items()}
    assert len(expected) == 3001

    outcomes = []
    interrupted_midway = False  # some objects stored, no pointer yet
    # Longer delays too: on a loaded machine start-up alone can take a second or more.
    for delay in (0.05, 0.15, 0.3, 0.6, 1.0, 1.6, 2.5, 4.0):
        if interrupted_midway and len(outcomes) >= 5:
            break
        proc = subprocess.Popen(MLV + ["add", "data"], cwd=repo, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        outcomes.append(proc.returncode)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()

        objects = store_objects(repo)  # every final name holds exactly its bytes
        leftovers = [p for p in temp_files(repo) if not p.startswith(".mlv/cache/")]
        assert leftovers == [], "temp files outside the cache"
        pointer_written = check_pointer_complete(repo, objects)
        if objects and not pointer_written:
            interrupted_midway = True
        if (repo / ".gitignore").exists():  # written whole, after the pointer
            assert pointer_written
            assert (repo / ".gitignore").read_text() == "/data\n"
    assert -signal.SIGKILL in outcomes and interrupted_midway, \
        f"no run was interrupted midway ({outcomes}): the test proved nothing"

    current = {rel: file_xxh(repo / "data" / rel) for rel in expected}
    assert current == expected  # the workspace was never touched

    res = run_mlv(repo, "add", "data")
    assert res.exit_code == 0, res.output
    objects = store_objects(repo)
    assert check_pointer_complete(repo, objects)
    assert set(expected.values()) <= set(objects)
    res = run_mlv(repo, "status")
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output
    shutil.rmtree(repo / "data")
    res = run_mlv(repo, "checkout")
    assert res.exit_code == 0, res.output
    restored = {p.relative_to(repo / "data").as_posix(): file_xxh(p)
                for p in (repo / "data").rglob("*") if p.is_file()}
    assert restored == expected


# ---- checkout interrupted by a full disk ---------------------------------------------

def place_fails(_args: Any) -> BaseException:
    """What the real `place` raises when the disk is full (a StorageError from an OSError)."""
    cause = enospc(None)
    err = fsio.storage_error(cause, str(_args[1]))
    err.__cause__ = cause
    return err


@pytest.fixture
def tracked(mlv, mlv_repo: Path) -> tuple[Path, dict[str, bytes]]:
    rng = random.Random(40)
    make_tree(mlv_repo, {"data": {
        **{f"f{i:02d}.bin": rng.randbytes(rng.randint(100, 5000)) for i in range(30)},
        "sub": {f"g{i:02d}.bin": rng.randbytes(rng.randint(100, 5000)) for i in range(10)},
    }})
    res = mlv("add", "data", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    git(mlv_repo, "add", "data.mlv", ".gitignore")
    git(mlv_repo, "commit", "-qm", "v1")
    return mlv_repo, read_tree(mlv_repo / "data")


@pytest.mark.parametrize("n", [0, 1, 20, 39])
def test_checkout_of_a_deleted_folder_interrupted_leaves_no_half_folder(
    mlv, tracked: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    repo, v1 = tracked
    shutil.rmtree(repo / "data")
    with monkeypatch.context() as mp:
        mp.setattr(fsio, "place", fail_after(n, fsio.place, place_fails))
        res = mlv("checkout", cwd=repo)
    assert_one_line_error(res, "no space left on device")
    # The folder is built under a temp name and renamed into place only when complete.
    assert not os.path.lexists(repo / "data")
    assert temp_files(repo) == []
    assert sorted(os.listdir(repo)) == [".git", ".gitignore", ".mlv", "data.mlv"]
    store_objects(repo)

    res = mlv("checkout", cwd=repo)
    assert res.exit_code == 0, res.output
    assert read_tree(repo / "data") == v1
    res = mlv("status", cwd=repo)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output


@pytest.mark.parametrize("hook", ["place", "commit"])
@pytest.mark.parametrize("n", [0, 3, 12, 19])  # 20 files to write
def test_checkout_over_a_changed_folder_interrupted_leaves_whole_files(
    mlv, tracked: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch, n: int,
    hook: str,
) -> None:
    repo, v1 = tracked
    v1_pointer = (repo / "data.mlv").read_bytes()
    data = repo / "data"
    rng = random.Random(n)
    for i in range(0, 30, 2):  # modify half the files (other sizes, so a cut would show)
        (data / f"f{i:02d}.bin").write_bytes(rng.randbytes(rng.randint(6000, 9000)))
    for i in range(5):  # delete some, add some
        (data / "sub" / f"g{i:02d}.bin").unlink()
        (data / "sub" / f"new{i}.bin").write_bytes(rng.randbytes(3000))
    res = mlv("add", "data", cwd=repo)  # v2 is in the cache too: nothing unsaved
    assert res.exit_code == 0, res.output
    v2 = read_tree(data)
    (repo / "data.mlv").write_bytes(v1_pointer)  # as after `git checkout` of v1

    real = fsio.place if hook == "place" else fsio.commit
    exc = place_fails if hook == "place" else enospc
    with monkeypatch.context() as mp:
        mp.setattr(fsio, hook, fail_after(n, real, exc))
        res = mlv("checkout", cwd=repo)
    assert_one_line_error(res, "no space left on device")
    now = read_tree(data)
    for rel, content in now.items():
        assert content in (v1.get(rel), v2.get(rel)), f"{rel} is neither old nor new"
    assert temp_files(repo) == []
    store_objects(repo)

    res = mlv("checkout", cwd=repo)
    assert res.exit_code == 0, res.output
    assert read_tree(data) == v1
    res = mlv("status", cwd=repo)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output


def test_checkout_of_a_single_file_interrupted_keeps_the_old_bytes(
    mlv, mlv_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(mlv_repo, {"model.bin": b"v1" * 5000})
    assert mlv("add", "model.bin", cwd=mlv_repo).exit_code == 0
    v1_pointer = (mlv_repo / "model.bin.mlv").read_bytes()
    (mlv_repo / "model.bin").write_bytes(b"v2" * 7000)
    assert mlv("add", "model.bin", cwd=mlv_repo).exit_code == 0
    (mlv_repo / "model.bin.mlv").write_bytes(v1_pointer)
    with monkeypatch.context() as mp:
        mp.setattr(fsio, "commit", fail_after(0, fsio.commit, enospc))
        res = mlv("checkout", cwd=mlv_repo)
    assert_one_line_error(res, "no space left on device")
    assert (mlv_repo / "model.bin").read_bytes() == b"v2" * 7000
    assert temp_files(mlv_repo) == []
    assert mlv("checkout", cwd=mlv_repo).exit_code == 0
    assert (mlv_repo / "model.bin").read_bytes() == b"v1" * 5000
