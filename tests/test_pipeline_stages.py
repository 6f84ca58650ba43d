"""Pipelines, defining stages: `mlv stage add/list`, foreach/do and ${…}, `mlv dag`,
`mlv params show`, `mlv metrics show` and `mlv commit`."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash
import yaml

from tests.conftest import cache_objects, make_tree

PY = shlex.quote(sys.executable)


def ok(res):  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output
    return res


def pipeline(repo: Path) -> dict:
    return yaml.safe_load((repo / "mlv.yaml").read_text())


def lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "mlv.lock").read_text())


def lock_outs(repo: Path, stage: str) -> dict[str, str]:
    return {o["path"]: o["xxh128"] for o in lock(repo)["stages"][stage].get("outs", [])}


def ignored(repo: Path, path: str) -> bool:
    res = subprocess.run(["git", "check-ignore", "-q", path], cwd=repo)
    return res.returncode == 0


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    rest = iter(haystack)
    return all(any(line == other for other in rest) for line in needles)


def stage_lines(res) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in res.stdout.splitlines() if line.startswith("stage ")]


# ---- mlv stage add -------------------------------------------------------------------------

def test_stage_add_writes_every_option_as_the_right_key(mlv, mlv_repo: Path) -> None:
    res = ok(mlv("stage", "add", "-n", "train", "-d", "src/train.py", "-d", "data",
                 "-o", "model.pkl", "-O", "report.txt", "-p", "train.lr",
                 "-m", "scores.json", "-M", "summary.json", "--plots", "roc.csv",
                 "--always-changed", "python src/train.py", cwd=mlv_repo))
    assert "train" in res.stdout
    assert pipeline(mlv_repo) == {"stages": {"train": {
        "cmd": "python src/train.py",
        "deps": ["src/train.py", "data"],
        "params": ["train.lr"],
        "outs": ["model.pkl", {"report.txt": {"cache": False}}],
        "metrics": ["scores.json", {"summary.json": {"cache": False}}],
        "plots": ["roc.csv"],
        "always_changed": True,
    }}}


def test_stage_add_with_wdir_runs_the_command_there(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "sub").mkdir()
    (mlv_repo / "sub" / "in.txt").write_text("payload\n")
    ok(mlv("stage", "add", "-n", "copy", "-w", "sub", "-d", "in.txt", "-o", "out.txt",
           "cat in.txt > out.txt", cwd=mlv_repo))
    body = pipeline(mlv_repo)["stages"]["copy"]
    assert body["wdir"] == "sub"
    assert body["deps"] == ["in.txt"] and body["outs"] == ["out.txt"]
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "sub" / "out.txt").read_text() == "payload\n"
    assert not (mlv_repo / "out.txt").exists()
    assert set(lock_outs(mlv_repo, "copy")) == {"sub/out.txt"}
    assert ignored(mlv_repo, "sub/out.txt")


def test_stage_add_params_file_key_and_comma_lists(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"params.yaml": "train:\n  lr: 0.1\n  epochs: 3\n",
                         "cfg.yaml": "model:\n  depth: 4\n  width: 8\n"})
    ok(mlv("stage", "add", "-n", "train", "-p", "train.lr,train.epochs",
           "-p", "cfg.yaml:model.depth,model.width", "-O", "m.txt", "echo hi > m.txt",
           cwd=mlv_repo))
    assert pipeline(mlv_repo)["stages"]["train"]["params"] == [
        "train.lr", "train.epochs", "cfg.yaml:model.depth", "cfg.yaml:model.width"]
    res = ok(mlv("params", "show", "--json", cwd=mlv_repo))
    assert json.loads(res.stdout) == {  # nested as in the files
        "params.yaml": {"train": {"lr": 0.1, "epochs": 3}},
        "cfg.yaml": {"model": {"depth": 4, "width": 8}},
    }


def test_stage_add_command_keeps_the_arguments_as_typed(mlv, mlv_repo: Path) -> None:
    # `mlv stage add -n greet -O out.txt python -c "open('out.txt', 'w').write('hi there')"`:
    # the argument with spaces and parentheses must reach the shell as one argument.
    code = "open('out.txt', 'w').write('hi there')"
    ok(mlv("stage", "add", "-n", "greet", "-O", "out.txt", "--", sys.executable, "-c", code,
           cwd=mlv_repo))
    res = mlv("repro", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert (mlv_repo / "out.txt").read_text() == "hi there"


def test_stage_add_options_after_the_command_belong_to_the_command(mlv,
                                                                     mlv_repo: Path) -> None:
    # As with `dvc stage add`, everything from the command on is the command:
    # `echo -n hi` must not set the stage name to "hi".
    ok(mlv("stage", "add", "-n", "say", "-O", "said.txt", "printf", "x", "-n", "hi",
           cwd=mlv_repo))
    stages = pipeline(mlv_repo)["stages"]
    assert list(stages) == ["say"]
    assert stages["say"]["cmd"] == "printf x -n hi"


HAND_WRITTEN = """\
# Pipeline of the demo project.
# Edit by hand or with `mlv stage add`.
stages:
  # Step 1: clean the raw data.
  prepare:
    cmd: echo prepared > prepared.txt   # keep it simple
    outs:
    - prepared.txt
  # Step 2: fit.
  train:
    cmd: cat prepared.txt > model.txt
    deps:
    - prepared.txt   # produced by prepare
    outs:
    - model.txt
