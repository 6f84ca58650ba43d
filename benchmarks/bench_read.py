#!/usr/bin/env python3
"""Time reading versioned data from code and from other repositories, mlv against DVC.

Standard library only (Python >= 3.10); see benchmarks/README.md for usage.

Each tool gets its own fresh `git init` repo with the same data, pushed to its own
folder remote (the remote's config committed), and a bare copy of it (`origin.git`),
read by `file://` URL as another project would:

- tag A: `data/`, a folder of N small files (seeded random bytes), and `model.json`, a
  small tracked file, both added with `<tool> add`;
- tag B: `model.json` changed and added again.

Timed, in every rep (the tool that goes first alternates per rep):

- `api.read` of `model.json` at tag A from inside the repo, in a warm Python process:
  the tool's own interpreter imports its API, reads once untimed, then times 20 reads;
  the cell is the median of one read (`mlv.api.read` / `dvc.api.read`);
- `ls -R` of `data/` at HEAD of the repo (`<tool> ls . data -R`);
- `get` of `data/` from the origin URL into a new folder (`<tool> get URL data -o OUT`),
  with every clone the tool keeps between commands removed first (mlv's clone cache,
  DVC's site cache), so each get starts as a first get does;
- `pull` of `data/` into a fresh `git clone` of the origin, the yardstick for `get`.

Untimed, it checks that what `get` and `pull` wrote equals the data, and that `read`
returned the bytes of tag A.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import harness
from harness import Bench, Result, Tool, execute, log, run, settle

PER_FOLDER = 1000  # files per data/dNN folder
REMOTE = "store"
READS = 20  # timed reads per rep in the warm process
MODEL_A = {"layers": 4, "accuracy": 0.8125, "note": "tag A"}
MODEL_B = {"layers": 6, "accuracy": 0.84375, "note": "tag B"}

READ_SCRIPT = r"""
import json, statistics, sys, time
tool, path, rev = sys.argv[1:4]
if tool == "mlv":
    import mlv.api as api
else:
    import dvc.api as api
first = api.read(path, rev=rev, mode="rb")
times = []
for _ in range(int(sys.argv[4])):
    start = time.perf_counter()
    data = api.read(path, rev=rev, mode="rb")
    times.append(time.perf_counter() - start)
    assert data == first
