"""Issue 9: one index of what is tracked; stage outputs and stage names are targets; the
defects a DVC user hit (each reproduced first)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import (
    Result,
    add_remote,
    file_xxh,
    git,
    make_tree,
    one_error,
    remote_oids,
    run_mlv,
    xxh,
)

PIPELINE = """\
stages:
  prepare:
    cmd: mkdir -p prepared && cp data/data.xml prepared/all.xml && echo x > prepared/extra.txt
    deps: [data/data.xml]
    outs: [prepared]
  train:
    cmd: cat prepared/all.xml > model.pkl
    deps: [prepared]
    outs: [model.pkl]
"""

Mlv = Callable[..., Result]


def _project(repo: Path, mlv: Mlv) -> None:
    """A tracked input (data/data.xml.mlv), a two-stage pipeline, run and committed."""
    make_tree(repo, {"data": {"data.xml": "<v1/>"}, "mlv.yaml": PIPELINE})
    assert mlv("add", "data/data.xml", cwd=repo).exit_code == 0
    res = mlv("repro", cwd=repo)
    assert res.exit_code == 0, res.output
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")


def _clone(repo: Path, tmp_path: Path, name: str = "clone") -> Path:
    dest = tmp_path / name
    git(tmp_path, "clone", "-q", str(repo), str(dest))
    return dest


# ---- defect 1: repro stores a changed tracked dependency ---------------------------------

def test_repro_stores_a_changed_tracked_input_and_updates_its_pointer(
        mlv_repo: Path, mlv: Mlv, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    _project(mlv_repo, mlv)
    add_remote(mlv_repo, "local", request, tmp_path)
    (mlv_repo / "data" / "data.xml").write_text("<v2/>")
    res = mlv("repro", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "data/data.xml changed: stored the new version and updated data/data.xml.mlv" \
        in res.output
    # the pointer now names what the stages read, and the workspace status is clean
    assert mlv("status", "-q", cwd=mlv_repo).exit_code == 0
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "v2")
    # a fresh clone gets the new input and reproduces nothing
    clone = _clone(mlv_repo, tmp_path)
    assert run_mlv(clone, "pull").exit_code == 0
    assert (clone / "data" / "data.xml").read_text() == "<v2/>"
    assert (clone / "model.pkl").read_text() == "<v2/>"
    res = run_mlv(clone, "repro")
    assert res.exit_code == 0 and "up to date" in res.output, res.output


# ---- defect 2: status --cloud covers stage outputs ---------------------------------------

def test_status_cloud_reports_stage_outputs_not_pushed(
        mlv_repo: Path, mlv: Mlv, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    _project(mlv_repo, mlv)
    add_remote(mlv_repo, "local", request, tmp_path)
    res = mlv("status", "--cloud", cwd=mlv_repo)
    assert "model.pkl" in res.output and "prepared" in res.output, res.output
    assert "not pushed" in res.output
    assert mlv("status", "--cloud", "-q", cwd=mlv_repo).exit_code == 1
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    res = mlv("status", "--cloud", cwd=mlv_repo)
    assert res.exit_code == 0 and "in sync" in res.output, res.output
    assert mlv("status", "--cloud", "-q", cwd=mlv_repo).exit_code == 0


# ---- defect 3: stage outputs, stage names, paths inside folders are targets --------------

@pytest.fixture
def pushed_clone(mlv_repo: Path, mlv: Mlv, tmp_path: Path,
                 request: pytest.FixtureRequest) -> Path:
    _project(mlv_repo, mlv)
    add_remote(mlv_repo, "local", request, tmp_path)
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "remote")
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    return _clone(mlv_repo, tmp_path)


def test_pull_a_stage_output_by_path(pushed_clone: Path, mlv: Mlv) -> None:
    res = mlv("pull", "model.pkl", cwd=pushed_clone)
    assert res.exit_code == 0, res.output
    assert (pushed_clone / "model.pkl").read_text() == "<v1/>"
    assert not (pushed_clone / "prepared").exists()
    assert not (pushed_clone / "data" / "data.xml").exists()


def test_fetch_then_checkout_a_stage_output(pushed_clone: Path, mlv: Mlv) -> None:
    assert mlv("fetch", "model.pkl", cwd=pushed_clone).exit_code == 0
    assert not (pushed_clone / "model.pkl").exists()
    assert mlv("checkout", "model.pkl", cwd=pushed_clone).exit_code == 0
    assert (pushed_clone / "model.pkl").read_text() == "<v1/>"


def test_pull_a_stage_by_name_restores_its_outputs(pushed_clone: Path, mlv: Mlv) -> None:
    res = mlv("pull", "prepare", cwd=pushed_clone)
    assert res.exit_code == 0, res.output
    assert (pushed_clone / "prepared" / "all.xml").read_text() == "<v1/>"
    assert not (pushed_clone / "model.pkl").exists()


def test_pull_a_file_inside_a_tracked_folder(pushed_clone: Path, mlv: Mlv) -> None:
    res = mlv("pull", "prepared/extra.txt", cwd=pushed_clone)
    assert res.exit_code == 0, res.output
    assert (pushed_clone / "prepared" / "extra.txt").read_text() == "x\n"
    assert not (pushed_clone / "prepared" / "all.xml").exists()
    # the rest of the folder comes later, without a conflict
    assert mlv("pull", "prepared", cwd=pushed_clone).exit_code == 0
    assert (pushed_clone / "prepared" / "all.xml").read_text() == "<v1/>"


def test_pull_a_pointer_file_and_a_folder_of_tracked_paths(pushed_clone: Path,
                                                           mlv: Mlv) -> None:
    assert mlv("pull", "data/data.xml.mlv", cwd=pushed_clone).exit_code == 0
    assert (pushed_clone / "data" / "data.xml").read_text() == "<v1/>"
    (pushed_clone / "data" / "data.xml").unlink()
    # `data` is not tracked itself, but holds a tracked path
    assert mlv("pull", "data", cwd=pushed_clone).exit_code == 0
    assert (pushed_clone / "data" / "data.xml").exists()


def test_status_and_push_take_stage_outputs(mlv_repo: Path, mlv: Mlv, tmp_path: Path,
                                            request: pytest.FixtureRequest) -> None:
    _project(mlv_repo, mlv)
    add_remote(mlv_repo, "local", request, tmp_path)
    (mlv_repo / "model.pkl").unlink()
    res = mlv("status", "model.pkl", cwd=mlv_repo)
    assert "model.pkl (mlv.lock): deleted" in res.output, res.output
    assert mlv("checkout", "train", cwd=mlv_repo).exit_code == 0
    assert mlv("push", "model.pkl", cwd=mlv_repo).exit_code == 0
    # model.pkl only: not the input, not the prepared folder
    assert remote_oids(mlv_repo) == {file_xxh(mlv_repo / "model.pkl")}


def test_an_unknown_target_says_what_mlv_looked_for(mlv_repo: Path, mlv: Mlv) -> None:
    _project(mlv_repo, mlv)
    line = one_error(mlv("checkout", "nosuch.pkl", cwd=mlv_repo), "nosuch.pkl",
                     "not tracked by mlv")
    assert "stage output" in line and "stage of that name" in line
    assert "run mlv add first" not in line


def test_remove_and_move_of_a_stage_output_explain(mlv_repo: Path, mlv: Mlv) -> None:
    _project(mlv_repo, mlv)
    line = one_error(mlv("remove", "model.pkl", cwd=mlv_repo), "model.pkl",
                     "output of stage train")
    assert "mlv add" not in line
    one_error(mlv("move", "model.pkl", "m2.pkl", cwd=mlv_repo), "output of stage train")
    assert (mlv_repo / "model.pkl").exists()


# ---- defect 4: a fresh clone's status says what works ------------------------------------

def test_fresh_clone_status_advises_pull_not_repro(pushed_clone: Path) -> None:
    res = run_mlv(pushed_clone, "status")
    assert "mlv pull" in res.output, res.output
    assert "mlv repro" not in res.output and "checkout --force" not in res.output
    # and what it advises works
    assert run_mlv(pushed_clone, "pull").exit_code == 0
    res = run_mlv(pushed_clone, "status")
    assert res.exit_code == 0 and "everything is up to date" in res.output, res.output


def test_repro_in_a_fresh_clone_says_to_pull(pushed_clone: Path) -> None:
    res = run_mlv(pushed_clone, "repro")
    one_error(res, "data/data.xml", "tracked", "not in the workspace")
    assert "hint: run `mlv pull`" in res.stderr


def test_status_after_a_real_change_still_advises_repro(mlv_repo: Path, mlv: Mlv) -> None:
    _project(mlv_repo, mlv)
    (mlv_repo / "mlv.yaml").write_text(PIPELINE.replace("cat prepared", "cat  prepared"))
    res = mlv("status", cwd=mlv_repo)
    assert "stage train: cmd changed" in res.output
    assert "run `mlv repro`" in res.output and "mlv pull" not in res.output


# ---- defect 5: no pipeline -----------------------------------------------------------------

@pytest.mark.parametrize("command", [["repro"], ["dag"], ["repro", "--dry"]])
def test_pipeline_commands_without_mlv_yaml_say_so(mlv_repo: Path, mlv: Mlv,
                                                   command: list[str]) -> None:
    one_error(mlv(*command, cwd=mlv_repo), "no pipeline", "mlv.yaml")


# ---- the index at a git revision -----------------------------------------------------------

def test_index_reads_a_revision_without_touching_the_workspace(mlv_repo: Path,
                                                               mlv: Mlv) -> None:
    from mlv.index import Index
    from mlv.repo import Repo

    _project(mlv_repo, mlv)
    (mlv_repo / "data" / "data.xml").write_text("<v2/>")
    assert mlv("repro", cwd=mlv_repo).exit_code == 0
    git(mlv_repo, "commit", "-qam", "v2")
    repo = Repo(str(mlv_repo))
    old, new = Index.load(repo, "HEAD~1"), Index.load(repo)
    assert set(old.items) == set(new.items) == {"data/data.xml", "prepared", "model.pkl"}
    assert old.items["model.pkl"].kind == "out" and old.items["model.pkl"].stage == "train"
    assert old.items["data/data.xml"].pointer == "data/data.xml.mlv"
    assert old.items["model.pkl"].oid != new.items["model.pkl"].oid
    assert (mlv_repo / "model.pkl").read_text() == "<v2/>"  # nothing checked out
    assert [t.path for t in old.resolve(["train"], cwd=str(mlv_repo))] == ["model.pkl"]


def test_index_at_a_revision_refuses_an_unsafe_committed_path(mlv_repo: Path) -> None:
    from mlv.errors import MlvError
    from mlv.index import Index
    from mlv.repo import Repo

    body = f"outs:\n- path: ../../outside\n  xxh128: {'ab' * 16}\n  size: 3\n"
    (mlv_repo / "evil.mlv").write_text(body)
    git(mlv_repo, "add", "evil.mlv")
    git(mlv_repo, "commit", "-qm", "evil")
    (mlv_repo / "evil.mlv").unlink()
    with pytest.raises(MlvError):
        Index.load(Repo(str(mlv_repo)), "HEAD")


def test_index_at_an_unknown_revision_is_one_error(mlv_repo: Path) -> None:
    from mlv.errors import MlvError
    from mlv.index import Index
    from mlv.repo import Repo

    with pytest.raises(MlvError, match="unknown git revision"):
        Index.load(Repo(str(mlv_repo)), "no-such-branch")


# ---- output options from dvc.yaml: push: false, remote: NAME -------------------------------

OPTIONS = """\
stages:
  train:
    cmd: echo model > model.pkl && echo scratch > scratch.bin && echo big > weights.bin
    outs:
    - model.pkl
    - scratch.bin:
        push: false
    - weights.bin:
        remote: models
