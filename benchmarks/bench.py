#!/usr/bin/env python3
"""Benchmark mlv against DVC on the same generated data, in the same run.

Standard library only; see benchmarks/README.md for usage.

To add a scenario group (e.g. push/pull, pipelines): write ``group_xxx(bench, tool)``
that makes a repo with ``fresh_repo``, copies a dataset in with ``copy_tree``, times
commands with ``timed`` and stores each result with ``bench.record``; register it with
``@group("xxx", datasets=(...))``. New datasets go in ``DATASETS``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

KIB = 1024
MIB = 1024 * KIB
TIMEOUT = 3600.0  # seconds per tool command; set from --timeout
FALLBACK_DVC = "/work/dvcvenv/bin/dvc"


# --------------------------------------------------------------------- tools
@dataclass(frozen=True)
class Tool:
    name: str  # column name: "mlv" or "dvc"
    exe: str | None  # absolute path, None when not found
    setup: tuple[tuple[str, ...], ...]  # untimed tool commands right after `git init`
    pointer_suffix: str  # pointer file written next to a tracked path: data -> data.dvc
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
    return [Tool("mlv", resolve(args.mlv or "mlv"), (("init",),), ".mlv"),
            Tool("dvc", resolve(dvc), dvc_setup, ".dvc")]


# ------------------------------------------------------------ running things
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def clean_env(root: Path) -> dict[str, str]:
    """Minimal environment with a temp HOME, so neither tool reads user or system config."""
    home = root / "home"
    dvc_global, dvc_system = home / ".config" / "dvc", home / "dvc-system-config"
    for d in (dvc_global, dvc_system, root / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    # DVC 3.x has no env var for the update check (only `core.check_update`, or CI/DVC_TEST).
    (dvc_global / "config").write_text("[core]\n    analytics = false\n    check_update = false\n")
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home), "TMPDIR": str(root / "tmp"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "DVC_NO_ANALYTICS": "1",  # honoured by DVC 3.x (any non-empty value)
        "DVC_GLOBAL_CONFIG_DIR": str(dvc_global),
        "DVC_SYSTEM_CONFIG_DIR": str(dvc_system),
        "DVC_SITE_CACHE_DIR": str(root / "dvc-site-cache"),  # default: /var/tmp/dvc
    }


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


def make_small(args: argparse.Namespace, dest: Path) -> Dataset:
    """dNN/sN/fNNN.bin with 100 files per leaf; every s9 leaf is two levels deeper."""
    rng = random.Random(args.seed)
    for i in range(args.small_files):
        top, sub = i // 1000, (i // 100) % 10
        folder = dest / f"d{top:02d}" / f"s{sub}" / ("deep/er" if sub == 9 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i % 100:03d}.bin").write_bytes(rng.randbytes(rng.randint(1 * KIB, 8 * KIB)))
    return Dataset.scan("small", dest)


def flat_files(name: str, dest: Path, seed: int, count: int, size: int, block: int) -> Dataset:
    """`count` files of `size` seeded random bytes, written `block` bytes at a time."""
    rng = random.Random(seed)
    dest.mkdir(parents=True)
    for k in range(count):
        with open(dest / f"part{k}.bin", "wb") as f:
            for _ in range(size // block):
                f.write(rng.randbytes(block))
    return Dataset.scan(name, dest)


DATASETS: dict[str, Callable[[argparse.Namespace, Path], Dataset]] = {
    "small": make_small,
    "large": lambda a, d: flat_files("large", d, a.seed + 1, a.large_files, a.large_mb * MIB, MIB),
    "tiny": lambda a, d: flat_files("tiny", d, a.seed + 2, 10, KIB, KIB),
}


def copy_tree(src: Path, dst: Path) -> bool:
    """Real copy (no hard links: tools may modify files), then flush it to disk."""
    ok = subprocess.run(["cp", "-a", str(src), str(dst)]).returncode == 0
    os.sync()  # so write-back of the copy does not land inside the timed step
    return ok


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

    def record(self, scenario: str, tool: Tool, seconds: float | None, flag: str = "") -> None:
        self.timings.setdefault(scenario, {}).setdefault(tool.name, []).append(seconds)
        if flag:
            self.flags.setdefault(scenario, {}).setdefault(tool.name, set()).add(flag)
        log(f"  {tool.name} {scenario}: {'failed' if seconds is None else f'{seconds:.3f}s'} {flag}")

    def fail(self, tool: Tool, *scenarios: str) -> None:
        for s in scenarios:
            self.record(s, tool, None)

    def warn(self, msg: str) -> None:
        self.notes.append(f"!!! WARNING (rep {self.rep + 1}): {msg}")
        log(self.notes[-1])


@contextlib.contextmanager
def fresh_repo(bench: Bench, tool: Tool, name: str) -> Iterator[Path | None]:
    """New git repo with `<tool> init` done and committed; None if setup failed. Removed after."""
    bench.repos_made += 1
    repo = bench.root / "repos" / f"{bench.repos_made:03d}-{tool.name}-{name}"
    repo.mkdir(parents=True)
    env = bench.env
    ok = (run(["git", "-c", "init.defaultBranch=main", "init", "-q"], repo, env)
          and run(["git", "config", "user.name", "Bench"], repo, env)
          and run(["git", "config", "user.email", "bench@example.invalid"], repo, env)
          and all(run(tool.cmd(*step), repo, env) for step in tool.setup))
    if ok:
        run(["git", "add", "-A"], repo, env, quiet=True)
        run(["git", "commit", "-q", "-m", f"{tool.name} init"], repo, env, quiet=True)
    try:
        yield repo if ok else None
    finally:
        if not bench.args.keep:
            shutil.rmtree(repo, ignore_errors=True)


def commit_pointer(bench: Bench, tool: Tool, repo: Path, target: str) -> None:
    """Untimed: commit the pointer file and .gitignore, as a user would."""
    paths = [p for p in (target + tool.pointer_suffix, ".gitignore") if (repo / p).exists()]
    if paths:
        run(["git", "add", "--", *paths], repo, bench.env, quiet=True)
        run(["git", "commit", "-q", "-m", f"track {target}"], repo, bench.env, quiet=True)


# ------------------------------------------------------------ scenario groups
GroupFn = Callable[[Bench, Tool], None]


@dataclass(frozen=True)
class Group:
    datasets: tuple[str, ...]  # generated once per run, before the first rep
    run: GroupFn


GROUPS: dict[str, Group] = {}


def group(name: str, datasets: tuple[str, ...]) -> Callable[[GroupFn], GroupFn]:
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

        shutil.rmtree(repo / "data")
        t = timed(tool.cmd("checkout"), repo, env)
        flag = ""
        if t is not None:
            got = fingerprint(repo / "data") if (repo / "data").is_dir() else (0, 0, "")
            if got != (ds.files, ds.total_bytes, ds.fingerprint):
                flag = "!"
                bench.warn(f"{tool.name} checkout restored a DIFFERENT tree: {got[0]} files, "
                           f"{got[1]} bytes (expected {ds.files} files, {ds.total_bytes} bytes"
                           f"{', same counts but different names or content' if got[:2] == (ds.files, ds.total_bytes) else ''})")
        bench.record(s_checkout, tool, t, flag)


@group("large", datasets=("large",))
def group_large(bench: Bench, tool: Tool) -> None:
    ds = bench.datasets["large"]
    s_add = f"add {ds.files} x {ds.total_bytes / ds.files / MIB:g} MiB files"
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


# -------------------------------------------------------------------- report
def nproc() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def cell(bench: Bench, scenario: str, tool: Tool) -> tuple[str, float | None]:
    """Markdown cell text, and the median when it is usable for a ratio."""
    if tool.exe is None:
        return f"{tool.name} not found", None
    values = bench.timings.get(scenario, {}).get(tool.name, [])
    failed = sum(v is None for v in values)
    if not values or failed:
        return (f"failed ({failed}/{len(values)})" if failed else "-"), None
    med = statistics.median(v for v in values if v is not None)
    flags = "".join(sorted(bench.flags.get(scenario, {}).get(tool.name, set())))
    return (f"{med:.3f}" if med < 1 else f"{med:.2f}") + flags, (None if flags else med)


def report(bench: Bench, tools: list[Tool], command: str, interrupted: bool) -> str:
    a = bench.args
    lines = [f"$ {command}", "",
             f"- machine: {platform.system()} {platform.release()} {platform.machine()}, "
             f"nproc {nproc()}, Python {platform.python_version()}"]
    lines += [f"- {t.name}: {t.version}" + (f" ({t.exe})" if t.exe else "") for t in tools]
    lines += [f"- datasets: {'; '.join(d.describe() for d in bench.datasets.values())} (seed {a.seed})",
              f"- reps: {a.reps} (tool order alternates per rep); groups: {a.only}; "
              "cells: median seconds, `!` = checkout restored wrong data", ""]
    if interrupted:
        lines += ["**Interrupted: partial results.**", ""]
    lines += ["| scenario | mlv (s) | dvc (s) | mlv/dvc |", "|---|---|---|---|"]
    mlv, dvc = tools
    for scenario in bench.timings:
        (mlv_text, mlv_med), (dvc_text, dvc_med) = cell(bench, scenario, mlv), cell(bench, scenario, dvc)
        ratio = f"{mlv_med / dvc_med:.2f}" if mlv_med is not None and dvc_med else "-"
        lines.append(f"| {scenario} | {mlv_text} | {dvc_text} | {ratio} |")
    return "\n".join(lines + ([""] + bench.notes if bench.notes else []))


def write_json(bench: Bench, tools: list[Tool], command: str, path: Path) -> None:
    path.write_text(json.dumps({
        "command": command, "python": platform.python_version(), "nproc": nproc(),
        "reps": bench.args.reps,
        "tools": {t.name: {"exe": t.exe, "version": t.version} for t in tools},
        "datasets": {d.name: {"files": d.files, "bytes": d.total_bytes, "sha256": d.fingerprint}
                     for d in bench.datasets.values()},
        "timings": bench.timings,  # scenario -> tool -> seconds per rep (null = failed)
        "flags": {s: {t: sorted(f) for t, f in d.items()} for s, d in bench.flags.items()},
        "notes": bench.notes,
    }, indent=2) + "\n")


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time mlv vs DVC on the same generated data.")
    p.add_argument("--mlv", help="mlv executable (default: mlv on PATH)")
    p.add_argument("--dvc", help=f"dvc executable (default: dvc on PATH, else {FALLBACK_DVC})")
    p.add_argument("--reps", type=int, default=3, help="repetitions per cell (default 3)")
    p.add_argument("--only", default=",".join(GROUPS),
                   help=f"comma-separated scenario groups (default {','.join(GROUPS)})")
    p.add_argument("--small-files", type=int, default=20000, help="files in the small dataset")
    p.add_argument("--large-files", type=int, default=4, help="files in the large dataset")
    p.add_argument("--large-mb", type=int, default=256, help="MiB per large file")
    p.add_argument("--seed", type=int, default=1234, help="dataset seed")
    p.add_argument("--workdir", type=Path, help="where to make the scratch folder (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (data, repos)")
    p.add_argument("--json", type=Path, help="write raw timings of all reps to this file")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds allowed per command")
    args = p.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    if not groups or any(g not in GROUPS for g in groups):
        p.error(f"--only: choose from {', '.join(GROUPS)}")
    if min(args.reps, args.small_files, args.large_files, args.large_mb) < 1:
        p.error("--reps, --small-files, --large-files and --large-mb must be >= 1")
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
    interrupted = False
    try:
        for name in dict.fromkeys(d for g in groups for d in GROUPS[g].datasets):
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
        interrupted = True
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(report(bench, tools, command, interrupted))
    if args.json:
        write_json(bench, tools, command, args.json)
    failed = any(v is None for per_tool in bench.timings.values() for vs in per_tool.values() for v in vs)
    return 130 if interrupted else int(failed or bool(bench.notes))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
