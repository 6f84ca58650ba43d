"""What users see: progress, repro's stage lines, pull summaries, -q/-v, --json, and
`remote add` of a folder that does not exist."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from mlv import fsio
from mlv.cli import ui
from tests.conftest import MLV, add_remote, git, make_tree, one_error, run_mlv

BIG = 20 * 2**20  # more than hashing.SMALL: hashed in blocks


def ok(res: Any) -> None:
    assert res.exit_code == 0, res.output


def on_terminal(cwd: Path, *args: str, answer: bytes = b"") -> tuple[int, str, str]:
    """Run mlv with stdin and stderr on a pseudo-terminal (stdout on a pipe); returns
    (exit code, stdout, what the terminal received)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(MLV + list(args), cwd=cwd, stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave, env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    seen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if answer:
        os.write(master, answer)
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, out.decode(), seen.decode(errors="replace")


@pytest.fixture
def big_repo(mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    make_tree(mlv_repo, {"data": {"big.bin": os.urandom(BIG), "small.txt": "hi"}})
    # format 1: the big file moves as one object, reported block by block (format 2's
    # progress: test_remote_default_format.py)
    add_remote(mlv_repo, "local", request, tmp_path, fmt=1)
    return mlv_repo


# ---- progress -----------------------------------------------------------------------------

PROGRESS = re.compile(r"\d+/\d+ files, [\d.]+ [KMG]?i?B/[\d.]+ [KMG]?i?B, [\d.]+ [KMG]?i?B/s")


@pytest.mark.slow
def test_progress_shows_files_bytes_and_rate_on_a_terminal(big_repo: Path) -> None:
    code, out, term = on_terminal(big_repo, "add", "data")
    assert code == 0, term
    assert "hashing: " in term and PROGRESS.search(term), term
    assert "2/2 files, 20.0 MiB/20.0 MiB" in term  # the last frame, then the line is cleared
    assert term.rstrip("\r\n").endswith("\x1b[K")
    assert out.startswith("added data (2 files, 20.0 MiB)")

    code, _, term = on_terminal(big_repo, "push")
    assert code == 0, term
    assert "pushing: " in term and PROGRESS.search(term), term


@pytest.mark.slow
def test_no_progress_on_a_pipe_and_none_with_quiet(big_repo: Path) -> None:
    res = run_mlv(big_repo, "add", "data")
    ok(res)
    assert res.stderr == ""
    res = run_mlv(big_repo, "push")
    ok(res)
    assert res.stderr == "" and res.stdout.startswith("pushed 3 files, 20.0 MiB")

    for args in (("-q", "push", "--run-cache"), ("push", "-q"), ("checkout", "-q")):
        code, out, term = on_terminal(big_repo, *args)
        assert code == 0, term
        assert term == "" and out == "", args


def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every (files, bytes) report the CLI's progress receives."""
    calls: list[tuple[int, int]] = []
    real = ui.Progress.__call__

    def spy(self: ui.Progress, files: int = 0, nbytes: int = 0, **totals: int) -> None:
        if files or nbytes:
            calls.append((files, nbytes))
        real(self, files, nbytes, **totals)

    monkeypatch.setattr(ui.Progress, "__call__", spy)
    return calls


def test_bytes_are_reported_while_a_single_big_file_moves(mlv, big_repo: Path,  # type: ignore[no-untyped-def]
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsio, "COPY_BLOCK", 4 * 2**20)
    calls = recorded(monkeypatch)
    for args in (("add", "data/big.bin"), ("push",), ("fsck",)):
        calls.clear()
        ok(mlv(*args, cwd=big_repo))
        before_done = [n for files, n in calls if not files]
        assert len([n for n in before_done if n]) >= 3, (args, calls)  # blocks, as they go
        assert sum(n for _, n in calls) >= BIG, (args, calls)

    (big_repo / "data" / "big.bin").unlink()
    for sub in (big_repo / ".mlv" / "cache" / "xxh128").iterdir():
        for obj in sub.iterdir():
            obj.chmod(0o644)
            obj.unlink()
    calls.clear()
    ok(mlv("pull", cwd=big_repo))
    assert len([n for files, n in calls if n and not files]) >= 5, calls  # download blocks


def test_progress_line_has_rate_and_eta() -> None:
    progress = ui.Progress("pulling")
    progress(total_files=10, total_bytes=100 * 2**20)
    progress(3, 25 * 2**20)
    line = progress.line(progress.start + 5)
    assert line == "pulling: 3/10 files, 25.0 MiB/100.0 MiB, 5.0 MiB/s, ETA 0:15"
    assert progress.line(progress.start + 3600).endswith("7.1 KiB/s, ETA 3:00:00")


# ---- repro --------------------------------------------------------------------------------

def test_repro_prints_each_command_and_its_duration(mlv, mlv_repo: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(mlv_repo, {"mlv.yaml": "stages:\n  train:\n    cmd: echo trained > model.txt\n"
                                     "    outs: [model.txt]\n"})
    res = mlv("repro", cwd=mlv_repo)
    ok(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "running stage train (new stage): echo trained > model.txt"
    assert re.fullmatch(r"stage train done in \d+\.\d s", lines[1]), lines


# ---- pull into a fresh clone: a summary, per-file lines with -v -------------------------

SIZE = sum(len(f"file {i}") for i in range(120))


@pytest.fixture
def pushed(mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    make_tree(mlv_repo, {"data": {f"f{i:03}.txt": f"file {i}" for i in range(120)}})
    add_remote(mlv_repo, "local", request, tmp_path)
    ok(run_mlv(mlv_repo, "add", "data"))
    ok(run_mlv(mlv_repo, "push"))
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "data")
    return mlv_repo


def fresh_clone(repo: Path, tmp_path: Path, name: str) -> Path:
    clone = tmp_path / name
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    return clone


def test_pull_into_a_fresh_clone_prints_a_summary(mlv, pushed: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clone = fresh_clone(pushed, tmp_path, "clone")
    res = mlv("pull", cwd=clone)
    ok(res)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("fetched 121 files, ")
    assert lines[1] == f"120 added, 0 modified, 0 deleted, {SIZE} B written"
    assert len(lines) == 2

    clone = fresh_clone(pushed, tmp_path, "clone-v")
    res = mlv("pull", "-v", cwd=clone)
    ok(res)
    assert "A data/f000.txt" in res.stdout.splitlines()
    assert len([line for line in res.stdout.splitlines() if line.startswith("A ")]) == 120


# ---- -q and -v everywhere -------------------------------------------------------------------

def test_quiet_and_verbose_before_or_after_the_command(mlv, pushed: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for args in (("-q", "push"), ("push", "-q"), ("-q", "remote", "add", "x", str(tmp_path)),
                 ("remote", "remove", "x", "-q"), ("-q", "gc", "-w"), ("fsck", "-q"),
                 ("-q", "fetch"), ("config", "core.jobs", "4", "--quiet")):
        res = mlv(*args, cwd=pushed)
        ok(res)
        assert res.stdout == "" and res.stderr == "", args
    # what a command exists to show is shown also with -q
    assert mlv("-q", "config", "core.jobs", cwd=pushed).stdout == "4\n"
    assert mlv("-q", "remote", "list", cwd=pushed).stdout.startswith("store (default)")

    # status -q keeps its meaning: nothing printed, exit 1 when something differs
    assert mlv("status", "-q", cwd=pushed).exit_code == 0
    (pushed / "data" / "f000.txt").write_text("changed")
    for args in (("status", "-q"), ("-q", "status")):
        res = mlv(*args, cwd=pushed)
        assert (res.exit_code, res.stdout, res.stderr) == (1, "", ""), args
    res = mlv("-v", "checkout", "--force", cwd=pushed)
    ok(res)
    assert res.stdout.splitlines()[0] == "M data/f000.txt"
    res = mlv("add", "-q", "data", cwd=pushed)
    assert (res.exit_code, res.stdout) == (0, "")


# ---- --json -------------------------------------------------------------------------------

def as_json(res: Any) -> Any:
    ok(res)
    return json.loads(res.stdout)


def test_json_reports(mlv, pushed: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    got = as_json(mlv("push", "--json", cwd=pushed))
    assert got["pushed"].pop("seconds") >= 0
    # format 2 (the default) also says how many bytes crossed the wire (its index here)
    assert isinstance(got["pushed"].pop("wire_bytes"), int)
    assert got == {"remote": "store", "pushed": {
        "files": 0, "bytes": 0, "already": 121, "failed": {}, "missing": [], "corrupted": [],
        "verified": [], "refused": {}}}
    clone = fresh_clone(pushed, tmp_path, "clone")
    got = as_json(mlv("pull", "--json", cwd=clone))
    assert got["remote"] == "store" and got["fetched"]["files"] == 121
    assert len(got["checkout"]["added"]) == 120 and got["checkout"]["bytes"] == SIZE
    assert as_json(mlv("fetch", "--json", cwd=clone))["fetched"]["already"] == 121

    found = as_json(mlv("remote", "list", "--json", cwd=pushed))
    assert found == {"store": {"default": True, "url": str(tmp_path / "remote-store")}}
    assert as_json(mlv("fsck", "--json", cwd=pushed)) == {
        "where": "cache", "checked": 121, "damaged": {}, "lists_damaged": []}
    (pushed / "data.mlv").unlink()
    got = as_json(mlv("gc", "-w", "--dry", "--json", cwd=pushed))
    assert got["dry"] is True and len(got["removed"]) == 121 and got["kept"] == 0
    assert got["freed"] == sum(item["size"] for item in got["removed"])

    make_tree(pushed, {"mlv.yaml": "stages:\n  prep:\n    cmd: cp a b\n    deps: [a]\n"
                                   "    outs: [b]\n  train:\n    cmd: cp b c\n    deps: [b]\n"
                                   "    outs: [c]\n"})
    assert as_json(mlv("dag", "--json", cwd=pushed)) == {
        "nodes": ["prep", "train"], "edges": [{"from": "prep", "to": "train"}]}
    stages = as_json(mlv("stage", "list", "--json", cwd=pushed))
    assert stages["train"]["cmd"] == "cp b c" and stages["train"]["deps"] == ["b"]
    assert stages["prep"]["outs"] == [{"path": "b", "kind": "out", "cache": True,
                                       "persist": False}]


def test_json_is_printed_before_a_failure(mlv, pushed: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clone = fresh_clone(pushed, tmp_path, "clone")
    for sub in (tmp_path / "remote-store" / "xxh128").iterdir():
        for obj in list(sub.iterdir())[:1]:
            obj.chmod(0o644)
            obj.unlink()
    res = mlv("fetch", "--json", cwd=clone)
    assert res.exit_code == 1
    assert json.loads(res.stdout)["fetched"]["missing"]
    one_error(res, "missing from 'store'")


# ---- remote add of a folder that does not exist ----------------------------------------

def test_remote_add_of_a_missing_folder_warns(mlv, mlv_repo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "not here"
    res = mlv("remote", "add", "-d", "store", str(folder), cwd=mlv_repo)
    ok(res)
    assert res.stdout == f"added remote 'store' -> {folder} (default)\n"
    assert res.stderr == (f"warning: folder {folder} does not exist; `mlv push` needs it: "
                          f"create it (`mkdir -p '{folder}'`) or add the remote with "
                          "--create\n")
    assert not folder.exists()
    make_tree(mlv_repo, {"a.txt": "a"})
    ok(mlv("add", "a.txt", cwd=mlv_repo))
    one_error(mlv("push", cwd=mlv_repo), "does not exist")  # push still refuses


def test_remote_add_create(mlv, mlv_repo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "new" / "store"
    res = mlv("remote", "add", "--create", "-d", "store", str(folder), cwd=mlv_repo)
    ok(res)
    assert res.stdout.splitlines() == [f"created folder {folder}",
                                       f"added remote 'store' -> {folder} (default)"]
    assert folder.is_dir() and res.stderr == ""
    make_tree(mlv_repo, {"a.txt": "a"})
    ok(mlv("add", "a.txt", cwd=mlv_repo))
    ok(mlv("push", cwd=mlv_repo))
    (mlv_repo / "sub").mkdir()
    ok(mlv("remote", "add", "--create", "rel", "stores/rel", cwd=mlv_repo / "sub"))
    assert (mlv_repo / "stores" / "rel").is_dir()  # relative to the repository, as push
    (tmp_path / "file").write_text("x")
    one_error(mlv("remote", "add", "--create", "bad", str(tmp_path / "file" / "sub"),
                  cwd=mlv_repo), "cannot create the remote's folder")
    assert "bad" not in mlv("remote", "list", cwd=mlv_repo).stdout


@pytest.mark.parametrize("answer", [b"y\n", b"n\n"])
def test_remote_add_asks_on_a_terminal(mlv_repo: Path, tmp_path: Path, answer: bytes) -> None:
    folder = tmp_path / "store"
    code, out, term = on_terminal(mlv_repo, "remote", "add", "store", str(folder),
                                  answer=answer)
    assert code == 0, term
    assert f"folder {folder} does not exist; create it? [y/N]" in term
    assert folder.is_dir() == (answer == b"y\n")
    assert ("warning: folder" in term) == (answer == b"n\n")
    assert f"added remote 'store' -> {folder}" in out


def test_quiet_flag_is_reset_between_runs(mlv, mlv_repo: Path) -> None:  # type: ignore[no-untyped-def]
    assert mlv("-q", "remote", "list", cwd=mlv_repo).stdout == ""
    assert mlv("remote", "list", cwd=mlv_repo).stdout.startswith("no remotes")
    assert sys.modules["mlv.cli.ui"].is_quiet() is False


def test_a_long_run_prints_plain_progress_lines_when_not_on_a_terminal(  # type: ignore[no-untyped-def]
        mlv, big_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui.Progress, "PLAIN_EVERY", 0.0)  # as if every report came 10 s apart
    res = mlv("add", "data", cwd=big_repo)
    ok(res)
    lines = res.stderr.splitlines()
    assert lines and all(line.startswith("hashing: ") for line in lines), res.stderr
    assert "\r" not in res.stderr and "\x1b" not in res.stderr
    assert PROGRESS.search(res.stderr)
    assert mlv("-q", "push", cwd=big_repo).stderr == ""


def test_gc_cloud_reports_each_batch_it_deletes(mlv, mlv_repo: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                               request: pytest.FixtureRequest,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mlv.api import gc as gc_api

    monkeypatch.setattr(gc_api, "DELETE_BATCH", 2)
    add_remote(mlv_repo, "local", request, tmp_path, fmt=1)  # deleted one by one, in batches
    make_tree(mlv_repo, {"data": {f"f{i}": f"v{i}" for i in range(5)}})
    ok(mlv("add", "data", cwd=mlv_repo))
    ok(mlv("push", cwd=mlv_repo))
    ok(mlv("remove", "--outs", "data.mlv", cwd=mlv_repo))
    calls = recorded(monkeypatch)
    res = mlv("gc", "-w", "--cloud", "--grace", "0", "-f", cwd=mlv_repo)
    ok(res)
    assert "deleted 6 objects" in res.stdout, res.stdout  # 5 files and the manifest
    assert [files for files, _ in calls] == [1, 2, 2, 1], calls  # manifest first, in batches