"""


def test_push_false_stays_local_and_remote_sends_an_output_elsewhere(
        mlv_repo: Path, mlv: Mlv, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    store = Path(add_remote(mlv_repo, "local", request, tmp_path))
    models = tmp_path / "models-remote"
    models.mkdir()
    assert mlv("remote", "add", "models", str(models), cwd=mlv_repo).exit_code == 0
    make_tree(mlv_repo, {"mlv.yaml": OPTIONS})
    assert mlv("repro", cwd=mlv_repo).exit_code == 0
    res = mlv("status", "--cloud", cwd=mlv_repo)
    assert "model.pkl" in res.output and "weights.bin" in res.output, res.output
    assert "scratch.bin" not in res.output
    res = mlv("push", cwd=mlv_repo)
    assert res.exit_code == 0, res.output

    assert remote_oids(mlv_repo, "store") == {xxh(b"model\n")}
    assert remote_oids(mlv_repo, "models") == {xxh(b"big\n")}
    assert mlv("status", "--cloud", "-q", cwd=mlv_repo).exit_code == 0
    # a clone fetches each output from its remote; push: false is not looked for
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "outs")
    clone = _clone(mlv_repo, tmp_path)
    for name, url in (("store", store), ("models", models)):
        run_mlv(clone, "remote", "add", "--local", name, str(url))
    run_mlv(clone, "remote", "default", "--local", "store")
    res = run_mlv(clone, "pull", "model.pkl", "weights.bin")
    assert res.exit_code == 0, res.output
    assert (clone / "weights.bin").read_text() == "big\n"
    assert (clone / "model.pkl").read_text() == "model\n"


def test_artifacts_are_listed_with_their_recorded_version(mlv_repo: Path, mlv: Mlv) -> None:
    import json

    make_tree(mlv_repo, {"mlv.yaml": OPTIONS.replace("    outs:\n", "    desc: fit it\n"
                                                     "    outs:\n") + """\
  frozen_one:
    cmd: echo never > never.txt
    frozen: true
