"""Shared fixtures: an isolated HOME, real git repos in tmp dirs, a CLI runner, helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def one_error(res: Any, *words: str, code: int = 1) -> str:
    """The run failed with exit `code` and exactly one `error:` line holding every word,
    and printed no traceback; returns that line. `res` is a Result or a CompletedProcess."""
    exit_code = res.exit_code if hasattr(res, "exit_code") else res.returncode
    shown = res.stdout + res.stderr
    assert exit_code == code, shown
    assert "Traceback" not in shown, shown
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    for word in words:
        assert word in errors[0], res.stderr
    return errors[0]


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


@pytest.fixture(scope="session")
def mlv_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`git init` + `mlv init` + a commit, done once per worker; mlv_repo copies it."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    repo.mkdir()
    env = {**os.environ, "HOME": str(tmp_path_factory.mktemp("template-home")),
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Test",
           "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "Test",
           "GIT_COMMITTER_EMAIL": "test@example.com"}
    for args in (["git", "init", "-q", "-b", "main"], [*MLV, "init"], ["git", "add", ".mlv"],
                 ["git", "commit", "-qm", "init mlv"]):
        subprocess.run(args, cwd=repo, env=env, check=True, capture_output=True)
    return repo


@pytest.fixture
def mlv_repo(git_repo: Path, mlv_template: Path) -> Path:
    shutil.rmtree(git_repo)
    shutil.copytree(mlv_template, git_repo, symlinks=True)
    return git_repo


def clone(origin: Path, parent: Path, name: str = "victim") -> Path:
    """`git clone` origin into parent/name (a teammate's or a victim's clone)."""
    dest = parent / name
    git(parent, "clone", "-q", str(origin), str(dest))
    return dest


def commit_all(repo: Path, message: str = "attack") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


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


def xxh(data: bytes) -> str:
    """The object id mlv gives these bytes."""
    import xxhash

    return str(xxhash.xxh3_128_hexdigest(data))


def file_xxh(path: Path) -> str:
    import xxhash

    hasher = xxhash.xxh3_128()
    with open(path, "rb") as fobj:
        while block := fobj.read(1 << 22):
            hasher.update(block)
    return str(hasher.hexdigest())


def cache_objects(repo: Path) -> dict[str, Path]:
    base = repo / ".mlv" / "cache" / "xxh128"
    if not base.exists():
        return {}
    return {p.parent.name + p.name: p for p in base.glob("*/*")}


# ---- remotes: a real S3-protocol endpoint (moto's server) on 127.0.0.1 -----------------

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """moto's threaded S3 server on a free port of 127.0.0.1, for the whole session.

    It must start: a test that needs S3 fails rather than skips when it cannot.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
              ) -> str:
    """A fresh, empty bucket for one test; AWS_* variables point at the test endpoint."""
    import re
    import uuid

    import boto3

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{name}-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


def add_remote(mlv_repo: Path, kind: str, request: pytest.FixtureRequest,
               tmp_path: Path, name: str = "store", fmt: int | None = None) -> str:
    """Configure a default remote of `kind` ("local" or "s3") in `mlv_repo`; returns its URL.
    `fmt` sets its storage format (`--format`; without it, mlv's default: 2)."""
    fmt_option = ("--format", str(fmt)) if fmt is not None else ()
    if kind == "local":
        folder = tmp_path / f"remote-{name}"
        folder.mkdir(exist_ok=True)
        url = str(folder)
        steps = [("remote", "add", "-d", name, url, *fmt_option)]
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        url = f"s3://{bucket}/project"
        steps = [("remote", "add", "-d", name, url, *fmt_option),
                 ("remote", "modify", name, "endpoint_url", endpoint)]
    for args in steps:
        res = run_mlv(mlv_repo, *args)
        assert res.exit_code == 0, res.output
    return url


def remote_oids(repo: Path, name: str | None = None) -> set[str]:
    """The object ids remote `name` (else the default one) of `repo` holds, whatever its
    storage format (loose objects, packs, recipes)."""
    from mlv.api import remote as remote_api
    from mlv.repo import Repo

    return remote_api.resolve(Repo.find(str(repo)), name).list_oids()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def remote_kind(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over both remote kinds: a local folder and the S3 endpoint."""
    return str(request.param)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (MLV_REQUIRE_S3=1) a skipped S3 test fails the run: S3 must really be tested."""
    if not os.environ.get("MLV_REQUIRE_S3"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    s3_skips = [r.nodeid for r in skipped if "s3" in r.nodeid.lower()]
    if s3_skips:
        print(f"\nS3 tests were skipped in CI: {s3_skips[:5]}")
        session.exitstatus = 1


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's cache folder (clones of other repositories) under tmp_path."""
    home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def mlv_ok(repo: Path, *args: str) -> None:
    """Run mlv in-process (fast) in `repo`; it must succeed."""
    old = os.getcwd()
    os.chdir(repo)
    try:
        cli_main(list(args))
    except SystemExit as exc:
        assert not exc.code, f"mlv {' '.join(args)} exited with {exc.code}"
    finally:
        os.chdir(old)
