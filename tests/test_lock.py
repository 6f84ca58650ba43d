"""Two mlv processes in one repository: the second waits for the repo lock, then gives up
with "another mlv process (pid N) is running" and changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import MLV, cache_objects, git, make_tree, read_tree, run_mlv

HOLD = """
import sys, time
from mlv.fsio import RepoLock
lock = RepoLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(30)
"""

QUICK = {"MLV_LOCK_TIMEOUT": "0.5"}


class Holder:
    """A separate process that holds the repository lock until killed."""

    def __init__(self, repo: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(repo / ".mlv" / "tmp" / "lock")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "locked\n", self.proc.stderr.read() if self.proc.stderr else line

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=10)


@pytest.fixture
def hold_lock() -> Iterator[Callable[[Path], Holder]]:
    started: list[Holder] = []

    def start(repo: Path) -> Holder:
        holder = Holder(repo)
        started.append(holder)
        return holder

    yield start
    for holder in started:
        holder.kill()


def snapshot(repo: Path) -> dict[str, bytes]:
    return {rel: data for rel, data in read_tree(repo).items()
            if not rel.startswith(".mlv/tmp/")}


def assert_locked_out(res, pid: int) -> None:
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.splitlines()
    assert len([line for line in lines if line.startswith("error: ")]) == 1, res.stderr
    assert f"another mlv process (pid {pid}) is running" in lines[0], res.stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), res.stderr


@pytest.fixture
def repo(mlv_repo: Path) -> Path:
    make_tree(mlv_repo, {"data": {"a.txt": "alpha", "sub": {"b.bin": os.urandom(5000)}}})
    return mlv_repo


def test_add_while_another_mlv_holds_the_lock(repo: Path, hold_lock) -> None:
    holder = hold_lock(repo)
    before = snapshot(repo)
    started = time.monotonic()
    res = run_mlv(repo, "add", "data", env=QUICK)
    waited = time.monotonic() - started
    assert_locked_out(res, holder.pid)
    assert waited >= 0.5  # it waited for the lock before giving up
    assert res.stdout == ""
    assert not (repo / "data.mlv").exists()
    assert cache_objects(repo) == {}
    assert not (repo / ".gitignore").exists()
    assert snapshot(repo) == before

    holder.kill()  # the kernel drops the lock; the stale pid in the lock file is harmless
    res = run_mlv(repo, "add", "data", env=QUICK)
    assert res.exit_code == 0, res.output
    assert (repo / "data.mlv").is_file()
    assert len(cache_objects(repo)) == 3  # two files and the manifest
    assert (repo / ".gitignore").read_text() == "/data\n"


@pytest.mark.slow
def test_add_waits_for_the_lock_and_then_succeeds(repo: Path, hold_lock) -> None:
    holder = hold_lock(repo)
    proc = subprocess.Popen(MLV + ["add", "data"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MLV_LOCK_TIMEOUT": "20"})
    try:
        time.sleep(1.0)
        assert proc.poll() is None, "add did not wait for the lock"
        assert not (repo / "data.mlv").exists()
        assert cache_objects(repo) == {}
        holder.kill()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert (repo / "data.mlv").is_file()
    res = run_mlv(repo, "status")
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output


@pytest.fixture
def tracked(repo: Path) -> Path:
    """data added twice (v1, then v2): the v1 objects are garbage for `gc --workspace`."""
    res = run_mlv(repo, "add", "data")
    assert res.exit_code == 0, res.output
    (repo / "data" / "a.txt").write_text("alpha, version 2")
    res = run_mlv(repo, "add", "data")
    assert res.exit_code == 0, res.output
    git(repo, "add", "data.mlv", ".gitignore")
    git(repo, "commit", "-qm", "data")
    return repo


def test_checkout_respects_the_lock(tracked: Path, hold_lock) -> None:
    repo = tracked
    expected = read_tree(repo / "data")
    for path in sorted((repo / "data").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (repo / "data").rmdir()
    holder = hold_lock(repo)
    before = snapshot(repo)
    res = run_mlv(repo, "checkout", env=QUICK)
    assert_locked_out(res, holder.pid)
    assert not (repo / "data").exists()
    assert snapshot(repo) == before

    holder.kill()
    res = run_mlv(repo, "checkout", env=QUICK)
    assert res.exit_code == 0, res.output
    assert read_tree(repo / "data") == expected


def test_gc_respects_the_lock(tracked: Path, hold_lock) -> None:
    repo = tracked
    objects = set(cache_objects(repo))
    assert len(objects) == 5  # b.bin, a.txt v1 and v2, two manifests
    holder = hold_lock(repo)
    before = snapshot(repo)
    res = run_mlv(repo, "gc", "--workspace", env=QUICK)
    assert_locked_out(res, holder.pid)
    assert set(cache_objects(repo)) == objects
    assert snapshot(repo) == before

    holder.kill()
    res = run_mlv(repo, "gc", "--workspace", env=QUICK)
    assert res.exit_code == 0, res.output
    assert len(cache_objects(repo)) == 3  # the v1 manifest and v1 a.txt are gone


@pytest.mark.parametrize("args", [["remove", "data"], ["move", "data", "moved"],
                                  ["add", "data"]])
def test_other_writing_commands_respect_the_lock(tracked: Path, hold_lock,
                                                 args: list[str]) -> None:
    repo = tracked
    (repo / "data" / "new.txt").write_text("new")  # so that `add` has work to do
    holder = hold_lock(repo)
    before = snapshot(repo)
    res = run_mlv(repo, *args, env=QUICK)
    assert_locked_out(res, holder.pid)
    assert snapshot(repo) == before
    holder.kill()
    res = run_mlv(repo, *args, env=QUICK)
    assert res.exit_code == 0, res.output
    assert snapshot(repo) != before


def test_lock_is_released_after_an_error(mlv, repo: Path) -> None:
    # A command that fails inside the lock must not keep it: the next one runs at once.
    (repo / "data" / "loop").symlink_to("missing-target")
    res = mlv("add", "data", cwd=repo)
    assert res.exit_code == 1 and "broken symlink" in res.stderr, res.output
    (repo / "data" / "loop").unlink()
    started = time.monotonic()
    res = run_mlv(repo, "add", "data", env={"MLV_LOCK_TIMEOUT": "10"})
    assert res.exit_code == 0, res.output
    assert time.monotonic() - started < 5


def test_concurrent_adds_of_different_folders_both_land(repo: Path) -> None:
    # Both change the same .gitignore: the lock serialises them so neither entry is lost.
    make_tree(repo, {f"d{i}": {"f": f"content {i}"} for i in range(4)})
    procs = [subprocess.Popen(MLV + ["add", f"d{i}"], cwd=repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "MLV_LOCK_TIMEOUT": "30"})
             for i in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
    lines = (repo / ".gitignore").read_text().splitlines()
    assert sorted(lines) == ["/d0", "/d1", "/d2", "/d3"]
    res = run_mlv(repo, "status")
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output
