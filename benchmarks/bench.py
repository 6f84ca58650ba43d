#!/usr/bin/env python3
"""Benchmark mlv against DVC on the same generated data, in the same run.

Standard library only; see benchmarks/README.md for usage.

To add a scenario group (e.g. pipelines): write ``group_xxx(bench, tool)``
that makes a repo with ``fresh_repo``, copies a dataset in with ``copy_tree``, times
commands with ``timed`` and stores each result with ``bench.record``; register it with
``@group("xxx", datasets=(...))``. New datasets go in ``DATASETS``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from harness import clean_env, log, median_cell, nproc, on_sigterm

KIB = 1024
MIB = 1024 * KIB
TIMEOUT = 3600.0  # seconds per tool command; set from --timeout
FALLBACK_DVC = "/work/dvcvenv/bin/dvc"
FALLBACK_MOTO = "/work/devvenv/bin/moto_server"
# moto accepts any credentials; both tools read these (boto3/botocore through fsspec).
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


# --------------------------------------------------------------------- tools
@dataclass(frozen=True)
class Tool:
    name: str  # column name: "mlv" or "dvc"
    exe: str | None  # absolute path, None when not found
    setup: tuple[tuple[str, ...], ...]  # untimed tool commands right after `git init`
    pointer_suffix: str  # pointer file written next to a tracked path: data -> data.dvc
    config_file: str  # repo config that `remote add` writes; committed so clones see the remote
    endpoint_option: str  # `remote modify` option for an S3 endpoint URL
    version: str = "?"

    def cmd(self, *args: str) -> list[str]:
        assert self.exe is not None
        return [self.exe, *args]


def make_tools(args: argparse.Namespace) -> list[Tool]:
    def resolve(path: str | None) -> str | None:
        found = shutil.which(path) if path else None
        return os.path.abspath(found) if found else None

    dvc = args.dvc or shutil.which("dvc") or (FALLBACK_DVC if os.access(FALLBACK_DVC, os.X_OK) else None)
    dvc_setup = (("init",), ("config", "core.analytics", "false"), ("config", "core.check_update", "false"))
    return [Tool("mlv", resolve(args.mlv or "mlv"), (("init",),), ".mlv", ".mlv/config", "endpoint_url"),
            Tool("dvc", resolve(dvc), dvc_setup, ".dvc", ".dvc/config", "endpointurl")]


# ------------------------------------------------------------ running things
def execute(cmd: list[str], cwd: Path, env: dict[str, str],
            quiet: bool = False) -> tuple[float | None, str]:
    """(wall-clock seconds, or None on non-zero exit/timeout; stdout). Logs failures."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                              text=True, errors="replace", timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        quiet or log(f"FAILED: {shlex.join(cmd)} (in {cwd}): {exc}")
        return None, ""
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        if not quiet:
            tail = "\n".join((proc.stderr or proc.stdout).rstrip().splitlines()[-15:])
            log(f"FAILED: {shlex.join(cmd)} (in {cwd}) exited {proc.returncode}")
            log("  " + (tail or "(no output)").replace("\n", "\n  "))
        return None, proc.stdout
    return elapsed, proc.stdout


SETTLE_SECONDS = 2.0


def settle() -> None:
    """Let write-back and discards from earlier steps (copies, deleted repos) finish, so
    they do not land inside the next timed command, whichever tool it belongs to."""
    os.sync()
    time.sleep(SETTLE_SECONDS)
    os.sync()


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float | None:
    """Wall-clock seconds of one tool command, or None if it failed or timed out."""
    settle()
    return execute(cmd, cwd, env)[0]


def run(cmd: list[str], cwd: Path, env: dict[str, str], quiet: bool = False) -> bool:
    """Run an untimed command; True on success."""
    return execute(cmd, cwd, env, quiet)[0] is not None


def tool_version(exe: str | None, env: dict[str, str], cwd: Path) -> str:
    if exe is None:
        return "not found"
    seconds, out = execute([exe, "--version"], cwd, env, quiet=True)
    return (out.strip().splitlines() or ["?"])[0] if seconds is not None else "unknown (--version failed)"


# ------------------------------------------------------------------ datasets
@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    files: int
    total_bytes: int
    fingerprint: str

    @classmethod
    def scan(cls, name: str, path: Path) -> Dataset:
        return cls(name, path, *fingerprint(path))

    def describe(self) -> str:
        size = (f"{self.total_bytes / MIB:.1f} MiB" if self.total_bytes >= MIB
                else f"{self.total_bytes / KIB:.1f} KiB")
        return f"{self.name} = {self.files} files, {size}"


def fingerprint(root: Path) -> tuple[int, int, str]:
    """(file count, total bytes, sha256 over sorted relative paths, sizes and contents)."""
    h, count, total = hashlib.sha256(), 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            size = path.stat().st_size
            h.update(f"{path.relative_to(root).as_posix()}\0{size}\0".encode())
            with open(path, "rb") as f:
                while block := f.read(MIB):
                    h.update(block)
            count, total = count + 1, total + size
    return count, total, h.hexdigest()