"""


def test_stage_add_keeps_comments_and_stage_order(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text(HAND_WRITTEN)
    ok(mlv("stage", "add", "-n", "evaluate", "-d", "model.txt", "-M", "score.json",
           "echo 1 > score.json", cwd=mlv_repo))
    text = (mlv_repo / "mlv.yaml").read_text()
    # every original line is still there, verbatim and in the same order
    assert is_subsequence(HAND_WRITTEN.splitlines(), text.splitlines())
    assert list(pipeline(mlv_repo)["stages"]) == ["prepare", "train", "evaluate"]
    res = ok(mlv("stage", "list", cwd=mlv_repo))
    names = [line.split()[0] for line in res.stdout.splitlines()]
    assert names == ["prepare", "train", "evaluate"]


def test_stage_add_into_a_file_indented_with_four_spaces(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text(
        "stages:\n    prepare:\n        cmd: echo a > a.txt\n        outs:\n        - a.txt\n")
    res = mlv("stage", "add", "-n", "train", "-d", "a.txt", "-o", "b.txt", "cat a.txt > b.txt",
              cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    stages = pipeline(mlv_repo)["stages"]
    assert list(stages) == ["prepare", "train"]
    assert stages["train"]["cmd"] == "cat a.txt > b.txt"


def test_stage_add_force_replaces_the_stage_in_place(mlv, mlv_repo: Path) -> None:
    for name in ("a", "b", "c"):
        ok(mlv("stage", "add", "-n", name, "-o", f"{name}.txt", f"echo {name} > {name}.txt",
               cwd=mlv_repo))
    before = pipeline(mlv_repo)["stages"]
    ok(mlv("stage", "add", "--force", "-n", "b", "-d", "a.txt", "-o", "b2.txt",
           "cat a.txt > b2.txt", cwd=mlv_repo))
    after = pipeline(mlv_repo)["stages"]
    assert list(after) == ["a", "b", "c"]
    assert after["b"] == {"cmd": "cat a.txt > b2.txt", "deps": ["a.txt"], "outs": ["b2.txt"]}
    assert after["a"] == before["a"] and after["c"] == before["c"]


def test_stage_add_force_keeps_the_comment_of_the_next_stage(mlv, mlv_repo: Path) -> None:
    (mlv_repo / "mlv.yaml").write_text(HAND_WRITTEN)
    ok(mlv("stage", "add", "--force", "-n", "prepare", "-o", "prepared.txt",
           "echo v2 > prepared.txt", cwd=mlv_repo))
    text = (mlv_repo / "mlv.yaml").read_text()
    assert "  # Step 2: fit.\n  train:\n" in text
    assert "# Pipeline of the demo project.\n" in text
    stages = pipeline(mlv_repo)["stages"]
    assert list(stages) == ["prepare", "train"]
    assert stages["prepare"]["cmd"] == "echo v2 > prepared.txt"


def test_stage_add_existing_name_without_force_is_refused(mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "train", "-o", "m.txt", "echo 1 > m.txt", cwd=mlv_repo))
    before = (mlv_repo / "mlv.yaml").read_bytes()
    res = mlv("stage", "add", "-n", "train", "-o", "m.txt", "echo 2 > m.txt", cwd=mlv_repo)
    assert res.exit_code == 1
    assert "train" in res.stderr and "already exists" in res.stderr
    assert "--force" in res.stderr
    assert "Traceback" not in res.output
    assert (mlv_repo / "mlv.yaml").read_bytes() == before


def test_cached_outs_are_git_ignored_and_uncached_ones_are_not(mlv, mlv_repo: Path) -> None:
    ok(mlv("stage", "add", "-n", "train", "-o", "model.pkl", "-O", "report.txt",
           "-m", "scores.json", "-M", "summary.json",
           "echo m > model.pkl && echo r > report.txt"
           " && echo 1 > scores.json && echo 2 > summary.json", cwd=mlv_repo))
    assert ignored(mlv_repo, "model.pkl")
    assert ignored(mlv_repo, "scores.json")
    assert not ignored(mlv_repo, "report.txt")
    assert not ignored(mlv_repo, "summary.json")
    ok(mlv("repro", cwd=mlv_repo))
    assert ignored(mlv_repo, "model.pkl") and ignored(mlv_repo, "scores.json")
    assert not ignored(mlv_repo, "report.txt") and not ignored(mlv_repo, "summary.json")


def test_stage_add_out_in_a_folder_that_does_not_exist_yet(mlv, mlv_repo: Path) -> None:
    # the usual `-o models/model.pkl` before the stage has ever run
    res = mlv("stage", "add", "-n", "train", "-o", "models/model.pkl",
              "mkdir -p models && echo m > models/model.pkl", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert list(pipeline(mlv_repo)["stages"]) == ["train"]
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "models" / "model.pkl").read_text() == "m\n"
    assert ignored(mlv_repo, "models/model.pkl")


# ---- mlv stage list, foreach/do, ${…} -----------------------------------------------------

def test_stage_list_shows_names_commands_and_outs(mlv, mlv_repo: Path) -> None:
    res = ok(mlv("stage", "list", cwd=mlv_repo))
    assert "no stages" in res.stdout
    ok(mlv("stage", "add", "-n", "prepare", "-o", "p.txt", "echo p > p.txt", cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "train", "-d", "p.txt", "-o", "m.txt", "cat p.txt > m.txt",
           cwd=mlv_repo))
    lines = ok(mlv("stage", "list", cwd=mlv_repo)).stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("prepare") and "echo p > p.txt" in lines[0]
    assert "p.txt" in lines[0].split("echo p > p.txt", 1)[1]
    assert lines[1].startswith("train") and "cat p.txt > m.txt" in lines[1]


FOREACH = """\
stages:
  build:
    foreach: [small, large]
    do:
      cmd: echo size=${item} > out_${item}.txt
      outs:
      - out_${item}.txt
  fit:
    foreach:
      us:
        lr: 0.1
        file: us.csv
      eu:
        lr: 0.5
        file: eu.csv
    do:
      cmd: echo ${key} ${item.lr} > model_${key}.txt
      deps:
      - ${item.file}
      outs:
      - model_${key}.txt
