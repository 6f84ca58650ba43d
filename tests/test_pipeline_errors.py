"""Pipelines, when things go wrong: failing stages, --keep-going, and bad mlv.yaml files
(one clear line each, exit 1, no traceback)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_tree


def ok(res):  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output
    return res


def lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "mlv.lock").read_text())


def runs(repo: Path) -> list[str]:
    path = repo / "runs.log"
    return path.read_text().split() if path.exists() else []


def logged(name: str, cmd: str) -> str:
    return f"echo {name} >> runs.log && {cmd}"


def error_line(res) -> str:  # type: ignore[no-untyped-def]
    """The single `error:` line of a failed command (any other line is a `hint:`)."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert "unexpected" not in res.stderr, res.stderr  # the crash handler's wording
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert all(line.startswith(("error:", "hint:")) for line in lines), res.stderr
    return errors[0]


# ---- a failing stage ------------------------------------------------------------------------

FAIL = "echo starting && echo first-problem >&2 && echo the-real-problem >&2 && exit 3"


def test_failing_stage_names_itself_its_exit_code_and_stderr(mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "good", "-o", "good.txt", logged("good", "echo g > good.txt"),
           cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "broken", "-d", "good.txt", "-o", "broken.txt",
           logged("broken", FAIL), cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "after", "-d", "broken.txt", "-o", "after.txt",
           logged("after", "echo a > after.txt"), cwd=mlv_repo))
    res = mlv("repro", cwd=mlv_repo)
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    failure = next(line for line in res.stderr.splitlines() if "broken" in line)
    assert "code 3" in failure and "failed" in failure
    assert "the-real-problem" in res.stderr and "first-problem" in res.stderr
    assert "after" in res.stderr  # it says the downstream stage did not run
    assert runs(mlv_repo) == ["good", "broken"]
    assert set(lock(mlv_repo)["stages"]) == {"good"}
    assert not (mlv_repo / "after.txt").exists()
    status = mlv("status", cwd=mlv_repo).stdout.splitlines()
    assert "stage broken: new stage" in status and "stage after: new stage" in status
    assert not any(line.startswith("stage good:") for line in status)


def test_a_failed_rerun_leaves_the_lock_entry_as_it_was(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"in.txt": "v1\n"})
    ok(mlv("stage", "add", "-n", "first", "-o", "first.txt", "echo f > first.txt",
           cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "train", "-d", "in.txt", "-o", "model.txt",
           "cat in.txt > model.txt && grep -q v1 in.txt", cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    before = lock(mlv_repo)
    (mlv_repo / "in.txt").write_text("v2\n")
    res = mlv("repro", cwd=mlv_repo)
    assert res.exit_code == 1
    assert "train" in res.stderr and "code 1" in res.stderr
    assert lock(mlv_repo) == before
    assert "stage train: dep in.txt modified" in mlv("status", cwd=mlv_repo).stdout


def test_keep_going_runs_every_branch_that_does_not_depend_on_the_failure(
        mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "broken", "-o", "broken.txt", logged("broken", "exit 5"),
           cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "after", "-d", "broken.txt", "-o", "after.txt",
           logged("after", "echo a > after.txt"), cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "left", "-o", "left.txt", logged("left", "echo l > left.txt"),
           cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "left2", "-d", "left.txt", "-o", "left2.txt",
           logged("left2", "echo l2 > left2.txt"), cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "right", "-o", "right.txt",
           logged("right", "echo r > right.txt"), cwd=mlv_repo))

    res = mlv("repro", cwd=mlv_repo)
    assert res.exit_code == 1
    assert runs(mlv_repo) == ["broken"]
    assert not (mlv_repo / "mlv.lock").exists() or lock(mlv_repo)["stages"] == {}

    (mlv_repo / "runs.log").unlink()
    res = mlv("repro", "--keep-going", cwd=mlv_repo)
    assert res.exit_code == 1
    assert "broken" in res.stderr and "code 5" in res.stderr
    assert sorted(runs(mlv_repo)) == ["broken", "left", "left2", "right"]
    assert set(lock(mlv_repo)["stages"]) == {"left", "left2", "right"}
    assert not (mlv_repo / "after.txt").exists()
    assert "after" in res.stderr


def test_keep_going_with_parallel_jobs(mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "broken", "-o", "broken.txt", "exit 4", cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "after", "-d", "broken.txt", "-o", "after.txt",
           "echo a > after.txt", cwd=mlv_repo))
    for name in ("a", "b", "c"):
        ok(mlv("stage", "add", "-n", name, "-o", f"{name}.txt", f"echo {name} > {name}.txt",
               cwd=mlv_repo))
    res = mlv("repro", "-k", "-j", "2", cwd=mlv_repo)
    assert res.exit_code == 1
    assert set(lock(mlv_repo)["stages"]) == {"a", "b", "c"}
    assert not (mlv_repo / "after.txt").exists()


# ---- bad mlv.yaml ---------------------------------------------------------------------------

def stage_yaml(body: str, name: str = "train") -> str:
    return f"stages:\n  {name}:\n" + "".join(f"    {line}\n" for line in body.splitlines())


