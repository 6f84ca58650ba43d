"""mlv.yaml accepts DVC 3's dvc.yaml syntax: a DVC project's pipeline runs as it is
(top-level metrics, plots, vars and artifacts, matrix, frozen, whole-file params, output
options), and every key mlv cannot honour is named, with its line, in one error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlv.pipeline.stage import load_project
from mlv.tree import GitTree
from tests.conftest import git, make_tree, one_error, run_mlv


def ok(res):  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output
    return res


def runs(repo: Path) -> list[str]:
    path = repo / "runs.log"
    return path.read_text().split() if path.exists() else []


def lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "mlv.lock").read_text())


# ---- DVC's example-get-started, as it is --------------------------------------------------

# The dvc.yaml of DVC's public example project, unchanged but for the commands
# (`python src/x.py` runs tiny shell scripts here).
EXAMPLE_YAML = """\
vars:
  - params.yaml
stages:
  prepare:
    cmd: sh src/prepare.sh data/data.xml
    deps: [data/data.xml, src/prepare.sh]
    params: [prepare.seed, prepare.split]
    outs: [data/prepared]
  featurize:
    cmd: sh src/featurization.sh data/prepared data/features
    deps: [data/prepared, src/featurization.sh]
    params: [featurize.max_features, featurize.ngrams]
    outs: [data/features]
  train:
    cmd: sh src/train.sh data/features model.pkl
    deps: [data/features, src/train.sh]
    params: [train.seed, train.n_est, train.min_split]
    outs: [model.pkl]
  evaluate:
    cmd: sh src/evaluate.sh model.pkl data/features
    deps: [data/features, model.pkl, src/evaluate.sh]
    outs: [eval]
metrics:
- eval/metrics.json
plots:
- ROC:
    template: simple
    x: fpr
    y:
      eval/plots/sklearn/roc/train.json: tpr
      eval/plots/sklearn/roc/test.json: tpr
- Confusion-Matrix:
    template: confusion
    x: actual
    y:
      eval/plots/sklearn/cm/train.json: predicted
      eval/plots/sklearn/cm/test.json: predicted
- eval/plots/images/importance.png
artifacts:
  text-classification:
    path: model.pkl
    type: model
    desc: Detect whether the given stackoverflow question should have R language tag.
    labels: [nlp, classification]
"""

EXAMPLE_PARAMS = """\
prepare:
  split: 0.20
  seed: 20170428
featurize:
  max_features: 100
  ngrams: 1
train:
  seed: 20170428
  n_est: 50
  min_split: 0.01
"""

EVALUATE = """\
echo evaluate >> runs.log
mkdir -p eval/plots/sklearn/roc eval/plots/sklearn/cm eval/plots/images
echo '{"avg_prec": 0.9, "roc_auc": 0.95}' > eval/metrics.json
for s in train test; do
  echo '{"roc": [{"fpr": 0, "tpr": 0}]}' > eval/plots/sklearn/roc/$s.json
  echo '[{"actual": 1, "predicted": 1}]' > eval/plots/sklearn/cm/$s.json
