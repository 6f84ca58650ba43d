#!/usr/bin/env python3
"""Time mlv's history commands against DVC's on the same two-commit repository.

Standard library only (Python >= 3.10); see benchmarks/README.md for usage.

Each tool gets its own fresh `git init` repo with the same data:

- commit A: `data/`, a folder of N small files (seeded random bytes), added with
  `<tool> add data`, and `metrics.json`, kept in git and declared as a top-level
  metric in mlv.yaml / dvc.yaml;
- commit B: 1 % of the files rewritten, 0.5 % deleted, 0.5 % new ones added, and new
  values in metrics.json; `<tool> add data` again.

Then, in every rep (the tool that goes first alternates per rep), the script times
`diff A B`, `diff` (HEAD against a clean workspace) and `metrics diff A B` for both
tools, and, when the mlv under test has `mlv ci`, `mlv ci --no-repro` on the clean,
fully pushed repository (no DVC counterpart). Untimed, it checks what each command
reported against what the script changed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

FALLBACK_MLV = "/work/devvenv/bin/mlv"
FALLBACK_DVC = "/work/dvcvenv/bin/dvc"
PER_FOLDER = 1000  # files per data/dNN folder
TIMEOUT = 600.0  # seconds per tool command; set from --timeout
SETTLE_SECONDS = 1.0  # set from --settle
METRICS_A = {"accuracy": 0.8125, "loss": 0.4375, "epochs": 10, "model": "rf"}
METRICS_B = {"accuracy": 0.84375, "loss": 0.375, "epochs": 12, "model": "rf"}
REMOTE = "store"


# --------------------------------------------------------------------- tools
@dataclass(frozen=True)
class Tool:
    name: str  # column name: "mlv" or "dvc"
    exe: str | None  # absolute path, None when not found
    setup: tuple[tuple[str, ...], ...]  # untimed tool commands right after `git init`
    pipeline_file: str  # mlv.yaml or dvc.yaml
    pointer: str  # data.mlv or data.dvc
    config_file: str  # repo config that `remote add` writes
    version: str = "?"

    def cmd(self, *args: str) -> list[str]:
        assert self.exe is not None
        return [self.exe, *args]


def find_exe(given: str | None, default_name: str, fallback: str) -> str | None:
    """The absolute path of `given`, else of `default_name` on PATH, else `fallback`."""
    found = shutil.which(given or default_name)
    if found is None and given is None and os.access(fallback, os.X_OK):
        found = fallback
    return os.path.abspath(found) if found else None


def make_tools(args: argparse.Namespace) -> list[Tool]:
    dvc_setup = (("init",), ("config", "core.analytics", "false"),
                 ("config", "core.check_update", "false"))
    return [Tool("mlv", find_exe(args.mlv, "mlv", FALLBACK_MLV), (("init",),),
                 "mlv.yaml", "data.mlv", ".mlv/config"),
            Tool("dvc", find_exe(args.dvc, "dvc", FALLBACK_DVC), dvc_setup,
                 "dvc.yaml", "data.dvc", ".dvc/config")]


# ------------------------------------------------------------ running things
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Result:
    seconds: float | None  # None when the command failed or timed out
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.seconds is not None


def execute(cmd: list[str], cwd: Path, env: dict[str, str], quiet: bool = False) -> Result:
    """Run `cmd` and time it (wall clock). On failure, log the command and its stderr."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                              text=True, errors="replace", timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if not quiet:
            log(f"FAILED: {shlex.join(cmd)} (in {cwd}): {exc}")
        return Result(None)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        if not quiet:
            tail = "\n".join((proc.stderr or proc.stdout).rstrip().splitlines()[-20:])
            log(f"FAILED: {shlex.join(cmd)} (in {cwd}) exited {proc.returncode}")
            log("  " + (tail or "(no output)").replace("\n", "\n  "))
        return Result(None, proc.stdout, proc.stderr)
    return Result(elapsed, proc.stdout, proc.stderr)


def settle() -> None:
    """Flush earlier writes and pause, so they do not land inside the next timed command."""
    os.sync()
    time.sleep(SETTLE_SECONDS)


def run(cmd: list[str], cwd: Path, env: dict[str, str], quiet: bool = False) -> bool:
    """Run an untimed command; True on success."""
    return execute(cmd, cwd, env, quiet).ok


def tool_version(exe: str | None, env: dict[str, str], cwd: Path) -> str:
    if exe is None:
        return "not found"
    result = execute([exe, "--version"], cwd, env, quiet=True)
    return (result.stdout.strip().splitlines() or ["?"])[0] if result.ok else "unknown"


