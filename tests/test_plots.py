"""`mlv plots show` and `mlv plots diff`: SVG per plot (linear, scatter, confusion…) from
CSV/TSV/JSON/YAML, revisions overlaid, images copied, index.html; deterministic bytes,
escaped text, notes instead of crashes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import MLV, Result, clone, commit_all, git, make_tree, one_error, run_mlv

Mlv = Callable[..., Result]
NS = "{http://www.w3.org/2000/svg}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0fake image"


def svg(path: Path) -> ET.Element:
    """The SVG parsed (it must be well-formed XML)."""
    return ET.fromstring(path.read_bytes())


def lines(root: ET.Element) -> list[list[tuple[float, float]]]:
    """Each polyline's points, in pixels."""
    return [[tuple(map(float, p.split(","))) for p in e.get("points", "").split()]  # type: ignore[misc]
            for e in root.iter(f"{NS}polyline")]


def legend(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text") if e.get("class") == "legend"]


def cells(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text") if e.get("class") == "cell"]


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text")]


def ok(res: Result) -> Result:
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res


STAGE = """\
stages:
  train:
    cmd: {cmd}
    plots:
    - plots/loss.csv:
        x: epoch
        y: [loss, acc]
        title: Training
"""
LOSS = "epoch,loss,acc\n1,0.9,0.5\n2,0.5,0.7\n3,0.3,0.8\n"


def test_stage_plot_linear_from_csv_with_x_and_y(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": STAGE.format(cmd="echo hi"), "plots": {"loss.csv": LOSS}})
    res = ok(mlv("plots", "show", cwd=mlv_repo))
    assert res.stdout == "mlv_plots/index.html\n"
    root = svg(mlv_repo / "mlv_plots" / "plots_loss.csv.svg")
    assert legend(root) == ["plots/loss.csv: loss", "plots/loss.csv: acc"]
    loss, acc = lines(root)
    assert [p[0] for p in loss] == sorted(p[0] for p in loss)  # x (epoch) left to right
    assert [p[1] for p in loss] == sorted(p[1] for p in loss)  # loss falls: pixels go down
    assert [p[1] for p in acc] == sorted((p[1] for p in acc), reverse=True)
    assert "Training" in texts(root) and "epoch" in texts(root)


def test_without_x_and_y_the_first_column_is_x(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- a.csv\n- one.csv\n",
                         "a.csv": "lr,train,test\n0.1,3,4\n0.2,2,3\n",
                         "one.csv": "loss\n5\n4\n3\n"})
    ok(mlv("plots", "show", cwd=mlv_repo))
    root = svg(mlv_repo / "mlv_plots" / "a.csv.svg")
    assert legend(root) == ["a.csv: train", "a.csv: test"]
    assert "lr" in texts(root)  # the x axis' label
    root = svg(mlv_repo / "mlv_plots" / "one.csv.svg")
    assert legend(root) == ["one.csv: loss"]  # one column: y over the row number
    assert "step" in texts(root) and len(lines(root)[0]) == 3


def test_json_and_yaml_records_scatter(mlv_repo: Path, mlv: Mlv) -> None:
    records = [{"fpr": 0.0, "tpr": 0.0}, {"fpr": "0.5", "tpr": 0.8}, {"fpr": 1, "tpr": 1}]
    make_tree(mlv_repo, {
        "mlv.yaml": "plots:\n- roc.json:\n    template: scatter\n    x: fpr\n    y: tpr\n"
                    "- roc.yaml:\n    x: fpr\n    y: tpr\n",
        "roc.json": json.dumps({"train": records}),  # DVC's {name: [records]}
        "roc.yaml": "".join(f"- fpr: {r['fpr']}\n  tpr: {r['tpr']}\n" for r in records)})
    ok(mlv("plots", "show", cwd=mlv_repo))
    scatter = svg(mlv_repo / "mlv_plots" / "roc.json.svg")
    assert lines(scatter) == []
    assert len(list(scatter.iter(f"{NS}circle"))) == 3
    linear = svg(mlv_repo / "mlv_plots" / "roc.yaml.svg")
    assert len(lines(linear)) == 1 and len(lines(linear)[0]) == 3


def test_confusion_matrix_counts_and_fractions(mlv_repo: Path, mlv: Mlv) -> None:
    pairs = [("cat", "cat"), ("cat", "dog"), ("cat", "cat"), ("dog", "dog")]
    rows = [{"actual": a, "predicted": p} for a, p in pairs]
    make_tree(mlv_repo, {
        "mlv.yaml": "plots:\n- cm.json:\n    template: confusion\n    x: actual\n"
                    "    y: predicted\n"
                    "- cm.csv:\n    template: confusion_normalized\n    x: actual\n"
                    "    y: predicted\n",
        "cm.json": json.dumps(rows),
        "cm.csv": "actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in pairs)})
    ok(mlv("plots", "show", cwd=mlv_repo))
    # columns are actual (cat, dog), rows predicted: cells go column by column
    assert cells(svg(mlv_repo / "mlv_plots" / "cm.json.svg")) == ["2", "1", "0", "1"]
    assert cells(svg(mlv_repo / "mlv_plots" / "cm.csv.svg")) == ["0.67", "0.33", "0.00",
                                                                 "1.00"]


def test_tsv_without_header_names_columns_by_number(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": STAGE.replace("x: epoch\n        y: [loss, acc]",
                                                   "header: false\n        x: '0'\n"
                                                   "        y: '2'")
                         .replace("loss.csv", "loss.tsv").format(cmd="echo hi"),
                         "plots": {"loss.tsv": "1\t0.9\t0.5\n2\t0.5\t0.7\n"}})
    ok(mlv("plots", "show", cwd=mlv_repo))
    assert legend(svg(mlv_repo / "mlv_plots" / "plots_loss.tsv.svg")) == ["plots/loss.tsv: 2"]


def test_top_level_plot_over_two_files(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {
        "mlv.yaml": "plots:\n- loss:\n    x: epoch\n    y:\n      train.csv: loss\n"
                    "      test.csv: [loss]\n    y_label: the loss\n",
        "train.csv": "epoch,loss\n1,3\n2,2\n", "test.csv": "epoch,loss\n1,4\n2,3\n"})
    ok(mlv("plots", "show", cwd=mlv_repo))
    root = svg(mlv_repo / "mlv_plots" / "loss.svg")
    assert legend(root) == ["train.csv: loss", "test.csv: loss"]
    assert "the loss" in texts(root)


def _cached_history(repo: Path, mlv: Mlv) -> None:
    """Two commits of a stage whose cached plot output is written by the stage."""
    script = ("import os, sys\nos.makedirs('plots', exist_ok=True)\nk = float(open('k')"
              ".read())\nopen('plots/loss.csv', 'w').write('epoch,loss,acc\\n' + ''.join("
              "f'{e},{k / e},{1 - k / e}\\n' for e in (1, 2, 3)))\n")
    make_tree(repo, {"mlv.yaml": STAGE.format(cmd=f"{sys.executable} make.py")
                     .replace("title: Training", "title: Training\n    deps: [k]"),
                     "make.py": script, "k": "0.9"})
    for k in ("0.9", "0.3"):
        (repo / "k").write_text(k)
        ok(mlv("repro", cwd=repo))
        commit_all(repo, f"k={k}")


def test_diff_of_two_commits_overlays_both(mlv_repo: Path, mlv: Mlv) -> None:
    _cached_history(mlv_repo, mlv)
    assert "/loss.csv" in (mlv_repo / "plots" / ".gitignore").read_text()  # cached
    ok(mlv("plots", "diff", "HEAD~1", "HEAD", "--targets", "plots/loss.csv", cwd=mlv_repo))
    root = svg(mlv_repo / "mlv_plots" / "plots_loss.csv.svg")
    assert legend(root) == ["HEAD~1: plots/loss.csv: loss", "HEAD~1: plots/loss.csv: acc",
                            "HEAD: plots/loss.csv: loss", "HEAD: plots/loss.csv: acc"]
    old_loss, _, new_loss, _ = lines(root)
    # k=0.9 then k=0.3: at every epoch the old loss is higher (a smaller pixel y)
    assert all(o[1] < n[1] for o, n in zip(old_loss, new_loss))
    colours = {e.get("stroke") for e in root.iter(f"{NS}polyline")}
    assert len(colours) == 4


def test_diff_defaults_to_head_and_the_workspace(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- loss.csv\n", "loss.csv": "e,l\n1,2\n2,1\n"})
    commit_all(mlv_repo, "v1")
    (mlv_repo / "loss.csv").write_text("e,l\n1,3\n2,2\n")
    res = ok(mlv("plots", "diff", "--json", cwd=mlv_repo))
    data = json.loads(res.stdout)
    assert data["plots"] == [{"id": "loss.csv", "file": "loss.csv.svg",
                              "revs": ["HEAD", "workspace"]}]
    assert data["notes"] == []
    assert legend(svg(mlv_repo / "mlv_plots" / "loss.csv.svg")) == [
        "HEAD: loss.csv: l", "workspace: loss.csv: l"]


def test_images_are_copied_per_revision(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- plots/cm.png\n",
                         "plots": {"cm.png": PNG + b"v1"}})
    commit_all(mlv_repo, "v1")
    ok(mlv("plots", "show", "-o", "out", cwd=mlv_repo))
    assert (mlv_repo / "out" / "plots_cm.png").read_bytes() == PNG + b"v1"
    (mlv_repo / "plots" / "cm.png").write_bytes(PNG + b"v2")
    ok(mlv("plots", "diff", "-o", "out2", cwd=mlv_repo))
    assert (mlv_repo / "out2" / "plots_cm_HEAD.png").read_bytes() == PNG + b"v1"
    assert (mlv_repo / "out2" / "plots_cm_workspace.png").read_bytes() == PNG + b"v2"
    html = (mlv_repo / "out2" / "index.html").read_text()
    assert 'src="plots_cm_HEAD.png"' in html and 'src="plots_cm_workspace.png"' in html


def test_output_is_byte_identical_and_index_needs_no_network(mlv_repo: Path,
                                                             mlv: Mlv) -> None:
    _cached_history(mlv_repo, mlv)
    make_tree(mlv_repo, {"img.svg": "<svg/>", "cm.csv": "a,p\n1,1\n1,2\n2,2\n"})
    with (mlv_repo / "mlv.yaml").open("a") as f:
        f.write("plots:\n- img.svg\n- cm.csv:\n    template: confusion\n")
    commit_all(mlv_repo, "more plots")
    for out in ("one", "two"):
        ok(mlv("plots", "diff", "HEAD~1", "HEAD", "-o", out, cwd=mlv_repo))
    one = {p.name: p.read_bytes() for p in (mlv_repo / "one").iterdir()}
    two = {p.name: p.read_bytes() for p in (mlv_repo / "two").iterdir()}
    assert one == two
    html = one["index.html"].decode()
    assert "http://" not in html and "https://" not in html
    for name in one:
        if name != "index.html":
            assert f'src="{name}"' in html


HOSTILE = """\
plots:
- '../../x/<script>alert(1)</script>':
    title: "<script>alert('t')</script>"
    y:
      evil.json: "<b>y</b>"
"""


def test_hostile_ids_and_text_are_sanitised_and_escaped(mlv_repo: Path, mlv: Mlv) -> None:
    rows = [{"<b>y</b>": 1, "k": "<script>\u0001\ud800"}, {"<b>y</b>": 2, "k": "z"}]
    make_tree(mlv_repo, {"mlv.yaml": HOSTILE, "evil.json": json.dumps(rows)})
    res = ok(mlv("plots", "show", "--json", cwd=mlv_repo))
    [plot] = json.loads(res.stdout)["plots"]
    assert "/" not in plot["file"] and not plot["file"].startswith(".")
    assert sorted(p.name for p in (mlv_repo / "mlv_plots").iterdir()) == sorted(
        ["index.html", plot["file"]])
    root = svg(mlv_repo / "mlv_plots" / plot["file"])  # well-formed, nothing injected
    assert not list(root.iter(f"{NS}script")) and not list(root.iter("script"))
    assert "<script>" not in (mlv_repo / "mlv_plots" / plot["file"]).read_text()
    html = (mlv_repo / "mlv_plots" / "index.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_not_cached_at_a_revision_is_a_note(mlv_repo: Path, mlv: Mlv, tmp_path: Path) -> None:
    _cached_history(mlv_repo, mlv)
    other = clone(mlv_repo, tmp_path)  # no cache: HEAD's plot data is not here
    make_tree(other, {"plots": {"loss.csv": LOSS}})
    res = ok(mlv("plots", "diff", cwd=other))
    assert "note: plots/loss.csv: plots/loss.csv is not in the cache" in res.stderr
    assert "mlv fetch" in res.stderr
    root = svg(other / "mlv_plots" / "plots_loss.csv.svg")
    assert legend(root) == ["workspace: plots/loss.csv: loss", "workspace: plots/loss.csv: acc"]
    assert "not in the cache" in (other / "mlv_plots" / "index.html").read_text()


def test_bad_data_is_a_note_per_plot(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- good.csv\n- bad.csv\n- f.csv:\n    y: nope\n",
                         "good.csv": "a,b\n1,2\n", "bad.csv": "a,b\n1,2,3\n",
                         "f.csv": "a,b\n1,2\n"})
    res = ok(mlv("plots", "show", cwd=mlv_repo))
    assert "note: bad.csv: bad.csv: line 2 has 3 fields, the first line 2" in res.stderr
    assert "note: f.csv: f.csv has no field 'nope' (its fields: a, b)" in res.stderr
    assert sorted(p.name for p in (mlv_repo / "mlv_plots").iterdir()) == [
        "good.csv.svg", "index.html"]
    # nothing drawable at all: one error line, exit 1
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- bad.csv\n"})
    one_error(mlv("plots", "show", cwd=mlv_repo), "no plot could be drawn")


def test_too_many_rows_is_a_note(mlv_repo: Path, mlv: Mlv,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mlv.plots import table

    monkeypatch.setattr(table, "MAX_POINTS", 5)
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- big.csv\n- ok.csv\n",
                         "big.csv": "a,b\n" + "1,2\n" * 6, "ok.csv": "a,b\n1,2\n"})
    res = ok(mlv("plots", "show", cwd=mlv_repo))
    assert "big.csv: more than 5 rows" in res.stderr
    monkeypatch.setattr(table, "MAX_BYTES", 10)
    res = ok(mlv("plots", "show", cwd=mlv_repo))
    assert "note: big.csv: big.csv is larger than" in res.stderr


def test_unknown_template_is_a_note(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- a.csv:\n    template: .dvc/plots/my.json\n"
                                     "- b.csv\n",
                         "a.csv": "x,y\n1,2\n", "b.csv": "x,y\n1,2\n"})
    res = ok(mlv("plots", "show", cwd=mlv_repo))
    assert "note: a.csv: unknown plot template '.dvc/plots/my.json'" in res.stderr