done
echo png > eval/plots/images/importance.png
"""

EXAMPLE = {
    "mlv.yaml": EXAMPLE_YAML,
    "params.yaml": EXAMPLE_PARAMS,
    "data": {"data.xml": "<posts><row Id='1'/></posts>\n"},
    "src": {
        "prepare.sh": "echo prepare >> runs.log\nmkdir -p data/prepared\n"
                      "cp $1 data/prepared/train.tsv\ncp $1 data/prepared/test.tsv\n",
        "featurization.sh": "echo featurize >> runs.log\nmkdir -p $2\n"
                            "cat $1/train.tsv > $2/train.pkl\ncat $1/test.tsv > $2/test.pkl\n",
        "train.sh": "echo train >> runs.log\ncat $1/train.pkl > $2\n"
                    "grep n_est params.yaml >> $2\n",
        "evaluate.sh": EVALUATE,
    },
}


def test_dvc_example_project_runs_unchanged_and_a_second_repro_runs_nothing(
        mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, EXAMPLE)
    res = ok(mlv("repro", cwd=mlv_repo))
    assert runs(mlv_repo) == ["prepare", "featurize", "train", "evaluate"], res.output
    assert set(lock(mlv_repo)["stages"]) == {"prepare", "featurize", "train", "evaluate"}
    assert (mlv_repo / "eval" / "metrics.json").exists()
    # the metrics file inside the cached output folder `eval` is recorded with it
    assert [o["path"] for o in lock(mlv_repo)["stages"]["evaluate"]["outs"]] == ["eval"]

    ok(mlv("repro", cwd=mlv_repo))
    assert runs(mlv_repo) == ["prepare", "featurize", "train", "evaluate"]
    status = ok(mlv("status", cwd=mlv_repo)).stdout
    assert "stage " not in status

    (mlv_repo / "params.yaml").write_text(EXAMPLE_PARAMS.replace("n_est: 50", "n_est: 60"))
    assert "stage train: param train.n_est: 50 -> 60" in mlv("status", cwd=mlv_repo).stdout
    ok(mlv("repro", cwd=mlv_repo))
    assert runs(mlv_repo)[4:] == ["train", "evaluate"]


def test_dvc_example_top_level_sections_are_kept(mlv_repo: Path) -> None:
    make_tree(mlv_repo, EXAMPLE)
    project = load_project(str(mlv_repo))
    assert [s.name for s in project.stages] == ["prepare", "featurize", "train", "evaluate"]
    assert project.metrics == ["eval/metrics.json"]
    roc, cm, image = project.plots
    assert (roc.id, roc.template) == ("ROC", "simple")
    assert roc.files == ["eval/plots/sklearn/roc/train.json", "eval/plots/sklearn/roc/test.json"]
    assert roc.x == dict.fromkeys(roc.files, "fpr")
    assert roc.y == {f: ["tpr"] for f in roc.files}
    assert (cm.id, cm.template, cm.x[cm.files[0]]) == ("Confusion-Matrix", "confusion", "actual")
    assert (image.id, image.files) == ("eval/plots/images/importance.png",
                                       ["eval/plots/images/importance.png"])
    model = project.artifacts["text-classification"]
    assert (model.path, model.type, model.labels) == ("model.pkl", "model",
                                                      ["nlp", "classification"])
    assert model.desc and model.desc.startswith("Detect whether")


def test_dvc_example_loads_at_a_git_revision(mlv_repo: Path) -> None:
    """Vars files are read through the tree: a revision is read from git, not the disk."""
    make_tree(mlv_repo, {**EXAMPLE, "mlv.yaml": EXAMPLE_YAML.replace(
        "vars:\n  - params.yaml\n", "vars:\n  - params.yaml\n  - conf.yaml\n").replace(
        "cmd: sh src/train.sh", "cmd: sh src/train.sh --depth ${depth}"),
        "conf.yaml": "depth: 3\n"})
    git(mlv_repo, "add", "mlv.yaml", "params.yaml", "conf.yaml")
    git(mlv_repo, "commit", "-qm", "pipeline")
    (mlv_repo / "conf.yaml").write_text("depth: 9\n")
    at_head = load_project(str(mlv_repo), GitTree(str(mlv_repo), "HEAD"))
    train = next(s for s in at_head.stages if s.name == "train")
    assert "--depth 3" in train.cmd
    now = next(s for s in load_project(str(mlv_repo)).stages if s.name == "train")
    assert "--depth 9" in now.cmd


@pytest.mark.slow
def test_dvc_example_runs_in_a_subprocess(mlv_repo: Path) -> None:
    make_tree(mlv_repo, EXAMPLE)
    ok(run_mlv(mlv_repo, "repro"))
    assert len(runs(mlv_repo)) == 4
    ok(run_mlv(mlv_repo, "repro"))
    assert len(runs(mlv_repo)) == 4
    assert "stage " not in ok(run_mlv(mlv_repo, "status")).stdout


# ---- matrix, vars -----------------------------------------------------------------------

def test_matrix_expands_to_one_stage_per_combination(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text("""\
stages:
  train:
    matrix:
      model: [cnn, xgb]
      lr: [0.1, 0.2]
    cmd: echo ${item.model} ${item.lr} > model-${item.model}-${item.lr}.txt
    outs:
      - model-${item.model}-${item.lr}.txt