def clean_env(root: Path) -> dict[str, str]:
    """A minimal environment with a temp HOME, so neither tool reads user or system config."""
    home = root / "home"
    dvc_global, dvc_system = home / ".config" / "dvc", home / "dvc-system-config"
    for folder in (dvc_global, dvc_system, root / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    (dvc_global / "config").write_text("[core]\n    analytics = false\n    check_update = false\n")
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home), "TMPDIR": str(root / "tmp"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "DVC_NO_ANALYTICS": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(dvc_global),
        "DVC_SYSTEM_CONFIG_DIR": str(dvc_system),
        "DVC_SITE_CACHE_DIR": str(root / "dvc-site-cache"),  # default: /var/tmp/dvc
    }


# ---------------------------------------------------------------------- data
@dataclass(frozen=True)
class Changes:
    """What commit B does to the files of commit A (paths relative to data/)."""

    modified: tuple[str, ...]
    deleted: tuple[str, ...]
    added: tuple[str, ...]


def file_name(i: int) -> str:
    return f"d{i // PER_FOLDER:02d}/f{i % PER_FOLDER:04d}.bin"


def plan_changes(count: int) -> Changes:
    """1 % of the files modified, 0.5 % deleted, and as many new files as deleted."""
    modified = tuple(file_name(i) for i in range(count) if i % 100 == 7)
    deleted = tuple(file_name(i) for i in range(count) if i % 200 == 53)
    added = tuple(f"new/f{k:04d}.bin" for k in range(len(deleted)))
    return Changes(modified, deleted, added)


def write_random(path: Path, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng.randbytes(rng.randint(64, 2048)))