def test_targets_and_errors(mlv_repo: Path, mlv: Mlv) -> None:
    one_error(mlv("plots", "show", cwd=mlv_repo), "no plots are declared")
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- a.csv\n- b.csv\n- named:\n    y:\n"
                                     "      c.csv: v\n",
                         "a.csv": "x,y\n1,2\n", "b.csv": "x,y\n1,2\n", "c.csv": "v\n1\n"})
    res = ok(mlv("plots", "show", "b.csv", "named", "--json", cwd=mlv_repo))
    assert [p["id"] for p in json.loads(res.stdout)["plots"]] == ["b.csv", "named"]
    one_error(mlv("plots", "show", "nope.csv", cwd=mlv_repo), "nope.csv is not a plot")
    one_error(mlv("plots", "diff", "no-such-rev", cwd=mlv_repo), "no-such-rev")


def test_end_to_end_and_help_does_not_load_the_renderer(mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- a.csv\n", "a.csv": "x,y\n1,2\n2,3\n"})
    res = run_mlv(mlv_repo, "plots", "show")
    assert (res.exit_code, res.stdout) == (0, "mlv_plots/index.html\n"), res.output
    proc = subprocess.run([*MLV[:1], "-c", "import sys; from mlv.cli import main\n"
                           "try: main(['--help'])\nexcept SystemExit: pass\n"
                           "print('mlv.plots' in sys.modules, 'mlv.api.plots' in sys.modules,"
                           " file=sys.stderr)"], cwd=mlv_repo, capture_output=True, text=True)
    assert proc.stderr.strip().splitlines()[-1] == "False False"
    git(mlv_repo, "status")  # the repository is untouched but for the output folder