""")
    listed = ok(mlv("stage", "list", cwd=mlv_repo)).stdout
    names = [line.split("\t")[0] for line in listed.splitlines()]
    assert names == ["train@cnn-0.1", "train@cnn-0.2", "train@xgb-0.1", "train@xgb-0.2"]
    ok(mlv("repro", "train@xgb-0.2", cwd=mlv_repo))
    assert (mlv_repo / "model-xgb-0.2.txt").read_text() == "xgb 0.2\n"
    assert not (mlv_repo / "model-cnn-0.1.txt").exists()
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "model-cnn-0.1.txt").read_text() == "cnn 0.1\n"


def test_matrix_of_mappings_and_from_vars(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text("""\
vars:
  - seeds: [1, 2]
stages:
  fit:
    matrix:
      cfg:
        - {name: small, depth: 2}
        - {name: big, depth: 8}
      seed: ${seeds}
    cmd: echo ${item.cfg.name} ${item.cfg.depth} ${item.seed}
""")
    listed = ok(mlv("stage", "list", cwd=mlv_repo)).stdout
    assert "fit@cfg0-1\techo small 2 1" in listed
    assert "fit@cfg1-2\techo big 8 2" in listed


def test_vars_from_files_keys_and_inline_values(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {
        "params.yaml": "train:\n  lr: 0.1\n",
        "conf": {"model.yaml": "layers: 3\nwidth: 64\nunused: {x: 1}\n"},
        "mlv.yaml": """\
vars:
  - conf/model.yaml:layers,width
  - name: demo
    train:
      epochs: 5
stages:
  fit:
    cmd: echo ${name} ${train.lr} ${train.epochs} ${layers}x${width} > fit.txt
    outs: [fit.txt]
  local:
    vars:
      - depth: 7
    cmd: echo ${depth} ${name} > local.txt
    outs: [local.txt]
"""})
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "fit.txt").read_text() == "demo 0.1 5 3x64\n"
    assert (mlv_repo / "local.txt").read_text() == "7 demo\n"


@pytest.mark.parametrize("vars_yaml, words", [
    ("  - missing.yaml\n", ["mlv.yaml:2", "missing.yaml", "does not exist"]),
    ("  - params.yaml\n  - {train: {lr: 9}}\n", ["mlv.yaml:3", "train.lr", "twice"]),
    ("  - conf.yaml:nokey\n", ["mlv.yaml:2", "nokey", "conf.yaml"]),
])
def test_bad_vars_give_one_error_with_the_line(mlv, mlv_repo: Path, vars_yaml: str,
                                                words: list[str]) -> None:
    make_tree(mlv_repo, {"params.yaml": "train:\n  lr: 0.1\n", "conf.yaml": "a: 1\n",
                         "mlv.yaml": "vars:\n" + vars_yaml + "stages:\n  s:\n    cmd: echo\n"})
    one_error(mlv("status", cwd=mlv_repo), *words)


# ---- whole-file params ------------------------------------------------------------------

def test_whole_file_params_depend_on_every_key(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {
        "params.yaml": "train:\n  lr: 0.1\nunrelated: 1\n",
        "other.yaml": "a: 1\n",
        "mlv.yaml": """\