def make_small(name: str, dest: Path, seed: int, count: int) -> Dataset:
    """dNN/sN/fNNN.bin with 100 files per leaf; every s9 leaf is two levels deeper."""
    rng = random.Random(seed)
    for i in range(count):
        top, sub = i // 1000, (i // 100) % 10
        folder = dest / f"d{top:02d}" / f"s{sub}" / ("deep/er" if sub == 9 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i % 100:03d}.bin").write_bytes(rng.randbytes(rng.randint(1 * KIB, 8 * KIB)))
    return Dataset.scan(name, dest)


def flat_files(name: str, dest: Path, seed: int, count: int, size: int, block: int) -> Dataset:
    """`count` files of `size` seeded random bytes, written `block` bytes at a time."""
    rng = random.Random(seed)
    dest.mkdir(parents=True)
    for k in range(count):
        with open(dest / f"part{k}.bin", "wb") as f:
            for _ in range(size // block):
                f.write(rng.randbytes(block))
    return Dataset.scan(name, dest)


def csv_rows(rng: random.Random, first: int, count: int) -> bytes:
    """`count` CSV rows numbered from `first`: an id, a 24-digit hex key, a label and a
    value (about 60 bytes a row, no two rows alike)."""
    keys = rng.randbytes(12 * count).hex()
    labels = ("alpha", "beta", "gamma", "delta", "epsilon")
    return "".join(f"{first + i},{keys[24 * i:24 * i + 24]},{labels[i % 5]},"
                   f"{(first + i) * 7919 % 1000003 / 1000:.3f}\n"
                   for i in range(count)).encode()


def make_csv(name: str, dest: Path, seed: int, size: int) -> Dataset:
    """`dest/v1/data.csv` of about `size` bytes and `dest/v2/data.csv`: the same with 2 %
    more rows appended and one row in the middle changed (as a data set grows)."""
    rng = random.Random(seed)
    (dest / "v1").mkdir(parents=True)
    (dest / "v2").mkdir()
    rows, block = 0, 16384
    with open(dest / "v1" / "data.csv", "wb") as f:
        f.write(b"id,key,label,value\n")
        while f.tell() < size:
            f.write(csv_rows(rng, rows, block))
            rows += block
    data = (dest / "v1" / "data.csv").read_bytes()
    middle = data.index(b"\n", len(data) // 2) + 1
    end = data.index(b"\n", middle)
    row = data[middle:end].split(b",")
    changed = b",".join(row[:2] + [b"changed", row[3]])
    appended, extra = [], 0
    while extra < len(data) // 50:
        appended.append(csv_rows(rng, rows, block))
        extra += len(appended[-1])
        rows += block
    with open(dest / "v2" / "data.csv", "wb") as f:
        f.write(data[:middle] + changed + data[end:])
        f.write(b"".join(appended))
    return Dataset.scan(name, dest / "v1")


DATASETS: dict[str, Callable[[argparse.Namespace, Path], Dataset]] = {
    "small": lambda a, d: make_small("small", d, a.seed, a.small_files),
    # only made when --s3-small-files differs from --small-files (see s3_small_name)
    "s3-small": lambda a, d: make_small("s3-small", d, a.seed, a.s3_small_files),
    "large": lambda a, d: flat_files("large", d, a.seed + 1, a.large_files, a.large_mb * MIB, MIB),
    "tiny": lambda a, d: flat_files("tiny", d, a.seed + 2, 10, KIB, KIB),
    "csv": lambda a, d: make_csv("csv", d, a.seed + 3, a.csv_mb * MIB),
}


def copy_tree(src: Path, dst: Path) -> bool:
    """Real copy (no hard links: tools may modify files), then flush it to disk."""
    ok = subprocess.run(["cp", "-a", str(src), str(dst)]).returncode == 0
    os.sync()  # so write-back of the copy does not land inside the timed step
    return ok


# ---------------------------------------------------------------- S3 (moto)
class SetupError(Exception):
    """Something the benchmark needs (not a timed tool command) could not be set up."""


class MotoServer:
    """moto's S3 server, run as its own process on a free port. It accepts unsigned
    requests, so buckets are made with a plain HTTP PUT (no boto3 needed here)."""

    def __init__(self, exe: str, log_path: Path, env: dict[str, str]):
        with socket.socket() as s:  # a free port; moto binds it right after
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.exe, self.endpoint, self.log_path = exe, f"http://127.0.0.1:{port}", log_path
        self._log = open(log_path, "wb")  # moto logs every request: keep it off our stderr
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        # no proxies for 127.0.0.1, whatever the calling environment says
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.request("GET", "/"):  # ListBuckets
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited {self.proc.returncode}" if self.proc.poll() is not None
                       else f"no answer in {timeout:g}s")
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-10:]
                raise SetupError(f"moto server {self.exe} did not start on {self.endpoint} ({why})"
                                 + "".join(f"\n  log: {line}" for line in tail or ["(empty)"]))
            time.sleep(0.2)

    def request(self, method: str, path: str) -> bool:
        req = urllib.request.Request(self.endpoint + path, method=method,
                                     data=None if method == "GET" else b"")
        try:
            with self._http.open(req, timeout=30) as resp:
                return 200 <= resp.status < 300
        except OSError:  # URLError, HTTPError, connection refused, timeout
            return False

    def create_bucket(self, name: str) -> None:
        if not self.request("PUT", f"/{name}"):
            raise SetupError(f"could not create bucket {name} on {self.endpoint}")

    def stored_bytes(self, bucket: str, prefix: str = "") -> int:
        """Bytes of every object in `bucket` under `prefix` (ListObjectsV2, page by page)."""
        import urllib.parse
        import xml.etree.ElementTree as ET

        total, token, ns = 0, "", "{http://s3.amazonaws.com/doc/2006-03-01/}"
        while True:
            query = {"list-type": "2", "prefix": prefix} | (
                {"continuation-token": token} if token else {})
            url = f"{self.endpoint}/{bucket}?{urllib.parse.urlencode(query)}"
            with self._http.open(urllib.request.Request(url), timeout=60) as resp:
                doc = ET.fromstring(resp.read())
            total += sum(int(e.text or 0) for e in doc.iter(f"{ns}Size"))
            token = doc.findtext(f"{ns}NextContinuationToken") or ""
            if doc.findtext(f"{ns}IsTruncated") != "true" or not token:
                return total

    def reset(self) -> None:
        """Drop all buckets and objects (moto keeps them in memory and temp files)."""
        self.request("POST", "/moto-api/reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --------------------------------------------------------------------- bench
@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    env: dict[str, str]
    datasets: dict[str, Dataset] = field(default_factory=dict)
    timings: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    flags: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    repos_made: int = 0
    rep: int = 0  # current repetition, 0-based
    moto: MotoServer | None = None  # started by s3() on first use, stopped by close()
    # "what (scenario)" -> tool -> bytes per rep (None = failed); `sized` -> the bytes
    # they are compared with (the file's size)
    volumes: dict[str, dict[str, list[int | None]]] = field(default_factory=dict)
    sized: dict[str, int] = field(default_factory=dict)

    def s3(self) -> MotoServer:
        if self.moto is None:
            exe = self.args.moto_server or shutil.which("moto_server") or FALLBACK_MOTO
            log(f"starting moto server: {exe}")
            self.moto = MotoServer(exe, self.root / "moto.log", self.env)
            self.moto.wait_ready()
            log(f"moto server answers on {self.moto.endpoint}")
        return self.moto

    def close(self) -> None:
        if self.moto is not None:
            self.moto.stop()

    def record(self, scenario: str, tool: Tool, seconds: float | None, flag: str = "") -> None:
        self.timings.setdefault(scenario, {}).setdefault(tool.name, []).append(seconds)
        if flag:
            self.flags.setdefault(scenario, {}).setdefault(tool.name, set()).add(flag)
        log(f"  {tool.name} {scenario}: {'failed' if seconds is None else f'{seconds:.3f}s'} {flag}")

    def record_bytes(self, what: str, tool: Tool, nbytes: int | None, of: int) -> None:
        """Bytes moved or stored (`of`: the size of the data they are about)."""
        self.volumes.setdefault(what, {}).setdefault(tool.name, []).append(nbytes)
        self.sized[what] = of
        log(f"  {tool.name} {what}: {'unknown' if nbytes is None else f'{nbytes / MIB:.1f} MiB'}")

    def fail(self, tool: Tool, *scenarios: str) -> None:
        for s in scenarios:
            self.record(s, tool, None)

    def warn(self, msg: str) -> None:
        self.notes.append(f"!!! WARNING (rep {self.rep + 1}): {msg}")
        log(self.notes[-1])


@contextlib.contextmanager
def scratch_path(bench: Bench, tool: Tool, name: str) -> Iterator[Path]:
    """A new, not yet existing path in the scratch folder; removed after (unless --keep)."""
    bench.repos_made += 1
    path = bench.root / "repos" / f"{bench.repos_made:03d}-{tool.name}-{name}"
    try:
        yield path
    finally:
        if not bench.args.keep:
            set_aside(bench.root, path)


_SET_ASIDE = itertools.count()


def set_aside(root: Path, path: Path) -> None:
    """Free the big files now, but keep the many small ones until the run ends.

    ext4 avoids reusing an inode for about 30 s after it is freed, and finding free
    inodes then costs a scan per new file: after 20,000 files are deleted, creating
    20,000 more took 7-14 s of kernel time instead of 1 s here, whichever tool came
    next. Keeping small files until the end keeps that out of every timed step.
    """
    if not path.exists():
        return
    for folder, _dirs, files in os.walk(path):
        for name in files:
            file = os.path.join(folder, name)
            try:
                if os.lstat(file).st_size >= 1 << 20:
                    os.unlink(file)
            except OSError:
                pass
    trash = root / "trash"
    trash.mkdir(exist_ok=True)
    try:
        path.rename(trash / f"{next(_SET_ASIDE)}-{path.name}")
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def fresh_repo(bench: Bench, tool: Tool, name: str) -> Iterator[Path | None]:
    """New git repo with `<tool> init` done and committed; None if setup failed. Removed after."""
    with scratch_path(bench, tool, name) as repo:
        repo.mkdir(parents=True)
        env = bench.env
        ok = (run(["git", "-c", "init.defaultBranch=main", "init", "-q"], repo, env)
              and run(["git", "config", "user.name", "Bench"], repo, env)
              and run(["git", "config", "user.email", "bench@example.invalid"], repo, env)
              and all(run(tool.cmd(*step), repo, env) for step in tool.setup))
        if ok:
            run(["git", "add", "-A"], repo, env, quiet=True)
            run(["git", "commit", "-q", "-m", f"{tool.name} init"], repo, env, quiet=True)
        yield repo if ok else None


def commit_pointer(bench: Bench, tool: Tool, repo: Path, target: str) -> None:
    """Untimed: commit the pointer file and .gitignore, as a user would."""
    paths = [p for p in (target + tool.pointer_suffix, ".gitignore") if (repo / p).exists()]
    if paths:
        run(["git", "add", "--", *paths], repo, bench.env, quiet=True)
        run(["git", "commit", "-q", "-m", f"track {target}"], repo, bench.env, quiet=True)


def check_tree(bench: Bench, tool: Tool, action: str, path: Path, ds: Dataset) -> str:
    """Untimed: compare a restored tree with its dataset. "" if identical, else warn and "!"."""
    got = fingerprint(path) if path.is_dir() else (0, 0, "")
    if got == (ds.files, ds.total_bytes, ds.fingerprint):
        return ""
    bench.warn(f"{tool.name} {action} restored a DIFFERENT tree: {got[0]} files, "
               f"{got[1]} bytes (expected {ds.files} files, {ds.total_bytes} bytes"
               f"{', same counts but different names or content' if got[:2] == (ds.files, ds.total_bytes) else ''})")
    return "!"


def size_label(ds: Dataset) -> str:
    return f"{ds.files} x {ds.total_bytes / ds.files / MIB:g} MiB files"


# ------------------------------------------------------------ scenario groups
GroupFn = Callable[[Bench, Tool], None]


DatasetNames = tuple[str, ...] | Callable[[argparse.Namespace], tuple[str, ...]]


@dataclass(frozen=True)
class Group:
    datasets: DatasetNames  # generated once per run, before the first rep
    run: GroupFn

    def needs(self, args: argparse.Namespace) -> tuple[str, ...]:
        return self.datasets(args) if callable(self.datasets) else self.datasets


GROUPS: dict[str, Group] = {}
DEFAULT_GROUPS = "small,large,startup"


def group(name: str, datasets: DatasetNames) -> Callable[[GroupFn], GroupFn]:
    def register(fn: GroupFn) -> GroupFn:
        GROUPS[name] = Group(datasets, fn)
        return fn
    return register


@group("small", datasets=("small",))
def group_small(bench: Bench, tool: Tool) -> None:
    ds, env = bench.datasets["small"], bench.env
    s_add, s_status, s_checkout = (f"add {ds.files} small files",
                                   f"status no-op ({ds.files} small files)",
                                   f"checkout {ds.files} small files")
    with fresh_repo(bench, tool, "small") as repo:
        if repo is None or not copy_tree(ds.path, repo / "data"):
            return bench.fail(tool, s_add, s_status, s_checkout)
        t = timed(tool.cmd("add", "data"), repo, env)
        bench.record(s_add, tool, t)
        if t is None:
            return bench.fail(tool, s_status, s_checkout)
        commit_pointer(bench, tool, repo, "data")

        run(tool.cmd("status"), repo, env)  # warm-up
        bench.record(s_status, tool, timed(tool.cmd("status"), repo, env))

        set_aside(bench.root, repo / "data")  # gone from the repo, as after `rm -rf data`
        t = timed(tool.cmd("checkout"), repo, env)
        bench.record(s_checkout, tool, t,
                     "" if t is None else check_tree(bench, tool, "checkout", repo / "data", ds))


@group("large", datasets=("large",))
def group_large(bench: Bench, tool: Tool) -> None:
    ds = bench.datasets["large"]
    s_add = f"add {size_label(ds)}"
    with fresh_repo(bench, tool, "large") as repo:
        if repo is None or not copy_tree(ds.path, repo / "big"):
            return bench.fail(tool, s_add)
        bench.record(s_add, tool, timed(tool.cmd("add", "big"), repo, bench.env))


@group("startup", datasets=("tiny",))
def group_startup(bench: Bench, tool: Tool) -> None:
    ds, env = bench.datasets["tiny"], bench.env
    s_version, s_status = "`--version`", f"status no-op (1 tracked dir, {ds.files} files)"
    run(tool.cmd("--version"), bench.root, env, quiet=True)  # warm-up; outside any repo
    bench.record(s_version, tool, timed(tool.cmd("--version"), bench.root, env))
    with fresh_repo(bench, tool, "startup") as repo:
        if repo is None or not (copy_tree(ds.path, repo / "data")
                                and run(tool.cmd("add", "data"), repo, env)):
            return bench.fail(tool, s_status)
        commit_pointer(bench, tool, repo, "data")
        run(tool.cmd("status"), repo, env)  # warm-up
        bench.record(s_status, tool, timed(tool.cmd("status"), repo, env))


def push_pull(bench: Bench, tool: Tool, ds: Dataset, what: str, where: str, noop: bool,
              url: str, options: dict[str, str], env: dict[str, str]) -> None:
    """Repo with `ds` added (untimed) and remote `store` (default, committed). Timed: first
    `push`, then (if `noop`) a second `push` with nothing to send, then `pull` in a fresh
    `git clone`, whose tree is checked against the dataset (untimed)."""
    s_push, s_noop, s_pull = (f"push {what} ({where})", f"push no-op ({what}, {where})",
                              f"pull {what} ({where})")
    scenarios = (s_push, s_noop, s_pull) if noop else (s_push, s_pull)
    with fresh_repo(bench, tool, f"push-{ds.name}") as repo, \
            scratch_path(bench, tool, f"clone-{ds.name}") as clone:
        if repo is None or not (copy_tree(ds.path, repo / "data")
                                and run(tool.cmd("add", "data"), repo, env)):
            return bench.fail(tool, *scenarios)
        commit_pointer(bench, tool, repo, "data")
        if not add_store(tool, repo, url, options, env):
            return bench.fail(tool, *scenarios)

        t = timed(tool.cmd("push"), repo, env)
        bench.record(s_push, tool, t)
        if t is None:
            return bench.fail(tool, *scenarios[1:])
        if noop:
            bench.record(s_noop, tool, timed(tool.cmd("push"), repo, env))

        if not run(["git", "clone", "-q", str(repo), str(clone)], bench.root, env):
            return bench.fail(tool, s_pull)
        t = timed(tool.cmd("pull"), clone, env)
        bench.record(s_pull, tool, t,
                     "" if t is None else check_tree(bench, tool, "pull", clone / "data", ds))


@group("push-local", datasets=("small", "large"))
def group_push_local(bench: Bench, tool: Tool) -> None:
    small, large = bench.datasets["small"], bench.datasets["large"]
    for ds, what, noop in ((small, f"{small.files} small files", True), (large, size_label(large), False)):
        with scratch_path(bench, tool, f"remote-{ds.name}") as remote:
            remote.mkdir(parents=True)  # a fresh, empty local folder
            push_pull(bench, tool, ds, what, "local", noop, str(remote),
                      remote_format(bench, tool), bench.env)


def add_store(tool: Tool, repo: Path, url: str, options: dict[str, str],
              env: dict[str, str]) -> bool:
    """Add the default remote `store` at `url` with `options`, and commit its config
    (untimed). False if a step failed."""
    return (run(tool.cmd("remote", "add", "-d", "store", url), repo, env)
            and all(run(tool.cmd("remote", "modify", "store", k, v), repo, env)
                    for k, v in options.items())
            and run(["git", "add", "--", tool.config_file], repo, env)
            and run(["git", "commit", "-q", "-m", "remote store"], repo, env))


def remote_format(bench: Bench, tool: Tool) -> dict[str, str]:
    """mlv's remote option for --mlv-format (DVC has one format)."""
    return {"format": bench.args.mlv_format} if tool.name == "mlv" else {}


def s3_small_name(args: argparse.Namespace) -> str:
    """The S3 group reuses the small dataset unless --s3-small-files asks for another size."""
    return "small" if args.s3_small_files == args.small_files else "s3-small"


@group("push-s3", datasets=lambda a: (s3_small_name(a), "large"))
def group_push_s3(bench: Bench, tool: Tool) -> None:
    small, large = bench.datasets[s3_small_name(bench.args)], bench.datasets["large"]
    moto = bench.s3()  # one server for the whole run, started on first use
    bucket = f"bench-r{bench.rep + 1}-{tool.name}"  # fresh bucket per tool per rep
    moto.create_bucket(bucket)
    try:
        for ds, what, noop in ((small, f"{small.files} small files", True), (large, size_label(large), False)):
            push_pull(bench, tool, ds, what, "S3", noop, f"s3://{bucket}/{ds.name}",
                      {tool.endpoint_option: moto.endpoint, **remote_format(bench, tool)},
                      {**bench.env, **S3_ENV})
    finally:
        moto.reset()  # free moto's memory and temp files before the next tool runs


@group("big-s3", datasets=("large",))
def group_big_s3(bench: Bench, tool: Tool) -> None:
    """First push, no-op push and pull of the large files to S3, and what they store."""
    large = bench.datasets["large"]
    moto = bench.s3()
    bucket = f"bench-r{bench.rep + 1}-{tool.name}-big"
    moto.create_bucket(bucket)
    try:
        push_pull(bench, tool, large, size_label(large), "S3", True, f"s3://{bucket}/large",
                  {tool.endpoint_option: moto.endpoint, **remote_format(bench, tool)},
                  {**bench.env, **S3_ENV})
        bench.record_bytes(f"stored on S3 after push ({size_label(large)})", tool,
                           moto.stored_bytes(bucket), large.total_bytes)
    finally:
        moto.reset()


def timed_out(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float | None, str]:
    """Like `timed`, and the command's stdout."""
    settle()
    return execute(cmd, cwd, env)


def wire_bytes(stdout: str) -> int | None:
    """The bytes mlv says crossed the wire (`wire_bytes` in its --json output, summed)."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None

    def walk(node: object) -> int:
        if isinstance(node, dict):
            return sum(v if k == "wire_bytes" and isinstance(v, int) else walk(v)
                       for k, v in node.items())
        return 0

    return walk(doc)


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files below `path` (0 when there is none)."""
    return sum(os.lstat(os.path.join(d, f)).st_size
               for d, _, files in os.walk(path) for f in files)


def same_file(a: Path, b: Path) -> bool:
    return a.is_file() and a.stat().st_size == b.stat().st_size and \
        fingerprint_file(a) == fingerprint_file(b)


def fingerprint_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def csv_remote(bench: Bench, tool: Tool) -> Iterator[tuple[str, dict[str, str], dict[str, str],
                                                            Callable[[], int]]]:
    """(url, `remote modify` options, environment, bytes stored now) of a fresh remote of
    the kind --csv-remote names."""
    if bench.args.csv_remote == "local":
        with scratch_path(bench, tool, "remote-csv") as folder:
            folder.mkdir(parents=True)
            yield (str(folder), remote_format(bench, tool), bench.env,
                   lambda: folder_bytes(folder))
        return
    moto = bench.s3()
    bucket = f"bench-r{bench.rep + 1}-{tool.name}-csv"
    moto.create_bucket(bucket)
    try:
        yield (f"s3://{bucket}/csv", {tool.endpoint_option: moto.endpoint,
                                      **remote_format(bench, tool)},
               {**bench.env, **S3_ENV}, lambda: moto.stored_bytes(bucket))
    finally:
        moto.reset()


@group("csv", datasets=("csv",))
def group_csv(bench: Bench, tool: Tool) -> None:
    """A big CSV pushed, then a new version of it (2 % more rows appended, one row in the
    middle changed) added and pushed again; then pulled into a clone that has the old
    version. Timed: the first push, the re-push and that pull. Bytes: what the re-push
    sent and newly stored on the remote, and what the pull received."""
    ds = bench.datasets["csv"]
    v1, v2 = ds.path / "data.csv", ds.path.parent / "v2" / "data.csv"
    size = v2.stat().st_size
    where = bench.args.csv_remote if bench.args.csv_remote == "local" else "S3"
    label = f"{ds.total_bytes / MIB:.0f} MiB CSV"
    s_push, s_repush, s_pull = (f"push {label} ({where})",
                                f"re-push {label}, 2 % appended + 1 row changed ({where})",
                                f"pull of that new version into a clone with the old ({where})")
    b_sent, b_stored, b_got = ("re-push: sent", "re-push: newly stored on the remote",
                               "pull of the new version: received")
    cache = ".mlv/cache" if tool.name == "mlv" else ".dvc/cache"
    json_flag = ["--json"] if tool.name == "mlv" else []
    with csv_remote(bench, tool) as (url, options, env, stored), \
            fresh_repo(bench, tool, "csv") as repo, \
            scratch_path(bench, tool, "clone-csv") as clone:
        if repo is None or not (copy_tree(v1, repo / "data.csv")
                                and run(tool.cmd("add", "data.csv"), repo, env)):
            return bench.fail(tool, s_push, s_repush, s_pull)
        commit_pointer(bench, tool, repo, "data.csv")
        if not add_store(tool, repo, url, options, env):
            return bench.fail(tool, s_push, s_repush, s_pull)
        t = timed(tool.cmd("push"), repo, env)
        bench.record(s_push, tool, t)
        if t is None or not (run(["git", "clone", "-q", str(repo), str(clone)], bench.root, env)
                             and run(tool.cmd("pull"), clone, env)):
            return bench.fail(tool, s_repush, s_pull)

        # the new version, added as a user would (the old file may be a link into the cache)
        (repo / "data.csv").unlink()
        if not (copy_tree(v2, repo / "data.csv") and run(tool.cmd("add", "data.csv"), repo, env)):
            return bench.fail(tool, s_repush, s_pull)
        commit_pointer(bench, tool, repo, "data.csv")
        before = stored()
        t, out = timed_out(tool.cmd("push", *json_flag), repo, env)
        bench.record(s_repush, tool, t)
        if t is None:
            return bench.fail(tool, s_pull)
        new_bytes = stored() - before
        # DVC sends each new object whole: what it sent is what it newly stored
        bench.record_bytes(b_sent, tool, wire_bytes(out) if json_flag else new_bytes, size)
        bench.record_bytes(b_stored, tool, new_bytes, size)

        if not run(["git", "pull", "-q", "--ff-only"], clone, env):
            return bench.fail(tool, s_pull)
        had = folder_bytes(clone / cache)
        t, out = timed_out(tool.cmd("pull", *json_flag), clone, env)
        ok = t is not None and same_file(clone / "data.csv", v2)
        if t is not None and not ok:
            bench.warn(f"{tool.name} pull restored a DIFFERENT data.csv")
        bench.record(s_pull, tool, t, "" if ok or t is None else "!")
        # DVC downloads each missing object whole into its cache
        got = wire_bytes(out) if json_flag else folder_bytes(clone / cache) - had
        bench.record_bytes(b_got, tool, None if t is None else got, size)


# -------------------------------------------------------------------- report
def cell(bench: Bench, scenario: str, tool: Tool) -> tuple[str, float | None]:
    """Markdown cell text, and the median when it is usable for a ratio."""
    if tool.exe is None:
        return f"{tool.name} not found", None
    text, med = median_cell(bench.timings.get(scenario, {}).get(tool.name, []))
    if med is None:
        return text, None
    flags = "".join(sorted(bench.flags.get(scenario, {}).get(tool.name, set())))
    return text + flags, (None if flags else med)


def report(bench: Bench, tools: list[Tool], command: str, stopped: str) -> str:
    a = bench.args
    lines = [f"$ {command}", "",
             f"- machine: {platform.system()} {platform.release()} {platform.machine()}, "
             f"nproc {nproc()}, Python {platform.python_version()}"]
    lines += [f"- {t.name}: {t.version}" + (f" ({t.exe})" if t.exe else "") for t in tools]
    lines += [f"- datasets: {'; '.join(d.describe() for d in bench.datasets.values())} (seed {a.seed})",
              f"- reps: {a.reps} (tool order alternates per rep); groups: {a.only}; "
              "cells: median seconds, `!` = checkout/pull restored wrong data"]
    if bench.moto is not None:
        lines.append(f"- S3: moto server `{bench.moto.exe}` on 127.0.0.1 (a fresh bucket per tool per rep)")
    lines.append("")
    if stopped:
        lines += [f"**{stopped}: partial results.**", ""]
    lines += ["| scenario | mlv (s) | dvc (s) | mlv/dvc |", "|---|---|---|---|"]
    mlv, dvc = tools
    for scenario in bench.timings:
        (mlv_text, mlv_med), (dvc_text, dvc_med) = cell(bench, scenario, mlv), cell(bench, scenario, dvc)
        ratio = f"{mlv_med / dvc_med:.2f}" if mlv_med is not None and dvc_med else "-"
        lines.append(f"| {scenario} | {mlv_text} | {dvc_text} | {ratio} |")
    lines += volume_table(bench, tools)
    return "\n".join(lines + ([""] + bench.notes if bench.notes else []))


def volume_table(bench: Bench, tools: list[Tool]) -> list[str]:
    """The bytes table (medians, and their share of the data they are about)."""
    if not bench.volumes:
        return []
    lines = ["", "| bytes (median) | mlv | dvc | of |", "|---|---|---|---|"]
    for what, per_tool in bench.volumes.items():
        of = bench.sized[what]
        cells = []
        for tool in tools:
            values = per_tool.get(tool.name, [])
            if not values or any(v is None for v in values):
                cells.append("-" if not values else "unknown")
                continue
            med = statistics.median(v for v in values if v is not None)
            cells.append(f"{med / MIB:.1f} MiB ({100 * med / of:.1f} %)")
        lines.append(f"| {what} | {cells[0]} | {cells[1]} | {of / MIB:.1f} MiB |")
    return lines


def write_json(bench: Bench, tools: list[Tool], command: str, path: Path) -> None:
    path.write_text(json.dumps({
        "command": command, "python": platform.python_version(), "nproc": nproc(),
        "reps": bench.args.reps,
        "moto_server": bench.moto.exe if bench.moto is not None else None,
        "tools": {t.name: {"exe": t.exe, "version": t.version} for t in tools},
        "datasets": {d.name: {"files": d.files, "bytes": d.total_bytes, "sha256": d.fingerprint}
                     for d in bench.datasets.values()},
        "timings": bench.timings,  # scenario -> tool -> seconds per rep (null = failed)
        "bytes": bench.volumes,  # what -> tool -> bytes per rep (null = unknown)
        "bytes_of": bench.sized,  # what -> the size of the data they are about
        "flags": {s: {t: sorted(f) for t, f in d.items()} for s, d in bench.flags.items()},
        "notes": bench.notes,
    }, indent=2) + "\n")


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time mlv vs DVC on the same generated data.")
    p.add_argument("--mlv", help="mlv executable (default: mlv on PATH)")
    p.add_argument("--dvc", help=f"dvc executable (default: dvc on PATH, else {FALLBACK_DVC})")
    p.add_argument("--reps", type=int, default=3, help="repetitions per cell (default 3)")
    p.add_argument("--only", default=DEFAULT_GROUPS,
                   help=f"comma-separated scenario groups: {', '.join(GROUPS)} (default {DEFAULT_GROUPS})")
    p.add_argument("--small-files", type=int, default=20000, help="files in the small dataset")
    p.add_argument("--s3-small-files", type=int,
                   help="files in the small dataset of push-s3 (default: --small-files)")
    p.add_argument("--large-files", type=int, default=4, help="files in the large dataset")
    p.add_argument("--large-mb", type=int, default=256, help="MiB per large file")
    p.add_argument("--csv-mb", type=int, default=1024,
                   help="MiB of the CSV of the csv group (default 1024)")
    p.add_argument("--csv-remote", choices=("s3", "local"), default="s3",
                   help="remote of the csv group: moto S3 (default) or a local folder")
    p.add_argument("--seed", type=int, default=1234, help="dataset seed")
    p.add_argument("--workdir", type=Path, help="where to make the scratch folder (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (data, repos)")
    p.add_argument("--json", type=Path, help="write raw timings of all reps to this file")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds allowed per command")
    p.add_argument("--mlv-format", choices=("1", "2"), default="2",
                   help="storage format of mlv's remotes (default 2: packs and chunks, as "
                        "mlv's own default; 1: one object per file)")
    p.add_argument("--moto-server", help="moto S3 server executable for push-s3 "
                   f"(default: moto_server on PATH, else {FALLBACK_MOTO})")
    args = p.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    if not groups or any(g not in GROUPS for g in groups):
        p.error(f"--only: choose from {', '.join(GROUPS)}")
    if args.s3_small_files is None:
        args.s3_small_files = args.small_files
    if min(args.reps, args.small_files, args.s3_small_files, args.large_files, args.large_mb,
           args.csv_mb) < 1:
        p.error("--reps, --small-files, --s3-small-files, --large-files, --large-mb and "
                "--csv-mb must be >= 1")
    args.only = ",".join(groups)
    return args


def main(argv: list[str]) -> int:
    global TIMEOUT
    args = parse_args(argv)
    TIMEOUT = args.timeout
    command = shlex.join(["python3", sys.argv[0], *argv])
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="mlv-bench-", dir=args.workdir)).resolve()
    bench = Bench(args, root, clean_env(root))
    groups = args.only.split(",")
    tools = [replace(t, version=tool_version(t.exe, bench.env, root)) for t in make_tools(args)]
    log(f"workdir: {root}")
    for t in tools:
        log(f"{t.name}: {t.exe or 'not found'} -> {t.version}")
    stopped = ""  # why the run ended early, if it did
    try:
        for name in dict.fromkeys(d for g in groups for d in GROUPS[g].needs(args)):
            start = time.perf_counter()
            bench.datasets[name] = DATASETS[name](args, root / "datasets" / name)
            log(f"dataset {bench.datasets[name].describe()} made in {time.perf_counter() - start:.1f}s")
        for rep in range(args.reps):
            bench.rep = rep
            for g in groups:
                for tool in (tools if rep % 2 == 0 else tools[::-1]):
                    if tool.exe is not None:
                        log(f"rep {rep + 1}/{args.reps}, group {g}: {tool.name}")
                        GROUPS[g].run(bench, tool)
    except KeyboardInterrupt:
        stopped = "Interrupted"
    except SetupError as exc:
        log(f"error: {exc}")
        stopped = f"Aborted ({str(exc).splitlines()[0]})"
    finally:
        bench.close()  # stops the moto server, if one was started
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(report(bench, tools, command, stopped))
    if args.json:
        write_json(bench, tools, command, args.json)
    failed = any(v is None for per_tool in bench.timings.values() for vs in per_tool.values() for v in vs)
    return 130 if stopped == "Interrupted" else int(failed or bool(bench.notes) or bool(stopped))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    sys.exit(main(sys.argv[1:]))