"""


def test_foreach_list_and_dict_forms_expand_to_named_stages(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"mlv.yaml": FOREACH, "us.csv": "1\n", "eu.csv": "2\n"})
    lines = ok(mlv("stage", "list", cwd=mlv_repo)).stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["build@small", "build@large", "fit@us",
                                                   "fit@eu"]
    assert "echo size=small > out_small.txt" in lines[0]
    assert "echo us 0.1 > model_us.txt" in lines[2]
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "out_small.txt").read_text() == "size=small\n"
    assert (mlv_repo / "out_large.txt").read_text() == "size=large\n"
    assert (mlv_repo / "model_us.txt").read_text() == "us 0.1\n"
    assert (mlv_repo / "model_eu.txt").read_text() == "eu 0.5\n"
    stages = lock(mlv_repo)["stages"]
    assert set(stages) == {"build@small", "build@large", "fit@us", "fit@eu"}
    assert [d["path"] for d in stages["fit@eu"]["deps"]] == ["eu.csv"]
    # one item can be run by its full name; the group by its base name
    (mlv_repo / "eu.csv").write_text("changed\n")
    (mlv_repo / "us.csv").write_text("changed\n")
    res = ok(mlv("repro", "fit@us", cwd=mlv_repo))
    assert "fit@us" in res.stdout and "fit@eu" not in res.stdout
    res = ok(mlv("repro", "--dry", "fit", cwd=mlv_repo))
    assert "would run fit@eu: dep eu.csv modified" in res.stdout.splitlines()


def test_foreach_over_a_list_from_params(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {
        "params.yaml": "models:\n- name: a\n  depth: 1\n- name: b\n  depth: 2\n",
        "mlv.yaml": "stages:\n  fit:\n    foreach: ${models}\n    do:\n"
                    "      cmd: echo ${item.depth} > ${item.name}.txt\n"
                    "      outs: [\"${item.name}.txt\"]\n"})
    lines = ok(mlv("stage", "list", cwd=mlv_repo)).stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("fit@") for line in lines)
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "a.txt").read_text() == "1\n"
    assert (mlv_repo / "b.txt").read_text() == "2\n"


def test_interpolation_from_params_in_cmd_deps_and_outs(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {
        "params.yaml": "data:\n  dir: raw\ntrain:\n  epochs: 3\nmodel: model.txt\n",
        "raw": {"a.csv": "1,2\n"},
        "mlv.yaml": "stages:\n  train:\n    cmd: echo epochs=${train.epochs} > ${model}\n"
                    "    deps: [\"${data.dir}\"]\n    outs: [\"${model}\"]\n"})
    line = ok(mlv("stage", "list", cwd=mlv_repo)).stdout.strip()
    assert "echo epochs=3 > model.txt" in line
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "model.txt").read_text() == "epochs=3\n"
    entry = lock(mlv_repo)["stages"]["train"]
    assert entry["cmd"] == "echo epochs=3 > model.txt"
    assert [d["path"] for d in entry["deps"]] == ["raw"]
    assert [o["path"] for o in entry["outs"]] == ["model.txt"]
    # a new value makes the interpolated cmd differ from the lock
    (mlv_repo / "params.yaml").write_text(
        "data:\n  dir: raw\ntrain:\n  epochs: 5\nmodel: model.txt\n")
    res = mlv("status", cwd=mlv_repo)
    assert "stage train: cmd changed" in res.stdout.splitlines()
    ok(mlv("repro", cwd=mlv_repo))
    assert (mlv_repo / "model.txt").read_text() == "epochs=5\n"


# ---- mlv dag --------------------------------------------------------------------------------

DAG = """\
stages:
  prepare:
    cmd: echo p > prepared.txt
    outs: [prepared.txt]
  train:
    cmd: cat prepared.txt > model.pkl
    deps: [prepared.txt]
    outs: [model.pkl]
  evaluate:
    cmd: cat model.pkl > scores.json
    deps: [model.pkl, prepared.txt]
    metrics: [scores.json]
  lint:
    cmd: echo lint
