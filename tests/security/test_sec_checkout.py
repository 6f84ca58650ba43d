"""Checkout never loses the user's files, never writes through a symlink, never hangs on
special files; long names and a full disk are handled (issue 8, defects 3, 9, 10, 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlv import fsio
from tests.conftest import add_remote, git, make_tree, read_tree, run_mlv


def ok(res):  # noqa: ANN001, ANN201 - a Result from conftest
    assert res.exit_code == 0, res.output
    return res


def one_error(res, code: int = 1) -> str:  # noqa: ANN001 - a Result from conftest
    """The run failed with exactly one `error:` line and no traceback."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.output
    return errors[0]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- defect 11: long names ------------------------------------------------------------

LONG_FILE = "a" * 236 + ".bin"            # 240 bytes
LONG_FILE_MB = "é" * 118 + ".bin"         # 240 bytes in UTF-8, 122 characters
LONG_INNER = "b" * 250                    # 250 bytes, inside a tracked folder
LONG_INNER_MB = "日" * 83 + "x"           # 250 bytes in UTF-8


@pytest.mark.parametrize("name", [LONG_FILE, LONG_INNER, LONG_INNER_MB, "ü" * 127, "x" * 255],
                         ids=["240", "250", "250-utf8", "254-utf8", "255"])
def test_temp_names_fit_in_a_name_and_are_found_again(tmp_path: Path, name: str) -> None:
    path = str(tmp_path / name)
    tmp = os.path.basename(fsio.tmp_name(path))
    assert len(os.fsencode(tmp)) <= 255
    assert fsio.is_tmp_name(tmp)
    # a temp left by a process that died is removed, whatever the name's length
    stale = tmp.replace(f"{fsio.TMP_MARK}{os.getpid()}-", f"{fsio.TMP_MARK}{dead_pid()}-")
    (tmp_path / stale).write_bytes(b"half")
    (tmp_path / tmp).write_bytes(b"mine")  # this process is alive: its temp stays
    assert fsio.remove_stale_temps(path) == [stale]
    assert sorted(os.listdir(tmp_path)) == [tmp]


def test_temp_names_of_short_names_keep_their_old_form(tmp_path: Path) -> None:
    tmp = os.path.basename(fsio.tmp_name(str(tmp_path / "data")))
    assert tmp.startswith(".data.mlvtmp-")
    old = f".data{fsio.TMP_MARK}{dead_pid()}-0a1b2c3d-7"  # written by an older mlv
    (tmp_path / old).mkdir()
    assert fsio.remove_stale_temps(str(tmp_path / "data")) == [old]


def test_long_names_go_through_add_checkout_push_and_pull(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    make_tree(mlv_repo, {LONG_FILE: "long", LONG_FILE_MB: "accents",
                         "data": {LONG_INNER: "inner", LONG_INNER_MB: "kanji",
                                  "sub": {LONG_INNER: "deep"}}})
    ok(run_mlv(mlv_repo, "add", LONG_FILE, LONG_FILE_MB, "data"))
    want = read_tree(mlv_repo / "data")
    (mlv_repo / LONG_FILE).write_text("changed")
    (mlv_repo / "data" / LONG_INNER).write_text("changed")
    (mlv_repo / "data" / "sub" / LONG_INNER).unlink()
    ok(run_mlv(mlv_repo, "checkout", "--force"))
    assert (mlv_repo / LONG_FILE).read_text() == "long"
    assert read_tree(mlv_repo / "data") == want
    add_remote(mlv_repo, "local", request, tmp_path)
    ok(run_mlv(mlv_repo, "push"))
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "long names")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(clone))
    ok(run_mlv(clone, "pull"))
    assert (clone / LONG_FILE_MB).read_text() == "accents"
    assert read_tree(clone / "data") == want
    assert not [n for n in os.listdir(clone / "data") if fsio.is_tmp_name(n)]


@pytest.mark.parametrize("name", ["c" * 252, "ö" * 126], ids=["252", "252-utf8"])
def test_a_name_whose_pointer_cannot_exist_is_refused(mlv_repo: Path, name: str) -> None:
    (mlv_repo / name).write_text("x")
    line = one_error(run_mlv(mlv_repo, "add", name))
    assert "too long to track" in line and "unexpected" not in line
    assert sorted(os.listdir(mlv_repo)) == sorted([".git", ".mlv", name])


# ---- defect 10: a completely full disk --------------------------------------------------

def _disk_full(*_args: object, **_kwargs: object) -> None:
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_gc_and_status_work_on_a_full_disk(mlv_repo: Path, mlv, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:  # noqa: ANN001 - the runner fixture
    make_tree(mlv_repo, {"keep": {"a": "kept"}, "old.bin": "unused"})
    ok(run_mlv(mlv_repo, "add", "keep", "old.bin"))
    (mlv_repo / "old.bin.mlv").unlink()
    (mlv_repo / "keep" / "b").write_text("new")  # status has something to hash and remember
    for name in ("write", "pwrite", "ftruncate", "truncate", "fsync"):
        monkeypatch.setattr(os, name, _disk_full)
    res = ok(mlv("gc", "--workspace", cwd=mlv_repo))
    assert "Traceback" not in res.output
    res = mlv("status", cwd=mlv_repo)
    assert res.exit_code == 0 and "keep" in res.output and "Traceback" not in res.output
    monkeypatch.undo()
    assert "old.bin" not in run_mlv(mlv_repo, "status").output


def test_a_lock_file_that_cannot_be_created_is_one_line(
        mlv_repo: Path, mlv, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    lock = mlv_repo / ".mlv" / "tmp" / "lock"
    if lock.exists():
        lock.unlink()
    real_open = os.open

    def full_open(path, flags, *args, **kwargs):  # noqa: ANN001, ANN202 - os.open's shape
        if str(path) == str(lock):
            _disk_full()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", full_open)
    line = one_error(mlv("gc", "--workspace", cwd=mlv_repo))
    assert "no space left" in line and "unexpected" not in line
