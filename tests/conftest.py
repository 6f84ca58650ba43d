"""Shared fixtures: an isolated HOME, real git repos in tmp dirs, a CLI runner, helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlv.cli import main as cli_main

MLV = [sys.executable, "-m", "mlv"]


@pytest.fixture(autouse=True)
def isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh HOME, fixed git identity and terminal, and a short lock wait for every test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("MLV_LOCK_TIMEOUT", "1")
    monkeypatch.delenv("MLV_DEBUG", raising=False)


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _run_inprocess(args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]) -> Result:
    old = os.getcwd()
    os.chdir(cwd)
    capsys.readouterr()
    try:
        cli_main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


@pytest.fixture
def mlv(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run mlv in-process (fast): mlv("add", "data", cwd=repo)."""

    def run(*args: str, cwd: Path) -> Result:
        return _run_inprocess(list(args), cwd, capsys)

    return run


def run_mlv(cwd: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> Result:
    """Run the real `mlv` in a subprocess (end-to-end)."""
    proc = subprocess.run(MLV + list(args), cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    return repo


@pytest.fixture
def mlv_repo(git_repo: Path) -> Path:
    res = run_mlv(git_repo, "init")
    assert res.exit_code == 0, res.output
    git(git_repo, "add", ".mlv")
    git(git_repo, "commit", "-qm", "init mlv")
    return git_repo


def make_tree(root: Path, spec: dict[str, bytes | str | dict]) -> None:
    """make_tree(repo, {"data": {"a.txt": "hi", "sub": {"b": b"\\0"}}})"""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in spec.items():
        path = root / name
        if isinstance(value, dict):
            make_tree(path, value)
        else:
            path.write_bytes(value.encode() if isinstance(value, str) else value)


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file below root as {posix relative path: bytes}."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def cache_objects(repo: Path) -> dict[str, Path]:
    base = repo / ".mlv" / "cache" / "xxh128"
    if not base.exists():
        return {}
    return {p.parent.name + p.name: p for p in base.glob("*/*")}