"""


@pytest.fixture
def dag_repo(mlv_repo: Path) -> Path:
    (mlv_repo / "mlv.yaml").write_text(DAG)
    return mlv_repo


def test_dag_text_shows_every_stage_and_its_upstream(mlv, dag_repo: Path) -> None:
    lines = ok(mlv("dag", cwd=dag_repo)).stdout.splitlines()
    shown = {line.split()[0]: line for line in lines if line.strip()}
    assert set(shown) == {"prepare", "train", "evaluate", "lint"}
    assert "<-" not in shown["prepare"] and "<-" not in shown["lint"]
    assert shown["train"].split("<-")[1].split(",") == [" prepare"]
    assert {s.strip() for s in shown["evaluate"].split("<-")[1].split(",")} == {"prepare",
                                                                               "train"}
    order = [line.split()[0] for line in lines if line.strip()]
    assert order.index("prepare") < order.index("train") < order.index("evaluate")


def test_dag_dot(mlv, dag_repo: Path) -> None:
    out = ok(mlv("dag", "--dot", cwd=dag_repo)).stdout
    assert out.lstrip().startswith("digraph")
    assert out.rstrip().endswith("}")
    for edge in ('"prepare" -> "train"', '"train" -> "evaluate"', '"prepare" -> "evaluate"'):
        assert edge in out
    assert '"lint"' in out
    assert out.count("->") == 3


def _mermaid_edges(out: str) -> set[tuple[str, str]]:
    labels = {}
    edges = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if "-->" in line:
            a, b = (s.strip() for s in line.split("-->"))
            edges.add((a, b))
        elif "[" in line:
            node_id, label = line.split("[", 1)
            labels[node_id.strip()] = label.strip('[]"')
    return {(labels[a], labels[b]) for a, b in edges}


def test_dag_mermaid(mlv, dag_repo: Path) -> None:
    out = ok(mlv("dag", "--mermaid", cwd=dag_repo)).stdout
    assert out.splitlines()[0].strip() in ("flowchart TD", "graph TD")
    assert _mermaid_edges(out) == {("prepare", "train"), ("train", "evaluate"),
                                   ("prepare", "evaluate")}
    assert '"lint"' in out


def test_dag_outs_shows_outputs_as_nodes(mlv, dag_repo: Path) -> None:
    out = ok(mlv("dag", "--outs", "--mermaid", cwd=dag_repo)).stdout
    assert _mermaid_edges(out) == {("prepared.txt", "model.pkl"),
                                   ("model.pkl", "scores.json"),
                                   ("prepared.txt", "scores.json")}
    dot = ok(mlv("dag", "--outs", "--dot", cwd=dag_repo)).stdout
    assert '"prepared.txt" -> "model.pkl"' in dot
    assert '"train"' not in dot


# ---- params show / metrics show --------------------------------------------------------------

def test_params_show_table_and_json_across_yaml_toml_json(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {
        "params.yaml": "train:\n  lr: 0.1\n  epochs: 3\nunused: 1\n",
        "cfg.toml": "[model]\ndepth = 4\nname = \"tree\"\n",
        "cfg.json": json.dumps({"data": {"split": 0.2}}),
        "mlv.yaml": "stages:\n  train:\n    cmd: echo hi\n"
                    "    params: [train.lr, train.epochs, 'cfg.toml:model.depth',"
                    " 'cfg.toml:model.name', 'cfg.json:data.split']\n"})
    res = ok(mlv("params", "show", "--json", cwd=mlv_repo))
    assert json.loads(res.stdout) == {
        "params.yaml": {"train": {"lr": 0.1, "epochs": 3}},
        "cfg.toml": {"model": {"depth": 4, "name": "tree"}},
        "cfg.json": {"data": {"split": 0.2}},
    }
    rows = [line.split() for line in ok(mlv("params", "show", cwd=mlv_repo)).stdout.splitlines()]
    assert ["params.yaml", "train.lr", "0.1"] in rows
    assert ["cfg.toml", "model.depth", "4"] in rows
    assert ["cfg.json", "data.split", "0.2"] in rows
    assert not any("unused" in row for row in rows)


def test_metrics_show_flattens_nested_keys(mlv, mlv_repo: Path) -> None:
    scores = {"acc": 0.9, "loss": {"train": 0.25, "test": 0.5}, "n": 10}
    ok(mlv("stage", "add", "-n", "evaluate", "-M", "scores.json", "-m", "extra.yaml",
           f"{PY} -c \"import json; json.dump({scores!r}, open('scores.json', 'w'))\""
           " && printf 'auc:\\n  roc: 0.75\\n' > extra.yaml", cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    data = json.loads(ok(mlv("metrics", "show", "--json", cwd=mlv_repo)).stdout)
    assert data == {"scores.json": scores, "extra.yaml": {"auc": {"roc": 0.75}}}
    rows = [line.split() for line in ok(mlv("metrics", "show", cwd=mlv_repo)).stdout.splitlines()]
    assert ["scores.json", "loss.train", "0.25"] in rows
    assert ["extra.yaml", "auc.roc", "0.75"] in rows
    md = ok(mlv("metrics", "show", "--md", cwd=mlv_repo)).stdout.splitlines()
    assert md[0].startswith("|") and set(md[1].replace("|", "").strip()) <= {"-", ":", " "}
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in md[2:]]
    assert ["scores.json", "loss.test", "0.5"] in cells
    assert ["scores.json", "acc", "0.9"] in cells


# ---- mlv commit -------------------------------------------------------------------------------

def test_commit_records_a_hand_edited_output(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"in.txt": "input\n"})
    ok(mlv("stage", "add", "-n", "train", "-d", "in.txt", "-o", "model.txt",
           "cat in.txt > model.txt", cwd=mlv_repo))
    ok(mlv("stage", "add", "-n", "other", "-o", "other.txt", "echo o > other.txt",
           cwd=mlv_repo))
    ok(mlv("repro", cwd=mlv_repo))
    other_before = lock(mlv_repo)["stages"]["other"]
    model = mlv_repo / "model.txt"
    model.unlink()
    model.write_text("tuned by hand\n")
    assert "stage train: out model.txt modified" in mlv("status", cwd=mlv_repo).stdout
    res = ok(mlv("commit", "train", cwd=mlv_repo))
    assert "train" in res.stdout
    want = xxhash.xxh3_128_hexdigest(b"tuned by hand\n")
    assert lock_outs(mlv_repo, "train") == {"model.txt": want}
    assert want in cache_objects(mlv_repo)
    assert lock(mlv_repo)["stages"]["other"] == other_before
    res = mlv("status", cwd=mlv_repo)
    assert res.exit_code == 0
    assert stage_lines(res) == []
    assert "everything is up to date" in res.stdout
    assert mlv("status", "-q", cwd=mlv_repo).exit_code == 0
    assert "up to date" in ok(mlv("repro", cwd=mlv_repo)).stdout
    assert model.read_text() == "tuned by hand\n"
