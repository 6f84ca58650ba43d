"""`mlv ci`: the push check, the repro of stale stages in a fresh clone (pulling only
what they need, restoring from the run-cache), the report and the gates."""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from conftest import cache_objects, clone, commit_all, file_xxh, git, make_tree, one_error, run_mlv

PY = shlex.quote(sys.executable)

PREPARE = """\
import os, sys
import yaml
scale = yaml.safe_load(open("params.yaml"))["prepare"]["scale"]
rows = []
for name in sorted(os.listdir("data/raw")):
    rows += [line for line in open(os.path.join("data/raw", name)).read().splitlines() if line]
with open("data/prepared.csv", "w") as out:
    out.write("".join(f"{r},{len(r) * scale}\\n" for r in rows))
"""

TRAIN = """\
import json, os
import yaml
params = yaml.safe_load(open("params.yaml"))["train"]
if params["lr"] > 1:
    raise SystemExit("lr is too large to converge")
rows = open("data/prepared.csv").read().splitlines()
open("trained.marker", "a").write("x")  # not an output: shows whether train ran here
json.dump({"accuracy": round(0.5 + params["lr"] + len(rows) / 100, 4), "rows": len(rows)},
          open("metrics.json", "w"))
os.makedirs("model", exist_ok=True)
open("model/weights.txt", "w").write(f"{params['lr']} {len(rows)}\\n")
"""

PIPELINE = {
    "stages": {
        "prepare": {"cmd": f"{PY} prepare.py", "deps": ["data/raw", "prepare.py"],
                    "params": ["prepare.scale"], "outs": ["data/prepared.csv"]},
        "train": {"cmd": f"{PY} train.py", "deps": ["data/prepared.csv", "train.py"],
                  "params": ["train.lr"], "outs": ["model"],
                  "metrics": [{"metrics.json": {"cache": False}}]},
    },
    "gates": ["metrics.json:accuracy >= 0.6", "metrics.json:accuracy >= base - 0.01"],
}

Run = Callable[..., Any]


def _params(repo: Path, lr: float, scale: int = 2) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump({"prepare": {"scale": scale},
                                                      "train": {"lr": lr}}))


def _ok(res: Any) -> Any:
    assert res.exit_code == 0, res.output
    return res