stages:
  fit:
    cmd: echo fit >> runs.log && echo done > fit.txt
    params:
      - params.yaml:
      - other.yaml:
    outs: [fit.txt]
"""})
    ok(mlv("repro", cwd=mlv_repo))
    assert lock(mlv_repo)["stages"]["fit"]["params"] == {
        "other.yaml": {"a": 1}, "params.yaml": {"train": {"lr": 0.1}, "unrelated": 1}}
    assert "stage fit" not in mlv("status", cwd=mlv_repo).stdout

    (mlv_repo / "params.yaml").write_text("train:\n  lr: 0.1\nunrelated: 2\nnew: x\n")
    status = mlv("status", cwd=mlv_repo).stdout
    assert "param unrelated: 1 -> 2" in status and "new param new" in status
    ok(mlv("repro", cwd=mlv_repo))
    assert runs(mlv_repo) == ["fit", "fit"]
    assert lock(mlv_repo)["stages"]["fit"]["params"]["params.yaml"]["new"] == "x"

    (mlv_repo / "other.yaml").write_text("a: 1\nb: 2\n")
    ok(mlv("repro", cwd=mlv_repo))
    assert runs(mlv_repo) == ["fit", "fit", "fit"]


# ---- frozen -------------------------------------------------------------------------------

def test_frozen_stage_never_runs_and_status_stays_quiet(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"in.txt": "v1\n", "mlv.yaml": """\
stages:
  make:
    cmd: echo make >> runs.log && cat in.txt > made.txt
    deps: [in.txt]
    outs: [made.txt]
  use:
    cmd: echo use >> runs.log && cat made.txt > used.txt
    deps: [made.txt]
    outs: [used.txt]
"""})
    ok(mlv("repro", cwd=mlv_repo))
    text = (mlv_repo / "mlv.yaml").read_text()
    (mlv_repo / "mlv.yaml").write_text(text.replace("    deps: [in.txt]\n",
                                                    "    deps: [in.txt]\n    frozen: true\n"))
    (mlv_repo / "in.txt").write_text("v2\n")
    assert "stage " not in ok(mlv("status", cwd=mlv_repo)).stdout
    ok(mlv("repro", cwd=mlv_repo))
    ok(mlv("repro", "--force", cwd=mlv_repo))  # forces `use` only
    assert runs(mlv_repo) == ["make", "use", "use"]
    assert (mlv_repo / "made.txt").read_text() == "v1\n"
    # its outputs stay recorded, and checkout restores them
    assert "made.txt" in [o["path"] for o in lock(mlv_repo)["stages"]["make"]["outs"]]
    (mlv_repo / "made.txt").unlink()
    ok(mlv("checkout", cwd=mlv_repo))
    assert (mlv_repo / "made.txt").read_text() == "v1\n"


# ---- output options, desc, meta -------------------------------------------------------------

def test_output_options_desc_and_meta_are_accepted_and_kept(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text("""\
stages:
  train:
    desc: Train the model
    meta: {owner: ml-team}
    cmd: echo m > model.pkl && echo 1 > m.json && echo x,y > roc.csv
    outs:
      - model.pkl:
          push: false
          remote: models
          desc: The model
          type: model
          labels: [nlp]
          meta: {size: small}
    metrics:
      - m.json: {cache: false, desc: scores}
    plots:
      - roc.csv: {x: fpr, y: [tpr], title: ROC, template: linear, x_label: FPR,
                  y_label: TPR, cache: false}