print(json.dumps({"median": statistics.median(times), "bytes": first.decode()}))
"""


# ---------------------------------------------------------------------- data
def write_data(data: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(count):
        path = data / f"d{i // PER_FOLDER:02d}" / f"f{i % PER_FOLDER:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(64, 2048)))


def tree_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def git_commit(repo: Path, env: dict[str, str], message: str, tag: str) -> bool:
    return (run(["git", "add", "-A"], repo, env)
            and run(["git", "commit", "-q", "-m", message], repo, env)
            and run(["git", "tag", tag], repo, env))


def make_repo(root: Path, tool: Tool, env: dict[str, str], args: argparse.Namespace
              ) -> Path | None:
    """The repo with tags A and B, pushed to its folder remote, and its bare origin
    (untimed)."""
    repo = root / "repos" / tool.name
    remote = root / "remotes" / tool.name
    repo.mkdir(parents=True)
    remote.mkdir(parents=True)
    start = time.perf_counter()
    if not (run(["git", "-c", "init.defaultBranch=main", "init", "-q"], repo, env)
            and all(run(tool.cmd(*step), repo, env) for step in tool.setup)
            and run(tool.cmd("remote", "add", "-d", REMOTE, str(remote)), repo, env)):
        return None
    write_data(repo / "data", args.files, args.seed)
    (repo / "model.json").write_text(json.dumps(MODEL_A))
    ok = (run(tool.cmd("add", "data"), repo, env) and run(tool.cmd("add", "model.json"), repo, env)
          and git_commit(repo, env, "A", "A"))
    if ok:
        (repo / "model.json").write_text(json.dumps(MODEL_B))
        ok = (run(tool.cmd("add", "model.json"), repo, env) and git_commit(repo, env, "B", "B")
              and run(tool.cmd("push"), repo, env)
              and run(["git", "clone", "-q", "--bare", str(repo), str(origin(root, tool))],
                      root, env))
    log(f"{tool.name}: repo, remote and origin made in {time.perf_counter() - start:.1f}s")
    return repo if ok else None


def origin(root: Path, tool: Tool) -> Path:
    return root / "origins" / f"{tool.name}.git"


def forget_clones(root: Path, env: dict[str, str]) -> None:
    """Remove what either tool keeps between commands about other repositories."""
    shutil.rmtree(Path(env["HOME"]) / ".cache", ignore_errors=True)
    shutil.rmtree(Path(env["DVC_SITE_CACHE_DIR"]), ignore_errors=True)


# ----------------------------------------------------------------- scenarios
def timed(bench: Bench, name: str, tool: Tool, result: Result, wrong: str = "") -> None:
    bench.store(bench.timings, name, tool, result.seconds)
    shown = "failed" if result.seconds is None else f"{result.seconds:.3f}s"
    log(f"  {tool.name} {name}: {shown}")
    if result.ok and wrong:
        bench.warn(f"{tool.name} {name}: {wrong}")


def time_read(bench: Bench, tool: Tool, repo: Path) -> None:
    python = str(Path(tool.exe or "").parent / "python")
    settle()
    result = execute([python, "-c", READ_SCRIPT, tool.name, "model.json", "A", str(READS)],
                     repo, bench.env)
    name = "api.read of a small file at tag A (warm process, one read)"
    if not result.ok:
        timed(bench, name, tool, result)
        return
    got = json.loads(result.stdout.strip().splitlines()[-1])
    wrong = "" if json.loads(got["bytes"]) == MODEL_A else "read returned other bytes"
    timed(bench, name, tool, Result(got["median"]), wrong)


def time_ls(bench: Bench, tool: Tool, repo: Path) -> None:
    settle()
    result = execute(tool.cmd("ls", ".", "data", "-R"), repo, bench.env)
    listed = sum(".bin" in line for line in result.stdout.splitlines())
    wrong = "" if listed == bench.args.files else f"listed {listed} files"
    timed(bench, f"ls -R of a tracked folder ({bench.args.files} files)", tool, result, wrong)


def time_get(bench: Bench, tool: Tool, repo: Path, want: dict[str, bytes]) -> None:
    out = bench.root / "out" / f"get-{tool.name}-{bench.rep}"
    out.parent.mkdir(parents=True, exist_ok=True)
    forget_clones(bench.root, bench.env)
    settle()
    url = origin(bench.root, tool).as_uri()
    result = execute(tool.cmd("get", url, "data", "-o", str(out)), bench.root, bench.env)
    wrong = "" if not result.ok or tree_of(out) == want else "the files differ"
    timed(bench, "get of that folder from another repo (folder remote)", tool, result, wrong)
    # kept until the run ends: files deleted just before make ext4 slow to create new ones


def time_pull(bench: Bench, tool: Tool, repo: Path, want: dict[str, bytes]) -> None:
    dest = bench.root / "clones" / f"{tool.name}-{bench.rep}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not run(["git", "clone", "-q", str(origin(bench.root, tool)), str(dest)],
               bench.root, bench.env):
        timed(bench, "pull of that folder into a fresh clone", tool, Result(None))
        return
    settle()
    result = execute(tool.cmd("pull"), dest, bench.env)
    wrong = "" if not result.ok or tree_of(dest / "data") == want else "the files differ"
    timed(bench, "pull of that folder into a fresh clone", tool, result, wrong)


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time mlv vs DVC api.read, ls, get (and pull).")
    harness.add_tool_args(p)
    p.add_argument("--files", type=int, default=20000,
                   help="files in the tracked folder (default 20000)")
    p.add_argument("--seed", type=int, default=1234, help="seed for the data (default 1234)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per cell (default 3)")
    harness.add_run_args(p)
    args = p.parse_args(argv)
    if args.reps < 1 or args.settle < 0 or args.files < 1:
        p.error("--reps must be >= 1, --settle >= 0 and --files >= 1")
    return args


def report(bench: Bench, tools: list[Tool], command: str, stopped: str) -> str:
    args = bench.args
    about = [f"- repo: data/ with {args.files} files of 64-2048 bytes and model.json, both "
             "tracked; tag A, then model.json changed at tag B; pushed to a folder remote; "
             "read by `file://` URL from a bare copy",
             f"- reps: {args.reps} (tool order alternates per rep); cells: median seconds; "
             f"{harness.SETTLE_SECONDS:g}s settle (sync + sleep) before each timed command; "
             f"api.read: median of {READS} reads in one warm process"]
    return harness.report(bench, tools, command, about, stopped)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = harness.command_line(argv)
    bench, tools = harness.start(args, "mlv-bench-read-", Bench)
    root = bench.root
    stopped = ""
    try:
        repos = harness.make_repos(bench, tools, lambda t: make_repo(root, t, bench.env, args))
        want = {}
        for t in tools:
            if repos[t.name] is not None:
                want = tree_of(repos[t.name] / "data")  # type: ignore[operator]
        for rep in range(args.reps):
            bench.rep = rep
            order = tools if rep % 2 == 0 else tools[::-1]
            log(f"rep {rep + 1}/{args.reps}: {' then '.join(t.name for t in order)}")
            for step in (time_read, time_ls):
                for tool in order:
                    repo = repos[tool.name]
                    if tool.exe is not None and repo is not None:
                        step(bench, tool, repo)
            for step2 in (time_get, time_pull):
                for tool in order:
                    repo = repos[tool.name]
                    if tool.exe is not None and repo is not None:
                        step2(bench, tool, repo, want)
    except KeyboardInterrupt:
        stopped = "Interrupted"
    finally:
        harness.finish(bench)
    print(report(bench, tools, command, stopped))
    if args.json:
        harness.write_json(bench, tools, command, args.json, {"files": args.files}, {})
    warned = any(n.startswith("!!!") for n in bench.notes)
    return 130 if stopped else int(bench.failed() or warned)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, harness.on_sigterm)
    sys.exit(main(sys.argv[1:]))