BAD = {
    # id: (mlv.yaml, extra files, words the error line must contain)
    "unknown-key": (stage_yaml("cmd: echo hi\ndepz: [a.txt]"), {},
                    ["mlv.yaml:4", "depz"]),
    "yaml-syntax": ("stages:\n  train:\n    cmd: echo hi\n    deps: [a.txt\n"
                    "  other:\n    cmd: echo\n", {}, ["mlv.yaml:", "YAML"]),
    "dotdot": (stage_yaml("cmd: echo hi\ndeps: [../secret.txt]"), {},
               ["mlv.yaml:4", "../secret.txt", "outside"]),
    "absolute": (stage_yaml("cmd: echo hi > /tmp/x\nouts: [/tmp/x]"), {},
                 ["mlv.yaml:4", "/tmp/x", "absolute"]),
    "into-git": (stage_yaml("cmd: echo hi\nouts: [.git/hooks/pre-commit]"), {},
                 ["mlv.yaml:4", ".git"]),
    "undefined-var": (stage_yaml("cmd: echo ${undefined}"), {"params.yaml": "lr: 1\n"},
                      ["mlv.yaml:3", "undefined"]),
    "foreach-without-do": ("stages:\n  build:\n    foreach: [a, b]\n", {},
                           ["mlv.yaml:2", "build", "do"]),
    "same-out": ("stages:\n  one:\n    cmd: echo 1 > o.txt\n    outs: [o.txt]\n"
                 "  two:\n    cmd: echo 2 > o.txt\n    outs: [o.txt]\n", {},
                 ["mlv.yaml", "one", "two", "o.txt"]),
    "out-in-out": ("stages:\n  one:\n    cmd: mkdir -p d\n    outs: [d]\n"
                   "  two:\n    cmd: echo 2 > d/x.txt\n    outs: [d/x.txt]\n", {},
                   ["mlv.yaml", "d/x.txt", "inside"]),
    "missing-params-key": (stage_yaml("cmd: echo hi\nparams: [train.lr]"),
                           {"params.yaml": "train:\n  epochs: 1\n"},
                           ["train.lr", "params.yaml"]),
    "missing-params-file": (stage_yaml("cmd: echo hi\nparams: ['conf.yaml:lr']"), {},
                            ["train", "conf.yaml", "does not exist"]),
    "missing-dep": (stage_yaml("cmd: echo hi\ndeps: [nowhere.csv]"), {},
                    ["train", "nowhere.csv", "does not exist"]),
}


def _write(repo: Path, case: str) -> list[str]:
    text, files, words = BAD[case]
    make_tree(repo, {"mlv.yaml": text, **files})
    return words


@pytest.mark.parametrize("case", list(BAD))
def test_bad_pipeline_gives_one_clear_line_on_repro(mlv, mlv_repo: Path, case: str) -> None:
    words = _write(mlv_repo, case)
    line = error_line(mlv("repro", cwd=mlv_repo))
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    assert not (mlv_repo / "mlv.lock").exists()


# (a dep or params that are missing only matter once the stage has run: see below)
@pytest.mark.parametrize("case", [c for c in BAD if not c.startswith("missing-")])
def test_bad_pipeline_gives_one_clear_line_on_status(mlv, mlv_repo: Path, case: str) -> None:
    words = _write(mlv_repo, case)
    line = error_line(mlv("status", cwd=mlv_repo))
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"


def test_params_removed_after_a_run_give_one_clear_line(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"params.yaml": "train:\n  lr: 0.1\n",
                         "mlv.yaml": stage_yaml("cmd: echo hi > t.txt\nparams: [train.lr]\n"
                                                "outs: [t.txt]")})
    ok(mlv("repro", cwd=mlv_repo))
    (mlv_repo / "params.yaml").write_text("train:\n  epochs: 1\n")
    for command in ("status", "repro"):
        line = error_line(mlv(command, cwd=mlv_repo))
        assert "train.lr" in line and "params.yaml" in line
    (mlv_repo / "params.yaml").unlink()
    for command in ("status", "repro"):
        line = error_line(mlv(command, cwd=mlv_repo))
        assert "params.yaml" in line and "does not exist" in line


def test_missing_dep_produced_by_a_stage_is_fine(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n  make:\n    cmd: echo m > made.txt\n    outs: [made.txt]\n"
        "  use:\n    cmd: cat made.txt > used.txt\n    deps: [made.txt]\n    outs: [used.txt]\n")
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "used.txt").read_text() == "m\n"


def test_cycle_error_names_the_stages_in_the_cycle(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n"
        "  gamma:\n    cmd: echo g > g.txt\n    outs: [g.txt]\n"
        "  alpha:\n    cmd: cat g.txt b.txt > a.txt\n    deps: [g.txt, b.txt]\n"
        "    outs: [a.txt]\n"
        "  beta:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n")
    for command in ("repro", "status", "dag"):
        line = error_line(mlv(command, cwd=mlv_repo))
        assert "cycle" in line and "mlv.yaml" in line
        assert "alpha" in line and "beta" in line
        assert "gamma" not in line
    assert not (mlv_repo / "g.txt").exists()


def test_repro_unknown_stage(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text(stage_yaml("cmd: echo hi > t.txt\nouts: [t.txt]"))
    line = error_line(mlv("repro", "UNKNOWN_STAGE", cwd=mlv_repo))
    assert "UNKNOWN_STAGE" in line
    assert not (mlv_repo / "t.txt").exists()


def test_stage_add_refuses_paths_outside_the_repo(mlv, mlv_repo: Path) -> None:
    for args in (["-d", "../x.txt"], ["-o", "/tmp/abs.txt"], ["-o", ".git/x"]):
        res = mlv("stage", "add", "-n", "bad", *args, "echo hi", cwd=mlv_repo)
        line = error_line(res)
        assert args[1] in line
        assert not (mlv_repo / "mlv.yaml").exists()


def test_bad_pipeline_error_has_no_traceback_in_a_real_process(mlv_repo: Path) -> None:
    from tests.conftest import run_mlv

    (mlv_repo / "mlv.yaml").write_text(stage_yaml("cmd: echo hi\ndepz: [a.txt]"))
    res = run_mlv(mlv_repo, "repro")
    line = error_line(res)
    assert re.search(r"mlv\.yaml:4\b", line) and "depz" in line
    assert res.stdout == ""
