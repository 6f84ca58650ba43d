"""Attacks on `mlv ci` and the diffs it reports: a clone's metrics, gates and names that
break the report or the arithmetic, gates that take quadratic time to parse, and
symlinks planted where the report goes."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Result, clone, commit_all, make_tree, one_error, run_mlv

Mlv = Callable[..., Result]
BASE = "--base=HEAD~1"


def history(tmp_path: Path, repo: Path, mlv: Mlv, first: dict[str, str | bytes | dict],
            second: dict[str, str | bytes | dict]) -> Path:
    """Two commits by the attacker (the second one tracks `data/` again when it
    exists), cloned as the victim's."""
    for tree in (first, second):
        make_tree(repo, tree)
        if (repo / "data").is_dir():
            res = mlv("add", "data", cwd=repo)
            assert res.exit_code == 0, res.output
        commit_all(repo)
    return clone(repo, tmp_path)


def no_crash(res: Result, code: int = 0) -> Result:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and "unexpected" not in res.output, res.output
    return res


BIG = "1" + "0" * 400  # an integer beyond a float's range
HUGE = "9" * 4300  # the most digits Python reads; the difference has one more


def test_integers_beyond_a_float_crash_nothing(tmp_path: Path, mlv_repo: Path,
                                               mlv: Mlv) -> None:
    yaml = ("metrics:\n- metrics.json\ngates:\n- metrics.json:big >= base\n"
            "- metrics.json:acc >= 0.1\n")
    victim = history(tmp_path, mlv_repo, mlv,
                     {"mlv.yaml": yaml,
                      "metrics.json": f'{{"acc": 0.5, "big": 1, "h": -{HUGE}}}'},
                     {"metrics.json": f'{{"acc": 0.7, "big": {BIG}, "h": {HUGE}}}'})
    res = no_crash(mlv("ci", "--no-push-check", BASE, cwd=victim), code=1)
    assert "failed: gate failed: metrics.json:big >= base" in res.stderr
    assert "| `metrics.json:acc >= 0.1` | 0.7 | 0.5 | ✅ passed |" in res.stdout
    facts = json.loads(no_crash(mlv("ci", "--no-push-check", BASE, "--json", cwd=victim),
                                code=1).stdout)
    assert [g["result"] for g in facts["gates"]] == ["failed", "passed"]
    for form in ([], ["--md"], ["--json"]):
        res = no_crash(mlv("metrics", "diff", "HEAD~1", "HEAD", *form, cwd=victim))
        assert "0.7" in res.stdout  # acc, beside the big ones


def test_a_long_number_in_a_gate_fails_at_once(tmp_path: Path, mlv_repo: Path,
                                               mlv: Mlv) -> None:
    # `\d+\.?\d*` could split 30,000 digits 30,000 ways before failing: half a minute
    gate = "metrics.json:acc >= " + "1" * 30_000 + "x"
    victim = history(tmp_path, mlv_repo, mlv,
                     {"mlv.yaml": f"metrics:\n- metrics.json\ngates:\n- '{gate}'\n",
                      "metrics.json": '{"acc": 0.5}'}, {"a.txt": "x"})
    start = time.monotonic()
    one_error(mlv("ci", "--no-push-check", cwd=victim), "does not parse", code=2)
    assert time.monotonic() - start < 5


def test_a_gate_beyond_a_float_is_malformed(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"metrics.json": '{"acc": 0.5}'})
    commit_all(mlv_repo)
    for gate in ("metrics.json:acc >= 1e999", "metrics.json:acc >= base * 1e400"):
        (mlv_repo / "mlv.yaml").write_text(f"metrics:\n- metrics.json\ngates:\n- {gate}\n")
        one_error(mlv("ci", "--no-push-check", cwd=mlv_repo), "beyond a float", code=2)


def test_report_is_not_written_through_a_planted_symlink(tmp_path: Path, mlv_repo: Path,
                                                         mlv: Mlv) -> None:
    outside = tmp_path / "home"
    outside.mkdir()
    (mlv_repo / "gl").symlink_to(".git")
    (mlv_repo / "report_plots").symlink_to(outside)
    victim = history(tmp_path, mlv_repo, mlv,
                     {"mlv.yaml": "plots:\n- a.csv\n", "a.csv": "x,y\n1,2\n2,3\n"},
                     {"a.csv": "x,y\n1,2\n2,4\n"})
    one_error(run_mlv(victim, "ci", "--no-push-check", "--report", "gl/r.md"),
              "--report", "gl", "symlink", code=2)
    one_error(run_mlv(victim, "ci", "--no-push-check", "--report", ".git/r.md"),
              "--report", ".git", code=2)
    assert not (victim / ".git" / "r.md").exists()
    res = no_crash(run_mlv(victim, "ci", "--no-push-check", BASE, "--report", "report.md"))
    assert "- plots: cannot write the plots to" in res.stdout
    assert os.listdir(outside) == []
    assert (victim / "report.md").read_text() == res.stdout


IMAGE = "![p](http://attacker.example/pixel.png)"
LINK = "[l](javascript:alert(1))"
HOSTILE = f"{IMAGE} <img src=http://attacker.example/x> {LINK} | x\n| forged | row |"


def markup(text: str) -> list[str]:
    """Markdown a rendered pull-request comment would act on: images, links, HTML."""
    return re.findall(r"(?<!\\)!\[|(?<!\\)\]\(|(?<!\\)<img", text)


def test_markdown_tables_show_markup_as_text(tmp_path: Path, mlv_repo: Path,
                                             mlv: Mlv) -> None:
    victim = history(
        tmp_path, mlv_repo, mlv,
        {"mlv.yaml": "metrics:\n- metrics.json\nstages:\n  s:\n    cmd: 'true'\n"
                     "    params: [lr]\n",
         "params.yaml": "lr: a\n", "metrics.json": '{"acc": "a"}',
         "data": {"keep.txt": "x"}},
        {"params.yaml": "lr: " + json.dumps(HOSTILE) + "\n",
         "metrics.json": json.dumps({"acc": HOSTILE, IMAGE: 1}),
         "data": {f"{LINK}.txt": "y", "![x](http:%2F%2Fattacker.example%2Fp.png)": "z"}})
    for args in (["metrics", "diff", "HEAD~1", "HEAD"], ["params", "diff", "HEAD~1", "HEAD"],
                 ["metrics", "show"], ["diff", "HEAD~1", "HEAD"]):
        res = no_crash(mlv(*args, "--md", cwd=victim))
        assert markup(res.stdout) == [], (args, res.stdout)
        rows = res.stdout.splitlines()
        assert all(r.startswith("| ") and r.endswith(" |") or r.startswith("|---")
                   for r in rows), res.stdout
        assert not any(r.startswith("| forged") for r in rows)
    res = no_crash(mlv("ci", "--no-push-check", BASE, cwd=victim))
    assert markup(res.stdout) == [], res.stdout
    assert "\\!" not in res.stdout and "!\\[p\\](http://attacker.example/pixel.png)" in res.stdout
