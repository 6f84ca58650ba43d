#!/usr/bin/env python3
"""Time mlv's pipelines against DVC's on the same generated 50-stage pipeline.

Standard library only (Python >= 3.10); see benchmarks/README.md for usage.

Each tool gets its own fresh `git init` repo with the same pipeline, written once as
mlv.yaml and once as dvc.yaml:

- a chain of CHAIN stages: c00 copies src/in.txt to out/c00.txt, c01 copies
  out/c00.txt to out/c01.txt, and so on;
- a fan-out of FAN stages: fNN joins out/c00.txt and src/fNN.txt into out/fNN.txt,
  and declares the param `fan.fNN` of params.yaml.

Every command is a bare `cp` or `cat` (no Python start-up per stage), so the time
is mostly the tool's own overhead. Untimed, each repo is reproduced once and
committed. Then, in every rep (the tool that goes first alternates per rep), each
scenario is timed for both tools, and after each `repro` scenario the script
checks (untimed) that both tools report everything up to date and that both repos
hold the expected out/ files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

CHAIN = 25  # c00 .. c24
FAN = 25  # f00 .. f24
STAGES = CHAIN + FAN
LEAF = 7  # the fan-out stage whose source changes in the "1 stage" scenario
FALLBACK_MLV = "/work/devvenv/bin/mlv"
FALLBACK_DVC = "/work/dvcvenv/bin/dvc"
TIMEOUT = 600.0  # seconds per tool command; set from --timeout
SETTLE_SECONDS = 1.0  # set from --settle


# --------------------------------------------------------------------- tools
@dataclass(frozen=True)
class Tool:
    name: str  # column name: "mlv" or "dvc"
    exe: str | None  # absolute path, None when not found
    setup: tuple[tuple[str, ...], ...]  # untimed tool commands right after `git init`
    pipeline_file: str  # mlv.yaml or dvc.yaml
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
                 "mlv.yaml", "everything is up to date"),
            Tool("dvc", find_exe(args.dvc, "dvc", FALLBACK_DVC), dvc_setup,
                 "dvc.yaml", "Data and pipelines are up to date.")]


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


# ------------------------------------------------------------------ pipeline
@dataclass(frozen=True)
class StageSpec:
    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    out: str


def chain_name(i: int) -> str:
    return f"c{i:02d}"


def fan_name(i: int) -> str:
    return f"f{i:02d}"


def pipeline_stages() -> list[StageSpec]:
    stages = [StageSpec("c00", "cp src/in.txt out/c00.txt", ("src/in.txt",), (), "out/c00.txt")]
    for i in range(1, CHAIN):
        prev, out = f"out/{chain_name(i - 1)}.txt", f"out/{chain_name(i)}.txt"
        stages.append(StageSpec(chain_name(i), f"cp {prev} {out}", (prev,), (), out))
    for i in range(FAN):
        name = fan_name(i)
        src, out = f"src/{name}.txt", f"out/{name}.txt"
        stages.append(StageSpec(name, f"cat out/c00.txt {src} > {out}", ("out/c00.txt", src),
                                (f"fan.{name}",), out))
    return stages


def pipeline_yaml(stages: list[StageSpec]) -> str:
    """The same text for mlv.yaml and dvc.yaml. Strings are JSON-quoted (valid YAML)."""
    lines = ["stages:"]
    for s in stages:
        lines += [f"  {s.name}:", f"    cmd: {json.dumps(s.cmd)}", "    deps:"]
        lines += [f"      - {d}" for d in s.deps]
        if s.params:
            lines += ["    params:"] + [f"      - {p}" for p in s.params]
        lines += ["    outs:", f"      - {s.out}"]
    return "\n".join(lines) + "\n"


def params_yaml() -> str:
    return "fan:\n" + "".join(f"  {fan_name(i)}: {i}\n" for i in range(FAN))


def initial_sources() -> dict[str, str]:
    sources = {"src/in.txt": "in: initial\n"}
    sources.update({f"src/{fan_name(i)}.txt": f"{fan_name(i)}: initial\n" for i in range(FAN)})
    return sources


def expected_outs(sources: dict[str, str]) -> dict[str, str]:
    """out/*.txt as the pipeline should leave them, given the contents of src/."""
    head = sources["src/in.txt"]
    outs = {f"out/{chain_name(i)}.txt": head for i in range(CHAIN)}
    outs.update({f"out/{fan_name(i)}.txt": head + sources[f"src/{fan_name(i)}.txt"]
                 for i in range(FAN)})
    return outs


def write_files(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def read_outs(repo: Path) -> dict[str, str]:
    return {f"out/{p.name}": p.read_text(errors="replace")
            for p in sorted((repo / "out").glob("*.txt"))}


def out_stamps(repo: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each out/*.txt, to count the outputs a command rewrote."""
    stamps = {}
    for p in (repo / "out").glob("*.txt"):
        st = p.stat()
        stamps[p.name] = (st.st_ino, st.st_mtime_ns)
    return stamps


def git_commit(repo: Path, env: dict[str, str], message: str) -> bool:
    """`git add -A && git commit`, skipping the commit when nothing changed."""
    if not run(["git", "add", "-A"], repo, env):
        return False
    if run(["git", "diff", "--cached", "--quiet"], repo, env, quiet=True):
        return True  # nothing staged
    return run(["git", "commit", "-q", "-m", message], repo, env)


def make_repo(root: Path, tool: Tool, env: dict[str, str]) -> Path | None:
    """A git repo with `<tool> init`, the pipeline reproduced once and committed (untimed)."""
    repo = root / "repos" / tool.name
    repo.mkdir(parents=True)
    stages = pipeline_stages()
    files = {tool.pipeline_file: pipeline_yaml(stages), "params.yaml": params_yaml(),
             "out/.gitkeep": "", **initial_sources()}  # DVC does not create out/ itself
    ok = (run(["git", "-c", "init.defaultBranch=main", "init", "-q"], repo, env)
          and all(run(tool.cmd(*step), repo, env) for step in tool.setup))
    if ok:
        write_files(repo, files)
        start = time.perf_counter()
        ok = (git_commit(repo, env, f"{tool.name}: {len(stages)}-stage pipeline")
              and run(tool.cmd("repro"), repo, env)
              and git_commit(repo, env, f"{tool.name}: repro"))
        log(f"{tool.name}: repo made and reproduced in {time.perf_counter() - start:.1f}s")
    if ok:  # warm-up, so the first timed rep does not pay for first-use work
        ok = run(tool.cmd("repro"), repo, env) and run(tool.cmd("status"), repo, env)
    return repo if ok else None


# ----------------------------------------------------------------- scenarios
@dataclass(frozen=True)
class Scenario:
    name: str
    args: tuple[str, ...]  # the timed tool command
    change: Callable[[int], dict[str, str]]  # rep -> src files to rewrite first (untimed)
    expect_rewritten: int  # out files the timed command should rewrite
    is_repro: bool


SCENARIOS = [
    Scenario(f"repro no-op ({STAGES} stages)", ("repro",), lambda rep: {}, 0, True),
    Scenario(f"status no-op ({STAGES} stages)", ("status",), lambda rep: {}, 0, False),
    Scenario(f"repro after changing src/{fan_name(LEAF)}.txt (1 stage runs)", ("repro",),
             lambda rep: {f"src/{fan_name(LEAF)}.txt": f"{fan_name(LEAF)}: rep {rep + 1}\n"},
             1, True),
    Scenario(f"repro after changing src/in.txt ({STAGES} stages run)", ("repro",),
             lambda rep: {"src/in.txt": f"in: rep {rep + 1}\n"}, STAGES, True),
]


@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    env: dict[str, str]
    sources: dict[str, str] = field(default_factory=initial_sources)  # current src/ contents
    # scenario -> tool -> one value per rep (None = failed)
    timings: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    output_lines: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    rewritten: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rep: int = 0

    def store(self, table: dict[str, dict[str, list[Any]]], scenario: Scenario, tool: Tool,
              value: Any) -> None:
        table.setdefault(scenario.name, {}).setdefault(tool.name, []).append(value)

    def warn(self, msg: str) -> None:
        self.notes.append(f"!!! WARNING (rep {self.rep + 1}): {msg}")
        log(self.notes[-1])


def time_scenario(bench: Bench, scenario: Scenario, tool: Tool, repo: Path | None) -> None:
    """Apply the scenario's change, then time its command in `repo` (None: setup failed)."""
    if repo is None:
        bench.store(bench.timings, scenario, tool, None)
        return
    write_files(repo, scenario.change(bench.rep))
    before = out_stamps(repo)
    settle()
    result = execute(tool.cmd(*scenario.args), repo, bench.env)
    after = out_stamps(repo)
    rewritten = sum(before.get(name) != stamp for name, stamp in after.items())
    bench.store(bench.timings, scenario, tool, result.seconds)
    bench.store(bench.output_lines, scenario, tool, result.lines)
    bench.store(bench.rewritten, scenario, tool, rewritten)
    shown = "failed" if result.seconds is None else f"{result.seconds:.3f}s"
    log(f"  {tool.name} {scenario.name}: {shown} ({result.lines} output lines, "
        f"{rewritten} outs rewritten)")
    if result.ok and rewritten != scenario.expect_rewritten:
        bench.warn(f"{tool.name} {scenario.name}: rewrote {rewritten} out files, "
                   f"expected {scenario.expect_rewritten}")


def verify(bench: Bench, scenario: Scenario, tools: list[Tool],
           repos: dict[str, Path | None]) -> None:
    """Untimed: each tool reports everything up to date, and out/ is what it should be."""
    expected = expected_outs(bench.sources)
    seen: dict[str, dict[str, str]] = {}
    for tool in tools:
        repo = repos[tool.name]
        if repo is None:
            continue
        status = execute(tool.cmd("status"), repo, bench.env)
        if not status.ok or tool.up_to_date not in status.stdout:
            first = (status.stdout.strip().splitlines() or ["(no output)"])[:3]
            bench.warn(f"{tool.name} status is not `{tool.up_to_date}`: {' / '.join(first)}")
        seen[tool.name] = read_outs(repo)
        if seen[tool.name] != expected:
            wrong = sorted(k for k in expected.keys() | seen[tool.name].keys()
                           if expected.get(k) != seen[tool.name].get(k))
            bench.warn(f"{tool.name} out/ differs from the expected contents in "
                       f"{len(wrong)} files: {', '.join(wrong[:5])}")
        git_commit(repo, bench.env, f"rep {bench.rep + 1}: {scenario.name}")
    if len(seen) == 2 and len(set(json.dumps(v, sort_keys=True) for v in seen.values())) != 1:
        bench.warn("out/ differs between the mlv and the dvc repo")


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


def report(bench: Bench, tools: list[Tool], command: str, stopped: str) -> str:
    lines = [f"$ {command}", "",
             f"- machine: {platform.system()} {platform.release()} {platform.machine()}, "
             f"nproc {nproc()}, Python {platform.python_version()}"]
    lines += [f"- {t.name}: {t.version}" + (f" ({t.exe})" if t.exe else "") for t in tools]
    lines += [f"- pipeline: {STAGES} stages (a chain of {CHAIN} `cp` stages, and a fan-out of "
              f"{FAN} `cat` stages that each read out/c00.txt, their own source and a param)",
              f"- reps: {bench.args.reps} (tool order alternates per rep); cells: median "
              f"seconds; {SETTLE_SECONDS:g}s settle (sync + sleep) before each timed command",
              ""]
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


def write_json(bench: Bench, tools: list[Tool], command: str, path: Path) -> None:
    path.write_text(json.dumps({
        "command": command, "python": platform.python_version(), "nproc": nproc(),
        "reps": bench.args.reps, "settle_seconds": SETTLE_SECONDS,
        "pipeline": {"stages": STAGES, "chain": CHAIN, "fan": FAN},
        "tools": {t.name: {"exe": t.exe, "version": t.version} for t in tools},
        "timings": bench.timings,  # scenario -> tool -> seconds per rep (null = failed)
        "output_lines": bench.output_lines,  # scenario -> tool -> stdout+stderr lines per rep
        "outs_rewritten": bench.rewritten,  # scenario -> tool -> out files rewritten per rep
        "notes": bench.notes,
    }, indent=2) + "\n")


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"Time mlv vs DVC pipelines ({STAGES} stages).")
    p.add_argument("--mlv", help=f"mlv executable (default: mlv on PATH, else {FALLBACK_MLV})")
    p.add_argument("--dvc", help=f"dvc executable (default: dvc on PATH, else {FALLBACK_DVC})")
    p.add_argument("--reps", type=int, default=5, help="repetitions per cell (default 5)")
    p.add_argument("--json", type=Path, help="write raw timings of all reps to this file")
    p.add_argument("--settle", type=float, default=SETTLE_SECONDS,
                   help=f"seconds to sleep (after a sync) before each timed command "
                        f"(default {SETTLE_SECONDS:g})")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds allowed per command")
    p.add_argument("--workdir", type=Path, help="where to make the scratch folder (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (the two repos)")
    args = p.parse_args(argv)
    if args.reps < 1 or args.settle < 0:
        p.error("--reps must be >= 1 and --settle >= 0")
    return args


def main(argv: list[str]) -> int:
    global TIMEOUT, SETTLE_SECONDS
    args = parse_args(argv)
    TIMEOUT, SETTLE_SECONDS = args.timeout, args.settle
    command = shlex.join(["python3", sys.argv[0], *argv])
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="mlv-bench-pipeline-", dir=args.workdir)).resolve()
    bench = Bench(args, root, clean_env(root))
    tools = [replace(t, version=tool_version(t.exe, bench.env, root)) for t in make_tools(args)]
    log(f"workdir: {root}")
    for t in tools:
        log(f"{t.name}: {t.exe or 'not found'} -> {t.version}")
    stopped = ""
    try:
        repos = {t.name: make_repo(root, t, bench.env) if t.exe else None for t in tools}
        for t in tools:
            if t.exe and repos[t.name] is None:
                bench.warn(f"{t.name}: setting up the repo failed; its cells are marked failed")
        for rep in range(args.reps):
            bench.rep = rep
            order = tools if rep % 2 == 0 else tools[::-1]
            log(f"rep {rep + 1}/{args.reps}: {' then '.join(t.name for t in order)}")
            for scenario in SCENARIOS:
                bench.sources.update(scenario.change(rep))
                for tool in order:
                    if tool.exe is not None:
                        time_scenario(bench, scenario, tool, repos[tool.name])
                if scenario.is_repro:
                    verify(bench, scenario, tools, repos)
    except KeyboardInterrupt:
        stopped = "Interrupted"
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(report(bench, tools, command, stopped))
    if args.json:
        write_json(bench, tools, command, args.json)
    failed = any(v is None for per_tool in bench.timings.values()
                 for values in per_tool.values() for v in values)
    return 130 if stopped else int(failed or bool(bench.notes))


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # remove the scratch folder, as for Ctrl-C


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    sys.exit(main(sys.argv[1:]))