def _project(tmp_path: Path, mlv: Run, pipeline: dict[str, Any] | None = None,
             fmt: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Day one on main, pushed to a bare origin and to a folder remote (run-cache too;
    `fmt`: e.g. ("--format", "1")): returns (origin, work)."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    work = clone(origin, tmp_path, "work")
    (tmp_path / "store").mkdir()
    _ok(mlv("init", cwd=work))
    _ok(mlv("remote", "add", "-d", "storage", str(tmp_path / "store"), *fmt, cwd=work))
    make_tree(work, {"data": {"raw": {"a.csv": "1\n22\n", "b.csv": "333\n"}},
                     "prepare.py": PREPARE, "train.py": TRAIN,
                     "mlv.yaml": yaml.safe_dump(pipeline or PIPELINE, sort_keys=False)})
    (work / ".gitignore").write_text("trained.marker\n")
    _params(work, 0.1)
    _ok(mlv("add", "data/raw", cwd=work))
    _ok(mlv("repro", cwd=work))
    commit_all(work, "day one")
    git(work, "push", "-q", "origin", "main")
    git(work, "remote", "set-head", "origin", "main")
    _ok(mlv("push", "--run-cache", cwd=work))
    return origin, work


def _feature(work: Path, mlv: Run, lr: float, repro: bool = True, push: bool = True) -> None:
    git(work, "checkout", "-q", "-b", "feature")
    _params(work, lr)
    if repro:
        _ok(mlv("repro", cwd=work))
    commit_all(work, "try another lr")
    if push:
        _ok(mlv("push", "--run-cache", cwd=work))


def _ci_in_a_fresh_clone(work: Path, origin: Path, tmp_path: Path) -> tuple[Path, Any]:
    """Push the feature branch; `mlv ci --json` in a fresh clone of it, as a CI runner."""
    git(work, "push", "-q", "origin", "feature")
    ci = clone(origin, tmp_path, "ci")
    git(ci, "checkout", "-q", "feature")
    res = run_mlv(ci, "ci", "--json")
    assert res.exit_code == 0, res.output
    return ci, json.loads(res.stdout)


EXPECTED = """\
# mlv ci: passed

Head `{head}` compared with base `{base}` (merge-base with origin/main).

| check | result |
|---|---|
| data pushed to storage | ✅ all 3 tracked paths |
| pipeline | ✅ up to date |
| gates | ✅ 2 passed, 0 failed |
| data added to the remote | 6 B |

## Gates

| gate | value | base | result |
|---|---|---|---|
| `metrics.json:accuracy >= 0.6` | 0.73 | 0.63 | ✅ passed |
| `metrics.json:accuracy >= base - 0.01` | 0.73 | 0.63 | ✅ passed |

## Metrics

| file | key | base | head | change |
|---|---|---|---|---|
| metrics.json | accuracy | 0.63 | 0.73 | +0.1 |

## Params

| file | key | base | head | change |
|---|---|---|---|---|
| params.yaml | train.lr | 0.1 | 0.2 | +0.1 |

## Stages

Every stage is up to date: nothing ran.

## Data

1 modified; the change adds 6 B to the remote.

| path | change | size |
|---|---|---|
| model/weights.txt | modified | 6 B |
"""


def test_report_of_a_two_commit_history_is_exactly_this(tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv)
    _feature(work, mlv, lr=0.2)
    res = _ok(mlv("ci", "--report", "report.md", cwd=work))
    head = git(work, "rev-parse", "--short=7", "HEAD").strip()
    base = git(work, "rev-parse", "--short=7", "main").strip()
    expected = EXPECTED.format(head=head, base=base)
    assert (work / "report.md").read_text() == expected
    assert res.stdout == expected
    again = _ok(mlv("ci", "--report", "report.md", cwd=work))  # deterministic
    assert again.stdout == expected


def test_fresh_clone_pulls_only_what_the_stale_stage_needs(tmp_path: Path, mlv: Run) -> None:
    origin, work = _project(tmp_path, mlv)
    raw = {file_xxh(p) for p in (work / "data/raw").iterdir()}
    _feature(work, mlv, lr=0.3, repro=False, push=False)  # committed without running
    ci, facts = _ci_in_a_fresh_clone(work, origin, tmp_path)
    assert [(s["name"], s["result"]) for s in facts["stages"]] == [("train", "ran")]
    assert "param train.lr: 0.1 -> 0.3" in facts["stages"][0]["why"]
    assert (ci / "trained.marker").exists()
    cached = set(cache_objects(ci))
    assert not raw & cached  # the raw data was never downloaded: prepare did not run
    assert file_xxh(work / "data/prepared.csv") in cached
    assert facts["fetched"] == 1  # data/prepared.csv, the one input train needed
    metrics = {(m["key"], m["base"], m["head"]) for m in facts["metrics"]}
    assert metrics == {("accuracy", 0.63, 0.83)}
    assert [g["result"] for g in facts["gates"]] == ["passed", "passed"]


def test_a_run_someone_already_did_is_restored_from_the_run_cache(tmp_path: Path,
                                                                  mlv: Run) -> None:
    origin, work = _project(tmp_path, mlv)
    git(work, "checkout", "-q", "-b", "feature")
    _params(work, 0.25)
    _ok(mlv("repro", cwd=work))  # run on a laptop, its run-cache pushed ...
    _ok(mlv("push", "--run-cache", cwd=work))
    git(work, "add", "params.yaml")  # ... but only the param committed, not mlv.lock
    git(work, "commit", "-qm", "lr 0.25")
    ci, facts = _ci_in_a_fresh_clone(work, origin, tmp_path)
    assert [(s["name"], s["result"]) for s in facts["stages"]] == [("train", "restored")]
    assert not (ci / "trained.marker").exists()  # not trained again
    assert (ci / "model/weights.txt").read_text() == "0.25 3\n"
    assert {m["key"]: m["head"] for m in facts["metrics"]} == {"accuracy": 0.78}


def test_a_gate_that_fails_exits_1_and_says_which(tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv)
    _feature(work, mlv, lr=0.05)  # accuracy 0.63 -> 0.58: below 0.6 and base - 0.01
    res = mlv("ci", cwd=work)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert "# mlv ci: failed" in res.stdout
    assert "| gates | ❌ 0 passed, 2 failed |" in res.stdout
    assert "| `metrics.json:accuracy >= base - 0.01` | 0.58 | 0.63 | ❌ failed: accuracy " \
           "is 0.58, not >= 0.62 |" in res.stdout
    assert "failed: gate failed: metrics.json:accuracy >= 0.6" in res.stderr


def test_data_not_pushed_is_listed_and_fails(tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv)
    _feature(work, mlv, lr=0.2, push=False)
    res = mlv("ci", cwd=work)
    assert res.exit_code == 1, res.output
    assert "| model | mlv.lock | 2 |" in res.stdout  # the folder's manifest and a file
    assert "2 objects at HEAD are not on remote 'storage'" in res.stderr
    _ok(mlv("ci", "--no-push-check", cwd=work))
    _ok(mlv("push", cwd=work))
    _ok(mlv("ci", cwd=work))


def test_malformed_gates_and_bad_base_exit_2(tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv)
    one_error(mlv("ci", "--base", "no-such-branch", cwd=work), "unknown git revision",
              code=2)
    cases = [("metrics.json:accuracy >== 0.9", "does not parse"),
             ("metrics.json accuracy >= 0.9", "does not parse"),
             ("metrics.json:accuracy >= base +", "does not parse"),
             ("scores.json:accuracy >= 0.9", "not a metrics file")]
    for gate, words in cases:
        pipeline = dict(PIPELINE, gates=[gate])
        (work / "mlv.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
        one_error(mlv("ci", cwd=work), words, "mlv.yaml:", code=2)
    (work / "mlv.yaml").write_text(yaml.safe_dump(
        dict(PIPELINE, gates=["metrics.json:f1 >= 0.5"]), sort_keys=False))
    res = mlv("ci", cwd=work)  # a key the metrics do not have: the gate fails
    assert res.exit_code == 1, res.output
    assert "metrics.json has no key f1" in res.stdout
    _ok(mlv("status", cwd=work))  # gates are mlv ci's: nothing else minds them


def test_a_failing_stage_fails_ci(tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv)
    _feature(work, mlv, lr=2.0, repro=False)
    res = mlv("ci", cwd=work)
    assert res.exit_code == 1, res.output
    assert "| train | failed |" in res.stdout
    assert "lr is too large to converge" in res.stdout
    assert "failed: stage train failed" in res.stderr


def test_no_repro_lists_stale_stages_and_step_summary_gets_the_report(
        tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv)
    _feature(work, mlv, lr=0.2, repro=False)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    res = run_mlv(work, "ci", "--no-repro", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 0, res.output
    assert "| train | stale | param train.lr: 0.1 -> 0.2 |" in res.stdout
    assert (work / "trained.marker").read_text() == "x"  # train did not run again
    assert summary.read_text() == "earlier step\n" + res.stdout


def test_report_escapes_what_a_repository_brings(tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv)
    git(work, "checkout", "-q", "-b", "feature")
    (work / "train.py").write_text(TRAIN.replace(
        '"rows": len(rows)}', '"rows": len(rows), "a|b<img src=x onerror=alert(1)>": 1}'))
    _ok(mlv("repro", cwd=work))
    commit_all(work, "hostile key")
    _ok(mlv("push", cwd=work))
    res = _ok(mlv("ci", cwd=work))
    assert not re.search(r"(?<!\\)<img", res.stdout)  # HTML a PR comment would render
    assert "a\\|b\\<img src=x onerror=alert(1)>" in res.stdout


def test_ci_without_a_remote_or_a_pipeline(mlv_repo: Path, mlv: Run) -> None:
    make_tree(mlv_repo, {"a.txt": "hello\n"})
    _ok(mlv("add", "a.txt", cwd=mlv_repo))
    commit_all(mlv_repo, "data only")
    one_error(mlv("ci", cwd=mlv_repo), "no default remote")
    assert "--no-push-check" in mlv("ci", cwd=mlv_repo).stderr
    res = _ok(mlv("ci", "--no-push-check", cwd=mlv_repo))
    assert "(HEAD (no remote default branch found; pass --base))" in res.stdout
    assert "| pipeline | ✅ up to date |" in res.stdout
    one_error(mlv("ci", "--no-push-check", "--report", "no/such/folder/r.md", cwd=mlv_repo),
              "--report", "does not exist", code=2)


def test_push_check_trusts_a_manifest_until_this_clone_saw_it_lacking(tmp_path: Path,
                                                                     mlv: Run) -> None:
    _, work = _project(tmp_path, mlv, fmt=("--format", "1"))  # a file is lost on its own
    lost = [p for p in (tmp_path / "store").rglob("*") if p.is_file() and
            p.read_bytes() == b"333\n"]  # data/raw/b.csv, lost by the remote
    assert len(lost) == 1
    lost[0].unlink()
    _ok(mlv("ci", cwd=work))  # one request for data/raw: its manifest is there
    mlv("status", "--cloud", cwd=work)  # finds the lost file, and remembers
    res = mlv("ci", cwd=work)
    assert res.exit_code == 1, res.output
    assert "| data/raw | data/raw.mlv | 1 |" in res.stdout
    _ok(mlv("push", cwd=work))  # uploads it again
    _ok(mlv("ci", cwd=work))


def test_report_draws_declared_plots_for_base_and_head(tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv, dict(PIPELINE, plots=[{"history.csv": {"x": "epoch",
                                                                               "y": "loss"}}]))
    git(work, "checkout", "-q", "-b", "feature")
    (work / "history.csv").write_text("epoch,loss\n1,0.9\n2,0.5\n")
    commit_all(work, "a training history")
    (work / "out").mkdir()
    res = _ok(mlv("ci", "--report", "out/report.md", cwd=work))
    links = re.findall(r"!\[history\.csv\]\((report_plots/[^)]+\.svg)\)", res.stdout)
    assert len(links) == 1, res.stdout
    svg = (work / "out" / links[0]).read_text()
    assert "<svg" in svg and "history.csv: loss" in svg


def test_a_malformed_metrics_file_at_the_base_is_a_note(tmp_path: Path, mlv: Run) -> None:
    _, work = _project(tmp_path, mlv)
    (work / "metrics.json").write_text("{not json")
    commit_all(work, "a broken metrics file on main")
    git(work, "push", "-q", "origin", "main")
    git(work, "checkout", "-q", "-b", "feature")
    _ok(mlv("repro", "-f", cwd=work))  # writes a good one again
    commit_all(work, "fixed")
    res = mlv("ci", cwd=work)
    assert res.exit_code == 0, res.output  # the gate on `base` is skipped, not a crash
    assert "metrics metrics.json at the base:" in res.stdout
    assert "➖ skipped: no base value" in res.stdout
    assert "Traceback" not in res.output


def test_a_shallow_clone_says_why_it_has_no_base(tmp_path: Path, mlv: Run) -> None:
    origin, work = _project(tmp_path, mlv)
    _feature(work, mlv, lr=0.2)
    git(work, "push", "-q", "origin", "feature")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", "--no-single-branch",
        f"file://{origin}", str(shallow))
    git(shallow, "checkout", "-q", "feature")
    res = mlv("ci", "--no-repro", cwd=shallow)
    assert "no merge-base with origin/main (a shallow clone?" in res.stdout, res.output