""")
    stage = load_project(str(mlv_repo)).stages[0]
    assert (stage.desc, stage.meta, stage.frozen) == ("Train the model", {"owner": "ml-team"},
                                                      False)
    model, metric, plot = stage.outs
    assert (model.push, model.remote, model.desc, model.type, model.labels, model.meta) == (
        False, "models", "The model", "model", ("nlp",), {"size": "small"})
    assert (metric.kind, metric.cache, metric.desc, metric.push) == ("metric", False, "scores",
                                                                     True)
    assert plot.plot is not None and not plot.cache
    assert (plot.plot.x, plot.plot.y, plot.plot.title, plot.plot.x_label) == (
        "fpr", ("tpr",), "ROC", "FPR")
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "model.pkl").exists()


# ---- what mlv does not support: every key, one error ---------------------------------------

UNSUPPORTED = """\
stages:
  train:
    cmd: python train.py
    depz: [a.txt]
    outs:
      - model.pkl:
          checkpoint: true
  other:
    cmd: echo
    foo: 1
datasets:
  - name: x
plots:
  - roc.csv: {x: a, colour: red}
"""


def test_unsupported_keys_are_reported_together_with_lines(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text(UNSUPPORTED)
    for command in ("repro", "status"):
        line = one_error(mlv(command, cwd=mlv_repo),
                         "mlv.yaml:4: stages.train.depz: unknown key (did you mean deps?)",
                         "mlv.yaml:7: stages.train.outs[0].model.pkl.checkpoint: not supported "
                         "(DVC 2 checkpoints)", "mlv.yaml:10: stages.other.foo: unknown key",
                         "mlv.yaml:11: datasets: not supported", "mlv.yaml:14", "colour")
        assert line.index("depz") < line.index("checkpoint") < line.index("colour")
    assert not (mlv_repo / "mlv.lock").exists()
    res = run_mlv(mlv_repo, "repro")
    one_error(res, "depz", "checkpoint", "foo", "datasets", "colour")
    assert "hint:" in res.stderr and "dvc.yaml syntax" in res.stderr


@pytest.mark.parametrize("text, words", [
    ("metrics: {a: b}\nstages: {}\n", ["mlv.yaml:1", "metrics", "list"]),
    ("metrics: [../out.json]\n", ["mlv.yaml:1", "outside"]),
    ("plots:\n  - ROC:\n      y: {/abs.json: tpr}\n", ["mlv.yaml:3", "absolute"]),
    ("artifacts:\n  Model:\n    path: m.pkl\n", ["mlv.yaml:2", "artifact names"]),
    ("artifacts:\n  model:\n    type: model\n", ["mlv.yaml:2", "path"]),
    ("stages:\n  s:\n    cmd: echo\n    frozen: yes please\n", ["mlv.yaml:4", "frozen"]),
    ("stages:\n  s:\n    cmd: echo\n    outs:\n      - o: {push: no way}\n",
     ["mlv.yaml:5", "push", "true or false"]),
    ("stages:\n  s:\n    matrix: {a: 1}\n    cmd: echo\n", ["mlv.yaml:3", "matrix"]),
])
def test_bad_dvc_sections_give_one_error_with_the_line(mlv, mlv_repo: Path, text: str,
                                                       words: list[str]) -> None:
    (mlv_repo / "mlv.yaml").write_text(text)
    one_error(mlv("status", cwd=mlv_repo), *words)


# ---- a top-level metrics file inside an output folder -------------------------------------

def test_top_level_metric_inside_an_output_folder_is_not_an_output(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "ev.sh").write_text("mkdir -p eval && echo '{\"acc\": 0.5}' > eval/metrics.json")
    (mlv_repo / "mlv.yaml").write_text("""\
stages:
  evaluate:
    cmd: sh ev.sh
    outs: [eval]
metrics:
  - eval/metrics.json
plots:
  - eval/metrics.json:
      y: acc
""")
    ok(mlv("repro", cwd=mlv_repo))
    ok(mlv("dag", cwd=mlv_repo))
    assert [o["path"] for o in lock(mlv_repo)["stages"]["evaluate"]["outs"]] == ["eval"]
    project = load_project(str(mlv_repo))
    assert project.metrics == ["eval/metrics.json"]
    assert project.plots[0].y == {"eval/metrics.json": ["acc"]}
    assert "stage " not in ok(mlv("status", cwd=mlv_repo)).stdout