def write_commit_a(data: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(count):
        write_random(data / file_name(i), rng)


def write_commit_b(data: Path, changes: Changes, seed: int) -> None:
    rng = random.Random(seed + 1)
    for rel in changes.modified + changes.added:
        write_random(data / rel, rng)
    for rel in changes.deleted:
        (data / rel).unlink()


def write_metrics(repo: Path, values: dict[str, Any]) -> None:
    (repo / "metrics.json").write_text(json.dumps(values, indent=2) + "\n")


def git_commit(repo: Path, env: dict[str, str], message: str, tag: str) -> bool:
    return (run(["git", "add", "-A"], repo, env)
            and run(["git", "commit", "-q", "-m", message], repo, env)
            and run(["git", "tag", tag], repo, env))


def make_repo(root: Path, tool: Tool, env: dict[str, str], args: argparse.Namespace,
              changes: Changes) -> Path | None:
    """A git repo with `<tool> init` and the two commits, tagged A and B (untimed)."""
    repo = root / "repos" / tool.name
    repo.mkdir(parents=True)
    start = time.perf_counter()
    if not (run(["git", "-c", "init.defaultBranch=main", "init", "-q"], repo, env)
            and all(run(tool.cmd(*step), repo, env) for step in tool.setup)):
        return None
    (repo / tool.pipeline_file).write_text("metrics:\n  - metrics.json\n")
    write_commit_a(repo / "data", args.files, args.seed)
    write_metrics(repo, METRICS_A)
    ok = run(tool.cmd("add", "data"), repo, env) and git_commit(repo, env, "A", "A")
    if ok:
        write_commit_b(repo / "data", changes, args.seed)
        write_metrics(repo, METRICS_B)
        ok = run(tool.cmd("add", "data"), repo, env) and git_commit(repo, env, "B", "B")
    log(f"{tool.name}: repo with commits A and B made in {time.perf_counter() - start:.1f}s")
    return repo if ok else None


# ----------------------------------------------------------------- scenarios
Check = Callable[[Tool, Result, Changes], str]  # "" when the output is right, else why not


def expect_diff(tool: Tool, result: Result, changes: Changes) -> str:
    """`diff A B` names every changed file (DVC also lists data/ itself as modified)."""
    want = {"added": len(changes.added), "modified": len(changes.modified),
            "deleted": len(changes.deleted)}
    text = result.stdout
    if tool.name == "mlv":
        summary = f"{want['added']} added, {want['modified']} modified, " \
                  f"{want['deleted']} deleted, 0 renamed"
        return "" if summary in text else f"no `{summary}` in the output"
    summary = f"files summary: {want['added']} added, {want['deleted']} deleted, " \
              f"{want['modified']} modified"
    return "" if summary in text else f"no `{summary}` in the output"


def expect_clean(tool: Tool, result: Result, changes: Changes) -> str:
    if tool.name == "mlv":
        return "" if "no tracked data changed" in result.stdout else "changes were reported"
    return "" if not result.stdout.strip() else "changes were reported"


def expect_metrics(tool: Tool, result: Result, changes: Changes) -> str:
    keys = [k for k in METRICS_A if METRICS_A[k] != METRICS_B[k]]
    rows = [line for line in result.stdout.splitlines() if "metrics.json" in line]
    named = all(any(k in row for row in rows) for k in keys)
    return "" if named and len(rows) == len(keys) else \
        f"{len(rows)} metrics.json rows, expected {len(keys)} ({', '.join(keys)})"


@dataclass(frozen=True)
class Scenario:
    name: str
    args: tuple[str, ...]  # the timed tool command
    check: Check
    tools: tuple[str, ...] = ("mlv", "dvc")


def scenarios(files: int) -> list[Scenario]:
    return [
        Scenario(f"diff A B ({files} files, 1 % changed)", ("diff", "A", "B"), expect_diff),
        Scenario(f"diff, clean workspace ({files} files)", ("diff",), expect_clean),
        Scenario("metrics diff A B", ("metrics", "diff", "A", "B"), expect_metrics),
    ]


CI_SCENARIO = Scenario("ci --no-repro --base A (clean, cached, all on a folder remote)",
                       ("ci", "--no-repro", "-r", REMOTE, "--base", "A"),
                       lambda tool, result, changes: "" if "mlv ci: passed" in result.stdout
                       else "no `mlv ci: passed` in the report", ("mlv",))


def has_ci(tool: Tool, env: dict[str, str], cwd: Path) -> bool:
    """True when the mlv under test has `mlv ci`."""
    return tool.exe is not None and run(tool.cmd("ci", "--help"), cwd, env, quiet=True)


def prepare_ci(root: Path, tool: Tool, repo: Path, env: dict[str, str]) -> bool:
    """A local folder remote holding everything, its config committed (untimed)."""
    remote = root / "remotes" / tool.name
    remote.mkdir(parents=True)
    return (run(tool.cmd("remote", "add", "-d", REMOTE, str(remote)), repo, env)
            and run(tool.cmd("push"), repo, env)
            and run(["git", "add", tool.config_file], repo, env)
            and run(["git", "commit", "-q", "-m", "remote"], repo, env))


@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    env: dict[str, str]
    # scenario -> tool -> one value per rep (None = failed)
    timings: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rep: int = 0

    def store(self, scenario: Scenario, tool: Tool, value: float | None) -> None:
        self.timings.setdefault(scenario.name, {}).setdefault(tool.name, []).append(value)

    def warn(self, msg: str) -> None:
        self.notes.append(f"!!! WARNING (rep {self.rep + 1}): {msg}")
        log(self.notes[-1])


def time_scenario(bench: Bench, scenario: Scenario, tool: Tool, repo: Path | None,
                  changes: Changes) -> None:
    """Time the scenario's command in `repo` (None: setup failed), then check its output."""
    if repo is None:
        bench.store(scenario, tool, None)
        return
    settle()
    result = execute(tool.cmd(*scenario.args), repo, bench.env)
    bench.store(scenario, tool, result.seconds)
    shown = "failed" if result.seconds is None else f"{result.seconds:.3f}s"
    log(f"  {tool.name} {scenario.name}: {shown}")
    wrong = scenario.check(tool, result, changes) if result.ok else ""
    if wrong:
        bench.warn(f"{tool.name} {scenario.name}: {wrong}")


# -------------------------------------------------------------------- report
def nproc() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def cell(bench: Bench, scenario: str, tool: Tool) -> tuple[str, float | None]:
    """Markdown cell text, and the median (None when some rep failed)."""
    if tool.exe is None:
        return f"{tool.name} not found", None
    values = bench.timings.get(scenario, {}).get(tool.name, [])
    failed = sum(v is None for v in values)
    if not values or failed:
        return (f"failed ({failed}/{len(values)})" if failed else "-"), None
    med = statistics.median(v for v in values if v is not None)
    return (f"{med:.3f}" if med < 1 else f"{med:.2f}"), med


def report(bench: Bench, tools: list[Tool], command: str, changes: Changes,
           stopped: str) -> str:
    args = bench.args
    lines = [f"$ {command}", "",
             f"- machine: {platform.system()} {platform.release()} {platform.machine()}, "
             f"nproc {nproc()}, Python {platform.python_version()}"]
    lines += [f"- {t.name}: {t.version}" + (f" ({t.exe})" if t.exe else "") for t in tools]
    lines += [f"- repo: data/ with {args.files} files of 64-2048 bytes (commit A); commit B "
              f"modifies {len(changes.modified)}, deletes {len(changes.deleted)} and adds "
              f"{len(changes.added)}, and changes 3 keys of metrics.json (kept in git)",
              f"- reps: {args.reps} (tool order alternates per rep); cells: median seconds; "
              f"{SETTLE_SECONDS:g}s settle (sync + sleep) before each timed command", ""]
    if stopped:
        lines += [f"**{stopped}: partial results.**", ""]
    lines += ["| scenario | mlv (s) | dvc (s) | mlv/dvc |", "|---|---|---|---|"]
    mlv, dvc = tools
    for scenario in bench.timings:
        mlv_text, mlv_med = cell(bench, scenario, mlv)
        dvc_text, dvc_med = cell(bench, scenario, dvc)
        if "dvc" not in bench.timings[scenario]:
            dvc_text = "-"
        ratio = f"{mlv_med / dvc_med:.2f}" if mlv_med is not None and dvc_med else "-"
        lines.append(f"| {scenario} | {mlv_text} | {dvc_text} | {ratio} |")
    return "\n".join(lines + ([""] + bench.notes if bench.notes else []))


def write_json(bench: Bench, tools: list[Tool], command: str, path: Path) -> None:
    path.write_text(json.dumps({
        "command": command, "python": platform.python_version(), "nproc": nproc(),
        "reps": bench.args.reps, "settle_seconds": SETTLE_SECONDS, "files": bench.args.files,
        "tools": {t.name: {"exe": t.exe, "version": t.version} for t in tools},
        "timings": bench.timings,  # scenario -> tool -> seconds per rep (null = failed)
        "notes": bench.notes,
    }, indent=2) + "\n")


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time mlv vs DVC diff and metrics diff.")
    p.add_argument("--mlv", help=f"mlv executable (default: mlv on PATH, else {FALLBACK_MLV})")
    p.add_argument("--dvc", help=f"dvc executable (default: dvc on PATH, else {FALLBACK_DVC})")
    p.add_argument("--files", type=int, default=20000,
                   help="files in the tracked folder (default 20000)")
    p.add_argument("--seed", type=int, default=1234, help="seed for the data (default 1234)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per cell (default 3)")
    p.add_argument("--json", type=Path, help="write raw timings of all reps to this file")
    p.add_argument("--settle", type=float, default=SETTLE_SECONDS,
                   help=f"seconds to sleep (after a sync) before each timed command "
                        f"(default {SETTLE_SECONDS:g})")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds allowed per command")
    p.add_argument("--workdir", type=Path, help="where to make the scratch folder (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (the two repos)")
    args = p.parse_args(argv)
    if args.reps < 1 or args.settle < 0 or args.files < 200:
        p.error("--reps must be >= 1, --settle >= 0 and --files >= 200")
    return args


def main(argv: list[str]) -> int:
    global TIMEOUT, SETTLE_SECONDS
    args = parse_args(argv)
    TIMEOUT, SETTLE_SECONDS = args.timeout, args.settle
    command = shlex.join(["python3", sys.argv[0], *argv])
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="mlv-bench-history-", dir=args.workdir)).resolve()
    bench = Bench(args, root, clean_env(root))
    tools = [replace(t, version=tool_version(t.exe, bench.env, root)) for t in make_tools(args)]
    changes = plan_changes(args.files)
    log(f"workdir: {root}")
    for t in tools:
        log(f"{t.name}: {t.exe or 'not found'} -> {t.version}")
    stopped = ""
    try:
        repos = {t.name: make_repo(root, t, bench.env, args, changes) if t.exe else None
                 for t in tools}
        for t in tools:
            if t.exe and repos[t.name] is None:
                bench.warn(f"{t.name}: setting up the repo failed; its cells are marked failed")
        todo = scenarios(args.files)
        mlv, mlv_repo = tools[0], repos["mlv"]
        if mlv_repo is not None and has_ci(mlv, bench.env, mlv_repo):
            if prepare_ci(root, mlv, mlv_repo, bench.env):
                todo.append(CI_SCENARIO)
            else:
                bench.warn("mlv: setting up the remote for `mlv ci` failed")
        else:
            bench.notes.append("note: `mlv ci` skipped: this mlv has no `ci` command")
        for t in tools:  # warm-up, so the first timed rep does not pay for first-use work
            for s in todo:
                if repos[t.name] is not None and t.name in s.tools:
                    run(t.cmd(*s.args), repos[t.name], bench.env, quiet=True)
        for rep in range(args.reps):
            bench.rep = rep
            order = tools if rep % 2 == 0 else tools[::-1]
            log(f"rep {rep + 1}/{args.reps}: {' then '.join(t.name for t in order)}")
            for scenario in todo:
                for tool in order:
                    if tool.exe is not None and tool.name in scenario.tools:
                        time_scenario(bench, scenario, tool, repos[tool.name], changes)
    except KeyboardInterrupt:
        stopped = "Interrupted"
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(report(bench, tools, command, changes, stopped))
    if args.json:
        write_json(bench, tools, command, args.json)
    failed = any(v is None for per_tool in bench.timings.values()
                 for values in per_tool.values() for v in values)
    warned = any(n.startswith("!!!") for n in bench.notes)
    return 130 if stopped else int(failed or warned)


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # remove the scratch folder, as for Ctrl-C


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    sys.exit(main(sys.argv[1:]))