artifacts:
  classifier:
    path: model.pkl
    type: model
    desc: Tags questions
    labels: [nlp]
  future:
    path: later.pkl
"""})
    assert mlv("repro", cwd=mlv_repo).exit_code == 0
    rows = mlv("artifacts", "list", cwd=mlv_repo).stdout.splitlines()
    assert rows[0].split("\t")[:3] == ["classifier", "model.pkl", "model"]
    assert rows[0].endswith("# Tags questions")
    assert rows[1].split("\t")[:4] == ["future", "later.pkl", "-", "not recorded"]
    data = json.loads(mlv("artifacts", "list", "--json", cwd=mlv_repo).stdout)
    assert data["classifier"]["labels"] == ["nlp"] and len(data["classifier"]["xxh128"]) == 32
    listing = mlv("stage", "list", cwd=mlv_repo).stdout
    assert "frozen_one\techo never > never.txt\t(frozen)" in listing
    assert "# fit it" in listing
    assert not (mlv_repo / "never.txt").exists()


def test_a_folder_target_skips_outputs_not_recorded_yet(pushed_clone: Path, mlv: Mlv) -> None:
    text = (pushed_clone / "mlv.yaml").read_text()
    (pushed_clone / "mlv.yaml").write_text(text + """\
  later:
    cmd: cat model.pkl > later.pkl
    deps: [model.pkl]
    outs: [later.pkl]
""")
    res = mlv("pull", ".", cwd=pushed_clone)
    assert res.exit_code == 0, res.output
    assert (pushed_clone / "model.pkl").exists() and not (pushed_clone / "later.pkl").exists()
    one_error(mlv("pull", "later.pkl", cwd=pushed_clone), "later.pkl", "does not record yet")
