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
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness import Bench, Result, Tool, execute, log, run, settle

PER_FOLDER = 1000  # files per data/dNN folder
METRICS_A = {"accuracy": 0.8125, "loss": 0.4375, "epochs": 10, "model": "rf"}
METRICS_B = {"accuracy": 0.84375, "loss": 0.375, "epochs": 12, "model": "rf"}
REMOTE = "store"


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


def time_scenario(bench: Bench, scenario: Scenario, tool: Tool, repo: Path | None,
                  changes: Changes) -> None:
    """Time the scenario's command in `repo` (None: setup failed), then check its output."""
    if repo is None:
        bench.store(bench.timings, scenario.name, tool, None)
        return
    settle()
    result = execute(tool.cmd(*scenario.args), repo, bench.env)
    bench.store(bench.timings, scenario.name, tool, result.seconds)
    shown = "failed" if result.seconds is None else f"{result.seconds:.3f}s"
    log(f"  {tool.name} {scenario.name}: {shown}")
    wrong = scenario.check(tool, result, changes) if result.ok else ""
    if wrong:
        bench.warn(f"{tool.name} {scenario.name}: {wrong}")


# -------------------------------------------------------------------- report
def report(bench: Bench, tools: list[Tool], command: str, changes: Changes,
           stopped: str) -> str:
    args = bench.args
    about = [f"- repo: data/ with {args.files} files of 64-2048 bytes (commit A); commit B "
             f"modifies {len(changes.modified)}, deletes {len(changes.deleted)} and adds "
             f"{len(changes.added)}, and changes 3 keys of metrics.json (kept in git)",
             f"- reps: {args.reps} (tool order alternates per rep); cells: median seconds; "
             f"{harness.SETTLE_SECONDS:g}s settle (sync + sleep) before each timed command"]
    return harness.report(bench, tools, command, about, stopped)


def write_json(bench: Bench, tools: list[Tool], command: str, path: Path) -> None:
    harness.write_json(bench, tools, command, path, {"files": bench.args.files}, {})


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time mlv vs DVC diff and metrics diff.")
    harness.add_tool_args(p)
    p.add_argument("--files", type=int, default=20000,
                   help="files in the tracked folder (default 20000)")
    p.add_argument("--seed", type=int, default=1234, help="seed for the data (default 1234)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per cell (default 3)")
    harness.add_run_args(p)
    args = p.parse_args(argv)
    if args.reps < 1 or args.settle < 0 or args.files < 200:
        p.error("--reps must be >= 1, --settle >= 0 and --files >= 200")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = harness.command_line(argv)
    bench, tools = harness.start(args, "mlv-bench-history-", Bench)
    changes = plan_changes(args.files)
    root = bench.root
    stopped = ""
    try:
        repos = harness.make_repos(bench, tools,
                                   lambda t: make_repo(root, t, bench.env, args, changes))
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
        harness.finish(bench)
    print(report(bench, tools, command, changes, stopped))
    if args.json:
        write_json(bench, tools, command, args.json)
    warned = any(n.startswith("!!!") for n in bench.notes)
    return 130 if stopped else int(bench.failed() or warned)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, harness.on_sigterm)
    sys.exit(main(sys.argv[1:]))
