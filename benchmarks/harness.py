"""What bench_pipeline.py and bench_history.py share: tools, timed commands, bookkeeping.

Standard library only (Python >= 3.10). The scripts run as `python3 benchmarks/X.py`,
which puts this folder on sys.path, so they `import harness`. bench.py takes the few
parts that are the same for it (log, clean_env, nproc, on_sigterm).

Call `configure` (or `start`, which calls it) before timing anything: it sets the
limit per command (`TIMEOUT`) and the pause before each timed command (`SETTLE_SECONDS`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

FALLBACK_MLV = "/work/devvenv/bin/mlv"
FALLBACK_DVC = "/work/dvcvenv/bin/dvc"
TIMEOUT = 600.0  # seconds per tool command; set by configure()
SETTLE_SECONDS = 1.0  # set by configure()


def configure(timeout: float, settle_seconds: float) -> None:
    """Set the limit per command and the pause before each timed command."""
    global TIMEOUT, SETTLE_SECONDS
    TIMEOUT, SETTLE_SECONDS = timeout, settle_seconds


# --------------------------------------------------------------------- tools
@dataclass(frozen=True)
class Tool:
    name: str  # column name: "mlv" or "dvc"
    exe: str | None  # absolute path, None when not found
    setup: tuple[tuple[str, ...], ...]  # untimed tool commands right after `git init`
    pipeline_file: str  # mlv.yaml or dvc.yaml
    config_file: str  # repo config that `remote add` writes
    up_to_date: str  # what `status` prints when nothing is stale
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
                 "mlv.yaml", ".mlv/config", "everything is up to date"),
            Tool("dvc", find_exe(args.dvc, "dvc", FALLBACK_DVC), dvc_setup,
                 "dvc.yaml", ".dvc/config", "Data and pipelines are up to date.")]


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

    @property
    def lines(self) -> int:
        """Lines the command printed (stdout and stderr together)."""
        return len(self.stdout.splitlines()) + len(self.stderr.splitlines())


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


# --------------------------------------------------------------- bookkeeping
@dataclass
class Bench:
    args: argparse.Namespace
    root: Path  # the scratch folder
    env: dict[str, str]
    # scenario -> tool -> one value per rep (None = failed)
    timings: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rep: int = 0  # current repetition, 0-based

    def store(self, table: dict[str, dict[str, list[Any]]], scenario: str, tool: Tool,
              value: Any) -> None:
        table.setdefault(scenario, {}).setdefault(tool.name, []).append(value)

    def warn(self, msg: str) -> None:
        self.notes.append(f"!!! WARNING (rep {self.rep + 1}): {msg}")
        log(self.notes[-1])

    def failed(self) -> bool:
        """True when some timed command failed."""
        return any(v is None for per_tool in self.timings.values()
                   for values in per_tool.values() for v in values)


B = TypeVar("B", bound=Bench)


def start(args: argparse.Namespace, prefix: str,
          bench_type: type[B]) -> tuple[B, list[Tool]]:
    """Apply --timeout and --settle, make the scratch folder, its environment and the tools."""
    configure(args.timeout, args.settle)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=args.workdir)).resolve()
    bench = bench_type(args, root, clean_env(root))
    tools = [replace(t, version=tool_version(t.exe, bench.env, root)) for t in make_tools(args)]
    log(f"workdir: {root}")
    for t in tools:
        log(f"{t.name}: {t.exe or 'not found'} -> {t.version}")
    return bench, tools


def make_repos(bench: Bench, tools: list[Tool],
               make_repo: Callable[[Tool], Path | None]) -> dict[str, Path | None]:
    """One repo per tool that was found (None: not found, or setup failed; then warn)."""
    repos = {t.name: make_repo(t) if t.exe else None for t in tools}
    for t in tools:
        if t.exe and repos[t.name] is None:
            bench.warn(f"{t.name}: setting up the repo failed; its cells are marked failed")
    return repos


def finish(bench: Bench) -> None:
    """Remove the scratch folder, unless --keep."""
    if bench.args.keep:
        log(f"kept {bench.root}")
    else:
        shutil.rmtree(bench.root, ignore_errors=True)


# -------------------------------------------------------------------- report
def command_line(argv: list[str]) -> str:
    """The command as the report shows it."""
    return shlex.join(["python3", sys.argv[0], *argv])


def nproc() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def median_cell(values: list[float | None]) -> tuple[str, float | None]:
    """Markdown cell text for the seconds of each rep, and their median (None when some
    rep failed, or there are none)."""
    failed = sum(v is None for v in values)
    if not values or failed:
        return (f"failed ({failed}/{len(values)})" if failed else "-"), None
    med = statistics.median(v for v in values if v is not None)
    return (f"{med:.3f}" if med < 1 else f"{med:.2f}"), med


def cell(bench: Bench, scenario: str, tool: Tool) -> tuple[str, float | None]:
    """Markdown cell text, and the median (None when some rep failed)."""
    if tool.exe is None:
        return f"{tool.name} not found", None
    return median_cell(bench.timings.get(scenario, {}).get(tool.name, []))


def report(bench: Bench, tools: list[Tool], command: str, about: list[str],
           stopped: str) -> str:
    """The Markdown report: command, machine, tools, `about` (bullet lines), the table
    of medians and ratios (a scenario that a tool did not run shows `-`), then the notes."""
    lines = [f"$ {command}", "",
             f"- machine: {platform.system()} {platform.release()} {platform.machine()}, "
             f"nproc {nproc()}, Python {platform.python_version()}"]
    lines += [f"- {t.name}: {t.version}" + (f" ({t.exe})" if t.exe else "") for t in tools]
    lines += [*about, ""]
    if stopped:
        lines += [f"**{stopped}: partial results.**", ""]
    lines += ["| scenario | mlv (s) | dvc (s) | mlv/dvc |", "|---|---|---|---|"]
    mlv, dvc = tools
    for scenario in bench.timings:
        mlv_text, mlv_med = cell(bench, scenario, mlv)
        dvc_text, dvc_med = cell(bench, scenario, dvc)
        ratio = f"{mlv_med / dvc_med:.2f}" if mlv_med is not None and dvc_med else "-"
        lines.append(f"| {scenario} | {mlv_text} | {dvc_text} | {ratio} |")
    return "\n".join(lines + ([""] + bench.notes if bench.notes else []))


def write_json(bench: Bench, tools: list[Tool], command: str, path: Path,
               setup: dict[str, Any], results: dict[str, Any]) -> None:
    """Raw results: the shared keys, `setup` after the settle time, `results` after timings."""
    path.write_text(json.dumps({
        "command": command, "python": platform.python_version(), "nproc": nproc(),
        "reps": bench.args.reps, "settle_seconds": SETTLE_SECONDS, **setup,
        "tools": {t.name: {"exe": t.exe, "version": t.version} for t in tools},
        "timings": bench.timings,  # scenario -> tool -> seconds per rep (null = failed)
        **results,
        "notes": bench.notes,
    }, indent=2) + "\n")


# ---------------------------------------------------------------------- main
def add_tool_args(p: argparse.ArgumentParser) -> None:
    """--mlv and --dvc."""
    p.add_argument("--mlv", help=f"mlv executable (default: mlv on PATH, else {FALLBACK_MLV})")
    p.add_argument("--dvc", help=f"dvc executable (default: dvc on PATH, else {FALLBACK_DVC})")


def add_run_args(p: argparse.ArgumentParser) -> None:
    """--json, --settle, --timeout, --workdir and --keep."""
    p.add_argument("--json", type=Path, help="write raw timings of all reps to this file")
    p.add_argument("--settle", type=float, default=SETTLE_SECONDS,
                   help=f"seconds to sleep (after a sync) before each timed command "
                        f"(default {SETTLE_SECONDS:g})")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds allowed per command")
    p.add_argument("--workdir", type=Path, help="where to make the scratch folder (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (the two repos)")


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # clean up (scratch folder, servers) as for Ctrl-C
