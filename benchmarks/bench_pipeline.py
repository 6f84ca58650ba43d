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
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import Tool, execute, log, run, settle

CHAIN = 25  # c00 .. c24
FAN = 25  # f00 .. f24
STAGES = CHAIN + FAN
LEAF = 7  # the fan-out stage whose source changes in the "1 stage" scenario


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
class Bench(harness.Bench):
    sources: dict[str, str] = field(default_factory=initial_sources)  # current src/ contents
    # scenario -> tool -> one value per rep
    output_lines: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    rewritten: dict[str, dict[str, list[int]]] = field(default_factory=dict)


def time_scenario(bench: Bench, scenario: Scenario, tool: Tool, repo: Path | None) -> None:
    """Apply the scenario's change, then time its command in `repo` (None: setup failed)."""
    if repo is None:
        bench.store(bench.timings, scenario.name, tool, None)
        return
    write_files(repo, scenario.change(bench.rep))
    before = out_stamps(repo)
    settle()
    result = execute(tool.cmd(*scenario.args), repo, bench.env)
    after = out_stamps(repo)
    rewritten = sum(before.get(name) != stamp for name, stamp in after.items())
    bench.store(bench.timings, scenario.name, tool, result.seconds)
    bench.store(bench.output_lines, scenario.name, tool, result.lines)
    bench.store(bench.rewritten, scenario.name, tool, rewritten)
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
def report(bench: Bench, tools: list[Tool], command: str, stopped: str) -> str:
    about = [f"- pipeline: {STAGES} stages (a chain of {CHAIN} `cp` stages, and a fan-out of "
             f"{FAN} `cat` stages that each read out/c00.txt, their own source and a param)",
             f"- reps: {bench.args.reps} (tool order alternates per rep); cells: median "
             f"seconds; {harness.SETTLE_SECONDS:g}s settle (sync + sleep) before each timed "
             f"command"]
    return harness.report(bench, tools, command, about, stopped)


def write_json(bench: Bench, tools: list[Tool], command: str, path: Path) -> None:
    harness.write_json(bench, tools, command, path,
                       {"pipeline": {"stages": STAGES, "chain": CHAIN, "fan": FAN}},
                       {"output_lines": bench.output_lines,  # stdout+stderr lines per rep
                        "outs_rewritten": bench.rewritten})  # out files rewritten per rep


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"Time mlv vs DVC pipelines ({STAGES} stages).")
    harness.add_tool_args(p)
    p.add_argument("--reps", type=int, default=5, help="repetitions per cell (default 5)")
    harness.add_run_args(p)
    args = p.parse_args(argv)
    if args.reps < 1 or args.settle < 0:
        p.error("--reps must be >= 1 and --settle >= 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = harness.command_line(argv)
    bench, tools = harness.start(args, "mlv-bench-pipeline-", Bench)
    stopped = ""
    try:
        repos = harness.make_repos(bench, tools, lambda t: make_repo(bench.root, t, bench.env))
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
        harness.finish(bench)
    print(report(bench, tools, command, stopped))
    if args.json:
        write_json(bench, tools, command, args.json)
    return 130 if stopped else int(bench.failed() or bool(bench.notes))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, harness.on_sigterm)
    sys.exit(main(sys.argv[1:]))
